//! Live attach: a host mount (a disk's bucketfs FUSE mount) made visible at
//! a path inside a running sandbox, by injection into its mount namespace
//! (`crate::mount_ns`). The sandbox's root owns any directory created on
//! the way. Binds declared at create take the other path (`spec.rs`).

use std::path::Path;

use cove_api::ids::SandboxId;

use super::layout::SandboxPaths;
use crate::sys::Sys;
use crate::{BindMount, RuntimeError};

/// Attaches `mount` inside the running sandbox `id`. With `replace`, a
/// mount already at the path (a dead FUSE mount left by a previous server
/// process) is detached first.
pub fn attach_mount(
    sys: &dyn Sys,
    state_dir: &Path,
    uid_base: u32,
    id: &SandboxId,
    mount: &BindMount,
    replace: bool,
) -> Result<(), RuntimeError> {
    let pid = init_pid(state_dir, id)?;
    let owner = (uid_base, uid_base);
    sys.inject_mount(pid, &mount.host_path, &mount.container_path, owner, replace)
        .map_err(|e| mount_error(id, "attach_mount", &mount.container_path, e))
}

/// The pid of the sandbox's init (its agent), checked alive: a stale pid
/// file must not lead into another process's namespaces.
pub(super) fn init_pid(state_dir: &Path, id: &SandboxId) -> Result<u32, RuntimeError> {
    let paths = SandboxPaths::new(state_dir, id);
    if !paths.record().exists() {
        return Err(RuntimeError::NotFound(id.clone()));
    }
    let pid = std::fs::read_to_string(paths.pid_file())
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| RuntimeError::NotRunning(id.clone()))?;
    // The cgroup of a live init names the sandbox; a recycled pid's does not.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if !cgroup.contains(id.as_str()) {
        return Err(RuntimeError::NotRunning(id.clone()));
    }
    Ok(pid)
}

pub(super) fn mount_error(
    id: &SandboxId,
    op: &'static str,
    path: &str,
    e: std::io::Error,
) -> RuntimeError {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => RuntimeError::InvalidPath(format!(
            "{path}: a component is a symlink or not a directory"
        )),
        _ if e.kind() == std::io::ErrorKind::InvalidInput => {
            RuntimeError::InvalidPath(format!("{path}: {e}"))
        }
        _ => RuntimeError::Failed {
            id: id.clone(),
            op,
            message: format!("{path}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    fn data_mount() -> BindMount {
        BindMount {
            host_path: "/x".into(),
            container_path: "/data".into(),
            read_only: false,
        }
    }

    #[test]
    fn attach_of_unknown_sandbox_is_not_found_and_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::default();
        let id = SandboxId::generate();
        let r = attach_mount(&sys, dir.path(), 100_000, &id, &data_mount(), false);
        assert!(matches!(r, Err(RuntimeError::NotFound(_))), "{r:?}");
        assert!(sys.calls().is_empty());
    }

    /// A pid file naming a process outside the sandbox's cgroup (a reused
    /// pid) must never lead into that process's namespaces.
    #[test]
    fn attach_with_a_stale_pid_file_is_not_running_and_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let id = SandboxId::generate();
        let paths = SandboxPaths::new(dir.path(), &id);
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.record(), b"{}").unwrap();
        std::fs::write(paths.pid_file(), std::process::id().to_string()).unwrap();
        let sys = RecordingSys::default();
        let r = attach_mount(&sys, dir.path(), 100_000, &id, &data_mount(), false);
        assert!(matches!(r, Err(RuntimeError::NotRunning(_))), "{r:?}");
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn symlink_errors_are_invalid_paths() {
        let id = SandboxId::generate();
        let e = mount_error(
            &id,
            "attach_mount",
            "/a",
            std::io::Error::from_raw_os_error(libc::ELOOP),
        );
        assert!(matches!(e, RuntimeError::InvalidPath(_)), "{e:?}");
        let e = mount_error(
            &id,
            "attach_mount",
            "/a",
            std::io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(matches!(e, RuntimeError::Failed { .. }), "{e:?}");
    }
}
