//! Self requests: code inside a sandbox asks its agent to pause or delete
//! the sandbox (`POST http://127.0.0.1:1029/self/pause|delete`); the agent
//! only records it. This job takes each running sandbox's request about
//! once a second and carries it out as the owner's API call would, with
//! the reason kept on the sandbox (`status_reason`).

use std::time::Duration;

use cove_api::agent::{SelfAction, SelfRequest};
use cove_api::sandbox::SandboxStatus;
use cove_store::{SandboxRecord, User};

use crate::error::ServiceError;
use crate::state::AppState;

/// One pass over the running sandboxes; returns how many requests it acted on.
pub async fn self_requests_once(state: &AppState) -> Result<usize, ServiceError> {
    let mut acted = 0;
    for r in state.store.list_live_sandboxes().await? {
        if r.status != SandboxStatus::Running || state.inflight.contains(&r.id) {
            continue;
        }
        let req = match state.runtime.take_self_request(&r.id).await {
            Ok(Some(req)) => req,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(sandbox_id = %r.id, error = %e, "no self request (agent unreachable)");
                continue;
            }
        };
        acted += 1;
        if let Err(e) = act(state, r.clone(), &req).await {
            tracing::warn!(sandbox_id = %r.id, action = ?req.action, error = %e, "self request failed");
        }
    }
    Ok(acted)
}

async fn act(
    state: &AppState,
    mut r: SandboxRecord,
    req: &SelfRequest,
) -> Result<(), ServiceError> {
    tracing::info!(sandbox_id = %r.id, action = ?req.action, "self request from inside the sandbox");
    r.status_reason = req.reason.clone();
    // The reason first (the status stays), so every later view shows it.
    state.store.update_sandbox(&r, r.status).await?;
    match req.action {
        SelfAction::Pause => state.lifecycle.pause_record(r).await.map(|_| ()),
        SelfAction::Delete => {
            let owner = User {
                id: r.owner.clone(),
                name: r.created_by.clone(),
                created_at: r.created_at,
            };
            state
                .sandboxes
                .destroy(&owner, r.id.as_str())
                .await
                .map(|_| ())
        }
    }
}

/// Runs `self_requests_once` every `tick` until aborted.
pub fn spawn(state: AppState, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        loop {
            ticker.tick().await;
            if let Err(e) = self_requests_once(&state).await {
                tracing::error!(error = %e, "self-request pass failed");
            }
        }
    })
}
