//! `start`: run the prepared bundle. `runc run -d` makes the container and
//! its namespaces and execs the agent (stdio: pipes that the server closes
//! once runc exits, so CRIU can checkpoint the container and the server holds
//! nothing the sandbox depends on; see `Sys::run_detached`); then
//! the sandbox's network namespace is named and wired to the bridge while
//! the agent starts, and create returns once the agent answers on its
//! socket. No command of the user runs before that, so none sees the
//! network missing. (One `runc run` instead of `create` + `start` saves a
//! Go process start, ~7–10 ms.)

use std::ffi::OsString;

use super::layout::SandboxPaths;
use super::record::SandboxRecord;
use super::Inner;
use crate::{RuntimeError, SandboxSpec};

/// Runs the container and wires its network. Blocking.
pub fn run_container(
    inner: &Inner,
    spec: &SandboxSpec,
    rec: &mut SandboxRecord,
) -> Result<(), RuntimeError> {
    let paths = SandboxPaths::new(&inner.config.state_dir, &spec.id);
    let id = spec.id.as_str();
    let args: Vec<OsString> = vec![
        "run".into(),
        "-d".into(),
        "--bundle".into(),
        paths.dir.clone().into(),
        "--pid-file".into(),
        paths.pid_file().into(),
        id.into(),
    ];
    let out = inner
        .sys
        .run_detached(&inner.config.runc_bin, &inner.runc_args(&paths, args))?;
    if !out.success() {
        return Err(fail(
            spec,
            format!("runc run exited {}: {}", out.code, runc_log_tail(&paths)),
        ));
    }
    let pid: u32 = std::fs::read_to_string(paths.pid_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| fail(spec, "runc run wrote no pid".to_string()))?;
    let ip = rec
        .ip
        .ok_or_else(|| fail(spec, "no address allocated".to_string()))?;
    let t_net = std::time::Instant::now();
    let att = inner
        .net
        .attach(id, ip, pid)
        .map_err(|e| fail(spec, e.to_string()))?;
    tracing::debug!(sandbox_id = %spec.id, net_us = t_net.elapsed().as_micros() as u64, "network attached");
    rec.host_veth = Some(att.host_veth);
    rec.save(&paths.record())?;
    Ok(())
}

fn fail(spec: &SandboxSpec, message: String) -> RuntimeError {
    RuntimeError::Failed {
        id: spec.id.clone(),
        op: "create",
        message,
    }
}

/// The last lines of runc's log, for error messages.
pub fn runc_log_tail(paths: &SandboxPaths) -> String {
    let log = std::fs::read_to_string(paths.runc_log()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}
