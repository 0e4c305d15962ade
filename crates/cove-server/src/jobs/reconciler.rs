//! The reconciler: makes the store and the machine agree, at startup (before
//! serving) and then periodically.
//!
//! It reads the live rows first and the runtime's inventory second, and
//! skips every sandbox whose create or destroy is running in this process
//! (the in-flight set), so it never races a request. Then:
//! - a `creating` row not in flight is a create interrupted by a crash: its
//!   leftovers are destroyed and the row becomes `failed`;
//! - a `destroying` row is finished (destroy is idempotent) and becomes
//!   `destroyed`;
//! - a `running` row whose sandbox is gone, stopped or partial becomes
//!   `failed` after its leftovers are destroyed; a running one is left alone,
//!   which is what keeps sandboxes usable across a `kill -9` of the server;
//! - a row a crash left `pausing`, `resuming` or `forking` becomes what the
//!   host shows: `paused` (checkpoint there), `running` (processes there),
//!   else `failed`; a `paused` row whose checkpoint is gone becomes `failed`;
//! - a sandbox on the machine without a live row is a leftover and is destroyed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;
use cove_runtime::{RuntimeSandbox, RuntimeState};
use cove_store::SandboxRecord;

use crate::error::ServiceError;
use crate::state::AppState;

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Rows marked `failed` (interrupted creates, vanished sandboxes).
    pub failed: Vec<SandboxId>,
    /// `destroying` rows finished.
    pub destroyed: Vec<SandboxId>,
    /// Sandboxes on the machine without a live row, removed.
    pub removed_leftovers: Vec<SandboxId>,
    /// Rows a crash left pausing, resuming or forking, set to what the host shows.
    pub settled: Vec<SandboxId>,
}

/// One reconciliation pass.
pub async fn reconcile_once(state: &AppState) -> Result<ReconcileReport, ServiceError> {
    let rows = state.store.list_live_sandboxes().await?;
    let on_host: HashMap<SandboxId, RuntimeSandbox> = state
        .runtime
        .list()
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut report = ReconcileReport::default();
    let live: HashSet<SandboxId> = rows.iter().map(|r| r.id.clone()).collect();
    for row in rows {
        // Held while this row is worked on; busy rows belong to a request.
        let Some(_busy) = state.inflight.try_enter(&row.id) else {
            continue;
        };
        let host_state = on_host.get(&row.id).map(|s| s.state);
        reconcile_row(state, row, host_state, &mut report).await;
    }
    for id in on_host.keys() {
        if live.contains(id) {
            continue;
        }
        let Some(_busy) = state.inflight.try_enter(id) else {
            continue;
        };
        // A create may have finished since the rows were read: ask again.
        match state.store.get_sandbox(id).await {
            Ok(Some(row)) if !row.status.is_terminal() => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(sandbox_id = %id, error = %e, "store lookup failed; leftover kept");
                continue;
            }
        }
        match state.runtime.destroy(id).await {
            Ok(()) => report.removed_leftovers.push(id.clone()),
            Err(e) => tracing::error!(sandbox_id = %id, error = %e, "removing leftover failed"),
        }
    }
    Ok(report)
}

async fn reconcile_row(
    state: &AppState,
    mut row: SandboxRecord,
    host_state: Option<RuntimeState>,
    report: &mut ReconcileReport,
) {
    let reason = match (row.status, host_state) {
        (SandboxStatus::Creating, _) => "create was interrupted (server restart)",
        (SandboxStatus::Destroying, _) => {
            let id = row.id.clone();
            if state.sandboxes.finish_destroy(row).await == SandboxStatus::Destroyed {
                report.destroyed.push(id);
            }
            return;
        }
        (SandboxStatus::Running, Some(RuntimeState::Running)) => return,
        (SandboxStatus::Running, Some(RuntimeState::Stopped)) => "sandbox stopped unexpectedly",
        (SandboxStatus::Running, Some(RuntimeState::Partial)) => {
            "sandbox is incomplete on its host"
        }
        (SandboxStatus::Running, None) => "sandbox vanished from its host",
        // A crash between the checkpoint and the row's update: paused.
        (SandboxStatus::Running | SandboxStatus::Pausing, Some(RuntimeState::Checkpointed)) => {
            settle(state, row, SandboxStatus::Paused, report).await;
            return;
        }
        // The checkpoint did not happen (or a restore or fork finished):
        // running; its disks are mounted again at start.
        (
            SandboxStatus::Pausing | SandboxStatus::Resuming | SandboxStatus::Forking,
            Some(RuntimeState::Running),
        ) => {
            settle(state, row, SandboxStatus::Running, report).await;
            return;
        }
        // A restore that did not finish leaves the checkpoint: paused again.
        (SandboxStatus::Resuming, Some(RuntimeState::Checkpointed)) => {
            settle(state, row, SandboxStatus::Paused, report).await;
            return;
        }
        (SandboxStatus::Resuming | SandboxStatus::Pausing, _) => {
            "sandbox lost its checkpoint and its processes during a pause or resume"
        }
        (SandboxStatus::Forking, _) => "fork was interrupted (server restart)",
        (SandboxStatus::Paused, Some(RuntimeState::Checkpointed)) => return,
        (SandboxStatus::Paused, _) => "the checkpoint of the paused sandbox is gone",
        (SandboxStatus::Error | SandboxStatus::Destroyed | SandboxStatus::Failed, _) => return,
    };
    tracing::warn!(sandbox_id = %row.id, reason, "reconciler marks sandbox failed");
    let id = row.id.clone();
    state.sandboxes.mark_failed(&mut row, reason).await;
    report.failed.push(id);
}

/// A row left in a transitional status by a crash, set to what the host
/// shows.
async fn settle(
    state: &AppState,
    mut row: SandboxRecord,
    to: SandboxStatus,
    report: &mut ReconcileReport,
) {
    let from = row.status;
    row.status = to;
    match to {
        SandboxStatus::Paused => row.paused_at = row.paused_at.or(Some(Timestamp::now())),
        SandboxStatus::Running if from == SandboxStatus::Forking => {
            row.running_at = Some(Timestamp::now())
        }
        _ => {}
    }
    match state.store.update_sandbox(&row, from).await {
        Ok(true) => {
            tracing::warn!(sandbox_id = %row.id, from = %from, to = %to, "reconciler settled an interrupted transition");
            report.settled.push(row.id);
        }
        Ok(false) => {}
        Err(e) => tracing::error!(sandbox_id = %row.id, error = %e, "settling a row failed"),
    }
}

/// Runs `reconcile_once` every `interval` until the task is aborted.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            ticker.tick().await;
            match reconcile_once(&state).await {
                Ok(report) if report != ReconcileReport::default() => {
                    tracing::info!(?report, "reconciler pass changed state")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "reconciler pass failed"),
            }
        }
    })
}
