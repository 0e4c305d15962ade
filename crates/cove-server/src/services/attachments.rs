//! Disk attachments (`/v1/sandboxes/{id}/disks`): a disk mounted on the
//! host by the `Mounter`, then bound into the sandbox by the `Runtime`.
//!
//! Every change is made so that a failure half-way leaves nothing behind:
//! - attach (at create or live): host mount → sandbox mount → row; a later
//!   step failing undoes the earlier ones;
//! - detach: flush (on failure nothing changes: 409, the mount stays and
//!   the data stays staged) → sandbox unmount → host unmount → row;
//! - remount with other options (PATCH): flush, detach, mount again; if the
//!   new mount cannot be made, the old one is put back;
//! - teardown at destroy (after the sandbox's processes are gone, so every
//!   file they had open was closed and uploaded): unmount each disk; a
//!   failed flush keeps the sandbox `destroying` and the reconciler retries.
//!
//! A live attach or detach holds the sandbox's in-flight mark, so a create,
//! destroy or reconciler pass never runs at the same time.

use std::sync::Arc;

use cove_api::disk::{
    normalize_mount_path, normalize_sub_path, paths_overlap, AttachmentPatchRequest,
    DiskAttachedResponse, DiskAttachment, DiskDetachedResponse, DiskMountStatus, SandboxDiskView,
};
use cove_api::envelope::ListPage;
use cove_api::ids::{DiskId, SandboxId};
use cove_api::sandbox::{page_limit, PageQuery, SandboxStatus};
use cove_api::timestamp::Timestamp;
use cove_runtime::{BindMount, Runtime};
use cove_store::{AttachmentRecord, DiskRecord, SandboxRecord, Store, User};

use crate::error::ServiceError;
use crate::mounts::{BucketAccess, MountError, MountHealth, MountRequest, Mounter};
use crate::services::{owned_disk, owned_sandbox};
use crate::state::{InFlight, InFlightGuard};

/// An attachment validated and resolved, not mounted yet.
#[derive(Clone, Debug)]
pub struct PlannedAttachment {
    pub disk: DiskRecord,
    pub mount_path: String,
    pub sub_path: Option<String>,
    pub read_only: bool,
}

/// Attachment operations.
#[derive(Clone)]
pub struct AttachmentService {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    mounter: Arc<dyn Mounter>,
    inflight: Arc<InFlight>,
}

impl AttachmentService {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        mounter: Arc<dyn Mounter>,
        inflight: Arc<InFlight>,
    ) -> Self {
        Self {
            store,
            runtime,
            mounter,
            inflight,
        }
    }

    async fn disk(&self, user: &User, id_or_name: &str) -> Result<DiskRecord, ServiceError> {
        owned_disk(self.store.as_ref(), user, id_or_name).await
    }

    /// Validates one requested attachment against the sandbox's others.
    async fn plan_one(
        &self,
        user: &User,
        req: &DiskAttachment,
        taken: &[String],
    ) -> Result<PlannedAttachment, ServiceError> {
        let (mount_path, sub_path) = req.validate()?;
        if let Some(other) = taken.iter().find(|t| paths_overlap(t, &mount_path)) {
            return Err(ServiceError::MountPathInUse(format!(
                "mount_path {mount_path} overlaps the attachment at {other}"
            )));
        }
        Ok(PlannedAttachment {
            disk: self.disk(user, &req.disk_id).await?,
            mount_path,
            sub_path,
            read_only: req.read_only.unwrap_or(false),
        })
    }

    /// Validates the `disks` of a create (before anything is made).
    pub async fn plan(
        &self,
        user: &User,
        reqs: &[DiskAttachment],
    ) -> Result<Vec<PlannedAttachment>, ServiceError> {
        let mut planned: Vec<PlannedAttachment> = Vec::with_capacity(reqs.len());
        for req in reqs {
            let taken: Vec<String> = planned.iter().map(|p| p.mount_path.clone()).collect();
            planned.push(self.plan_one(user, req, &taken).await?);
        }
        Ok(planned)
    }

    async fn mount_request(
        &self,
        sandbox: &SandboxId,
        p: &PlannedAttachment,
    ) -> Result<MountRequest, ServiceError> {
        Ok(MountRequest {
            sandbox_id: sandbox.clone(),
            mount_path: p.mount_path.clone(),
            bucket: BucketAccess {
                disk_id: p.disk.id.clone(),
                config: p.disk.config.clone(),
                credentials: self.store.disk_credentials(&p.disk.id).await?,
            },
            sub_path: p.sub_path.clone(),
            read_only: p.read_only,
            owner: self.runtime.sandbox_owner(),
        })
    }

    /// Mounts planned attachments on the host (for a create: the runtime
    /// binds them in from the start). On failure, those made are unmounted.
    pub async fn mount_on_host(
        &self,
        sandbox: &SandboxId,
        planned: &[PlannedAttachment],
    ) -> Result<Vec<BindMount>, ServiceError> {
        let mut binds = Vec::with_capacity(planned.len());
        for p in planned {
            let mounted = match self.mount_request(sandbox, p).await {
                Ok(req) => self.mounter.mount(&req).await.map_err(ServiceError::from),
                Err(e) => Err(e),
            };
            match mounted {
                Ok(host_path) => binds.push(BindMount {
                    host_path,
                    container_path: p.mount_path.clone(),
                    read_only: p.read_only,
                }),
                Err(e) => {
                    self.unmount_quietly(sandbox, binds.iter().map(|b| b.container_path.as_str()))
                        .await;
                    return Err(e);
                }
            }
        }
        Ok(binds)
    }

    /// Undoes host mounts of a create that failed (nothing was written).
    pub async fn unmount_quietly<'a>(
        &self,
        sandbox: &SandboxId,
        paths: impl Iterator<Item = &'a str>,
    ) {
        for path in paths {
            if let Err(e) = self.mounter.unmount(sandbox, path).await {
                tracing::error!(sandbox_id = %sandbox, mount_path = path, error = %e, "unmounting a disk of a failed create failed");
            }
        }
    }

    /// Records the attachments of a sandbox that now runs.
    pub async fn record(
        &self,
        sandbox: &SandboxId,
        planned: &[PlannedAttachment],
    ) -> Result<(), ServiceError> {
        for p in planned {
            self.store
                .insert_attachment(&record_of(sandbox, p, true))
                .await?;
        }
        Ok(())
    }

    /// The sandbox, running and not busy, with its in-flight mark.
    async fn running_and_marked(
        &self,
        user: &User,
        id: &str,
    ) -> Result<(SandboxRecord, InFlightGuard), ServiceError> {
        let r = owned_sandbox(self.store.as_ref(), user, id).await?;
        if r.status != SandboxStatus::Running {
            return Err(ServiceError::InvalidState {
                id: r.id,
                status: r.status,
            });
        }
        let busy = self
            .inflight
            .try_enter(&r.id)
            .ok_or_else(|| ServiceError::InvalidState {
                id: r.id.clone(),
                status: r.status,
            })?;
        Ok((r, busy))
    }

    /// `POST /v1/sandboxes/{id}/disks`: usable inside when this returns.
    pub async fn attach(
        &self,
        user: &User,
        id: &str,
        req: DiskAttachment,
    ) -> Result<DiskAttachedResponse, ServiceError> {
        let (r, _busy) = self.running_and_marked(user, id).await?;
        let taken: Vec<String> = self
            .store
            .list_attachments(&r.id)
            .await?
            .into_iter()
            .map(|a| a.mount_path)
            .collect();
        let p = self.plan_one(user, &req, &taken).await?;
        self.mount_inside(&r.id, &p, false).await?;
        if let Err(e) = self
            .store
            .insert_attachment(&record_of(&r.id, &p, false))
            .await
        {
            self.undo_live(&r.id, &p.mount_path).await;
            return Err(e.into());
        }
        tracing::info!(sandbox_id = %r.id, disk_id = %p.disk.id, mount_path = %p.mount_path, "disk attached");
        Ok(DiskAttachedResponse {
            ok: true,
            id: r.id,
            disk_id: p.disk.id,
            mount_path: p.mount_path,
        })
    }

    async fn undo_live(&self, sandbox: &SandboxId, mount_path: &str) {
        if let Err(e) = self.runtime.detach_mount(sandbox, mount_path).await {
            tracing::error!(sandbox_id = %sandbox, mount_path, error = %e, "undoing a live attach failed");
        }
        self.unmount_quietly(sandbox, std::iter::once(mount_path))
            .await;
    }

    /// `GET /v1/sandboxes/{id}/disks`, each with its mount's state.
    pub async fn list(
        &self,
        user: &User,
        id: &str,
        q: PageQuery,
    ) -> Result<ListPage<SandboxDiskView>, ServiceError> {
        let r = owned_sandbox(self.store.as_ref(), user, id).await?;
        let rows = self.store.list_attachments(&r.id).await?;
        let total = rows.len() as u64;
        let (limit, offset) = (page_limit(q.limit), q.offset.unwrap_or(0));
        let page = rows
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize);
        let mut views = Vec::new();
        for a in page {
            let disk = self
                .store
                .get_disk(&user.id, a.disk_id.as_str())
                .await?
                .ok_or_else(|| {
                    ServiceError::Internal(format!("attached disk {} is gone", a.disk_id))
                })?;
            let (status, error) = if r.status == SandboxStatus::Running {
                match self.mounter.health(&r.id, &a.mount_path).await {
                    MountHealth::Mounted => (DiskMountStatus::Mounted, None),
                    MountHealth::Error(why) => (DiskMountStatus::Error, Some(why)),
                    MountHealth::Absent => (
                        DiskMountStatus::Error,
                        Some("not mounted on this host".to_owned()),
                    ),
                }
            } else {
                (DiskMountStatus::Pending, None)
            };
            views.push(SandboxDiskView {
                disk_id: a.disk_id,
                name: disk.name,
                kind: disk.kind,
                config: disk.config,
                mount_path: a.mount_path,
                sub_path: a.sub_path,
                read_only: a.read_only,
                mount_status: status,
                mount_error: error,
            });
        }
        Ok(ListPage::new(views, total, limit, offset))
    }

    /// The attachment of `disk` named by `mount_path` (or the only one).
    async fn find(
        &self,
        user: &User,
        sandbox: &SandboxId,
        disk: &str,
        mount_path: Option<&str>,
    ) -> Result<AttachmentRecord, ServiceError> {
        // Matched by the raw `disk_<ulid>` id, as CreateOS does (seed 001:
        // "detachDisk requires diskId to be the disk_<ulid> id").
        if DiskId::parse(disk).is_none() {
            return Err(ServiceError::NotFound {
                what: "attachment of disk (name the disk by its disk_<ulid> id)",
                id: disk.to_owned(),
            });
        }
        let disk = self.disk(user, disk).await?;
        let mut rows: Vec<AttachmentRecord> = self
            .store
            .list_attachments(sandbox)
            .await?
            .into_iter()
            .filter(|a| a.disk_id == disk.id)
            .collect();
        let not_attached = || ServiceError::NotFound {
            what: "attachment of disk",
            id: disk.id.to_string(),
        };
        match mount_path.filter(|p| !p.is_empty()) {
            Some(p) => {
                let p = normalize_mount_path(p)?;
                rows.into_iter()
                    .find(|a| a.mount_path == p)
                    .ok_or_else(not_attached)
            }
            None if rows.len() > 1 => Err(ServiceError::Validation(
                cove_api::validate::ValidationError {
                    code: cove_api::codes::ErrorCode::ValidationFailed,
                    message: format!(
                        "disk {} is attached at {} paths: say which with mount_path",
                        disk.id,
                        rows.len()
                    ),
                },
            )),
            None => rows.pop().ok_or_else(not_attached),
        }
    }

    /// `DELETE /v1/sandboxes/{id}/disks/{disk}?mount_path=`: pending writes
    /// are uploaded first; if they cannot be, nothing changes (409).
    pub async fn detach(
        &self,
        user: &User,
        id: &str,
        disk: &str,
        mount_path: Option<&str>,
    ) -> Result<DiskDetachedResponse, ServiceError> {
        let (r, _busy) = self.running_and_marked(user, id).await?;
        let a = self.find(user, &r.id, disk, mount_path).await?;
        self.take_down(&r.id, &a.mount_path).await?;
        self.store.delete_attachment(&r.id, &a.mount_path).await?;
        tracing::info!(sandbox_id = %r.id, disk_id = %a.disk_id, mount_path = %a.mount_path, "disk detached");
        Ok(DiskDetachedResponse { detached: true })
    }

    /// Flush → sandbox unmount → host unmount. A failed flush changes nothing.
    async fn take_down(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), ServiceError> {
        match self.mounter.flush(sandbox, mount_path).await {
            Ok(()) | Err(MountError::NotMounted) => {}
            Err(e) => return Err(e.into()),
        }
        self.runtime.detach_mount(sandbox, mount_path).await?;
        match self.mounter.unmount(sandbox, mount_path).await {
            Ok(()) | Err(MountError::NotMounted) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Host mount and sandbox mount of an attachment row.
    async fn bring_up(
        &self,
        sandbox: &SandboxId,
        a: &AttachmentRecord,
        owner: &User,
        replace: bool,
    ) -> Result<(), ServiceError> {
        let p = PlannedAttachment {
            disk: self.disk(owner, a.disk_id.as_str()).await?,
            mount_path: a.mount_path.clone(),
            sub_path: a.sub_path.clone(),
            read_only: a.read_only,
        };
        self.mount_inside(sandbox, &p, replace).await
    }

    /// Host mount, then made live inside the running sandbox; the host
    /// mount goes again if the sandbox side fails.
    async fn mount_inside(
        &self,
        sandbox: &SandboxId,
        p: &PlannedAttachment,
        replace: bool,
    ) -> Result<(), ServiceError> {
        let req = self.mount_request(sandbox, p).await?;
        let host_path = self.mounter.mount(&req).await?;
        let bind = BindMount {
            host_path,
            container_path: p.mount_path.clone(),
            read_only: p.read_only,
        };
        if let Err(e) = self.runtime.attach_mount(sandbox, &bind, replace).await {
            self.unmount_quietly(sandbox, std::iter::once(p.mount_path.as_str()))
                .await;
            return Err(e.into());
        }
        Ok(())
    }

    /// `PATCH /v1/sandboxes/{id}/disks/{disk}?mount_path=`: remounts with a
    /// new `read_only` or `sub_path` (seed 004); if the new mount cannot be
    /// made, the old one is restored and the error returned.
    pub async fn remount(
        &self,
        user: &User,
        id: &str,
        disk: &str,
        mount_path: Option<&str>,
        req: AttachmentPatchRequest,
    ) -> Result<SandboxDiskView, ServiceError> {
        let (r, busy) = self.running_and_marked(user, id).await?;
        let old = self.find(user, &r.id, disk, mount_path).await?;
        let mut new = old.clone();
        // Mounted again live: a checkpoint must take it out first.
        new.declared = false;
        if let Some(ro) = req.read_only {
            new.read_only = ro;
        }
        if let Some(sub) = req.sub_path.as_deref() {
            new.sub_path = normalize_sub_path(Some(sub))?;
        }
        self.take_down(&r.id, &old.mount_path).await?;
        if let Err(e) = self.bring_up(&r.id, &new, user, false).await {
            if let Err(back) = self.bring_up(&r.id, &old, user, false).await {
                tracing::error!(sandbox_id = %r.id, mount_path = %old.mount_path, error = %back, "restoring the old mount after a failed remount failed");
            }
            return Err(e);
        }
        self.store.update_attachment(&new).await?;
        drop(busy);
        let page = self.list(user, id, PageQuery::default()).await?;
        page.data
            .into_iter()
            .find(|v| v.mount_path == new.mount_path)
            .ok_or_else(|| ServiceError::Internal("remounted attachment not listed".into()))
    }

    /// Unmounts every disk of a sandbox whose processes are gone (destroy)
    /// and forgets the attachments. A failed flush is an error: the caller
    /// keeps the sandbox `destroying` and tries again later.
    pub async fn teardown(&self, sandbox: &SandboxId) -> Result<(), ServiceError> {
        for a in self.store.list_attachments(sandbox).await? {
            match self.mounter.unmount(sandbox, &a.mount_path).await {
                Ok(()) | Err(MountError::NotMounted) => {}
                Err(e) => {
                    tracing::error!(sandbox_id = %sandbox, mount_path = %a.mount_path, error = %e, "flushing a disk of a destroyed sandbox failed; will retry");
                    return Err(e.into());
                }
            }
            self.store.delete_attachment(sandbox, &a.mount_path).await?;
        }
        Ok(())
    }

    /// After a server restart: mounts every disk of every running sandbox
    /// again, replacing the dead mounts the previous process left inside.
    /// Failures are logged and show as `error` in the attachment list.
    pub async fn remount_all(&self) -> Result<usize, ServiceError> {
        let mut done = 0;
        for r in self.store.list_live_sandboxes().await? {
            if r.status != SandboxStatus::Running {
                continue;
            }
            let Some(_busy) = self.inflight.try_enter(&r.id) else {
                continue;
            };
            let owner = User {
                id: r.owner.clone(),
                name: r.created_by.clone(),
                created_at: r.created_at,
            };
            for a in self.store.list_attachments(&r.id).await? {
                match self.bring_up(&r.id, &a, &owner, true).await {
                    Ok(()) => done += 1,
                    Err(e) => {
                        tracing::error!(sandbox_id = %r.id, mount_path = %a.mount_path, error = %e, "re-mounting a disk after restart failed")
                    }
                }
            }
        }
        Ok(done)
    }
}

/// The host mounts of a restore or fork, split by how they return.
pub struct RestoreMounts {
    /// Declared as binds in the OCI config before the restore.
    pub declared: Vec<BindMount>,
    /// Injected again once the sandbox runs.
    pub live: Vec<BindMount>,
}

impl RestoreMounts {
    /// Every mount's path inside the sandbox.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.declared
            .iter()
            .chain(&self.live)
            .map(|b| b.container_path.as_str())
    }
}

/// The disks of a sandbox across a checkpoint (pause, resume, fork).
///
/// CRIU carries a mount declared as a bind in the OCI config (a file held
/// open on it is reopened at restore); a mount injected live it cannot
/// dump. So a pause flushes every disk, takes the live ones out, and after
/// the checkpoint unmounts all of them on the host; a restore mounts them
/// all on the host again, declares the declared ones as binds and injects
/// the live ones once the sandbox runs.
impl AttachmentService {
    /// Before a checkpoint: flush every disk (a failure changes nothing)
    /// and take the live ones out of the sandbox. Returns what was taken
    /// out, for [`Self::undo_prepare_pause`].
    pub async fn prepare_pause(
        &self,
        sandbox: &SandboxId,
    ) -> Result<Vec<AttachmentRecord>, ServiceError> {
        let rows = self.store.list_attachments(sandbox).await?;
        for a in &rows {
            match self.mounter.flush(sandbox, &a.mount_path).await {
                Ok(()) | Err(MountError::NotMounted) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut ejected = Vec::new();
        for a in rows.into_iter().filter(|a| !a.declared) {
            if let Err(e) = self.runtime.detach_mount(sandbox, &a.mount_path).await {
                self.undo_prepare_pause(sandbox, &ejected).await;
                return Err(e.into());
            }
            ejected.push(a);
        }
        Ok(ejected)
    }

    /// A failed checkpoint: the live disks go back in (same host mounts).
    pub async fn undo_prepare_pause(&self, sandbox: &SandboxId, ejected: &[AttachmentRecord]) {
        for a in ejected {
            let Some(host_path) = self.mounter.host_path(sandbox, &a.mount_path) else {
                continue;
            };
            let bind = BindMount {
                host_path,
                container_path: a.mount_path.clone(),
                read_only: a.read_only,
            };
            if let Err(e) = self.runtime.attach_mount(sandbox, &bind, false).await {
                tracing::error!(sandbox_id = %sandbox, mount_path = %a.mount_path, error = %e, "putting a disk back after a failed pause failed");
            }
        }
    }

    /// After a checkpoint: the host mounts go (nothing of the sandbox
    /// remains on the host). What could not be uploaded stays staged.
    pub async fn release_host_mounts(&self, sandbox: &SandboxId) -> Result<(), ServiceError> {
        for a in self.store.list_attachments(sandbox).await? {
            match self.mounter.unmount(sandbox, &a.mount_path).await {
                Ok(()) | Err(MountError::NotMounted) => {}
                Err(e) => {
                    tracing::error!(sandbox_id = %sandbox, mount_path = %a.mount_path, error = %e, "a paused sandbox's disk kept data it could not upload")
                }
            }
        }
        Ok(())
    }

    /// Before a restore of `sandbox` (or a fork of it as `target`): every
    /// disk mounted on the host for `target`. The declared ones are binds
    /// for the restore (CRIU put them back as they were); the live ones
    /// were not in the checkpoint and go in after it ([`Self::inject_live`]).
    pub async fn mount_for_restore(
        &self,
        sandbox: &SandboxId,
        target: &SandboxId,
        owner: &User,
    ) -> Result<RestoreMounts, ServiceError> {
        let rows = self.store.list_attachments(sandbox).await?;
        let mut planned = Vec::with_capacity(rows.len());
        for a in &rows {
            planned.push(PlannedAttachment {
                disk: self.disk(owner, a.disk_id.as_str()).await?,
                mount_path: a.mount_path.clone(),
                sub_path: a.sub_path.clone(),
                read_only: a.read_only,
            });
        }
        let binds = self.mount_on_host(target, &planned).await?;
        if sandbox != target {
            // A fork has the same disks at the same places, the same way.
            for (a, p) in rows.iter().zip(&planned) {
                if let Err(e) = self
                    .store
                    .insert_attachment(&record_of(target, p, a.declared))
                    .await
                {
                    let paths = binds.iter().map(|b| b.container_path.as_str());
                    self.unmount_quietly(target, paths).await;
                    return Err(e.into());
                }
            }
        }
        let (declared, live) = binds
            .into_iter()
            .zip(&rows)
            .partition::<Vec<_>, _>(|(_, a)| a.declared);
        Ok(RestoreMounts {
            declared: declared.into_iter().map(|(b, _)| b).collect(),
            live: live.into_iter().map(|(b, _)| b).collect(),
        })
    }

    /// After a restore: the disks that were attached live go in again, as
    /// live mounts. One that cannot is unmounted on the host and shows as
    /// `error` in the list.
    pub async fn inject_live(&self, sandbox: &SandboxId, live: &[BindMount]) {
        for b in live {
            if let Err(e) = self.runtime.attach_mount(sandbox, b, false).await {
                tracing::error!(sandbox_id = %sandbox, mount_path = %b.container_path, error = %e, "re-attaching a live disk after a restore failed");
                self.unmount_quietly(sandbox, std::iter::once(b.container_path.as_str()))
                    .await;
            }
        }
    }
}

/// `declared`: bound through the OCI config (create, restore) rather than
/// injected live.
fn record_of(sandbox: &SandboxId, p: &PlannedAttachment, declared: bool) -> AttachmentRecord {
    AttachmentRecord {
        sandbox_id: sandbox.clone(),
        disk_id: p.disk.id.clone(),
        mount_path: p.mount_path.clone(),
        sub_path: p.sub_path.clone(),
        read_only: p.read_only,
        declared,
        created_at: Timestamp::now(),
    }
}
