//! `list`: every sandbox (or leftover) under the state dir, with what the
//! machine says of it. One `runc list` gives every container's status; a
//! running container whose agent answers `health` is `Running`; a sandbox
//! without a container but with a complete checkpoint is `Checkpointed`
//! (also when a crash stopped its checkpoint or restore half-way: the
//! checkpoint is intact); a record still `creating`, `forking` or
//! `destroying`, or a dir without a container, is `Partial` (for the
//! reconciler to destroy); the rest is `Stopped`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use cove_api::ids::SandboxId;

use super::layout::{sandboxes_dir, SandboxPaths};
use super::record::{Phase, SandboxRecord};
use super::Inner;
use crate::{RuntimeError, RuntimeSandbox, RuntimeState};

/// Container statuses by id, from `runc list`.
pub fn runc_statuses(inner: &Inner) -> Result<HashMap<String, String>, RuntimeError> {
    let args: Vec<OsString> = vec![
        "--root".into(),
        super::layout::runc_root(&inner.config.state_dir).into(),
        "list".into(),
        "--format".into(),
        "json".into(),
    ];
    let out = inner.sys.run(&inner.config.runc_bin, &args)?;
    if !out.success() {
        return Err(RuntimeError::Io(std::io::Error::other(format!(
            "runc list: {}",
            out.stderr.trim()
        ))));
    }
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or(serde_json::Value::Null);
    let mut map = HashMap::new();
    for c in v.as_array().into_iter().flatten() {
        if let (Some(id), Some(status)) = (c["id"].as_str(), c["status"].as_str()) {
            map.insert(id.to_string(), status.to_string());
        }
    }
    Ok(map)
}

/// What the record, runc and the state dir say, before asking the agent.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The container runs: `Running` if its agent answers, else `Stopped`.
    AskAgent,
    State(RuntimeState),
}

fn seen(phase: Option<Phase>, status: Option<&str>, has_checkpoint: bool) -> Seen {
    use Phase::*;
    match (phase, status) {
        (Some(Running), Some("running")) => Seen::AskAgent,
        // In the middle of this runtime's pause or resume (recovery at start
        // settled any a crash left), the container there, frozen or not.
        // Not asked: a health probe would leave a keep-alive unix connection
        // from outside in the agent, which CRIU cannot dump (a self-pause
        // failed twice so in CI).
        (Some(Checkpointing | Restoring), Some("running" | "paused")) => {
            Seen::State(RuntimeState::Running)
        }
        (Some(Checkpointed | Checkpointing | Restoring), None) if has_checkpoint => {
            Seen::State(RuntimeState::Checkpointed)
        }
        (Some(Running | Checkpointing | Restoring), Some(_)) => Seen::State(RuntimeState::Stopped),
        _ => Seen::State(RuntimeState::Partial),
    }
}

pub async fn list(inner: &std::sync::Arc<Inner>) -> Result<Vec<RuntimeSandbox>, RuntimeError> {
    let statuses = {
        let inner = inner.clone();
        tokio::task::spawn_blocking(move || runc_statuses(&inner))
            .await
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))??
    };
    let mut out = Vec::new();
    let dir = sandboxes_dir(&inner.config.state_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in entries.flatten() {
        let Some(id) = e.file_name().to_str().and_then(SandboxId::parse) else {
            continue;
        };
        let paths = SandboxPaths::new(&inner.config.state_dir, &id);
        let rec = SandboxRecord::load(&paths.record());
        let status = statuses.get(id.as_str()).map(String::as_str);
        let has_checkpoint = paths.checkpoint().is_dir();
        let state = match seen(rec.as_ref().map(|r| r.phase), status, has_checkpoint) {
            Seen::AskAgent => {
                let healthy = tokio::time::timeout(Duration::from_secs(2), async {
                    inner.agent(&id)?.health().await
                })
                .await;
                if matches!(healthy, Ok(Ok(_))) {
                    RuntimeState::Running
                } else {
                    RuntimeState::Stopped
                }
            }
            Seen::State(s) => s,
        };
        out.push(RuntimeSandbox {
            id,
            state,
            ip: rec.and_then(|r| r.ip),
        });
    }
    // Containers runc knows whose dir is gone are leftovers too.
    for id in statuses.keys() {
        if let Some(id) = SandboxId::parse(id) {
            if !out.iter().any(|s| s.id == id) {
                out.push(RuntimeSandbox {
                    id,
                    state: RuntimeState::Partial,
                    ip: None,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpointed_sandbox_is_not_a_leftover() {
        let c = Seen::State(RuntimeState::Checkpointed);
        assert_eq!(seen(Some(Phase::Checkpointed), None, true), c);
        // A crash during the dump's rename or the restore: the checkpoint is intact.
        assert_eq!(seen(Some(Phase::Checkpointing), None, true), c);
        assert_eq!(seen(Some(Phase::Restoring), None, true), c);
        // A checkpointed record whose images are gone is a leftover.
        assert_eq!(
            seen(Some(Phase::Checkpointed), None, false),
            Seen::State(RuntimeState::Partial)
        );
        assert_eq!(
            seen(Some(Phase::Forking), Some("running"), false),
            Seen::State(RuntimeState::Partial)
        );
        assert_eq!(
            seen(Some(Phase::Running), Some("running"), false),
            Seen::AskAgent
        );
        // Mid pause or resume: running, and the agent is left alone.
        for phase in [Phase::Checkpointing, Phase::Restoring] {
            for status in ["running", "paused"] {
                assert_eq!(
                    seen(Some(phase), Some(status), false),
                    Seen::State(RuntimeState::Running)
                );
            }
        }
        assert_eq!(
            seen(Some(Phase::Running), Some("stopped"), false),
            Seen::State(RuntimeState::Stopped)
        );
    }
}
