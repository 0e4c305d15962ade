//! Live detach: the mount at a path inside a running sandbox is detached
//! lazily in its mount namespace (open files keep working until closed;
//! the host side decides when the FUSE mount itself goes).

use std::path::Path;

use cove_api::ids::SandboxId;

use super::attach_mount::{init_pid, mount_error};
use crate::sys::Sys;
use crate::RuntimeError;

/// Detaches whatever is mounted at `container_path` in sandbox `id`.
pub fn detach_mount(
    sys: &dyn Sys,
    state_dir: &Path,
    id: &SandboxId,
    container_path: &str,
) -> Result<(), RuntimeError> {
    let pid = init_pid(state_dir, id)?;
    sys.eject_mount(pid, container_path)
        .map_err(|e| mount_error(id, "detach_mount", container_path, e))
}
