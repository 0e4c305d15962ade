//! `TempServer`: a `cove serve` child process on a free loopback port with a
//! temp state dir, and API keys made with `cove keys create`.
//!
//! Dropping it destroys every sandbox its keys own (through the API, starting
//! the server again if a test left it dead), kills the server and removes the
//! state dir, so a failed assertion still leaves no container, overlay or veth
//! behind. Tests that start servers hold one host-wide lock (also taken by
//! `tests/conformance/run.sh` and `bench/sandboxes/run.sh`): every server
//! on a host uses the same bridge and address range, with address leases
//! kept per state dir, and the sandboxes of one test must not make another's
//! timing or memory checks flaky.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::api::Api;

const COVE: &str = env!("CARGO_BIN_EXE_cove");
const LOCK_PATH: &str = "/tmp/cove-integration-tests.lock";

pub struct TempServer {
    child: Option<Child>,
    state_dir: PathBuf,
    port: u16,
    log_path: PathBuf,
    keys: Vec<String>,
    /// Held for the server's lifetime; `flock` is released when it closes.
    _lock: File,
}

impl TempServer {
    /// Starts `cove serve` on a fresh state dir and waits for `/healthz`.
    pub async fn start() -> Result<Self> {
        super::require_real_parts();
        let lock = host_lock()?;
        let state_dir = tempfile::Builder::new()
            .prefix("cove-it-")
            .tempdir_in("/tmp")?
            .keep();
        let log_path = state_dir.with_extension("log");
        let mut server = Self {
            child: None,
            state_dir,
            port: 0,
            log_path,
            keys: Vec::new(),
            _lock: lock,
        };
        server.spawn().await?;
        Ok(server)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The server's host pid (for /proc/<pid>/status checks).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Creates a key for `user` with `cove keys create` against the state dir
    /// the running server uses, and returns an `Api` for it.
    pub fn user(&mut self, user: &str) -> Result<Api> {
        let out = Command::new(COVE)
            .args(["keys", "create", "--user", user, "--state-dir"])
            .arg(&self.state_dir)
            .output()
            .context("running cove keys create")?;
        if !out.status.success() {
            bail!(
                "cove keys create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8(out.stdout)?;
        let key = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .context("cove keys create printed nothing")?
            .trim()
            .to_string();
        self.keys.push(key.clone());
        Ok(Api::new(self.base(), key))
    }

    /// An `Api` for a key made earlier, against the current port (which
    /// changes on restart).
    pub fn api_for(&self, key: &str) -> Api {
        Api::new(self.base(), key.to_string())
    }

    /// `kill -9` of the server, as a crash would.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same state dir (on a new port).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn().await
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(f) = File::open(&self.log_path) else {
            return String::new();
        };
        let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    async fn spawn(&mut self) -> Result<()> {
        self.port = free_port()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(COVE)
            .arg("serve")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning cove serve")?;
        self.child = Some(child);
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let url = format!("{}/healthz", self.base());
        let http = super::http_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("cove serve exited with {status}:\n{}", self.log_tail(40));
                }
            }
            if let Ok(r) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "cove serve did not answer /healthz in 60 s:\n{}",
            self.log_tail(40)
        )
    }

    /// Destroys every live sandbox of every key; runs on its own thread and
    /// runtime because `Drop` may run inside (or outside) a tokio runtime.
    fn reap_all(&mut self) {
        if self.child.is_none() {
            // A test left the server dead: bring it back only to clean up.
            let res = std::thread::scope(|s| s.spawn(|| block_on(self.spawn())).join().ok());
            if !matches!(res, Some(Ok(Ok(())))) {
                eprintln!("TempServer: could not restart cove serve to clean up");
                return;
            }
        }
        let apis: Vec<Api> = self.keys.iter().map(|k| self.api_for(k)).collect();
        let _ = std::thread::spawn(move || {
            block_on(async move {
                for api in apis {
                    if let Err(e) = api.destroy_all().await {
                        eprintln!("TempServer: cleanup failed: {e:#}");
                    }
                }
            })
        })
        .join();
    }
}

impl Drop for TempServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- cove serve log ({}) ---\n{}",
                self.log_path.display(),
                self.log_tail(60)
            );
        }
        self.reap_all();
        let _ = self.kill9();
        // Never remove through a live mount (an overlay still mounted would be
        // written through, not unmounted); keep the dir and say so.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.state_dir.to_string_lossy().to_string();
        if mounts.lines().any(|l| l.contains(&prefix)) {
            eprintln!(
                "TempServer: mounts remain under {}; leaving it in place",
                self.state_dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.state_dir);
            if !std::thread::panicking() {
                let _ = std::fs::remove_file(&self.log_path);
            }
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn host_lock() -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)?;
    // SAFETY: the fd is valid for the life of `f`; flock has no other
    // preconditions. It blocks until the previous test drops its server.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
    if rc != 0 {
        bail!("flock {LOCK_PATH}: {}", std::io::Error::last_os_error());
    }
    Ok(f)
}
