//! `cove mount [options] BUCKET MOUNTPOINT`: mount an S3 bucket with
//! bucketfs, with flags like mountpoint-s3's `mount-s3`.
//!
//! Credentials come only from the standard AWS environment variables or the
//! shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_PROFILE`),
//! never from argv. Without `--foreground` the process forks after parsing:
//! the parent waits until the child has mounted (or failed) and exits with
//! its status. Unmounting with `fusermount3 -u`, or SIGTERM/SIGINT (which
//! unmount first), ends the mount; staged data is then uploaded before the
//! process exits, and anything that cannot be is left in the cache directory
//! and reported with a non-zero exit.
//!
//! `run_with(client_factory, args)` is the whole command with the client
//! injected, so a test mounts an in-memory bucket through the same path.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bucketfs::client::ObjectClient;
use bucketfs::fs::{AttrDefaults, Filesystem, FsConfig};
use bucketfs::fuse::{spawn_mount, MountOptions, SESSION_POLL};
use bucketfs::s3::{AddressingStyle, Credentials, S3Client, S3Config};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Bucket to mount.
    pub bucket: String,
    /// Directory to mount it on.
    pub mountpoint: PathBuf,
    /// Show only keys under this prefix (a trailing `/` is added).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Mount read-only (every change fails with EROFS).
    #[arg(long)]
    pub read_only: bool,
    /// Region to sign requests for (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// S3 endpoint URL (default: AWS for the region).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Path-style URLs (endpoint/bucket/key) instead of virtual-hosted.
    #[arg(long)]
    pub force_path_style: bool,
    /// Send unsigned requests (public buckets); no credentials are read.
    #[arg(long)]
    pub no_sign_request: bool,
    /// Let other users (and root) access the mount.
    #[arg(long)]
    pub allow_other: bool,
    /// Owner of objects without s3fs metadata (default: this user).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group of objects without s3fs metadata (default: this group).
    #[arg(long)]
    pub gid: Option<u32>,
    /// Permission bits of files without s3fs metadata (octal).
    #[arg(long, default_value = "0644", value_parser = parse_mode)]
    pub file_mode: u32,
    /// Permission bits of directories without s3fs metadata (octal).
    #[arg(long, default_value = "0755", value_parser = parse_mode)]
    pub dir_mode: u32,
    /// Staging directory for written data (default: a new directory under
    /// the system temp directory).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Most staged data, in MiB; writes past it fail with ENOSPC.
    #[arg(long, default_value_t = 4096)]
    pub max_cache_size: u64,
    /// How long metadata and listings are trusted: seconds, `indefinite`
    /// (only this mount writes the bucket) or `minimal` (0).
    #[arg(long, default_value = "1", value_parser = parse_ttl)]
    pub metadata_ttl: Ttl,
    /// Stay in the foreground (do not fork).
    #[arg(long, short = 'f')]
    pub foreground: bool,
}

/// `--metadata-ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Option<Duration>);

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode"))
}

fn parse_ttl(s: &str) -> Result<Ttl, String> {
    match s {
        "indefinite" => Ok(Ttl(None)),
        "minimal" => Ok(Ttl(Some(Duration::ZERO))),
        n => n
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| Ttl(Some(Duration::from_secs_f64(f))))
            .ok_or_else(|| format!("{s:?} is not seconds, indefinite or minimal")),
    }
}

/// `cove mount` over S3.
pub fn run(args: Args) -> anyhow::Result<()> {
    run_with(s3_client, args)
}

/// The S3 client for `args`; credentials from the environment or the
/// credentials file only.
fn s3_client(args: &Args) -> anyhow::Result<S3Client> {
    let region = args
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    let mut config = S3Config::new(&args.bucket, region);
    if let Some(endpoint) = &args.endpoint_url {
        config = config.with_endpoint(endpoint);
        if !args.force_path_style && !endpoint_is_local(endpoint) {
            config.addressing = AddressingStyle::VirtualHosted;
        }
    }
    if args.force_path_style {
        config.addressing = AddressingStyle::Path;
    }
    if !args.no_sign_request {
        let credentials = Credentials::from_env_or_shared_file()
            .context("reading AWS credentials")?
            .context(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or a credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE), \
                 or pass --no-sign-request for a public bucket",
            )?;
        config = config.with_credentials(credentials);
    }
    S3Client::new(config).context("building the S3 client")
}

/// IP addresses and localhost cannot take a bucket as a subdomain.
fn endpoint_is_local(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() || endpoint.contains("://[")
}

/// The whole command over a client made by `factory`.
pub fn run_with<C, F>(factory: F, args: Args) -> anyhow::Result<()>
where
    C: ObjectClient,
    F: FnOnce(&Args) -> anyhow::Result<C>,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let meta = std::fs::metadata(&args.mountpoint)
        .with_context(|| format!("mountpoint {}", args.mountpoint.display()))?;
    if !meta.is_dir() {
        bail!(
            "mountpoint {} is not a directory",
            args.mountpoint.display()
        );
    }
    let ready = if args.foreground {
        None
    } else {
        match daemonize()? {
            Daemon::Parent => return Ok(()),
            Daemon::Child(pipe) => Some(pipe),
        }
    };
    limit_allocator_retention();
    let result = serve(factory, &args, ready);
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "cove mount failed");
    }
    result
}

/// Keep freed buffers from inflating RSS: glibc raises its mmap threshold
/// as large blocks are freed, after which 8 MiB part and read-ahead buffers
/// are carved from per-thread arenas and stay resident. A fixed threshold
/// keeps them mmapped (returned to the system when freed), and fewer arenas
/// bound fragmentation across the runtime's threads.
fn limit_allocator_retention() {
    // SAFETY: mallopt only adjusts allocator parameters; called before the
    // runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Mount, wait for the end, flush.
fn serve<C, F>(factory: F, args: &Args, ready: Option<std::fs::File>) -> anyhow::Result<()>
where
    C: ObjectClient,
    F: FnOnce(&Args) -> anyhow::Result<C>,
{
    let report = |ready: Option<std::fs::File>, msg: &str| {
        if let Some(mut f) = ready {
            let _ = f.write_all(msg.as_bytes());
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // Handlers before the mount exists: a SIGTERM that arrives as soon as the
    // mount is visible must unmount and flush, not kill the process with the
    // default action.
    let mut signals = match Signals::install(&rt) {
        Ok(s) => s,
        Err(e) => {
            report(ready, &format!("{e:#}"));
            return Err(e);
        }
    };
    let setup = (|| -> anyhow::Result<(Arc<Filesystem<C>>, _, _)> {
        let client = factory(args)?;
        let staging = staging_dir(args)?;
        let fs = Arc::new(Filesystem::new(client, fs_config(args, &staging.0))?);
        rt.block_on(fs.check_bucket())
            .with_context(|| format!("cannot list bucket {:?}", args.bucket))?;
        let options = MountOptions {
            fs_name: format!("bucketfs:{}", args.bucket),
            allow_other: args.allow_other,
            read_only: args.read_only,
        };
        let session = spawn_mount(
            Arc::clone(&fs),
            rt.handle().clone(),
            &args.mountpoint,
            &options,
        )
        .with_context(|| format!("mounting on {}", args.mountpoint.display()))?;
        Ok((fs, session, staging))
    })();
    let (fs, session, staging) = match setup {
        Ok(s) => s,
        Err(e) => {
            report(ready, &format!("{e:#}"));
            return Err(e);
        }
    };
    report(ready, READY);
    tracing::info!(bucket = %args.bucket, mountpoint = %args.mountpoint.display(), "mounted");
    let retry_fs = Arc::clone(&fs);
    let retry_every = fs.config().retry_interval;
    let retrier = rt.spawn(async move {
        loop {
            tokio::time::sleep(retry_every).await;
            retry_fs.retry_pending().await;
        }
    });
    // A signal unmounts the way `fusermount3 -u` would; if that fails
    // (files still open) the mount stays up and keeps serving: exiting
    // would cut off open files and lose what they have not closed yet.
    while rt.block_on(wait_for_end(&session, &mut signals)) {
        tracing::info!("signal received; unmounting");
        match unmount(&args.mountpoint) {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot unmount yet; still mounted")
            }
        }
    }
    while !session.guard.is_finished() {
        std::thread::sleep(SESSION_POLL);
    }
    session
        .join()
        .context("the FUSE session ended with an error")?;
    retrier.abort();
    let failed = rt.block_on(fs.shutdown());
    drop(staging);
    if !failed.is_empty() {
        for (key, e) in &failed {
            tracing::error!(key, error = %e, "data not uploaded; kept in the cache directory");
        }
        bail!(
            "{} file(s) could not be uploaded; their data is kept in the cache directory",
            failed.len()
        );
    }
    tracing::info!("unmounted");
    Ok(())
}

/// SIGTERM and SIGINT, caught for the whole life of the mount.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install(rt: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let _in_runtime = rt.enter();
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }
}

/// Waits for SIGTERM/SIGINT (true) or the session ending by itself, e.g.
/// `fusermount3 -u` (false).
async fn wait_for_end(session: &fuser::BackgroundSession, signals: &mut Signals) -> bool {
    loop {
        tokio::select! {
            _ = signals.term.recv() => return true,
            _ = signals.int.recv() => return true,
            _ = tokio::time::sleep(SESSION_POLL) => {
                if session.guard.is_finished() {
                    return false;
                }
            }
        }
    }
}

/// `fusermount3 -u MOUNTPOINT` (works for root and for the mounting user).
fn unmount(mountpoint: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(mountpoint)
        .output()
        .context("running fusermount3 (package fuse3)")?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "fusermount3 -u failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// The staging directory: `--cache`, or a private one removed at exit.
struct Staging(PathBuf, bool);

impl Drop for Staging {
    fn drop(&mut self) {
        if self.1 {
            // Only removes it if empty: kept data must stay.
            let _ = std::fs::remove_dir(&self.0);
        }
    }
}

fn staging_dir(args: &Args) -> anyhow::Result<Staging> {
    match &args.cache {
        Some(dir) => Ok(Staging(dir.clone(), false)),
        None => {
            let dir = std::env::temp_dir().join(format!("cove-mount-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(Staging(dir, true))
        }
    }
}

fn fs_config(args: &Args, staging: &Path) -> FsConfig {
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let defaults = AttrDefaults {
        uid: args.uid.unwrap_or(uid),
        gid: args.gid.unwrap_or(gid),
        file_perm: args.file_mode,
        dir_perm: args.dir_mode,
    };
    let mut config = FsConfig::new(staging.to_path_buf(), defaults);
    config.prefix = args.prefix.clone().unwrap_or_default();
    config.read_only = args.read_only;
    config.metadata_ttl = args.metadata_ttl.0;
    config.staging_max_bytes = args.max_cache_size.saturating_mul(1 << 20);
    config
}

/// What the child writes on the pipe once mounted.
const READY: &str = "ready";

enum Daemon {
    Parent,
    Child(std::fs::File),
}

/// Fork; the parent waits for the child's [`READY`] or an
/// error message on a pipe. Called before any thread exists.
fn daemonize() -> anyhow::Result<Daemon> {
    let mut fds = [0i32; 2];
    // SAFETY: fds points to two writable ints, as pipe(2) requires.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: both descriptors were just returned by pipe(2) and are owned
    // by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (no runtime yet), so the
    // child may run arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(read_end);
            // SAFETY: setsid has no preconditions; failure is harmless.
            unsafe { libc::setsid() };
            Ok(Daemon::Child(std::fs::File::from(write_end)))
        }
        _ => {
            drop(write_end);
            let mut msg = String::new();
            std::fs::File::from(read_end)
                .read_to_string(&mut msg)
                .context("waiting for the mount")?;
            match msg.as_str() {
                READY => Ok(Daemon::Parent),
                "" => bail!("the mount process exited before mounting"),
                error => bail!("{error}"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
