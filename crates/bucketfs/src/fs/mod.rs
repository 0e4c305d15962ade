//! The filesystem core: one async method per filesystem operation, returning
//! `Result<_, FsError>`, generic over the object client. It knows nothing of
//! FUSE (`crate::fuse` converts arguments and replies).
//!
//! Layout of the bucket (s3fs-compatible): a file or symlink at path `a/b` is
//! the object `<prefix>a/b`; a directory is either implicit (objects exist
//! under `<prefix>a/`) or explicit (a `<prefix>a/` marker object). Attributes
//! ride in s3fs's metadata headers (`meta.rs`).
//!
//! Caching: every inode remembers when the server last confirmed it; within
//! the metadata TTL it is answered from memory, after it the server is asked
//! again (HEAD plus a one-key LIST, in parallel). A TTL of `None` is for
//! buckets only this mount writes: nothing expires. Listings fill the table
//! with attributes derived from the listing (no HEAD per entry).
//!
//! Operations are split by concern: `lookup.rs` (lookup, getattr, readdir),
//! `file.rs` (open, read, write, flush, fsync, release, create),
//! `namespace.rs` (mkdir, rmdir, unlink, symlink, readlink, statfs),
//! `rename.rs`, `setattr.rs`, and `write.rs` (staged data and uploads).

mod error;
mod file;
mod inode;
mod lookup;
pub mod meta;
mod namespace;
mod rename;
mod setattr;
mod write;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub use error::{FsError, FsResult};
pub use file::{OpenReply, ReadData, WriteNow};
pub use inode::ROOT_INO;
pub use lookup::DirEntry;
pub use meta::{Attr, AttrDefaults, FileKind};
pub use namespace::StatFs;
pub use setattr::SetAttr;

use crate::client::ObjectClient;
use crate::metrics::{MeteredClient, Metrics};
use crate::staging::StagingArea;
use file::Handle;
use inode::InodeTable;

/// How a mount behaves.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix the mount shows (`""`, or ending in `/`).
    pub prefix: String,
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Owner and modes for objects without metadata.
    pub defaults: AttrDefaults,
    /// How long metadata and listings are trusted; `None`: forever (only
    /// this mount writes the bucket).
    pub metadata_ttl: Option<Duration>,
    /// Staging directory and its size limit.
    pub staging_dir: PathBuf,
    pub staging_max_bytes: u64,
    /// Parts uploaded in parallel per file (each in flight holds one
    /// 8 MiB block in memory: 8 is 64 MiB, within the mount's 128 MiB
    /// peak-RSS budget, and the parallelism the raw-client ceiling of the
    /// benchmark uses).
    pub upload_concurrency: usize,
    /// Delay before a failed upload is retried in the background.
    pub retry_interval: Duration,
}

impl FsConfig {
    /// Defaults for tests and the CLI: owner from `defaults`, 1 s TTL.
    pub fn new(staging_dir: PathBuf, defaults: AttrDefaults) -> Self {
        Self {
            prefix: String::new(),
            read_only: false,
            defaults,
            metadata_ttl: Some(Duration::from_secs(1)),
            staging_dir,
            staging_max_bytes: 4 << 30,
            upload_concurrency: 8,
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// The filesystem over client `C`.
pub struct Filesystem<C: ObjectClient> {
    client: Arc<MeteredClient<C>>,
    config: FsConfig,
    metrics: Arc<Metrics>,
    staging: Arc<StagingArea>,
    table: Mutex<InodeTable>,
    handles: Mutex<HashMap<u64, Arc<Handle<MeteredClient<C>>>>>,
    next_fh: AtomicU64,
    /// Distinguishes this mount's upload attempts from other writers'.
    mount_id: String,
    /// Inodes whose last upload failed, retried by `retry_pending`.
    pending: Mutex<HashSet<u64>>,
}

impl<C: ObjectClient> Filesystem<C> {
    /// A filesystem over `client` (creates the staging directory).
    pub fn new(client: C, mut config: FsConfig) -> FsResult<Self> {
        if !config.prefix.is_empty() && !config.prefix.ends_with('/') {
            config.prefix.push('/');
        }
        let metrics = Arc::new(Metrics::default());
        let staging = StagingArea::new(&config.staging_dir, config.staging_max_bytes)?;
        let now = SystemTime::now();
        let root = config.defaults.attr(FileKind::Directory, 0, now);
        Ok(Self {
            client: Arc::new(MeteredClient::new(client, Arc::clone(&metrics))),
            config,
            metrics,
            staging,
            table: Mutex::new(InodeTable::new(root)),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            pending: Mutex::new(HashSet::new()),
            mount_id: format!(
                "{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            ),
        })
    }

    /// The mount's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.metrics.store_staging(&self.staging);
        &self.metrics
    }

    /// The client (unwrapped).
    pub fn client(&self) -> &C {
        self.client.inner()
    }

    /// The configuration.
    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    fn table(&self) -> MutexGuard<'_, InodeTable> {
        // Poisoning means a panic while holding the lock; every mutation
        // of the table is small and leaves it consistent, so go on.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Arc<Handle<MeteredClient<C>>>>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keys of files whose upload failed and is being retried.
    pub fn pending_uploads(&self) -> usize {
        self.pending().len()
    }

    fn is_fresh(&self, validated: Option<Instant>) -> bool {
        match (validated, self.config.metadata_ttl) {
            (None, _) => true,
            (Some(_), None) => true,
            (Some(t), Some(ttl)) => t.elapsed() < ttl,
        }
    }

    /// The object key of a file at `path`.
    fn key(&self, path: &str) -> String {
        format!("{}{}", self.config.prefix, path)
    }

    /// The listing prefix (and marker key) of a directory at `path`.
    fn dir_prefix(&self, path: &str) -> String {
        if path.is_empty() {
            self.config.prefix.clone()
        } else {
            format!("{}{}/", self.config.prefix, path)
        }
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.config.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The TTL the kernel may cache entries and attributes for.
    pub fn kernel_ttl(&self) -> Duration {
        self.config
            .metadata_ttl
            .unwrap_or(Duration::from_secs(24 * 3600))
    }

    /// Kind of `ino`, if known (for opendir).
    pub fn table_kind(&self, ino: u64) -> Option<FileKind> {
        self.table().get(ino).map(|i| i.attr.kind)
    }

    /// Parent of `ino` (the root is its own parent).
    pub fn parent_of(&self, ino: u64) -> u64 {
        self.table().get(ino).map_or(ROOT_INO, |i| i.parent)
    }

    /// Cached attributes of `ino`, if known (no request).
    pub fn getattr_cached(&self, ino: u64) -> Option<Attr> {
        self.table().get(ino).map(|i| i.attr.clone())
    }

    /// Attributes of `ino` as cached (no request).
    fn cached_attr(&self, ino: u64) -> FsResult<Attr> {
        self.table()
            .get(ino)
            .map(|i| i.attr.clone())
            .ok_or(FsError::Stale)
    }
}

impl Metrics {
    fn store_staging(&self, staging: &StagingArea) {
        self.staging_bytes
            .store(staging.used_bytes(), Ordering::Relaxed);
    }
}

/// Checks that `name` can be one path component of an object key.
fn check_name(name: &str) -> FsResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.len() > 255 {
        return Err(FsError::InvalidName {
            name: name.to_string(),
        });
    }
    Ok(())
}
