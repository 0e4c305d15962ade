//! The disk registry (`/v1/disks`): register a bucket (probed first, so a
//! typo'd endpoint, a missing bucket or wrong keys are refused and nothing
//! is stored), read, list, rotate credentials (probed with the new keys,
//! then switched on every running mount of the disk) and delete (refused
//! while attached; the bucket itself is never touched).

use std::sync::Arc;

use cove_api::disk::{
    DiskCreateRequest, DiskDeletedResponse, DiskPatchRequest, DiskView, DISK_KIND_S3,
};
use cove_api::envelope::ListPage;
use cove_api::ids::DiskId;
use cove_api::sandbox::{page_limit, PageQuery};
use cove_api::timestamp::Timestamp;
use cove_store::{DiskDeletion, DiskRecord, DiskSecret, Secret, Store, StoreError, User};

use crate::error::ServiceError;
use crate::mounts::{BucketAccess, Mounter};
use crate::services::owned_disk;

/// Disk registry operations.
#[derive(Clone)]
pub struct DiskService {
    store: Arc<dyn Store>,
    mounter: Arc<dyn Mounter>,
}

/// The credentials of a request, boxed so they never print.
pub(crate) fn secret_of(c: &cove_api::disk::DiskCredentials) -> DiskSecret {
    DiskSecret {
        access_key: Secret::new(c.access_key.clone()),
        secret_key: Secret::new(c.secret_key.clone()),
    }
}

/// The view of a disk (never its credentials).
pub(crate) fn disk_view(d: &DiskRecord) -> DiskView {
    DiskView {
        id: d.id.clone(),
        name: d.name.clone(),
        kind: d.kind.clone(),
        config: d.config.clone(),
        created_at: d.created_at,
    }
}

impl DiskService {
    pub fn new(store: Arc<dyn Store>, mounter: Arc<dyn Mounter>) -> Self {
        Self { store, mounter }
    }

    /// The caller's disk by id or name, or 404 (also for someone else's).
    pub async fn owned(&self, user: &User, id_or_name: &str) -> Result<DiskRecord, ServiceError> {
        owned_disk(self.store.as_ref(), user, id_or_name).await
    }

    /// `POST /v1/disks`: idempotent by name.
    pub async fn create(
        &self,
        user: &User,
        req: DiskCreateRequest,
    ) -> Result<DiskView, ServiceError> {
        let config = req.validate()?.clone();
        if let Some(existing) = self.store.get_disk(&user.id, &req.name).await? {
            return same_or_taken(existing, &config);
        }
        let record = DiskRecord {
            id: DiskId::generate(),
            owner: user.id.clone(),
            name: req.name.clone(),
            kind: DISK_KIND_S3.to_owned(),
            config,
            has_credentials: req.credentials.is_some(),
            created_at: Timestamp::now(),
        };
        let credentials = req.credentials.as_ref().map(secret_of);
        self.mounter
            .probe(&BucketAccess {
                disk_id: record.id.clone(),
                config: record.config.clone(),
                credentials: credentials.clone(),
            })
            .await?;
        match self.store.insert_disk(&record, credentials.as_ref()).await {
            Ok(()) => {
                tracing::info!(disk_id = %record.id, name = %record.name, "disk registered");
                Ok(disk_view(&record))
            }
            // A concurrent create of the same name won: answer as if it
            // had been first.
            Err(StoreError::NameTaken { .. }) => {
                match self.store.get_disk(&user.id, &req.name).await? {
                    Some(existing) => same_or_taken(existing, &record.config),
                    None => Err(ServiceError::Internal(
                        "disk name taken but not found".into(),
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /v1/disks/{idOrName}`.
    pub async fn get(&self, user: &User, id_or_name: &str) -> Result<DiskView, ServiceError> {
        Ok(disk_view(&self.owned(user, id_or_name).await?))
    }

    /// `GET /v1/disks`.
    pub async fn list(
        &self,
        user: &User,
        q: PageQuery,
    ) -> Result<ListPage<DiskView>, ServiceError> {
        let limit = page_limit(q.limit);
        let offset = q.offset.unwrap_or(0);
        let (items, total) = self.store.list_disks(&user.id, limit, offset).await?;
        Ok(ListPage::new(
            items.iter().map(disk_view).collect(),
            total,
            limit,
            offset,
        ))
    }

    /// `PATCH /v1/disks/{idOrName}`: new keys, checked against the bucket
    /// before they replace the old ones; running mounts sign with them from
    /// the next request on (uploads that failed meanwhile are retried with
    /// them, so no write is lost).
    pub async fn rotate(
        &self,
        user: &User,
        id_or_name: &str,
        req: DiskPatchRequest,
    ) -> Result<DiskView, ServiceError> {
        let credentials = secret_of(req.validate()?);
        let disk = self.owned(user, id_or_name).await?;
        self.mounter
            .probe(&BucketAccess {
                disk_id: disk.id.clone(),
                config: disk.config.clone(),
                credentials: Some(credentials.clone()),
            })
            .await?;
        if !self
            .store
            .update_disk_credentials(&disk.id, &credentials)
            .await?
        {
            return Err(ServiceError::NotFound {
                what: "disk",
                id: id_or_name.to_owned(),
            });
        }
        self.mounter.rotate_credentials(&disk.id, Some(credentials));
        tracing::info!(disk_id = %disk.id, "disk credentials rotated");
        Ok(disk_view(&disk))
    }

    /// `DELETE /v1/disks/{idOrName}`.
    pub async fn delete(
        &self,
        user: &User,
        id_or_name: &str,
    ) -> Result<DiskDeletedResponse, ServiceError> {
        let disk = self.owned(user, id_or_name).await?;
        match self.store.delete_disk(&disk.id).await? {
            DiskDeletion::Deleted => {
                tracing::info!(disk_id = %disk.id, "disk deleted");
                Ok(DiskDeletedResponse { deleted: true })
            }
            DiskDeletion::NotFound => Ok(DiskDeletedResponse { deleted: false }),
            DiskDeletion::InUse => Err(ServiceError::DiskInUse(disk.name)),
        }
    }
}

fn same_or_taken(
    existing: DiskRecord,
    config: &cove_api::disk::DiskConfig,
) -> Result<DiskView, ServiceError> {
    if existing.config.same_as(config) {
        Ok(disk_view(&existing))
    } else {
        Err(ServiceError::DiskNameTaken(existing.name))
    }
}
