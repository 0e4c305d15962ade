//! The `Store` trait: users, API keys and sandbox rows, with an SQLite
//! (embedded default, one WAL file in the state dir) and a PostgreSQL
//! implementation sharing one body of SQL. Secrets are handled here, at the
//! storage boundary: API keys are kept as SHA-256 hashes, env values are
//! sealed with AES-256-GCM under the server key and only names are stored in
//! the clear.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;

pub mod crypto;
pub mod disks;
mod postgres;
pub mod secret;
mod sql;
mod sqlite;

pub use crypto::ServerKey;
pub use disks::{AttachmentRecord, DiskDeletion, DiskRecord, DiskSecret, DiskStore};
pub use postgres::PostgresStore;
pub use secret::Secret;
pub use sqlite::SqliteStore;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another live sandbox of the same owner has this name.
    #[error("a live sandbox named {name} already exists")]
    NameTaken { name: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("row {id} is corrupt: {what}")]
    Corrupt { id: String, what: String },
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("unsupported database url (expected sqlite: or postgres://)")]
    UnsupportedUrl,
}

/// A user: the owner of API keys and sandboxes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// `usr_<ulid>`; what sandboxes reference.
    pub id: String,
    /// Unique, chosen by the operator (`cove keys create --user NAME`).
    pub name: String,
    pub created_at: Timestamp,
}

/// A sandbox row: everything its view shows plus owner, host and failure reason.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxRecord {
    pub id: SandboxId,
    /// The owning user's id.
    pub owner: String,
    pub name: String,
    pub status: SandboxStatus,
    /// Why the sandbox is `failed`.
    pub failure_reason: Option<String>,
    pub shape: String,
    pub rootfs: String,
    pub region: String,
    pub host_id: String,
    pub vcpu: u32,
    pub cpu_quota_pct: Option<u32>,
    pub mem_mib: u64,
    pub disk_mib: u64,
    pub ip: Option<String>,
    pub ingress_enabled: bool,
    pub auto_pause_after_seconds: Option<u32>,
    pub egress: Vec<String>,
    pub ssh_pubkeys: Vec<String>,
    /// Names of the env vars; their values are sealed separately.
    pub env_names: Vec<String>,
    pub spawn_ms: Option<f64>,
    /// The owning user's name, as the view's `created_by`.
    pub created_by: String,
    pub bandwidth_ingress_bytes: u64,
    pub forked_from: Option<SandboxId>,
    pub created_at: Timestamp,
    pub running_at: Option<Timestamp>,
    pub paused_at: Option<Timestamp>,
    pub last_resumed_at: Option<Timestamp>,
    pub destroyed_at: Option<Timestamp>,
}

/// Which sandboxes a list returns.
#[derive(Clone, Debug, Default)]
pub struct SandboxFilter {
    /// Only this owner's (user id); `None` for all owners.
    pub owner: Option<String>,
    /// Only this status.
    pub status: Option<SandboxStatus>,
}

/// Persistent state of the control plane.
#[async_trait]
pub trait Store: DiskStore + Send + Sync + 'static {
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Returns the user named `name`, creating it when new.
    async fn ensure_user(&self, name: &str) -> Result<User, StoreError>;

    /// Creates a new API key for `user_id` and returns it; only its hash is kept.
    async fn create_api_key(&self, user_id: &str) -> Result<Secret<String>, StoreError>;

    /// The user an API key belongs to, if any.
    async fn user_by_api_key(&self, key: &str) -> Result<Option<User>, StoreError>;

    /// Inserts a new sandbox row with its env values (sealed here).
    /// `NameTaken` when the owner has a live sandbox with the same name.
    async fn insert_sandbox(
        &self,
        record: &SandboxRecord,
        envs: &BTreeMap<String, Secret<String>>,
    ) -> Result<(), StoreError>;

    /// One sandbox by id, whoever owns it.
    async fn get_sandbox(&self, id: &SandboxId) -> Result<Option<SandboxRecord>, StoreError>;

    /// The owner's sandbox with this IP, preferring a live one.
    async fn get_sandbox_by_ip(
        &self,
        owner: &str,
        ip: &str,
    ) -> Result<Option<SandboxRecord>, StoreError>;

    /// A page of sandboxes (oldest first) and the total matching the filter.
    async fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<SandboxRecord>, u64), StoreError>;

    /// Every sandbox that is not terminal (for the reconciler).
    async fn list_live_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError>;

    /// Writes every mutable field of `record` if the row's status is still
    /// `expected`; returns whether it was written (compare-and-set, so two
    /// requests racing on one sandbox cannot both win a transition).
    async fn update_sandbox(
        &self,
        record: &SandboxRecord,
        expected: SandboxStatus,
    ) -> Result<bool, StoreError>;

    /// The sandbox's env values, opened.
    async fn sandbox_envs(
        &self,
        id: &SandboxId,
    ) -> Result<BTreeMap<String, Secret<String>>, StoreError>;

    /// Number of sandboxes per status, for one owner or for all.
    async fn count_by_status(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<(SandboxStatus, u64)>, StoreError>;
}

/// Opens the store named by a URL: `sqlite:PATH` (or `sqlite://PATH`) or
/// `postgres://…` / `postgresql://…`, and runs its migrations.
pub async fn open(url: &str, key: ServerKey) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(url, key).await?));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or(StoreError::UnsupportedUrl)?;
    Ok(Arc::new(
        SqliteStore::open(std::path::Path::new(path), key).await?,
    ))
}
