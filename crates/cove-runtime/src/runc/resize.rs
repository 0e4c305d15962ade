//! `resize_disk`: grow a sandbox's disk, running or checkpointed. The
//! image file is extended (sparse); a running sandbox's ext4 is grown
//! online (the loop device is told of the new size, then `resize2fs`; the
//! kernel asks for CAP_SYS_RESOURCE), a checkpointed one's offline on the
//! unmounted image (`e2fsck -f`, `resize2fs`). Shrinking is refused: it
//! could cut off data, and ext4 cannot shrink online.

use cove_api::ids::SandboxId;

use super::layout::SandboxPaths;
use super::record::{Phase, SandboxRecord};
use super::{disk, Inner};
use crate::RuntimeError;

/// Grows `id`'s disk to `mib`. Blocking.
pub fn resize_disk(inner: &Inner, id: &SandboxId, mib: u64) -> Result<(), RuntimeError> {
    let paths = SandboxPaths::new(&inner.config.state_dir, id);
    let mut rec =
        SandboxRecord::load(&paths.record()).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
    if !matches!(rec.phase, Phase::Running | Phase::Checkpointed) {
        return Err(RuntimeError::NotRunning(id.clone()));
    }
    // The record, not the file: a failed online grow may have left the file longer.
    let current = rec.disk_mib;
    if mib < current {
        return Err(RuntimeError::DiskShrink {
            id: id.clone(),
            current_mib: current,
            requested_mib: mib,
        });
    }
    if mib == current {
        return Ok(());
    }
    disk::grow(inner.sys.as_ref(), &paths, mib)?;
    rec.disk_mib = mib;
    rec.save(&paths.record())?;
    tracing::info!(sandbox_id = %id, from_mib = current, to_mib = mib, "sandbox disk grown");
    Ok(())
}
