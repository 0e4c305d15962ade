//! Pause, resume, fork, resize and ssh-pubkeys (seed 003, `API.md` §4.3).
//!
//! Pause: `running` → `pausing` → disks flushed and live ones taken out →
//! CRIU checkpoint → host mounts released → `paused`. A failure on the way
//! puts everything back and leaves the sandbox `running` (409).
//! Resume: `paused`/`error` → `resuming` → disks mounted on the host →
//! restore, retried; `running` on success, `error` with the reason once the
//! retries are spent (a later resume tries again; the checkpoint is kept
//! until a restore succeeded, by the runtime).
//! Fork: a new row `forking` → the source's disks mounted for it → the
//! runtime restores a copy of the paused source → `running` (or `paused`
//! again, checkpointed, with `start_paused`). The source is not touched.
//!
//! Every step holds the sandbox's in-flight mark, so the reconciler and
//! other requests keep out; each status change is a compare-and-set.

use std::collections::BTreeMap;
use std::sync::Arc;

use cove_api::ids::SandboxId;
use cove_api::lifecycle::{
    validate_pubkeys, ForkSandboxRequest, ResizeRequest, ResizeResponse, SshPubkeysRequest,
    SshPubkeysResponse,
};
use cove_api::sandbox::{SandboxStatus, SandboxView};
use cove_api::timestamp::Timestamp;
use cove_api::validate::MAX_DISK_MIB;
use cove_runtime::{CreatedSandbox, Runtime, RuntimeError, SandboxSpec};
use cove_store::{SandboxRecord, Secret, Store, User};

use crate::activity::Activity;
use crate::catalog::{pids_limit, shape};
use crate::error::ServiceError;
use crate::services::attachments::{AttachmentService, RestoreMounts};
use crate::services::owned_sandbox;
use crate::services::sandboxes::SandboxService;
use crate::state::{InFlight, InFlightGuard};

/// Tries of a restore before the sandbox is marked `error`.
const RESUME_TRIES: u32 = 3;

/// Lifecycle operations beyond create and destroy.
#[derive(Clone)]
pub struct LifecycleService {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    sandboxes: SandboxService,
    attachments: AttachmentService,
    inflight: Arc<InFlight>,
    activity: Arc<Activity>,
}

impl LifecycleService {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        sandboxes: SandboxService,
        attachments: AttachmentService,
        inflight: Arc<InFlight>,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            store,
            runtime,
            sandboxes,
            attachments,
            inflight,
            activity,
        }
    }

    /// The caller's sandbox in one of `allowed`, with its in-flight mark.
    async fn marked(
        &self,
        user: &User,
        id: &str,
        allowed: &[SandboxStatus],
    ) -> Result<(SandboxRecord, InFlightGuard), ServiceError> {
        let r = owned_sandbox(self.store.as_ref(), user, id).await?;
        self.mark(r, allowed)
    }

    /// `r` if it is in one of `allowed`, with its in-flight mark.
    fn mark(
        &self,
        r: SandboxRecord,
        allowed: &[SandboxStatus],
    ) -> Result<(SandboxRecord, InFlightGuard), ServiceError> {
        let busy = || ServiceError::InvalidState {
            id: r.id.clone(),
            status: r.status,
        };
        if !allowed.contains(&r.status) {
            return Err(busy());
        }
        let guard = self.inflight.try_enter(&r.id).ok_or_else(busy)?;
        Ok((r, guard))
    }

    /// Moves `r` to `to` if it is still in its current status.
    async fn transition(
        &self,
        r: &mut SandboxRecord,
        to: SandboxStatus,
    ) -> Result<(), ServiceError> {
        let from = r.status;
        r.status = to;
        if self.store.update_sandbox(r, from).await? {
            Ok(())
        } else {
            r.status = from;
            Err(ServiceError::InvalidState {
                id: r.id.clone(),
                status: from,
            })
        }
    }

    /// `POST /v1/sandboxes/{id}/pause`.
    pub async fn pause(&self, user: &User, id: &str) -> Result<SandboxView, ServiceError> {
        let r = owned_sandbox(self.store.as_ref(), user, id).await?;
        self.pause_record(r).await
    }

    /// Pauses a running sandbox (the API's pause, and auto-pause).
    pub async fn pause_record(&self, r: SandboxRecord) -> Result<SandboxView, ServiceError> {
        let (mut r, _busy) = self.mark(r, &[SandboxStatus::Running])?;
        self.transition(&mut r, SandboxStatus::Pausing).await?;
        if let Err(e) = self.checkpoint(&r.id).await {
            self.transition(&mut r, SandboxStatus::Running).await?;
            return Err(e);
        }
        r.paused_at = Some(Timestamp::now());
        self.transition(&mut r, SandboxStatus::Paused).await?;
        tracing::info!(sandbox_id = %r.id, "sandbox paused");
        Ok(self.sandboxes.view(&r))
    }

    /// Disks ready → checkpoint → host mounts released; undone on failure.
    async fn checkpoint(&self, id: &SandboxId) -> Result<(), ServiceError> {
        let ejected = self.attachments.prepare_pause(id).await?;
        match self.runtime.checkpoint(id).await {
            Ok(info) => {
                tracing::info!(sandbox_id = %id, size_bytes = info.size_bytes, memory_freed_bytes = ?info.memory_freed_bytes, "checkpoint written");
                self.attachments.release_host_mounts(id).await
            }
            Err(e) => {
                self.attachments.undo_prepare_pause(id, &ejected).await;
                Err(ServiceError::PauseFailed {
                    id: id.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// `POST /v1/sandboxes/{id}/resume`.
    pub async fn resume(&self, user: &User, id: &str) -> Result<SandboxView, ServiceError> {
        let (mut r, _busy) = self
            .marked(user, id, &[SandboxStatus::Paused, SandboxStatus::Error])
            .await?;
        self.transition(&mut r, SandboxStatus::Resuming).await?;
        let mut last = String::new();
        for attempt in 1..=RESUME_TRIES {
            match self.restore(&r, user).await {
                Ok(ip) => {
                    r.ip = Some(ip);
                    r.last_resumed_at = Some(Timestamp::now());
                    r.failure_reason = None;
                    self.transition(&mut r, SandboxStatus::Running).await?;
                    // Idle time starts again: not paused again at once.
                    self.activity.touch(&r.id);
                    tracing::info!(sandbox_id = %r.id, attempt, "sandbox resumed");
                    return Ok(self.sandboxes.view(&r));
                }
                Err(e) => {
                    tracing::warn!(sandbox_id = %r.id, attempt, error = %e, "restore failed");
                    last = e.to_string();
                }
            }
        }
        r.failure_reason = Some(format!("resume failed {RESUME_TRIES} times: {last}"));
        self.transition(&mut r, SandboxStatus::Error).await?;
        Err(ServiceError::ResumeFailed {
            id: r.id,
            reason: last,
        })
    }

    /// Disks mounted → restore; the disks go again if the restore fails.
    async fn restore(&self, r: &SandboxRecord, user: &User) -> Result<String, ServiceError> {
        let mounts = self
            .attachments
            .mount_for_restore(&r.id, &r.id, user)
            .await?;
        let restored = self.runtime.restore(&r.id, &mounts.declared).await;
        self.after_restore(&r.id, &mounts, restored).await
    }

    /// The live disks go in once `id` runs again; all go if it does not.
    async fn after_restore(
        &self,
        id: &SandboxId,
        mounts: &RestoreMounts,
        restored: Result<CreatedSandbox, RuntimeError>,
    ) -> Result<String, ServiceError> {
        match restored {
            Ok(created) => {
                self.attachments.inject_live(id, &mounts.live).await;
                Ok(created.ip.to_string())
            }
            Err(e) => {
                self.attachments.unmount_quietly(id, mounts.paths()).await;
                Err(e.into())
            }
        }
    }

    /// `POST /v1/sandboxes/{id}/fork`: answers the new sandbox's view.
    pub async fn fork(
        &self,
        user: &User,
        id: &str,
        req: ForkSandboxRequest,
    ) -> Result<SandboxView, ServiceError> {
        req.validate()?;
        let (source, _busy) = self.marked(user, id, &[SandboxStatus::Paused]).await?;
        let envs = match &req.envs {
            Some(e) => e
                .iter()
                .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                .collect(),
            None => self.store.sandbox_envs(&source.id).await?,
        };
        let record = fork_record(&source, &req, &envs);
        let _new_busy = self
            .inflight
            .try_enter(&record.id)
            .ok_or_else(|| ServiceError::Internal("fresh sandbox id already in flight".into()))?;
        let mut record = self.sandboxes.insert_row(record, false, &envs).await?;
        let started = std::time::Instant::now();
        match self.bring_up_fork(&source, &record, user).await {
            Ok(ip) => {
                record.ip = Some(ip);
                record.running_at = Some(Timestamp::now());
                record.spawn_ms = Some((started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0);
                self.transition(&mut record, SandboxStatus::Running).await?;
            }
            Err(e) => {
                self.sandboxes
                    .mark_failed(&mut record, &format!("fork failed: {e}"))
                    .await;
                return Err(e);
            }
        }
        if req.start_paused == Some(true) {
            self.transition(&mut record, SandboxStatus::Pausing).await?;
            if let Err(e) = self.checkpoint(&record.id).await {
                self.transition(&mut record, SandboxStatus::Running).await?;
                return Err(e);
            }
            record.paused_at = Some(Timestamp::now());
            self.transition(&mut record, SandboxStatus::Paused).await?;
        }
        tracing::info!(sandbox_id = %record.id, forked_from = %source.id, "sandbox forked");
        Ok(self.sandboxes.view(&record))
    }

    async fn bring_up_fork(
        &self,
        source: &SandboxRecord,
        record: &SandboxRecord,
        user: &User,
    ) -> Result<String, ServiceError> {
        let mounts = self
            .attachments
            .mount_for_restore(&source.id, &record.id, user)
            .await?;
        let shape = shape(&record.shape).ok_or_else(|| {
            ServiceError::Internal(format!("shape {} of the source is gone", record.shape))
        })?;
        let spec = SandboxSpec {
            id: record.id.clone(),
            hostname: record.name.clone(),
            rootfs: record.rootfs.clone(),
            vcpu: record.vcpu,
            cpu_quota_pct: record.cpu_quota_pct,
            mem_mib: record.mem_mib,
            disk_mib: record.disk_mib,
            pids_limit: pids_limit(&shape),
            mounts: mounts.declared.clone(),
        };
        let forked = self.runtime.fork(&source.id, &spec, &mounts.declared).await;
        self.after_restore(&record.id, &mounts, forked).await
    }

    /// `POST /v1/sandboxes/{id}/resize`: grow only, running or paused.
    /// Where the host cannot grow a mounted disk, a running sandbox is
    /// checkpointed, grown and restored (its open TCP connections close).
    pub async fn resize(
        &self,
        user: &User,
        id: &str,
        req: ResizeRequest,
    ) -> Result<ResizeResponse, ServiceError> {
        let (mut r, _busy) = self
            .marked(user, id, &[SandboxStatus::Running, SandboxStatus::Paused])
            .await?;
        if req.disk_mib <= r.disk_mib || req.disk_mib > MAX_DISK_MIB {
            return Err(ServiceError::Validation(
                cove_api::validate::ValidationError {
                    code: cove_api::codes::ErrorCode::ValidationFailed,
                    message: format!(
                    "disk_mib must be larger than the current {} MiB and at most {MAX_DISK_MIB}",
                    r.disk_mib
                ),
                },
            ));
        }
        match self.runtime.resize_disk(&r.id, req.disk_mib).await {
            Ok(()) => {}
            // No online grow on this host (it needs CAP_SYS_RESOURCE): grow
            // it offline between a checkpoint and a restore. The row stays
            // `running`; a crash in between leaves it checkpointed, which
            // the reconciler turns into `paused`.
            Err(RuntimeError::Unsupported(why)) if r.status == SandboxStatus::Running => {
                tracing::info!(sandbox_id = %r.id, why, "growing the disk offline: checkpoint, grow, restore");
                self.checkpoint(&r.id).await?;
                let grown = self.runtime.resize_disk(&r.id, req.disk_mib).await;
                match self.restore(&r, user).await {
                    Ok(ip) => r.ip = Some(ip),
                    Err(e) => {
                        r.failure_reason = Some(format!("restore after a disk resize failed: {e}"));
                        self.transition(&mut r, SandboxStatus::Error).await?;
                        return Err(e);
                    }
                }
                grown?;
            }
            Err(e) => return Err(e.into()),
        }
        r.disk_mib = req.disk_mib;
        if !self.store.update_sandbox(&r, r.status).await? {
            return Err(ServiceError::Internal(
                "resize raced with another update".into(),
            ));
        }
        Ok(ResizeResponse {
            id: r.id,
            disk_mib: r.disk_mib,
        })
    }

    /// `POST /v1/sandboxes/{id}/ssh-pubkeys`: adds keys, drops duplicates.
    pub async fn add_ssh_pubkeys(
        &self,
        user: &User,
        id: &str,
        req: SshPubkeysRequest,
    ) -> Result<SshPubkeysResponse, ServiceError> {
        validate_pubkeys(&req.keys)?;
        for _ in 0..5 {
            let mut r = owned_sandbox(self.store.as_ref(), user, id).await?;
            if r.status.is_terminal() || r.status == SandboxStatus::Destroying {
                return Err(ServiceError::InvalidState {
                    id: r.id,
                    status: r.status,
                });
            }
            for k in &req.keys {
                let k = k.trim().to_owned();
                if !r.ssh_pubkeys.contains(&k) {
                    r.ssh_pubkeys.push(k);
                }
            }
            validate_pubkeys(&r.ssh_pubkeys)?;
            if self.store.update_sandbox(&r, r.status).await? {
                return Ok(SshPubkeysResponse {
                    count: r.ssh_pubkeys.len(),
                });
            }
        }
        Err(ServiceError::Internal(format!(
            "ssh-pubkeys of {id} kept racing with other updates"
        )))
    }
}

/// The row of a fork: the source's shape, image, disk and settings, a new
/// id, a generated name, the overrides of the request.
fn fork_record(
    source: &SandboxRecord,
    req: &ForkSandboxRequest,
    envs: &BTreeMap<String, Secret<String>>,
) -> SandboxRecord {
    SandboxRecord {
        id: SandboxId::generate(),
        name: String::new(),
        status: SandboxStatus::Forking,
        failure_reason: None,
        ip: None,
        ingress_enabled: req.ingress_enabled.unwrap_or(source.ingress_enabled),
        egress: req.egress.clone().unwrap_or_else(|| source.egress.clone()),
        ssh_pubkeys: req
            .ssh_pubkeys
            .clone()
            .unwrap_or_else(|| source.ssh_pubkeys.clone()),
        env_names: envs.keys().cloned().collect(),
        spawn_ms: None,
        bandwidth_ingress_bytes: 0,
        forked_from: Some(source.id.clone()),
        created_at: Timestamp::now(),
        running_at: None,
        paused_at: None,
        last_resumed_at: None,
        destroyed_at: None,
        status_reason: None,
        ..source.clone()
    }
}
