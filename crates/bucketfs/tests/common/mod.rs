//! Shared test helpers: real FUSE mounts over any `ObjectClient`, behind a
//! small session API so every FUSE test body runs against the in-memory
//! bucket and (from the garage helpers) the real S3 server.
//!
//! # Writing a test over sessions
//! ```ignore
//! #[test_case(mem_session ; "mem")]
//! fn my_test(creator: SessionCreator) {
//!     let s = creator(SessionConfig::default());
//!     std::fs::write(s.path("a"), b"x").unwrap();
//!     assert_eq!(s.bucket.get("a").unwrap(), b"x");
//! }
//! ```
//! A creator is `fn(SessionConfig) -> Session`. To add a backend, build a
//! `TestBucket` for it and call [`mount_session`] with a client factory.

#![allow(dead_code)]

pub mod fsutil;
pub mod pathfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bucketfs::client::ObjectClient;
use bucketfs::fs::{AttrDefaults, Filesystem, FsConfig};
use bucketfs::fuse::{spawn_mount, MountOptions};
use bucketfs::memory::MemoryClient;

/// Direct access to the bucket behind a mount ("another client").
pub trait TestBucket: Send + Sync {
    /// The body of `key`, if it exists.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// The user metadata of `key` (names without `x-amz-meta-`).
    fn metadata(&self, key: &str) -> Option<BTreeMap<String, String>>;
    /// Write `key` behind the mount's back.
    fn put(&self, key: &str, body: &[u8], metadata: BTreeMap<String, String>);
    /// Delete `key` behind the mount's back.
    fn delete(&self, key: &str);
    /// Every key in the bucket, sorted.
    fn keys(&self) -> Vec<String>;
}

/// What kind of mount a test wants.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub prefix: String,
    pub read_only: bool,
    /// `None`: nothing expires (only this mount writes).
    pub metadata_ttl: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            read_only: false,
            metadata_ttl: Some(Duration::ZERO),
        }
    }
}

/// Makes a mounted session.
pub type SessionCreator = fn(SessionConfig) -> Session;

/// Mounts the filesystem again on a path (for `Session::remount`).
type Remounter = Box<dyn Fn(&Path) -> Box<dyn Send> + Send>;

/// A mounted bucket; unmounts (after flushing) when dropped.
pub struct Session {
    pub bucket: Arc<dyn TestBucket>,
    mountpoint: tempfile::TempDir,
    mount: Option<Box<dyn Send>>,
    remount: Remounter,
}

impl Session {
    /// The mount directory.
    pub fn root(&self) -> &Path {
        self.mountpoint.path()
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.path().join(rel)
    }

    /// Unmount (flushing) and mount again with a fresh filesystem.
    pub fn remount(&mut self) {
        self.mount = None;
        self.mount = Some((self.remount)(self.mountpoint.path()));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.mount = None;
    }
}

/// One live mount: runtime, FUSE session and filesystem; unmounts and
/// flushes on drop.
struct MountGuard<C: ObjectClient> {
    session: Option<fuser::BackgroundSession>,
    fs: Arc<Filesystem<C>>,
    rt: Option<tokio::runtime::Runtime>,
    _staging: tempfile::TempDir,
}

impl<C: ObjectClient> Drop for MountGuard<C> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            if let Err(e) = s.umount_and_join() {
                eprintln!("unmount failed: {e}");
            }
        }
        if let Some(rt) = self.rt.take() {
            let fs = Arc::clone(&self.fs);
            let failed = rt.block_on(async move { fs.shutdown().await });
            assert!(failed.is_empty(), "uploads failed at unmount: {failed:?}");
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Mount a filesystem over `factory()` at `mountpoint`.
pub fn mount_fs<C: ObjectClient>(
    client: C,
    config: &SessionConfig,
    mountpoint: &Path,
) -> Box<dyn Send> {
    let staging = tempfile::tempdir().expect("staging dir");
    let defaults = AttrDefaults {
        uid: unsafe_free_uid(),
        gid: unsafe_free_gid(),
        file_perm: 0o644,
        dir_perm: 0o755,
    };
    let mut fs_config = FsConfig::new(staging.path().to_path_buf(), defaults);
    fs_config.prefix = config.prefix.clone();
    fs_config.read_only = config.read_only;
    fs_config.metadata_ttl = config.metadata_ttl;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fs = Arc::new(Filesystem::new(client, fs_config).expect("filesystem"));
    let options = MountOptions {
        fs_name: "bucketfs-test".into(),
        allow_other: false,
        read_only: config.read_only,
    };
    let session = spawn_mount(Arc::clone(&fs), rt.handle().clone(), mountpoint, &options)
        .expect("mount (is /dev/fuse available and fusermount3 installed?)");
    Box::new(MountGuard {
        session: Some(session),
        fs,
        rt: Some(rt),
        _staging: staging,
    })
}

fn unsafe_free_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn unsafe_free_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// A session over a client made by `factory` (called again on remount),
/// with `bucket` as the direct view.
pub fn mount_session<C, F>(
    bucket: Arc<dyn TestBucket>,
    factory: F,
    config: SessionConfig,
) -> Session
where
    C: ObjectClient,
    F: Fn() -> C + Send + 'static,
{
    let mountpoint = tempfile::tempdir().expect("mountpoint");
    let mount = mount_fs(factory(), &config, mountpoint.path());
    Session {
        bucket,
        mountpoint,
        mount: Some(mount),
        remount: Box::new(move |p| mount_fs(factory(), &config, p)),
    }
}

impl TestBucket for MemoryClient {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.object(key).map(|o| o.body.to_vec())
    }

    fn metadata(&self, key: &str) -> Option<BTreeMap<String, String>> {
        self.object(key).map(|o| o.metadata)
    }

    fn put(&self, key: &str, body: &[u8], metadata: BTreeMap<String, String>) {
        self.insert(key, body.to_vec(), metadata);
    }

    fn delete(&self, key: &str) {
        self.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.objects().into_keys().collect()
    }
}

/// A session over a fresh in-memory bucket.
pub fn mem_session(config: SessionConfig) -> Session {
    let client = MemoryClient::new();
    let bucket: Arc<dyn TestBucket> = Arc::new(client.clone());
    mount_session(bucket, move || client.clone(), config)
}
