//! `destroy`: remove a sandbox and every leftover, in reverse order of
//! create: container (kill + `runc delete -f`), network (veth, namespace
//! name, lease), mounts (overlay, disk; the loop device frees itself),
//! cgroups, the sandbox dir. Each step skips what is already gone, so
//! destroy is idempotent, finishes a half-done create or destroy, and is
//! create's rollback.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cove_api::ids::SandboxId;

use super::layout::SandboxPaths;
use super::record::{Phase, SandboxRecord};
use super::{disk, Inner};
use crate::RuntimeError;

/// Removes everything of `id`. Blocking.
pub fn destroy(inner: &Inner, id: &SandboxId) -> Result<(), RuntimeError> {
    let paths = SandboxPaths::new(&inner.config.state_dir, id);
    let mut rec = SandboxRecord::load(&paths.record());
    if let Some(r) = rec.as_mut() {
        r.phase = Phase::Destroying;
        let _ = r.save(&paths.record());
    }
    remove_container(inner, &paths, id)?;
    let net_result = match rec.as_ref().and_then(|r| r.ip) {
        Some(ip) => inner.net.detach(&inner.net.attachment_of(id.as_str(), ip)),
        None => inner.net.detach_owner(id.as_str()),
    };
    net_result.map_err(|e| fail(id, format!("network cleanup: {e}")))?;
    if paths.dir.exists() {
        disk::teardown(inner.sys.as_ref(), &paths)?;
    }
    remove_cgroups(inner, id)?;
    if paths.dir.exists() {
        // Never recurse into a directory that still has a mount below it.
        let left = disk::mounts_under(&paths.dir)?;
        if !left.is_empty() {
            return Err(fail(id, format!("{} is still mounted", left[0].display())));
        }
        std::fs::remove_dir_all(&paths.dir)?;
    }
    Ok(())
}

fn fail(id: &SandboxId, message: String) -> RuntimeError {
    RuntimeError::Failed {
        id: id.clone(),
        op: "destroy",
        message,
    }
}

pub fn remove_container(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
) -> Result<(), RuntimeError> {
    if !inner
        .config
        .state_dir
        .join("runc")
        .join(id.as_str())
        .exists()
    {
        return Ok(());
    }
    let runc = &inner.config.runc_bin;
    let runc_dir = inner.config.state_dir.join("runc").join(id.as_str());
    // A `runc restore` killed half-way leaves the sandbox's root bound at
    // `<runc>/<id>/criu-root`; `runc delete -f` would then remove that
    // directory recursively, through the bind, emptying the sandbox's
    // root. Unmount first.
    for m in disk::mounts_under(&runc_dir)?.into_iter().rev() {
        inner.sys.umount(&m)?;
    }
    // SIGKILL first: `delete -f` alone polls for the process to go.
    let kill: Vec<OsString> = vec!["kill".into(), id.as_str().into(), "KILL".into()];
    let _ = inner.sys.run(runc, &inner.runc_args(paths, kill));
    let del: Vec<OsString> = vec!["delete".into(), "-f".into(), id.as_str().into()];
    let out = inner.sys.run(runc, &inner.runc_args(paths, del))?;
    if runc_dir.join("state.json").exists() {
        if out.success() || !runc_dir.exists() {
            return Ok(());
        }
        return Err(fail(id, format!("runc delete: {}", out.stderr.trim())));
    }
    // No state.json: runc was killed (a crash) before it recorded the
    // container, so it cannot load it to kill or delete it (`delete -f`
    // then only tries to remove the directory). What a half-done restore
    // started is left in the sandbox's cgroups; `remove_cgroups` kills it.
    if runc_dir.exists() && disk::mounts_under(&runc_dir)?.is_empty() {
        std::fs::remove_dir_all(&runc_dir)?;
    }
    Ok(())
}

/// Thaws the sandbox's freezer cgroup (a frozen task does not die) and
/// SIGKILLs every process in its cgroups, in every hierarchy.
fn kill_cgroup_members(inner: &Inner, id: &SandboxId) -> Result<(), RuntimeError> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Ok(());
    };
    let dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path().join(&inner.config.cgroup_parent).join(id.as_str()))
        .collect();
    for d in &dirs {
        let freezer = d.join("freezer.state");
        if freezer.exists() {
            let _ = std::fs::write(&freezer, "THAWED");
        }
    }
    for d in &dirs {
        let Ok(list) = std::fs::read_to_string(d.join("cgroup.procs")) else {
            continue;
        };
        for pid in list.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            tracing::warn!(sandbox_id = %id, pid, "killing a process left in the sandbox's cgroup");
            if let Err(err) = inner.sys.kill(pid) {
                tracing::warn!(sandbox_id = %id, pid, error = %err, "killing a leftover process failed");
            }
        }
    }
    Ok(())
}

/// Removes `<hierarchy>/<parent>/<id>` in every cgroup v1 hierarchy (and
/// the unified one) that runc left behind, killing any process still in
/// them first (strays of a crashed restore must not join the next one).
pub fn remove_cgroups(inner: &Inner, id: &SandboxId) -> Result<(), RuntimeError> {
    let parent = &inner.config.cgroup_parent;
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Ok(());
    };
    let dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path().join(parent).join(id.as_str()))
        .filter(|d| d.is_dir())
        .collect();
    if dirs.is_empty() {
        return Ok(());
    }
    kill_cgroup_members(inner, id)?;
    for dir in dirs {
        // Killed processes leave their cgroups as they exit: retry a while.
        let mut tries = 0;
        loop {
            match remove_cgroup_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(fail(id, format!("removing {}: {e}", dir.display())));
                }
            }
        }
    }
    Ok(())
}

fn remove_cgroup_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    // Child cgroups first (a cgroup dir holds only control files otherwise).
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_cgroup_dir(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
