//! Auto-pause: a running sandbox with `auto_pause_after_seconds` that has
//! seen no exec, file transfer or running exec stream for that long is
//! paused, as `POST …/pause` would (a pause that fails leaves it running
//! and is tried again on a later pass).

use std::time::Duration;

use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;

use crate::error::ServiceError;
use crate::state::AppState;

/// One pass: returns the sandboxes it paused.
pub async fn auto_pause_once(state: &AppState) -> Result<Vec<SandboxId>, ServiceError> {
    let mut paused = Vec::new();
    for r in state.store.list_live_sandboxes().await? {
        let Some(after) = r.auto_pause_after_seconds else {
            continue;
        };
        if r.status != SandboxStatus::Running {
            continue;
        }
        let Some(idle) = state.activity.idle_for(&r.id) else {
            continue;
        };
        if idle < Duration::from_secs(u64::from(after)) {
            continue;
        }
        let id = r.id.clone();
        match state.lifecycle.pause_record(r).await {
            Ok(_) => {
                tracing::info!(sandbox_id = %id, idle_secs = idle.as_secs(), "auto-paused");
                paused.push(id);
            }
            Err(e) => tracing::warn!(sandbox_id = %id, error = %e, "auto-pause failed; will retry"),
        }
    }
    Ok(paused)
}

/// Runs `auto_pause_once` every `tick` until aborted.
pub fn spawn(state: AppState, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
        loop {
            ticker.tick().await;
            if let Err(e) = auto_pause_once(&state).await {
                tracing::error!(error = %e, "auto-pause pass failed");
            }
        }
    })
}
