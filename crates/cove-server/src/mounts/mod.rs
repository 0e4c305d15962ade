//! The `Mounter` trait: the host side of disks. Services ask it to probe a
//! bucket, mount one on the host for one attachment (a directory the
//! runtime then binds or injects into the sandbox), flush it, unmount it,
//! switch its keys and report its health. It knows nothing of sandboxes
//! beyond the (sandbox id, mount path) pair that names an attachment.
//!
//! Implementations: [`bucketfs::BucketfsMounter`] (a bucketfs FUSE mount in
//! this process per attachment; credentials never leave it) and, for
//! service tests, [`memory::MemoryMounter`] (feature `testing`).

pub mod bucketfs;
#[cfg(any(test, feature = "testing"))]
pub mod memory;

use std::path::PathBuf;

use async_trait::async_trait;
use cove_api::disk::DiskConfig;
use cove_api::ids::{DiskId, SandboxId};
use cove_store::DiskSecret;

/// How to reach one bucket.
#[derive(Clone, Debug)]
pub struct BucketAccess {
    pub disk_id: DiskId,
    pub config: DiskConfig,
    /// `None`: a public bucket, read with unsigned requests.
    pub credentials: Option<DiskSecret>,
}

/// One attachment to mount on the host.
#[derive(Clone, Debug)]
pub struct MountRequest {
    pub sandbox_id: SandboxId,
    /// The path inside the sandbox; with the sandbox id, the mount's key.
    pub mount_path: String,
    pub bucket: BucketAccess,
    /// Only keys under this prefix are shown.
    pub sub_path: Option<String>,
    pub read_only: bool,
    /// Host uid/gid that files without metadata belong to (the sandbox's root).
    pub owner: (u32, u32),
}

/// What a mount looks like right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountHealth {
    /// Mounted and its bucket answers.
    Mounted,
    /// Mounted, but its bucket does not answer (the reason), or the mount died.
    Error(String),
    /// Not mounted by this process.
    Absent,
}

/// Why a mount operation failed. Messages never contain credentials.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MountError {
    /// The endpoint refused the connection or its name did not resolve.
    #[error("cannot connect to the endpoint: {message}")]
    Unreachable { message: String },
    /// The endpoint accepted the connection but did not answer in time.
    #[error("the endpoint did not answer within {secs} s")]
    Timeout { secs: u64 },
    #[error("bucket {bucket:?} does not exist at this endpoint")]
    BucketNotFound { bucket: String },
    /// The server refused the credentials (or their permissions).
    #[error("access denied by the endpoint ({code}): check the access key and secret")]
    AccessDenied { code: String },
    /// The endpoint answered, but not like S3.
    #[error("the endpoint did not answer like S3: {message}")]
    Protocol { message: String },
    /// The settings cannot be used (e.g. the endpoint URL).
    #[error("invalid disk settings: {message}")]
    InvalidConfig { message: String },
    /// Pending writes could not be uploaded; they stay staged and the
    /// mount stays up.
    #[error("{files} file(s) with pending writes could not be uploaded: {message}")]
    FlushFailed { files: usize, message: String },
    /// A local failure (FUSE, directories).
    #[error("mounting on the host failed: {message}")]
    Host { message: String },
    #[error("no such mount")]
    NotMounted,
}

/// The host side of disk attachments.
#[async_trait]
pub trait Mounter: Send + Sync + 'static {
    /// Checks that the bucket answers a one-key listing with these settings.
    async fn probe(&self, bucket: &BucketAccess) -> Result<(), MountError>;

    /// Mounts the attachment on the host and returns the mount point, after
    /// checking the bucket answers. A mount this process already holds for
    /// the same key is an error; a dead one left at the same place (by a
    /// previous server process) is replaced.
    async fn mount(&self, req: &MountRequest) -> Result<PathBuf, MountError>;

    /// Uploads every pending write of the mount (files still open
    /// included). On failure the data stays staged and the mount stays.
    async fn flush(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), MountError>;

    /// Flushes, then unmounts. If the flush fails nothing is unmounted.
    /// Files still open through another reference to the mount keep
    /// working; what they write later is uploaded when they close.
    async fn unmount(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), MountError>;

    /// Where this process has the attachment mounted on the host, if it has.
    fn host_path(&self, sandbox: &SandboxId, mount_path: &str) -> Option<PathBuf>;

    /// Signs every later request of this disk's mounts with new keys.
    fn rotate_credentials(&self, disk: &DiskId, credentials: Option<DiskSecret>);

    /// The mount's state, asking its bucket.
    async fn health(&self, sandbox: &SandboxId, mount_path: &str) -> MountHealth;
}
