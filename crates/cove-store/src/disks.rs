//! Disks and attachments: the `DiskStore` half of the store, with one body
//! of SQL for both back ends (`impl_disk_store!`, like `sql.rs`).
//!
//! A disk's credentials are sealed with AES-256-GCM under the server key,
//! bound to the disk's id (so a blob copied onto another row does not
//! open), and only come out through [`DiskStore::disk_credentials`].

use async_trait::async_trait;
use cove_api::disk::DiskConfig;
use cove_api::ids::{DiskId, SandboxId};
use cove_api::timestamp::Timestamp;

use crate::{Secret, StoreError};

/// A registered disk (never its credentials).
#[derive(Clone, Debug, PartialEq)]
pub struct DiskRecord {
    pub id: DiskId,
    /// The owning user's id.
    pub owner: String,
    pub name: String,
    pub kind: String,
    pub config: DiskConfig,
    /// Whether credentials are stored (a public bucket has none).
    pub has_credentials: bool,
    pub created_at: Timestamp,
}

/// A disk's opened credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSecret {
    pub access_key: Secret<String>,
    pub secret_key: Secret<String>,
}

/// A disk attached to a sandbox at one mount path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub sandbox_id: SandboxId,
    pub disk_id: DiskId,
    pub mount_path: String,
    pub sub_path: Option<String>,
    pub read_only: bool,
    /// Declared as a bind in the sandbox's OCI config (at create or
    /// restore), not injected live: a checkpoint can carry it.
    pub declared: bool,
    pub created_at: Timestamp,
}

/// What `delete_disk` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskDeletion {
    Deleted,
    NotFound,
    /// Attached to a sandbox that is not destroyed; nothing was changed.
    InUse,
}

/// Disks and attachments.
#[async_trait]
pub trait DiskStore: Send + Sync {
    /// Inserts a disk and its credentials (sealed here).
    /// `NameTaken` when the owner already has a disk with this name.
    async fn insert_disk(
        &self,
        disk: &DiskRecord,
        credentials: Option<&DiskSecret>,
    ) -> Result<(), StoreError>;

    /// The owner's disk by `disk_<ulid>` id or by name.
    async fn get_disk(
        &self,
        owner: &str,
        id_or_name: &str,
    ) -> Result<Option<DiskRecord>, StoreError>;

    /// A page of the owner's disks (oldest first) and their total.
    async fn list_disks(
        &self,
        owner: &str,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<DiskRecord>, u64), StoreError>;

    /// The disk's credentials, opened; `None` for a public bucket.
    async fn disk_credentials(&self, id: &DiskId) -> Result<Option<DiskSecret>, StoreError>;

    /// Replaces the disk's credentials; false when there is no such disk.
    async fn update_disk_credentials(
        &self,
        id: &DiskId,
        credentials: &DiskSecret,
    ) -> Result<bool, StoreError>;

    /// Deletes the disk unless it is attached to a sandbox that is not
    /// destroyed or failed (attachments of terminal sandboxes go with it).
    async fn delete_disk(&self, id: &DiskId) -> Result<DiskDeletion, StoreError>;

    /// Inserts an attachment. `NameTaken` (named after the mount path)
    /// when the sandbox already has one at this path.
    async fn insert_attachment(&self, a: &AttachmentRecord) -> Result<(), StoreError>;

    /// The sandbox's attachments, oldest first.
    async fn list_attachments(
        &self,
        sandbox: &SandboxId,
    ) -> Result<Vec<AttachmentRecord>, StoreError>;

    /// Writes `sub_path`, `read_only` and `declared` of the attachment at
    /// (`a.sandbox_id`, `a.mount_path`); false when there is none.
    async fn update_attachment(&self, a: &AttachmentRecord) -> Result<bool, StoreError>;

    /// Removes the attachment at (`sandbox`, `mount_path`); false when none.
    async fn delete_attachment(
        &self,
        sandbox: &SandboxId,
        mount_path: &str,
    ) -> Result<bool, StoreError>;
}

/// Implements `DiskStore` for `$store` (holding `pool` and `key`) whose rows are `$row`.
macro_rules! impl_disk_store {
    ($store:ident, $row:ty) => {
        mod disk_store_impl {
            use async_trait::async_trait;
            use cove_api::disk::DiskConfig;
            use cove_api::ids::{DiskId, SandboxId};
            use cove_api::timestamp::Timestamp;
            use sqlx::Row;

            use super::$store;
            use crate::disks::{AttachmentRecord, DiskDeletion, DiskRecord, DiskSecret, DiskStore};
            use crate::sql::{corrupt, to_i64};
            use crate::{Secret, StoreError};

            const DISK_COLUMNS: &str =
                "id, owner, name, kind, config, credentials IS NOT NULL AS has_credentials, created_at";

            fn disk_from_row(row: &$row) -> Result<DiskRecord, StoreError> {
                let id: String = row.try_get("id")?;
                let config: String = row.try_get("config")?;
                Ok(DiskRecord {
                    id: DiskId::parse(&id).ok_or_else(|| corrupt(&id, "id"))?,
                    owner: row.try_get("owner")?,
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    config: serde_json::from_str::<DiskConfig>(&config)
                        .map_err(|_| corrupt(&id, "config"))?,
                    has_credentials: row.try_get("has_credentials")?,
                    created_at: Timestamp::from_micros(row.try_get("created_at")?),
                })
            }

            fn attachment_from_row(row: &$row) -> Result<AttachmentRecord, StoreError> {
                let sb: String = row.try_get("sandbox_id")?;
                let disk: String = row.try_get("disk_id")?;
                Ok(AttachmentRecord {
                    sandbox_id: SandboxId::parse(&sb).ok_or_else(|| corrupt(&sb, "sandbox_id"))?,
                    disk_id: DiskId::parse(&disk).ok_or_else(|| corrupt(&sb, "disk_id"))?,
                    mount_path: row.try_get("mount_path")?,
                    sub_path: row.try_get("sub_path")?,
                    read_only: row.try_get("read_only")?,
                    declared: row.try_get("declared")?,
                    created_at: Timestamp::from_micros(row.try_get("created_at")?),
                })
            }

            impl $store {
                fn seal_credentials(
                    &self,
                    id: &DiskId,
                    c: &DiskSecret,
                ) -> Result<Vec<u8>, StoreError> {
                    let plain = Secret::new(
                        serde_json::to_vec(&serde_json::json!({
                            "access_key": c.access_key.expose(),
                            "secret_key": c.secret_key.expose(),
                        }))
                        .map_err(|_| corrupt(id.as_str(), "credentials"))?,
                    );
                    Ok(self.key.seal(plain.expose(), id.as_str().as_bytes())?)
                }
            }

            fn unique_violation(e: &sqlx::Error) -> bool {
                matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
            }

            #[async_trait]
            impl DiskStore for $store {
                async fn insert_disk(
                    &self,
                    d: &DiskRecord,
                    credentials: Option<&DiskSecret>,
                ) -> Result<(), StoreError> {
                    let sealed = credentials
                        .map(|c| self.seal_credentials(&d.id, c))
                        .transpose()?;
                    let config = serde_json::to_string(&d.config)
                        .map_err(|_| corrupt(d.id.as_str(), "config"))?;
                    let res = sqlx::query(
                        "INSERT INTO disks (id, owner, name, kind, config, credentials, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    )
                    .bind(d.id.as_str())
                    .bind(&d.owner)
                    .bind(&d.name)
                    .bind(&d.kind)
                    .bind(config)
                    .bind(sealed)
                    .bind(d.created_at.as_micros())
                    .execute(&self.pool)
                    .await;
                    match res {
                        Ok(_) => Ok(()),
                        Err(e) if unique_violation(&e) => Err(StoreError::NameTaken { name: d.name.clone() }),
                        Err(e) => Err(e.into()),
                    }
                }

                async fn get_disk(
                    &self,
                    owner: &str,
                    id_or_name: &str,
                ) -> Result<Option<DiskRecord>, StoreError> {
                    let row = sqlx::query(&format!(
                        "SELECT {DISK_COLUMNS} FROM disks WHERE owner = $1 AND (id = $2 OR name = $2)"
                    ))
                    .bind(owner)
                    .bind(id_or_name)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(disk_from_row).transpose()
                }

                async fn list_disks(
                    &self,
                    owner: &str,
                    limit: u32,
                    offset: u64,
                ) -> Result<(Vec<DiskRecord>, u64), StoreError> {
                    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM disks WHERE owner = $1")
                        .bind(owner)
                        .fetch_one(&self.pool)
                        .await?;
                    let rows = sqlx::query(&format!(
                        "SELECT {DISK_COLUMNS} FROM disks WHERE owner = $1 \
                         ORDER BY created_at, id LIMIT $2 OFFSET $3"
                    ))
                    .bind(owner)
                    .bind(i64::from(limit))
                    .bind(to_i64(offset))
                    .fetch_all(&self.pool)
                    .await?;
                    let items = rows.iter().map(disk_from_row).collect::<Result<Vec<_>, _>>()?;
                    Ok((items, u64::try_from(total).unwrap_or(0)))
                }

                async fn disk_credentials(
                    &self,
                    id: &DiskId,
                ) -> Result<Option<DiskSecret>, StoreError> {
                    let sealed: Option<Option<Vec<u8>>> =
                        sqlx::query_scalar("SELECT credentials FROM disks WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&self.pool)
                            .await?;
                    let Some(Some(sealed)) = sealed else { return Ok(None) };
                    let plain = Secret::new(self.key.open(&sealed, id.as_str().as_bytes())?);
                    let v: serde_json::Value = serde_json::from_slice(plain.expose())
                        .map_err(|_| corrupt(id.as_str(), "credentials"))?;
                    let field = |k: &str| {
                        v[k].as_str()
                            .map(|s| Secret::new(s.to_owned()))
                            .ok_or_else(|| corrupt(id.as_str(), "credentials"))
                    };
                    Ok(Some(DiskSecret {
                        access_key: field("access_key")?,
                        secret_key: field("secret_key")?,
                    }))
                }

                async fn update_disk_credentials(
                    &self,
                    id: &DiskId,
                    credentials: &DiskSecret,
                ) -> Result<bool, StoreError> {
                    let sealed = self.seal_credentials(id, credentials)?;
                    let done = sqlx::query("UPDATE disks SET credentials = $1, updated_at = $2 WHERE id = $3")
                        .bind(sealed)
                        .bind(Timestamp::now().as_micros())
                        .bind(id.as_str())
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn delete_disk(&self, id: &DiskId) -> Result<DiskDeletion, StoreError> {
                    let mut tx = self.pool.begin().await?;
                    let live: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM disk_attachments a JOIN sandboxes s ON s.id = a.sandbox_id \
                         WHERE a.disk_id = $1 AND s.status NOT IN ('destroyed', 'failed')",
                    )
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    if live > 0 {
                        return Ok(DiskDeletion::InUse);
                    }
                    sqlx::query("DELETE FROM disk_attachments WHERE disk_id = $1")
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let done = sqlx::query("DELETE FROM disks WHERE id = $1")
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(if done.rows_affected() == 1 {
                        DiskDeletion::Deleted
                    } else {
                        DiskDeletion::NotFound
                    })
                }

                async fn insert_attachment(&self, a: &AttachmentRecord) -> Result<(), StoreError> {
                    let res = sqlx::query(
                        "INSERT INTO disk_attachments (sandbox_id, disk_id, mount_path, sub_path, read_only, declared, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(a.sandbox_id.as_str())
                    .bind(a.disk_id.as_str())
                    .bind(&a.mount_path)
                    .bind(&a.sub_path)
                    .bind(a.read_only)
                    .bind(a.declared)
                    .bind(a.created_at.as_micros())
                    .execute(&self.pool)
                    .await;
                    match res {
                        Ok(_) => Ok(()),
                        Err(e) if unique_violation(&e) => Err(StoreError::NameTaken { name: a.mount_path.clone() }),
                        Err(e) => Err(e.into()),
                    }
                }

                async fn list_attachments(
                    &self,
                    sandbox: &SandboxId,
                ) -> Result<Vec<AttachmentRecord>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT sandbox_id, disk_id, mount_path, sub_path, read_only, declared, created_at \
                         FROM disk_attachments WHERE sandbox_id = $1 ORDER BY created_at, mount_path",
                    )
                    .bind(sandbox.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(attachment_from_row).collect()
                }

                async fn update_attachment(&self, a: &AttachmentRecord) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE disk_attachments SET sub_path = $1, read_only = $2, declared = $3 \
                         WHERE sandbox_id = $4 AND mount_path = $5",
                    )
                    .bind(&a.sub_path)
                    .bind(a.read_only)
                    .bind(a.declared)
                    .bind(a.sandbox_id.as_str())
                    .bind(&a.mount_path)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn delete_attachment(
                    &self,
                    sandbox: &SandboxId,
                    mount_path: &str,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "DELETE FROM disk_attachments WHERE sandbox_id = $1 AND mount_path = $2",
                    )
                    .bind(sandbox.as_str())
                    .bind(mount_path)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }
            }
        }
    };
}

pub(crate) use impl_disk_store;
