//! A Debian `s3fs` (1.90) mount of a garage bucket, unmounted on drop: the
//! peer bucketfs must stay metadata-compatible with. Credentials go through
//! a 0600 passwd file, never argv.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cove_testkit::garage::TempGarage;

/// Env var naming the s3fs binary.
pub const S3FS_BIN_ENV: &str = "COVE_S3FS_BIN";

/// A running `s3fs -f` on a temp mountpoint.
pub struct S3fsMount {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl S3fsMount {
    /// Mounts `bucket` of `garage` with s3fs (path-style, garage's region).
    pub fn mount(garage: &TempGarage, bucket: &str) -> Self {
        let bin = std::env::var(S3FS_BIN_ENV).unwrap_or_else(|_| "/usr/bin/s3fs".into());
        assert!(
            Path::new(&bin).is_file(),
            "s3fs not found at {bin} (install Debian's `s3fs` package or set {S3FS_BIN_ENV})"
        );
        let dir = tempfile::Builder::new()
            .prefix("s3fs-")
            .tempdir()
            .expect("temp dir");
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("{}:{}\n", garage.key_id(), garage.secret_key()),
        )
        .expect("passwd");
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))
            .expect("chmod passwd");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mountpoint");
        let options = format!(
            "passwd_file={},url={},use_path_request_style,endpoint={},dbglevel=warn,stat_cache_expire=1",
            passwd.display(),
            garage.endpoint(),
            garage.region()
        );
        let child = Command::new(&bin)
            .arg(bucket)
            .arg(&mnt)
            .arg("-f")
            .arg("-o")
            .arg(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn s3fs");
        let m = Self {
            dir,
            child: Some(child),
        };
        m.wait_mounted();
        m
    }

    /// The mount directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn wait_mounted(&self) {
        let root = self.root();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if is_mountpoint(&root) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("s3fs did not mount {} within 20 s", root.display());
    }

    /// Unmounts (s3fs flushes on unmount) and waits for the process.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let root = self.root();
            let _ = Command::new("fusermount").arg("-u").arg(&root).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = Command::new("fusermount").arg("-uz").arg(&root).status();
        }
    }
}

impl Drop for S3fsMount {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `path` is a mountpoint (listed in /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == p))
}
