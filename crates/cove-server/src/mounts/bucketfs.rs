//! `BucketfsMounter`: one bucketfs FUSE mount in this process per
//! attachment, at `<state>/mounts/<sandbox>/<hash of mount path>`, staging
//! under `<state>/staging/…`. The S3 client and its keys live only in this
//! process: the sandbox sees a directory, never a credential.
//!
//! Mounts are made with `allow_other` (the sandbox's processes run as an
//! unprivileged host uid) and files without metadata belong to the
//! sandbox's root. A mount ends in two steps: `unmount` flushes and
//! detaches the host mount point lazily; the FUSE session then lives on
//! while the sandbox still holds references (open files after a lazy
//! detach), and when it ends, whatever is still dirty is uploaded (or kept
//! in the staging directory and logged).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::bucketfs::client::{ListObjectsParams, ObjectClient, ObjectClientError};
use ::bucketfs::fs::{AttrDefaults, Filesystem, FsConfig, FsError};
use ::bucketfs::fuse::{spawn_mount, MountOptions, SESSION_POLL};
use ::bucketfs::s3::{AddressingStyle, Credentials, S3Client, S3Config};
use async_trait::async_trait;
use cove_api::ids::{DiskId, SandboxId};
use cove_store::DiskSecret;

use super::{BucketAccess, MountError, MountHealth, MountRequest, Mounter};

/// How long a probe or health check waits for the bucket.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

type Key = (SandboxId, String);

struct ActiveMount {
    disk_id: DiskId,
    fs: Arc<Filesystem<S3Client>>,
    host_path: PathBuf,
    session: fuser::BackgroundSession,
    retrier: tokio::task::JoinHandle<()>,
}

/// Mounts disks with bucketfs on this host.
pub struct BucketfsMounter {
    mounts_dir: PathBuf,
    staging_dir: PathBuf,
    staging_max_bytes: u64,
    /// Live mounts by (sandbox, mount path). Held only to look up or
    /// insert, never across an await.
    active: Mutex<HashMap<Key, Arc<ActiveMount>>>,
}

impl BucketfsMounter {
    /// Mounts under `state_dir/mounts`, staging under `state_dir/staging`
    /// (at most `staging_max_bytes` per mount).
    pub fn new(state_dir: &Path, staging_max_bytes: u64) -> Self {
        Self {
            mounts_dir: state_dir.join("mounts"),
            staging_dir: state_dir.join("staging"),
            staging_max_bytes,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<ActiveMount>>> {
        // Plain map inserts and removes cannot leave it torn.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, sandbox: &SandboxId, mount_path: &str) -> Option<Arc<ActiveMount>> {
        self.active()
            .get(&(sandbox.clone(), mount_path.to_owned()))
            .cloned()
    }

    /// Stable per (sandbox, mount path), so a restarted server finds the
    /// dead mount point of its predecessor at the same place.
    fn paths(&self, sandbox: &SandboxId, mount_path: &str) -> (PathBuf, PathBuf) {
        let leaf = format!("{:016x}", fnv1a(mount_path.as_bytes()));
        (
            self.mounts_dir.join(sandbox.as_str()).join(&leaf),
            self.staging_dir.join(sandbox.as_str()).join(&leaf),
        )
    }

    /// Every mount's (sandbox, mount path), for shutdown.
    pub fn keys(&self) -> Vec<(SandboxId, String)> {
        self.active().keys().cloned().collect()
    }
}

/// FNV-1a, 64 bits: short stable names for mount points.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn credentials(c: &DiskSecret) -> Credentials {
    Credentials::new(c.access_key.expose().clone(), c.secret_key.expose().clone())
}

/// IP addresses and `localhost` cannot take the bucket as a subdomain.
fn endpoint_is_local(endpoint: &str) -> bool {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    if rest.starts_with('[') {
        return true;
    }
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
}

fn client_for(bucket: &BucketAccess, timeout: Option<Duration>) -> Result<S3Client, MountError> {
    let c = &bucket.config;
    let mut config =
        S3Config::new(c.bucket.clone(), c.region_or_default()).with_endpoint(c.endpoint.clone());
    config.addressing = if c.use_path_style.unwrap_or(false) || endpoint_is_local(&c.endpoint) {
        AddressingStyle::Path
    } else {
        AddressingStyle::VirtualHosted
    };
    config.credentials = bucket.credentials.as_ref().map(credentials);
    if let Some(t) = timeout {
        // A probe answers promptly and plainly: no retries to wait out.
        config.connect_timeout = t;
        config.read_timeout = t;
        config.request_timeout = t;
        config.retry.max_attempts = 1;
    }
    S3Client::new(config).map_err(|e| MountError::InvalidConfig {
        message: e.to_string(),
    })
}

fn from_client(bucket: &str, e: &ObjectClientError, timeout: Duration) -> MountError {
    match e {
        ObjectClientError::NoSuchBucket { .. } => MountError::BucketNotFound {
            bucket: bucket.to_owned(),
        },
        ObjectClientError::AccessDenied { code } => MountError::AccessDenied { code: code.clone() },
        ObjectClientError::Timeout => MountError::Timeout {
            secs: timeout.as_secs(),
        },
        ObjectClientError::Connection { message } => MountError::Unreachable {
            message: message.clone(),
        },
        ObjectClientError::Reset => MountError::Unreachable {
            message: "connection reset".into(),
        },
        ObjectClientError::NoSuchKey { .. }
        | ObjectClientError::NoSuchUpload { .. }
        | ObjectClientError::PreconditionFailed { .. }
        | ObjectClientError::InvalidRange { .. }
        | ObjectClientError::Throttled { .. }
        | ObjectClientError::ServerError { .. }
        | ObjectClientError::ClientError { .. }
        | ObjectClientError::Unsupported { .. }
        | ObjectClientError::TruncatedBody { .. }
        | ObjectClientError::InvalidResponse { .. }
        | ObjectClientError::LocalRead { .. } => MountError::Protocol {
            message: e.to_string(),
        },
    }
}

async fn list_one(client: &S3Client, prefix: String) -> Result<(), ObjectClientError> {
    let params = ListObjectsParams {
        prefix,
        delimiter: Some("/".into()),
        max_keys: Some(1),
        ..Default::default()
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.list_objects(&params)).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(ObjectClientError::Timeout),
    }
}

/// A mount point left dead by a process that exited (ENOTCONN), or any
/// mount there, is detached so a fresh one can take its place.
fn clear_mount_point(path: &Path) -> Result<(), MountError> {
    let host = |e: std::io::Error| MountError::Host {
        message: format!("{}: {e}", path.display()),
    };
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(path).map_err(host)
        }
        Err(_) => {}
    }
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == path.to_str());
    if mounted {
        rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH)
            .map_err(|e| host(e.into()))?;
    }
    std::fs::create_dir_all(path).map_err(host)
}

fn flush_error(failed: Vec<(u64, String, FsError)>) -> MountError {
    let message = failed
        .iter()
        .take(3)
        .map(|(_, key, e)| match std::error::Error::source(e) {
            Some(src) => format!("{key}: {e}: {src}"),
            None => format!("{key}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    MountError::FlushFailed {
        files: failed.len(),
        message,
    }
}

#[async_trait]
impl Mounter for BucketfsMounter {
    async fn probe(&self, bucket: &BucketAccess) -> Result<(), MountError> {
        let client = client_for(bucket, Some(PROBE_TIMEOUT))?;
        list_one(&client, String::new())
            .await
            .map_err(|e| from_client(&bucket.config.bucket, &e, PROBE_TIMEOUT))
    }

    async fn mount(&self, req: &MountRequest) -> Result<PathBuf, MountError> {
        let key = (req.sandbox_id.clone(), req.mount_path.clone());
        if self.active().contains_key(&key) {
            return Err(MountError::Host {
                message: format!("{} is already mounted", req.mount_path),
            });
        }
        let (host_path, staging) = self.paths(&req.sandbox_id, &req.mount_path);
        let client = client_for(&req.bucket, None)?;
        let (uid, gid) = req.owner;
        let mut config = FsConfig::new(
            staging,
            AttrDefaults {
                uid,
                gid,
                file_perm: 0o644,
                dir_perm: 0o755,
            },
        );
        config.prefix = req.sub_path.clone().unwrap_or_default();
        config.read_only = req.read_only;
        config.staging_max_bytes = self.staging_max_bytes;
        let fs = Arc::new(
            Filesystem::new(client, config).map_err(|e| MountError::Host {
                message: format!("staging directory: {e}"),
            })?,
        );
        let prefix = fs.config().prefix.clone();
        list_one(fs.client(), prefix)
            .await
            .map_err(|e| from_client(&req.bucket.config.bucket, &e, PROBE_TIMEOUT))?;
        let options = MountOptions {
            fs_name: format!("bucketfs:{}", req.bucket.config.bucket),
            allow_other: true,
            read_only: req.read_only,
        };
        let rt = tokio::runtime::Handle::current();
        let (fs2, path2) = (Arc::clone(&fs), host_path.clone());
        let session = tokio::task::spawn_blocking(move || {
            clear_mount_point(&path2)?;
            spawn_mount(fs2, rt, &path2, &options).map_err(|e| MountError::Host {
                message: format!("{}: {e}", path2.display()),
            })
        })
        .await
        .map_err(|e| MountError::Host {
            message: format!("mount task failed: {e}"),
        })??;
        let retry_fs = Arc::clone(&fs);
        let retrier = tokio::spawn(async move {
            let every = retry_fs.config().retry_interval;
            loop {
                tokio::time::sleep(every).await;
                retry_fs.retry_pending().await;
            }
        });
        tracing::info!(sandbox_id = %req.sandbox_id, mount_path = %req.mount_path, disk_id = %req.bucket.disk_id, "disk mounted on the host");
        self.active().insert(
            key,
            Arc::new(ActiveMount {
                disk_id: req.bucket.disk_id.clone(),
                fs,
                host_path: host_path.clone(),
                session,
                retrier,
            }),
        );
        Ok(host_path)
    }

    async fn flush(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), MountError> {
        let m = self
            .get(sandbox, mount_path)
            .ok_or(MountError::NotMounted)?;
        let failed = m.fs.flush_all().await;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(flush_error(failed))
        }
    }

    async fn unmount(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), MountError> {
        self.flush(sandbox, mount_path).await?;
        let key = (sandbox.clone(), mount_path.to_owned());
        let Some(m) = self.active().remove(&key) else {
            return Err(MountError::NotMounted);
        };
        let path = m.host_path.clone();
        if let Err(e) = rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!(mount = %path.display(), error = %e, "lazy unmount of the host mount point failed");
        }
        // The session ends once the sandbox's last reference is gone; then
        // upload what open files wrote meanwhile.
        let (sandbox, mount_path) = key;
        tokio::spawn(async move {
            while !m.session.guard.is_finished() {
                tokio::time::sleep(SESSION_POLL).await;
            }
            m.retrier.abort();
            for (key, e) in m.fs.shutdown().await {
                tracing::error!(sandbox_id = %sandbox, mount_path, key, error = %e, "upload after unmount failed; data kept in the staging directory");
            }
            let _ = std::fs::remove_dir(&m.host_path);
            let _ = std::fs::remove_dir(&m.fs.config().staging_dir);
        });
        Ok(())
    }

    fn host_path(&self, sandbox: &SandboxId, mount_path: &str) -> Option<PathBuf> {
        self.get(sandbox, mount_path).map(|m| m.host_path.clone())
    }

    fn rotate_credentials(&self, disk: &DiskId, credentials: Option<DiskSecret>) {
        let creds = credentials.as_ref().map(self::credentials);
        for m in self.active().values().filter(|m| &m.disk_id == disk) {
            m.fs.client().set_credentials(creds.clone());
            // Uploads refused with the old keys go now, not at the next
            // retry tick: rotating is often the fix for exactly those.
            let fs = Arc::clone(&m.fs);
            tokio::spawn(async move {
                fs.retry_pending().await;
            });
        }
    }

    async fn health(&self, sandbox: &SandboxId, mount_path: &str) -> MountHealth {
        let Some(m) = self.get(sandbox, mount_path) else {
            return MountHealth::Absent;
        };
        if m.session.guard.is_finished() {
            return MountHealth::Error("the FUSE session ended".into());
        }
        let prefix = m.fs.config().prefix.clone();
        match list_one(m.fs.client(), prefix).await {
            Ok(()) => MountHealth::Mounted,
            Err(e) => {
                let bucket = &m.fs.client().config().bucket;
                MountHealth::Error(from_client(bucket, &e, PROBE_TIMEOUT).to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_point_names_are_stable_and_distinct() {
        assert_eq!(fnv1a(b"/data"), fnv1a(b"/data"));
        assert_ne!(fnv1a(b"/a_b"), fnv1a(b"/a/b"));
        let m = BucketfsMounter::new(Path::new("/state"), 1 << 20);
        let sb = SandboxId::generate();
        let (a, s) = m.paths(&sb, "/data");
        assert!(a.starts_with(format!("/state/mounts/{sb}")));
        assert!(s.starts_with(format!("/state/staging/{sb}")));
    }

    #[test]
    fn local_endpoints_use_path_style() {
        assert!(endpoint_is_local("http://127.0.0.1:3900"));
        assert!(endpoint_is_local("http://localhost:9000"));
        assert!(endpoint_is_local("http://[::1]:9000"));
        assert!(!endpoint_is_local("https://s3.example.com"));
    }

    #[test]
    fn client_errors_say_which_failure_it_was() {
        let t = Duration::from_secs(5);
        let nb = ObjectClientError::NoSuchBucket { bucket: "b".into() };
        assert!(matches!(
            from_client("b", &nb, t),
            MountError::BucketNotFound { .. }
        ));
        let ad = ObjectClientError::AccessDenied {
            code: "SignatureDoesNotMatch".into(),
        };
        assert!(matches!(
            from_client("b", &ad, t),
            MountError::AccessDenied { .. }
        ));
        let c = ObjectClientError::Connection {
            message: "refused".into(),
        };
        assert!(matches!(
            from_client("b", &c, t),
            MountError::Unreachable { .. }
        ));
        assert_eq!(
            from_client("b", &ObjectClientError::Timeout, t),
            MountError::Timeout { secs: 5 }
        );
    }
}
