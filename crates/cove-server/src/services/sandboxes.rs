//! Sandbox lifecycle: create (synchronous, rolled back on failure), get,
//! get by IP, list, patch and destroy (idempotent; rows stay readable).
//!
//! Create writes the row as `creating` first (which also claims the name),
//! then asks the runtime, then writes `running` with the address and the
//! measured `spawn_ms`. The runtime call runs in its own task so a client
//! that hangs up mid-create cannot cancel it half-way; on failure the
//! runtime is told to destroy whatever exists and the row becomes `failed`
//! with the reason. The in-flight guard keeps the reconciler away meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cove_api::catalog::Shape;
use cove_api::codes::ErrorCode;
use cove_api::envelope::ListPage;
use cove_api::ids::SandboxId;
use cove_api::sandbox::{
    page_limit, CreateSandboxRequest, CreateSandboxResponse, DestroyedResponse, ListSandboxesQuery,
    PatchSandboxRequest, SandboxStatus, SandboxView,
};
use cove_api::timestamp::Timestamp;
use cove_api::validate::ValidationError;
use cove_runtime::{Runtime, RuntimeError, SandboxSpec};
use cove_store::{SandboxFilter, SandboxRecord, Secret, Store, StoreError, User};

use crate::activity::{Activity, ActivityGuard};
use crate::catalog::{pids_limit, shape};
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::names;
use crate::services::attachments::{AttachmentService, PlannedAttachment};
use crate::services::catalog::CatalogService;
use crate::services::owned_sandbox;
use crate::services::view::sandbox_view;
use crate::state::{AppConfig, InFlight};

/// Quota reported for every sandbox until bandwidth metering exists.
const UNMETERED: i64 = -1;

fn invalid(code: ErrorCode, message: String) -> ServiceError {
    ServiceError::Validation(ValidationError { code, message })
}

/// Sandbox lifecycle operations.
#[derive(Clone)]
pub struct SandboxService {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    config: Arc<AppConfig>,
    catalog: CatalogService,
    metrics: Arc<Metrics>,
    inflight: Arc<InFlight>,
    attachments: AttachmentService,
    activity: Arc<Activity>,
}

/// A validated create: catalog lookups done, defaults filled in.
struct Placement {
    shape: Shape,
    rootfs: String,
    disk_mib: u64,
    disks: Vec<PlannedAttachment>,
}

impl SandboxService {
    /// Every argument is one of the shared parts `AppState::new` builds;
    /// bundling them would only move the same list into a struct.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        config: Arc<AppConfig>,
        catalog: CatalogService,
        metrics: Arc<Metrics>,
        inflight: Arc<InFlight>,
        attachments: AttachmentService,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            store,
            runtime,
            config,
            catalog,
            metrics,
            inflight,
            attachments,
            activity,
        }
    }

    /// The view of a row.
    pub fn view(&self, r: &SandboxRecord) -> SandboxView {
        sandbox_view(r, &self.config)
    }

    /// The caller's sandbox, or 404 (also for someone else's id).
    pub async fn owned(&self, user: &User, id: &str) -> Result<SandboxRecord, ServiceError> {
        owned_sandbox(self.store.as_ref(), user, id).await
    }

    /// The caller's sandbox if it is running (for exec and files), else 409.
    /// Counts as activity (auto-pause): every exec and file call starts here.
    pub async fn running(&self, user: &User, id: &str) -> Result<SandboxRecord, ServiceError> {
        let r = self.owned(user, id).await?;
        if r.status != SandboxStatus::Running {
            return Err(ServiceError::InvalidState {
                id: r.id,
                status: r.status,
            });
        }
        self.activity.touch(&r.id);
        Ok(r)
    }

    /// Activity that lasts while the guard lives (a running exec).
    pub fn active(&self, id: &SandboxId) -> ActivityGuard {
        self.activity.begin(id)
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn get(&self, user: &User, id: &str) -> Result<SandboxView, ServiceError> {
        Ok(self.view(&self.owned(user, id).await?))
    }

    /// `GET /v1/sandboxes/by-ip/{ip}`.
    pub async fn get_by_ip(&self, user: &User, ip: &str) -> Result<SandboxView, ServiceError> {
        let r = self
            .store
            .get_sandbox_by_ip(&user.id, ip)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: "sandbox with ip",
                id: ip.to_owned(),
            })?;
        Ok(self.view(&r))
    }

    /// `GET /v1/sandboxes`.
    pub async fn list(
        &self,
        user: &User,
        q: ListSandboxesQuery,
    ) -> Result<ListPage<SandboxView>, ServiceError> {
        let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(SandboxStatus::parse(s).ok_or_else(|| {
                invalid(
                    ErrorCode::ValidationFailed,
                    format!("status {s:?} is not a sandbox status"),
                )
            })?),
        };
        let limit = page_limit(q.limit);
        let offset = q.offset.unwrap_or(0);
        let filter = SandboxFilter {
            owner: Some(user.id.clone()),
            status,
        };
        let (rows, total) = self.store.list_sandboxes(&filter, limit, offset).await?;
        Ok(ListPage::new(
            rows.iter().map(|r| self.view(r)).collect(),
            total,
            limit,
            offset,
        ))
    }

    /// Catalog checks: shape, rootfs, region, host pinning, unsupported fields.
    async fn place(
        &self,
        user: &User,
        req: &CreateSandboxRequest,
    ) -> Result<Placement, ServiceError> {
        if req.shape.is_empty() {
            return Err(invalid(
                ErrorCode::ValidationFailed,
                "shape is required".into(),
            ));
        }
        let shape = shape(&req.shape).ok_or_else(|| {
            invalid(
                ErrorCode::UnknownShape,
                format!("shape {} is not in the catalog", req.shape),
            )
        })?;
        let rootfs_data = self.catalog.rootfs().await?;
        let rootfs = match req.rootfs.as_deref().filter(|r| !r.is_empty()) {
            None => rootfs_data.default.clone(),
            Some(r) if rootfs_data.rootfs.iter().any(|x| x == r) => r.to_owned(),
            Some(r) => {
                return Err(invalid(
                    ErrorCode::UnknownRootfs,
                    format!("rootfs {r} is not in the catalog"),
                ))
            }
        };
        if let Some(region) = req.region.as_deref().filter(|r| !r.is_empty()) {
            if region != self.config.region {
                return Err(invalid(
                    ErrorCode::InvalidRegion,
                    format!(
                        "region {region} does not match this server's region {}",
                        self.config.region
                    ),
                ));
            }
        }
        if req.networks.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(ServiceError::NotImplemented(
                "joining networks at create".into(),
            ));
        }
        if req.node_selector.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(invalid(
                ErrorCode::ValidationFailed,
                "node_selector matches no host: this host has no labels".into(),
            ));
        }
        if let Some(host) = req.host_id.as_deref().filter(|h| !h.is_empty()) {
            self.check_host_fits(host, &shape).await?;
        }
        let disk_mib = req
            .disk_mib
            .filter(|d| *d > 0)
            .unwrap_or(shape.default_disk_mib);
        let disks = self
            .attachments
            .plan(user, req.disks.as_deref().unwrap_or_default())
            .await?;
        Ok(Placement {
            shape,
            rootfs,
            disk_mib,
            disks,
        })
    }

    async fn check_host_fits(&self, host: &str, shape: &Shape) -> Result<(), ServiceError> {
        if host != self.config.host_id {
            return Err(invalid(
                ErrorCode::UnknownHost,
                format!("host {host} is not known"),
            ));
        }
        let cap = self.runtime.capacity().await?;
        if cap.free_mib < shape.mem_mib || cap.vcpus < shape.vcpu {
            return Err(ServiceError::NoCapacity {
                message: format!(
                    "host {host} cannot fit {} ({} MiB free, {} vCPUs)",
                    shape.id, cap.free_mib, cap.vcpus
                ),
                retry_after_secs: 5,
            });
        }
        Ok(())
    }

    /// Inserts the `creating` row, generating a name when none was given.
    pub(crate) async fn insert_row(
        &self,
        mut record: SandboxRecord,
        given_name: bool,
        envs: &BTreeMap<String, Secret<String>>,
    ) -> Result<SandboxRecord, ServiceError> {
        for attempt in 0..8u32 {
            if !given_name {
                record.name = names::generate(attempt);
            }
            match self.store.insert_sandbox(&record, envs).await {
                Ok(()) => return Ok(record),
                Err(StoreError::NameTaken { .. }) if !given_name => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Internal(
            "could not find a free sandbox name".into(),
        ))
    }

    /// The `creating` row of a validated create.
    fn new_record(
        &self,
        user: &User,
        req: &CreateSandboxRequest,
        place: &Placement,
        envs: &BTreeMap<String, Secret<String>>,
    ) -> SandboxRecord {
        SandboxRecord {
            id: SandboxId::generate(),
            owner: user.id.clone(),
            name: req.name.clone().unwrap_or_default(),
            status: SandboxStatus::Creating,
            failure_reason: None,
            shape: place.shape.id.clone(),
            rootfs: place.rootfs.clone(),
            region: self.config.region.clone(),
            host_id: self.config.host_id.clone(),
            vcpu: place.shape.vcpu,
            cpu_quota_pct: place.shape.cpu_quota_pct,
            mem_mib: place.shape.mem_mib,
            disk_mib: place.disk_mib,
            ip: None,
            ingress_enabled: req.ingress_enabled.unwrap_or(false),
            auto_pause_after_seconds: req.auto_pause_after_seconds,
            egress: req.egress.clone().unwrap_or_default(),
            ssh_pubkeys: dedup(req.ssh_pubkeys.clone().unwrap_or_default()),
            env_names: envs.keys().cloned().collect(),
            spawn_ms: None,
            created_by: user.name.clone(),
            bandwidth_ingress_bytes: 0,
            forked_from: None,
            created_at: Timestamp::now(),
            running_at: None,
            paused_at: None,
            last_resumed_at: None,
            destroyed_at: None,
            status_reason: None,
        }
    }

    /// `POST /v1/sandboxes`: returns once the sandbox runs, or fails with the
    /// row marked `failed` and nothing left on the host.
    pub async fn create(
        &self,
        user: &User,
        req: CreateSandboxRequest,
    ) -> Result<CreateSandboxResponse, ServiceError> {
        let started = Instant::now();
        req.validate()?;
        let place = self.place(user, &req).await?;
        let envs: BTreeMap<String, Secret<String>> = req
            .envs
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Secret::new(v)))
            .collect();
        let given_name = req.name.as_deref().is_some_and(|n| !n.is_empty());
        let record = self.new_record(user, &req, &place, &envs);
        // In flight from before the row exists, so the reconciler never sees
        // a `creating` row of ours that it could take for an interrupted one.
        let busy = self
            .inflight
            .try_enter(&record.id)
            .ok_or_else(|| ServiceError::Internal("fresh sandbox id already in flight".into()))?;
        let record = self.insert_row(record, given_name, &envs).await?;
        let spec = SandboxSpec {
            id: record.id.clone(),
            hostname: record.name.clone(),
            rootfs: place.rootfs,
            vcpu: place.shape.vcpu,
            cpu_quota_pct: place.shape.cpu_quota_pct,
            mem_mib: place.shape.mem_mib,
            disk_mib: place.disk_mib,
            pids_limit: pids_limit(&place.shape),
            mounts: Vec::new(),
        };
        // Its own task: a client hanging up must not cancel a create half-way.
        let this = self.clone();
        let disks = place.disks;
        let task = tokio::spawn(async move {
            let _busy = busy;
            this.bring_up_with_disks(record, spec, disks, started).await
        });
        let record = task
            .await
            .map_err(|e| ServiceError::Internal(format!("create task panicked: {e}")))??;
        Ok(CreateSandboxResponse {
            sandbox: self.view(&record),
            bandwidth_quota_bytes: UNMETERED,
        })
    }

    /// Mounts the disks on the host, creates the sandbox with them bound
    /// in, records the attachments; a failure anywhere undoes all of it.
    async fn bring_up_with_disks(
        &self,
        mut record: SandboxRecord,
        mut spec: SandboxSpec,
        disks: Vec<PlannedAttachment>,
        started: Instant,
    ) -> Result<SandboxRecord, ServiceError> {
        spec.mounts = match self.attachments.mount_on_host(&record.id, &disks).await {
            Ok(binds) => binds,
            Err(e) => {
                self.mark_failed(&mut record, &format!("mounting disks failed: {e}"))
                    .await;
                return Err(e);
            }
        };
        let paths = || spec.mounts.iter().map(|m| m.container_path.as_str());
        let mut record = match self.bring_up(record, spec.clone(), started).await {
            Ok(r) => r,
            Err(e) => {
                self.attachments.unmount_quietly(&spec.id, paths()).await;
                return Err(e);
            }
        };
        if let Err(e) = self.attachments.record(&record.id, &disks).await {
            self.mark_failed(&mut record, "recording the disk attachments failed")
                .await;
            self.attachments.unmount_quietly(&spec.id, paths()).await;
            return Err(e);
        }
        Ok(record)
    }

    async fn bring_up(
        &self,
        mut record: SandboxRecord,
        spec: SandboxSpec,
        started: Instant,
    ) -> Result<SandboxRecord, ServiceError> {
        match self.runtime.create(&spec).await {
            Ok(created) => {
                let elapsed = started.elapsed();
                record.status = SandboxStatus::Running;
                record.ip = Some(created.ip.to_string());
                record.running_at = Some(Timestamp::now());
                record.spawn_ms = Some((elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0);
                match self
                    .store
                    .update_sandbox(&record, SandboxStatus::Creating)
                    .await
                {
                    Ok(true) => {
                        self.metrics.observe_create(elapsed);
                        tracing::info!(sandbox_id = %record.id, spawn_ms = ?record.spawn_ms, "sandbox running");
                        Ok(record)
                    }
                    Ok(false) => {
                        self.mark_failed(
                            &mut record,
                            "the row changed while the sandbox was created",
                        )
                        .await;
                        Err(ServiceError::CreateFailed {
                            id: record.id.clone(),
                            reason: "row changed during create".into(),
                        })
                    }
                    Err(e) => {
                        self.mark_failed(&mut record, "recording the running sandbox failed")
                            .await;
                        Err(e.into())
                    }
                }
            }
            Err(e) => {
                let reason = e.to_string();
                self.mark_failed(&mut record, &reason).await;
                Err(create_error(record.id.clone(), e))
            }
        }
    }

    /// Rolls back a sandbox: nothing left on the host, the row `failed` with `reason`.
    pub(crate) async fn mark_failed(&self, record: &mut SandboxRecord, reason: &str) {
        tracing::warn!(sandbox_id = %record.id, reason, "sandbox create failed");
        if let Err(e) = self.runtime.destroy(&record.id).await {
            // The reconciler removes leftovers of a failed row.
            tracing::error!(sandbox_id = %record.id, error = %e, "rollback of failed create failed");
        }
        // A sandbox that vanished had disks: flush and release them (what
        // cannot be uploaded stays staged and is logged).
        if let Err(e) = self.attachments.teardown(&record.id).await {
            tracing::error!(sandbox_id = %record.id, error = %e, "releasing the disks of a failed sandbox failed");
        }
        let expected = record.status;
        record.status = SandboxStatus::Failed;
        record.failure_reason = Some(reason.to_owned());
        record.ip = None;
        if let Err(e) = self.store.update_sandbox(record, expected).await {
            tracing::error!(sandbox_id = %record.id, error = %e, "marking sandbox failed failed");
        }
    }

    /// `PATCH /v1/sandboxes/{id}`.
    pub async fn patch(
        &self,
        user: &User,
        id: &str,
        req: PatchSandboxRequest,
    ) -> Result<SandboxView, ServiceError> {
        req.validate()?;
        // Compare-and-set on the status; a concurrent transition makes us re-read.
        for _ in 0..5 {
            let mut r = self.owned(user, id).await?;
            if r.status.is_terminal() || r.status == SandboxStatus::Destroying {
                return Err(ServiceError::InvalidState {
                    id: r.id,
                    status: r.status,
                });
            }
            if let Some(enabled) = req.ingress_enabled {
                r.ingress_enabled = enabled;
            }
            if req.disable_auto_pause == Some(true) {
                r.auto_pause_after_seconds = None;
            } else if let Some(secs) = req.auto_pause_after_seconds {
                r.auto_pause_after_seconds = Some(secs);
            }
            if self.store.update_sandbox(&r, r.status).await? {
                return Ok(self.view(&r));
            }
        }
        Err(ServiceError::Internal(format!(
            "patch of {id} kept racing with other updates"
        )))
    }

    /// `DELETE /v1/sandboxes/{id}`: idempotent; answers `destroyed` once the
    /// runtime removed everything, `destroying` if that must be retried (the
    /// reconciler finishes it).
    pub async fn destroy(&self, user: &User, id: &str) -> Result<DestroyedResponse, ServiceError> {
        let mut r = self.owned(user, id).await?;
        if r.status == SandboxStatus::Destroyed {
            return Ok(DestroyedResponse {
                id: r.id,
                status: SandboxStatus::Destroyed,
            });
        }
        // Busy: a create is still running (409), or a destroy of it is
        // already under way (answer as that destroy would).
        let Some(busy) = self.inflight.try_enter(&r.id) else {
            return match r.status {
                SandboxStatus::Creating => Err(ServiceError::InvalidState {
                    id: r.id,
                    status: r.status,
                }),
                _ => Ok(DestroyedResponse {
                    id: r.id,
                    status: SandboxStatus::Destroying,
                }),
            };
        };
        let expected = r.status;
        r.status = SandboxStatus::Destroying;
        if !self.store.update_sandbox(&r, expected).await? {
            // Someone else moved it on; answer from the fresh row.
            let fresh = self.owned(user, id).await?;
            let status = if fresh.status == SandboxStatus::Destroyed {
                SandboxStatus::Destroyed
            } else {
                SandboxStatus::Destroying
            };
            return Ok(DestroyedResponse {
                id: fresh.id,
                status,
            });
        }
        let sid = r.id.clone();
        let this = self.clone();
        // Its own task, holding the in-flight mark, so a hang-up cannot cut it short.
        let task = tokio::spawn(async move {
            let _busy = busy;
            this.finish_destroy(r).await
        });
        let status = task
            .await
            .map_err(|e| ServiceError::Internal(format!("destroy task panicked: {e}")))?;
        Ok(DestroyedResponse { id: sid, status })
    }

    /// Removes a `destroying` sandbox from the host and marks it destroyed.
    /// The caller holds the sandbox's in-flight mark.
    /// The sandbox's processes go first, so every file they held open on a
    /// disk is closed (and uploaded); then the disks are flushed and
    /// unmounted. A flush that fails keeps the row `destroying`.
    pub(crate) async fn finish_destroy(&self, mut r: SandboxRecord) -> SandboxStatus {
        if let Err(e) = self.runtime.destroy(&r.id).await {
            tracing::error!(sandbox_id = %r.id, error = %e, "destroy failed; will retry");
            return SandboxStatus::Destroying;
        }
        if self.attachments.teardown(&r.id).await.is_err() {
            return SandboxStatus::Destroying;
        }
        r.status = SandboxStatus::Destroyed;
        r.destroyed_at = Some(Timestamp::now());
        match self
            .store
            .update_sandbox(&r, SandboxStatus::Destroying)
            .await
        {
            Ok(_) => SandboxStatus::Destroyed,
            Err(e) => {
                tracing::error!(sandbox_id = %r.id, error = %e, "recording destroy failed");
                SandboxStatus::Destroying
            }
        }
    }
}

fn dedup(keys: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// How a failed runtime create is answered.
fn create_error(id: SandboxId, e: RuntimeError) -> ServiceError {
    match e {
        RuntimeError::NoCapacity(message) => ServiceError::NoCapacity {
            message,
            retry_after_secs: 5,
        },
        RuntimeError::UnknownImage(name) => invalid(
            ErrorCode::UnknownRootfs,
            format!("rootfs {name} is not available on this host"),
        ),
        other => ServiceError::CreateFailed {
            id,
            reason: other.to_string(),
        },
    }
}
