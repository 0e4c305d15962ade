//! Crash recovery of checkpoint and restore, run when a runtime starts on a
//! state dir. A `kill -9` of the server can stop either half-way; what the
//! machine shows then decides, and no checkpoint is ever deleted while it
//! is the only copy of the sandbox:
//!
//! | record | machine | outcome |
//! |---|---|---|
//! | `checkpointing` | container gone, `checkpoint/` or a finished `checkpoint.tmp/` | finish: rename, release, `checkpointed` |
//! | `checkpointing` | container `stopped` (CRIU killed its tasks, runc was killed before removing it) and the images complete | finish: remove the container, rename, release, `checkpointed` |
//! | `checkpointing` | container still there (frozen or not) | roll back: thaw, remove CRIU's network lock if a killed CRIU left it, plug the network again, drop `checkpoint.tmp/`, `running` |
//! | `restoring` | container running and CRIU logged "Restore finished" | finish: plug the network again, `running`, drop `checkpoint/` |
//! | `restoring` | anything else (a CRIU killed half-way leaves a running but half-restored tree) | roll back: kill and remove what restore started, `checkpointed` |
//!
//! A half-made fork (`forking`) is not recovered: `list` reports it
//! `Partial` and the reconciler destroys it (its source was only read).

use std::ffi::OsString;

use cove_api::ids::SandboxId;

use super::layout::{sandboxes_dir, SandboxPaths};
use super::record::{Phase, SandboxRecord};
use super::{checkpoint, criu, destroy, list, restore, Inner};
use crate::RuntimeError;

/// Recovers every sandbox left checkpointing or restoring. Blocking.
pub fn recover_all(inner: &Inner) -> Result<(), RuntimeError> {
    let Ok(entries) = std::fs::read_dir(sandboxes_dir(&inner.config.state_dir)) else {
        return Ok(());
    };
    let mut statuses = None;
    for e in entries.flatten() {
        let Some(id) = e.file_name().to_str().and_then(SandboxId::parse) else {
            continue;
        };
        let paths = SandboxPaths::new(&inner.config.state_dir, &id);
        let Some(mut rec) = SandboxRecord::load(&paths.record()) else {
            continue;
        };
        if !matches!(rec.phase, Phase::Checkpointing | Phase::Restoring) {
            continue;
        }
        if statuses.is_none() {
            statuses = Some(list::runc_statuses(inner)?);
        }
        let status = statuses.as_ref().and_then(|s| s.get(id.as_str())).cloned();
        let r = match rec.phase {
            Phase::Checkpointing => recover_checkpoint(inner, &paths, &id, &mut rec, status),
            _ => recover_restore(inner, &paths, &id, &mut rec, status),
        };
        match r {
            Ok(()) => {
                tracing::warn!(sandbox_id = %id, phase = ?rec.phase, "recovered an interrupted checkpoint/restore")
            }
            Err(e) => {
                tracing::error!(sandbox_id = %id, error = %e, "recovering an interrupted checkpoint/restore failed")
            }
        }
    }
    Ok(())
}

fn recover_checkpoint(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    rec: &mut SandboxRecord,
    status: Option<String>,
) -> Result<(), RuntimeError> {
    // CRIU kills the dumped tasks only after every image is written; a
    // CRIU and runc killed after that leave a `stopped` container whose
    // checkpoint is the only copy of the sandbox.
    let stopped = status.as_deref() == Some("stopped");
    let tmp = paths.checkpoint_tmp();
    // Whether `checkpoint.tmp/` holds a whole dump: CRIU said it finished,
    // or (its tasks being gone) it got past writing the images.
    let complete = if stopped {
        criu::dump_images_written(&tmp)
    } else {
        criu::dump_finished(&tmp)
    };
    if stopped && (paths.checkpoint().is_dir() || complete) {
        destroy::remove_container(inner, paths, id)?;
    }
    if status.is_none() || stopped {
        if !paths.checkpoint().is_dir() && complete {
            std::fs::rename(&tmp, paths.checkpoint())?;
        }
        if !paths.checkpoint().is_dir() {
            // No container and no complete dump: nothing to recover from.
            return Err(RuntimeError::Failed {
                id: id.clone(),
                op: "recover",
                message: "container gone without a complete checkpoint".into(),
            });
        }
        rec.phase = Phase::Checkpointed;
        rec.save(&paths.record())?;
        return checkpoint::release(inner, paths, id);
    }
    if status.as_deref() == Some("paused") {
        let resume: Vec<OsString> = vec!["resume".into(), id.as_str().into()];
        inner
            .sys
            .run(&inner.config.runc_bin, &inner.runc_args(paths, resume))?;
    }
    if let Some(pid) = checkpoint::init_pid(paths) {
        criu::drop_network_lock(inner, pid)?;
    }
    replug(inner, paths, id, rec)?;
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    rec.phase = Phase::Running;
    rec.save(&paths.record())?;
    Ok(())
}

fn recover_restore(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    rec: &mut SandboxRecord,
    status: Option<String>,
) -> Result<(), RuntimeError> {
    // Without the init's pid file runc did not get to the end of the
    // restore either: undo it (the checkpoint is still there) rather than
    // leave a container whose network cannot be plugged back.
    if status.as_deref() != Some("running")
        || !criu::restore_finished(&paths.criu_work())
        || checkpoint::init_pid(paths).is_none()
    {
        restore::undo(inner, paths, id, rec);
        return Ok(());
    }
    if let Some(pid) = checkpoint::init_pid(paths) {
        criu::drop_network_lock(inner, pid)?;
    }
    replug(inner, paths, id, rec)?;
    rec.phase = Phase::Running;
    rec.save(&paths.record())?;
    if paths.checkpoint().exists() {
        std::fs::remove_dir_all(paths.checkpoint())?;
    }
    Ok(())
}

/// Plugs the network in again from scratch: a crash may have stopped the
/// attach after the veth existed but before `lo`, the address or the route
/// were set inside, so an existing veth proves nothing.
fn replug(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    rec: &mut SandboxRecord,
) -> Result<(), RuntimeError> {
    let (Some(ip), Some(pid)) = (rec.ip, checkpoint::init_pid(paths)) else {
        return Err(RuntimeError::Failed {
            id: id.clone(),
            op: "recover",
            message: "no address or pid to plug the network back".into(),
        });
    };
    let _ = inner.net.unplug(&inner.net.attachment_of(id.as_str(), ip));
    let att = inner
        .net
        .attach(id.as_str(), ip, pid)
        .map_err(|e| RuntimeError::Failed {
            id: id.clone(),
            op: "recover",
            message: format!("network: {e}"),
        })?;
    rec.host_veth = Some(att.host_veth);
    Ok(())
}
