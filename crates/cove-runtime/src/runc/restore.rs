//! `restore` (resume): bring a checkpointed sandbox back.
//!
//! record `restoring` → mount the disk and the overlay again → declare the
//! given binds in `config.json` (runc passes every bind to CRIU as an
//! external mount, keyed by its destination) → `runc restore -d` from
//! `checkpoint/` with pipe stdio (runc maps its own stdio onto the dumped
//! pipes) → name the new network namespace, plug the veth back with the
//! same address, `lo` up (CRIU restores it down) → wait for the agent →
//! record `running` → only then delete `checkpoint/`.
//!
//! A failure at any step removes whatever the restore started (container,
//! network devices, cgroups, mounts) and leaves the sandbox `checkpointed`
//! with its checkpoint untouched, so the restore can be retried. `fork.rs`
//! uses the same container step on a copy.

use std::ffi::OsString;
use std::time::Instant;

use cove_api::ids::SandboxId;

use super::layout::SandboxPaths;
use super::record::{Phase, SandboxRecord};
use super::{checkpoint, criu, destroy, disk, spec, start, Inner, RuncRuntime};
use crate::{BindMount, CreatedSandbox, RuntimeError};

fn fail(id: &SandboxId, op: &'static str, message: String) -> RuntimeError {
    RuntimeError::Failed {
        id: id.clone(),
        op,
        message,
    }
}

/// Restores `id` with `mounts` declared.
pub async fn restore(
    rt: &RuncRuntime,
    id: &SandboxId,
    mounts: &[BindMount],
) -> Result<CreatedSandbox, RuntimeError> {
    let t0 = Instant::now();
    let paths = SandboxPaths::new(&rt.inner.config.state_dir, id);
    let rec =
        SandboxRecord::load(&paths.record()).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
    if rec.phase != Phase::Checkpointed || !paths.checkpoint().is_dir() {
        return Err(RuntimeError::NotCheckpointed(id.clone()));
    }
    let lower = rt.lower(&rt.image_of(&rec.image)).await?;
    rt.inner.forget_agent(id);
    let (i, m) = (id.clone(), mounts.to_vec());
    let rec = rt
        .blocking(move |inner| {
            let paths = SandboxPaths::new(&inner.config.state_dir, &i);
            let mut rec = rec;
            rec.phase = Phase::Restoring;
            rec.save(&paths.record())?;
            let r = disk::remount(inner.sys.as_ref(), &paths, &lower)
                .and_then(|_| declare_mounts(&paths, &m))
                .and_then(|_| restore_container(inner, &paths, &i, &mut rec, None, "restore"));
            match r {
                Ok(()) => Ok(rec),
                Err(e) => {
                    undo(inner, &paths, &i, &mut rec);
                    Err(e)
                }
            }
        })
        .await?;
    let ready = match rt.inner.agent(id) {
        Ok(agent) => agent
            .wait_ready(rt.inner.config.agent_timeout)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    let i = id.clone();
    let result = rt
        .blocking(move |inner| {
            let paths = SandboxPaths::new(&inner.config.state_dir, &i);
            finish(inner, &paths, &i, rec, ready)
        })
        .await;
    if result.is_err() {
        rt.inner.forget_agent(id);
    } else {
        tracing::info!(sandbox_id = %id, ms = t0.elapsed().as_millis() as u64, "sandbox restored");
    }
    result
}

/// After the agent answered (or did not): record `running` and drop the
/// checkpoint, or undo the restore and keep it.
fn finish(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    mut rec: SandboxRecord,
    ready: Result<(), RuntimeError>,
) -> Result<CreatedSandbox, RuntimeError> {
    if let Err(e) = ready {
        undo(inner, paths, id, &mut rec);
        return Err(e);
    }
    let ip = rec
        .ip
        .ok_or_else(|| fail(id, "restore", "no address".into()))?;
    rec.phase = Phase::Running;
    rec.save(&paths.record())?;
    // The sandbox runs from here on; a crash before this line leaves a
    // stale checkpoint that the next checkpoint removes.
    std::fs::remove_dir_all(paths.checkpoint())?;
    Ok(CreatedSandbox { ip })
}

/// Rewrites the declared binds of `config.json` (runc's restore reads the
/// bundle's config, not the one it ran with).
fn declare_mounts(paths: &SandboxPaths, mounts: &[BindMount]) -> Result<(), RuntimeError> {
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(paths.config())?)
        .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
    spec::replace_binds(&mut config, mounts);
    let bytes = serde_json::to_vec_pretty(&config)
        .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
    let tmp = paths.config().with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, paths.config())?;
    Ok(())
}

/// `runc restore -d` of `paths`' checkpoint as container `id`, then its
/// network (and, for a fork, its hostname). Blocking.
pub fn restore_container(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    rec: &mut SandboxRecord,
    hostname: Option<&str>,
    op: &'static str,
) -> Result<(), RuntimeError> {
    let t0 = Instant::now();
    let ip = rec.ip.ok_or_else(|| fail(id, op, "no address".into()))?;
    // CRIU binds the agent's listening socket to its path again.
    let _ = std::fs::remove_file(paths.socket());
    // Nothing may be left in the cgroups the restored tree joins (strays of
    // a restore a crash interrupted would be dumped with it next time).
    destroy::remove_cgroups(inner, id)?;
    let work = paths.criu_work();
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir(&work)?;
    let args = criu::runc_args(
        inner,
        paths,
        vec![
            "restore".into(),
            "-d".into(),
            "--image-path".into(),
            paths.checkpoint().into(),
            "--work-path".into(),
            work.clone().into(),
            "--bundle".into(),
            paths.dir.clone().into(),
            "--pid-file".into(),
            paths.pid_file().into(),
            id.as_str().into(),
        ],
    )?;
    let out = inner.sys.run_detached(&inner.config.runc_bin, &args)?;
    if !out.success() {
        return Err(fail(
            id,
            op,
            format!(
                "runc restore exited {}: {} {} {}",
                out.code,
                out.stderr.trim(),
                start::runc_log_tail(paths),
                criu::log_tail(&work.join("restore.log"))
            ),
        ));
    }
    let t_restore = t0.elapsed();
    let pid = checkpoint::init_pid(paths)
        .ok_or_else(|| fail(id, op, "runc restore wrote no pid".into()))?;
    let att = inner
        .net
        .attach(id.as_str(), ip, pid)
        .map_err(|e| fail(id, op, format!("network: {e}")))?;
    rec.host_veth = Some(att.host_veth);
    if let Some(name) = hostname {
        set_hostname(inner, id, pid, name, op)?;
    }
    tracing::debug!(
        sandbox_id = %id,
        runc_restore_us = t_restore.as_micros() as u64,
        total_us = t0.elapsed().as_micros() as u64,
        "container restored and network attached"
    );
    Ok(())
}

/// The hostname lives in the restored UTS namespace (the source's name for
/// a fork): set it from the host, which holds every capability over the
/// sandbox's user namespace.
fn set_hostname(
    inner: &Inner,
    id: &SandboxId,
    pid: u32,
    name: &str,
    op: &'static str,
) -> Result<(), RuntimeError> {
    let args: Vec<OsString> = vec![
        "-t".into(),
        pid.to_string().into(),
        "--uts".into(),
        "hostname".into(),
        name.into(),
    ];
    let out = inner.sys.run(std::path::Path::new("nsenter"), &args)?;
    if !out.success() {
        return Err(fail(
            id,
            op,
            format!("setting the hostname: {}", out.stderr.trim()),
        ));
    }
    Ok(())
}

/// Removes what a failed restore started and records the sandbox
/// checkpointed again. The checkpoint itself is never touched here.
pub fn undo(inner: &Inner, paths: &SandboxPaths, id: &SandboxId, rec: &mut SandboxRecord) {
    if let Err(e) = destroy::remove_container(inner, paths, id) {
        tracing::error!(sandbox_id = %id, error = %e, "removing a half-restored container failed");
    }
    if let Some(ip) = rec.ip {
        if let Err(e) = inner.net.unplug(&inner.net.attachment_of(id.as_str(), ip)) {
            tracing::error!(sandbox_id = %id, error = %e, "unplugging a half-restored sandbox failed");
        }
    }
    if let Err(e) = checkpoint::release(inner, paths, id) {
        tracing::error!(sandbox_id = %id, error = %e, "releasing a half-restored sandbox failed");
    }
    rec.phase = Phase::Checkpointed;
    if let Err(e) = rec.save(&paths.record()) {
        tracing::error!(sandbox_id = %id, error = %e, "saving the record after a failed restore failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runc::RuncConfig;
    use crate::sys::RecordingSys;

    #[test]
    fn restore_runs_runc_restore_with_criu_and_plugs_the_network() {
        let d = tempfile::tempdir().unwrap();
        let criu = d.path().join("criu");
        std::fs::write(&criu, b"").unwrap();
        let mut cfg = RuncConfig::for_state_dir(d.path());
        cfg.criu_bin = criu.clone();
        let sys = Arc::new(RecordingSys::default());
        let net_sys = Arc::new(cove_net::RecordingNetSys::default());
        let inner = Inner::for_tests(cfg, sys.clone(), net_sys.clone());
        let id = SandboxId::generate();
        let paths = SandboxPaths::new(d.path(), &id);
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.pid_file(), "4242").unwrap();
        let mut rec = SandboxRecord::for_tests(&id, Some("10.88.0.7".parse().unwrap()));
        // RecordingSys does not write the pid file; it was written above.
        restore_container(&inner, &paths, &id, &mut rec, Some("fork-1"), "fork").unwrap();
        let calls = sys.calls();
        let restore = calls
            .iter()
            .find(|c| c.starts_with("detached runc"))
            .unwrap();
        assert!(restore.starts_with(&format!("detached runc --criu {}", criu.display())));
        for want in [
            " restore -d --image-path ".to_string(),
            format!("--bundle {} ", paths.dir.display()),
            format!("--pid-file {} {id}", paths.pid_file().display()),
        ] {
            assert!(restore.contains(&want), "{restore} lacks {want}");
        }
        assert!(calls.contains(&"nsenter -t 4242 --uts hostname fork-1".to_string()));
        let net = net_sys.calls();
        assert!(
            net[0].starts_with(&format!("plug cove-{id} pid=4242 ")),
            "{net:?}"
        );
        assert!(net[0].contains("addr=10.88.0.7/16"), "{net:?}");
    }
}
