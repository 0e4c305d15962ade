//! Starting, measuring and stopping the three mounts: bucketfs (`cove
//! mount`), s3fs and rclone. Mount time is from spawning the command to
//! the mountpoint appearing in `/proc/self/mountinfo`; the mount process is
//! found by its mountpoint in `/proc/*/cmdline` for RSS readings.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cove_testkit::garage::TempGarage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bucketfs,
    S3fs,
    Rclone,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "bucketfs" => Kind::Bucketfs,
            "s3fs" => Kind::S3fs,
            "rclone" => Kind::Rclone,
            other => bail!("unknown system {other:?} (raw, bucketfs, s3fs, rclone)"),
        })
    }
}

/// A live mount; unmounted on drop.
pub struct Mount {
    dir: tempfile::TempDir,
    pid: Option<u32>,
    mounted: bool,
}

impl Mount {
    /// Mounts `bucket` with `kind` and returns the mount and its mount time.
    pub fn start(kind: Kind, garage: &TempGarage, bucket: &str) -> Result<(Self, Duration)> {
        let dir = tempfile::Builder::new().prefix("bench-mnt-").tempdir()?;
        let mnt = dir.path().join("mnt");
        let cache = dir.path().join("cache");
        std::fs::create_dir(&mnt)?;
        std::fs::create_dir(&cache)?;
        let mut cmd = match kind {
            Kind::Bucketfs => bucketfs_command(garage, bucket, &mnt, &cache)?,
            Kind::S3fs => s3fs_command(garage, bucket, &mnt, dir.path())?,
            Kind::Rclone => rclone_command(garage, bucket, &mnt, &cache),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let t0 = Instant::now();
        let status = cmd.status().with_context(|| format!("spawn {kind:?}"))?;
        if !status.success() {
            bail!("{kind:?} mount command failed: {status}");
        }
        // Each command daemonizes; wait for the kernel to show the mount.
        let deadline = t0 + Duration::from_secs(30);
        while !is_mountpoint(&mnt) {
            if Instant::now() > deadline {
                bail!("{kind:?} did not mount within 30 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let took = t0.elapsed();
        let pid = find_pid(&mnt);
        Ok((
            Self {
                dir,
                pid,
                mounted: true,
            },
            took,
        ))
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Current resident set of the mount process, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid.and_then(|p| status_field(p, "VmRSS:"))
    }

    /// Peak resident set of the mount process so far, KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.pid.and_then(|p| status_field(p, "VmHWM:"))
    }

    /// Unmounts and waits until the process has exited (bucketfs and s3fs
    /// flush on unmount).
    pub fn unmount(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        let root = self.root();
        let status = Command::new("fusermount3").arg("-u").arg(&root).status()?;
        if !status.success() {
            std::thread::sleep(Duration::from_millis(500));
            Command::new("fusermount3").arg("-uz").arg(&root).status()?;
        }
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Path::new(&format!("/proc/{pid}")).exists() {
                if Instant::now() > deadline {
                    bail!("mount process {pid} did not exit within 120 s of unmount");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("unmount: {e:#}");
        }
    }
}

fn bucketfs_command(
    garage: &TempGarage,
    bucket: &str,
    mnt: &Path,
    cache: &Path,
) -> Result<Command> {
    let bin = std::env::var("COVE_BIN").unwrap_or_else(|_| "target/release/cove".into());
    if !Path::new(&bin).is_file() {
        bail!("cove binary not found at {bin} (build it with `cargo build --release -p cove` or set COVE_BIN)");
    }
    let mut cmd = Command::new(bin);
    cmd.arg("mount")
        .arg(bucket)
        .arg(mnt)
        .args(["--endpoint-url", &garage.endpoint(), "--force-path-style"])
        .args(["--region", garage.region()])
        .arg("--cache")
        .arg(cache)
        .env("AWS_ACCESS_KEY_ID", garage.key_id())
        .env("AWS_SECRET_ACCESS_KEY", garage.secret_key());
    Ok(cmd)
}

fn s3fs_command(garage: &TempGarage, bucket: &str, mnt: &Path, dir: &Path) -> Result<Command> {
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        format!("{}:{}\n", garage.key_id(), garage.secret_key()),
    )?;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))?;
    let mut cmd = Command::new("s3fs");
    cmd.arg(bucket).arg(mnt).arg("-o").arg(format!(
        "passwd_file={},url={},use_path_request_style,endpoint={}",
        passwd.display(),
        garage.endpoint(),
        garage.region()
    ));
    Ok(cmd)
}

fn rclone_command(garage: &TempGarage, bucket: &str, mnt: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new("rclone");
    cmd.arg("mount")
        .arg(format!("bench:{bucket}"))
        .arg(mnt)
        .args(["--vfs-cache-mode", "writes", "--daemon"])
        // rclone 1.60 fails on a custom CA bundle with a plain-HTTP endpoint.
        .env_remove("AWS_CA_BUNDLE")
        .arg("--cache-dir")
        .arg(cache)
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", garage.endpoint())
        .env("RCLONE_CONFIG_BENCH_REGION", garage.region())
        .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", garage.key_id())
        .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", garage.secret_key());
    cmd
}

/// Whether `path` is a mountpoint.
pub fn is_mountpoint(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// The process whose command line names `mnt`.
fn find_pid(mnt: &Path) -> Option<u32> {
    let needle = mnt.to_string_lossy().into_owned();
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        if pid == me {
            return None;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        text.split(' ').any(|a| a == needle).then_some(pid)
    })
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
