//! `checkpoint` (pause): take a running sandbox off the host into files.
//!
//! freeze (`runc pause`, so CRIU skips its 100 ms freezer poll and nothing
//! in the sandbox notices the network going) → unplug the veth and the
//! namespace name (CRIU cannot dump a veth whose peer is on the host; the
//! lease stays) → `runc checkpoint` into `checkpoint.tmp/` (CRIU dumps the
//! whole tree, then kills it; runc removes the container and its cgroups)
//! → rename to `checkpoint/` → record `checkpointed` → release: leftover
//! cgroup dirs, flush and unmount the overlay and the disk.
//!
//! Crash safety: the record says `checkpointing` during the dump. A dump is
//! complete only once CRIU wrote "Dumping finished successfully"; the rename
//! makes it visible as `checkpoint/`, so a half-written dump is never taken
//! for a checkpoint, and `recover.rs` finishes or rolls back an interrupted
//! one. A failed dump resumes the container and plugs the network back, so
//! the sandbox keeps running.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use cove_api::ids::SandboxId;

use super::layout::SandboxPaths;
use super::record::{Phase, SandboxRecord};
use super::{criu, destroy, disk, Inner};
use crate::{CheckpointInfo, RuntimeError};

fn fail(id: &SandboxId, message: String) -> RuntimeError {
    RuntimeError::Failed {
        id: id.clone(),
        op: "checkpoint",
        message,
    }
}

/// Checkpoints `id`. Blocking. The caller dropped its agent clients.
pub fn checkpoint(inner: &Inner, id: &SandboxId) -> Result<CheckpointInfo, RuntimeError> {
    let t0 = Instant::now();
    let paths = SandboxPaths::new(&inner.config.state_dir, id);
    let mut rec =
        SandboxRecord::load(&paths.record()).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
    if rec.phase != Phase::Running {
        return Err(RuntimeError::NotRunning(id.clone()));
    }
    let pid = init_pid(&paths).ok_or_else(|| RuntimeError::NotRunning(id.clone()))?;
    check_pipe_stdio(id, pid)?;
    let ip = rec
        .ip
        .ok_or_else(|| fail(id, "no address recorded".into()))?;
    // Left by an interrupted dump, or by a restore that crashed before
    // deleting its checkpoint: the container runs, so neither is the only copy.
    for d in [paths.checkpoint_tmp(), paths.checkpoint()] {
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
    }
    let memory_freed_bytes = criu::cgroup_memory(&inner.config.cgroup_parent, id.as_str());
    for attempt in 1.. {
        rec.phase = Phase::Checkpointing;
        rec.save(&paths.record())?;
        // Again on a retry: a client made since (a probe) holds a
        // keep-alive connection until it is dropped.
        inner.forget_agent(id);
        wait_agent_idle(pid);
        let Err(e) = dump(inner, &paths, id, ip) else {
            break;
        };
        // A connection to the agent opened or closed around the dump
        // (a unix socket CRIU sees half-way) is worth one more try.
        let socket_race = std::fs::read_to_string(paths.checkpoint_tmp().join("dump.log"))
            .is_ok_and(|log| log.contains("sk-unix.c"));
        rollback(inner, &paths, id, ip, pid, &mut rec);
        if !(socket_race && attempt == 1) {
            return Err(e);
        }
        tracing::warn!(sandbox_id = %id, error = %e, "checkpoint met a unix socket race; trying once more");
    }
    let t_dump = t0.elapsed();
    std::fs::rename(paths.checkpoint_tmp(), paths.checkpoint())?;
    rec.phase = Phase::Checkpointed;
    rec.save(&paths.record())?;
    release(inner, &paths, id)?;
    let size_bytes = criu::dir_size(&paths.checkpoint())?;
    tracing::info!(
        sandbox_id = %id,
        ms = t0.elapsed().as_millis() as u64,
        dump_ms = t_dump.as_millis() as u64,
        size_bytes,
        "sandbox checkpointed"
    );
    Ok(CheckpointInfo {
        size_bytes,
        memory_freed_bytes,
    })
}

/// freeze → unplug → dump.
fn dump(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    ip: std::net::Ipv4Addr,
) -> Result<(), RuntimeError> {
    let runc = &inner.config.runc_bin;
    criu::require(inner)?;
    let pause: Vec<OsString> = vec!["pause".into(), id.as_str().into()];
    let out = inner.sys.run(runc, &inner.runc_args(paths, pause))?;
    if !out.success() {
        return Err(fail(id, format!("runc pause: {}", out.stderr.trim())));
    }
    inner
        .net
        .unplug(&inner.net.attachment_of(id.as_str(), ip))
        .map_err(|e| fail(id, format!("unplugging the network: {e}")))?;
    let tmp = paths.checkpoint_tmp();
    std::fs::create_dir(&tmp)?;
    let args = criu::runc_args(
        inner,
        paths,
        vec![
            "checkpoint".into(),
            "--image-path".into(),
            tmp.clone().into(),
            "--work-path".into(),
            tmp.clone().into(),
            id.as_str().into(),
        ],
    )?;
    let out = inner.sys.run(runc, &args)?;
    if !out.success() || !criu::dump_finished(&tmp) {
        return Err(fail(
            id,
            format!(
                "runc checkpoint exited {}: {} {}",
                out.code,
                out.stderr.trim(),
                criu::log_tail(&tmp.join("dump.log"))
            ),
        ));
    }
    Ok(())
}

/// After a failed dump: the container still runs (frozen); thaw it, plug
/// the network back and drop the partial images.
fn rollback(
    inner: &Inner,
    paths: &SandboxPaths,
    id: &SandboxId,
    ip: std::net::Ipv4Addr,
    pid: u32,
    rec: &mut SandboxRecord,
) {
    let resume: Vec<OsString> = vec!["resume".into(), id.as_str().into()];
    let _ = inner
        .sys
        .run(&inner.config.runc_bin, &inner.runc_args(paths, resume));
    if let Err(e) = criu::drop_network_lock(inner, pid) {
        tracing::error!(sandbox_id = %id, error = %e, "removing CRIU's network lock after a failed checkpoint failed");
    }
    // The unplug may have stopped half-way: remove what is left, then
    // plug in from scratch.
    let att = inner.net.attachment_of(id.as_str(), ip);
    let _ = inner.net.unplug(&att);
    match inner.net.attach(id.as_str(), ip, pid) {
        Ok(att) => rec.host_veth = Some(att.host_veth),
        Err(e) => {
            tracing::error!(sandbox_id = %id, error = %e, "re-plugging after a failed checkpoint failed")
        }
    }
    // Kept for diagnosis; the partial images are of no use.
    let _ = std::fs::copy(
        paths.checkpoint_tmp().join("dump.log"),
        paths.dir.join("dump-failed.log"),
    );
    let _ = std::fs::remove_dir_all(paths.checkpoint_tmp());
    rec.phase = Phase::Running;
    if let Err(e) = rec.save(&paths.record()) {
        tracing::error!(sandbox_id = %id, error = %e, "saving the record after a failed checkpoint failed");
    }
}

/// What a checkpointed sandbox no longer needs on the host: cgroup dirs
/// runc left, the overlay and the disk mounts (flushed first, so the
/// image file holds every write and a fork can copy it).
pub fn release(inner: &Inner, paths: &SandboxPaths, id: &SandboxId) -> Result<(), RuntimeError> {
    destroy::remove_cgroups(inner, id)?;
    disk::unmount(inner.sys.as_ref(), paths)?;
    if !disk::wait_released(paths, std::time::Duration::from_secs(5)) {
        tracing::warn!(sandbox_id = %id, "the disk's loop device is still attached 5 s after the unmount");
    }
    let _ = std::fs::remove_file(paths.pid_file());
    Ok(())
}

pub fn init_pid(paths: &SandboxPaths) -> Option<u32> {
    std::fs::read_to_string(paths.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// CRIU can only dump pipe stdio; sandboxes created before stdio became
/// pipes (on `/dev/null`) cannot be checkpointed.
fn check_pipe_stdio(id: &SandboxId, pid: u32) -> Result<(), RuntimeError> {
    for fd in 0..3 {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map_err(|e| fail(id, format!("reading the agent's fd {fd}: {e}")))?;
        if !link.to_string_lossy().starts_with("pipe:") {
            return Err(RuntimeError::Unsupported(format!(
                "sandbox {id} was created with stdio on {} (before checkpoint support); it cannot be checkpointed",
                link.display()
            )));
        }
    }
    Ok(())
}

/// Waits (at most 2 s) until no connection to the agent's socket is
/// open: the host's side of one would be a unix socket CRIU cannot dump.
/// The runtime dropped its clients; the agent closes its end on EOF.
fn wait_agent_idle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let table = format!("/proc/{pid}/net/unix");
    while Instant::now() < deadline {
        let Ok(t) = std::fs::read_to_string(&table) else {
            return;
        };
        if connected_to_agent(&t) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Connected stream sockets bound to the agent's socket path in a
/// `/proc/net/unix` table (accepted connections carry the listener's path).
fn connected_to_agent(table: &str) -> usize {
    let path = Path::new(cove_api::agent::GUEST_RUN_DIR).join(cove_api::agent::SOCKET_NAME);
    let path = path.to_string_lossy();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path; St 03 = connected.
            f.len() >= 8 && f[5] == "03" && f[7] == path
        })
        .count()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runc::RuncConfig;
    use crate::sys::RecordingSys;

    /// The recording Sys runs nothing, so CRIU never writes "Dumping
    /// finished": the dump counts as failed and must be rolled back.
    #[test]
    fn a_dump_freezes_unplugs_checkpoints_and_a_failed_one_thaws_and_replugs() {
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
        // A real process with pipe stdio stands in for the agent.
        let mut agent = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::fs::write(paths.pid_file(), agent.id().to_string()).unwrap();
        SandboxRecord::for_tests(&id, Some("10.88.0.9".parse().unwrap()))
            .save(&paths.record())
            .unwrap();

        let err = checkpoint(&inner, &id).unwrap_err();
        let _ = agent.kill();
        let _ = agent.wait();
        assert!(err.to_string().contains("runc checkpoint"), "{err}");
        let calls = sys.calls();
        let tail = |c: &String| {
            c.split(&format!("{} ", paths.runc_log().display()))
                .nth(1)
                .map(str::to_owned)
        };
        let ops: Vec<String> = calls.iter().filter_map(tail).collect();
        assert_eq!(ops[0], format!("pause {id}"));
        assert_eq!(
            ops[1],
            format!(
                "checkpoint --image-path {tmp} --work-path {tmp} {id}",
                tmp = paths.checkpoint_tmp().display()
            )
        );
        assert!(calls[1].starts_with(&format!("runc --criu {} --root", criu.display())));
        assert_eq!(ops[2], format!("resume {id}"));
        // Nothing exists on the fake host, so unplugging ran nothing and the
        // rollback plugged the sandbox back in with the agent's pid.
        let net = net_sys.calls();
        assert_eq!(net.len(), 1, "{net:?}");
        assert!(
            net[0].starts_with(&format!("plug cove-{id} pid={} ", agent.id())),
            "{net:?}"
        );
        let rec = SandboxRecord::load(&paths.record()).unwrap();
        assert_eq!(rec.phase, Phase::Running);
        assert!(!paths.checkpoint_tmp().exists());
        assert!(!paths.checkpoint().exists());
    }

    #[test]
    fn only_connected_sockets_on_the_agent_path_count() {
        let path = format!(
            "{}/{}",
            cove_api::agent::GUEST_RUN_DIR,
            cove_api::agent::SOCKET_NAME
        );
        let table = format!(
            "Num       RefCount Protocol Flags    Type St Inode Path\n\
             0000: 00000002 00000000 00010000 0001 01 1001 {path}\n\
             0000: 00000003 00000000 00000000 0001 03 1002 {path}\n\
             0000: 00000003 00000000 00000000 0001 03 1003\n"
        );
        assert_eq!(connected_to_agent(&table), 1);
    }
}
