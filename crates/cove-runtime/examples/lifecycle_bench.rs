//! Pause / resume / fork benchmark (not a test): a sandbox running a Python
//! HTTP server that holds 64 MiB of random data is checkpointed and
//! restored `BENCH_N` times (default 10), then forked `BENCH_N` times from
//! one checkpoint. Prints p50/min/max of each, the checkpoint's size on
//! disk and the host memory a paused sandbox frees (its cgroup's charge,
//! and the change in the host's MemAvailable). Every resume and fork is
//! checked: the server answers with the same data hash.
//!
//! Run as root with the base image and CRIU built:
//! `cargo build --release -p cove-agent && COVE_IMAGES_DIR=/var/cache/cove/images
//! cargo run --release -p cove-runtime --example lifecycle_bench`.
//! Uses its own bridge `covb1` on 10.209.1.0/24 and a temporary state dir.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cove_api::ids::SandboxId;
use cove_runtime::runc::{RuncConfig, RuncRuntime};
use cove_runtime::{ExecSpec, Runtime, SandboxSpec};

const SERVER: &str = r#"
import hashlib, http.server, os
data = bytearray(os.urandom(64 << 20))
digest = hashlib.sha256(data).hexdigest()
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        count += 1
        body = f"{hashlib.sha256(data).hexdigest()} {count}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

const CLIENT: &str = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/', timeout=20).read().decode().split()[0])";

/// Destroys the listed sandboxes when the benchmark ends or stops early.
struct Guard(RuncRuntime, Vec<SandboxId>);

impl Drop for Guard {
    fn drop(&mut self) {
        let rt = self.0.clone();
        let ids = std::mem::take(&mut self.1);
        let _ = std::thread::spawn(move || {
            if let Ok(r) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                for id in ids {
                    let _ = r.block_on(rt.destroy(&id));
                }
            }
        })
        .join();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", "covb1"])
            .status();
    }
}

fn spec(hostname: &str) -> SandboxSpec {
    SandboxSpec {
        id: SandboxId::generate(),
        hostname: hostname.into(),
        rootfs: "devbox:1".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 512,
        disk_mib: 1024,
        pids_limit: 256,
        mounts: Vec::new(),
    }
}

async fn sh(rt: &RuncRuntime, id: &SandboxId, script: &str) -> Result<String> {
    let out = rt
        .exec(
            id,
            ExecSpec {
                cmd: "bash".into(),
                args: vec!["-c".into(), script.into()],
                ..Default::default()
            },
        )
        .await?;
    if out.exit_code != 0 {
        bail!(
            "{script:?} exited {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The server's data hash, asked from inside the sandbox.
async fn digest(rt: &RuncRuntime, id: &SandboxId) -> Result<String> {
    sh(rt, id, &format!("python3 -c \"{CLIENT}\"")).await
}

fn mem_available_mib() -> Result<f64> {
    let info = std::fs::read_to_string("/proc/meminfo")?;
    let kb: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .context("no MemAvailable")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} p50 {:>7.1} ms   min {:>7.1}   max {:>7.1}   (n={})",
        ms(v[(v.len() - 1) / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let state = tempfile::tempdir()?;
    let mut cfg = RuncConfig::for_state_dir(state.path());
    cfg.bridge = "covb1".into();
    cfg.subnet = "10.209.1.0/24".parse()?;
    cfg.nat = false;
    cfg.veth_prefix = "cl".into();
    let rt = RuncRuntime::start(cfg).await?;
    let mut guard = Guard(rt.clone(), Vec::new());

    let s = spec("bench-source");
    guard.1.push(s.id.clone());
    rt.create(&s).await?;
    let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
        SERVER.as_bytes(),
    ))]);
    rt.write_file(&s.id, "/root/srv.py", Box::pin(body)).await?;
    sh(
        &rt,
        &s.id,
        "cd /root && nohup python3 srv.py >/root/srv.log 2>&1 </dev/null &",
    )
    .await?;
    let mut want = String::new();
    for _ in 0..200 {
        if let Ok(d) = digest(&rt, &s.id).await {
            want = d;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if want.is_empty() {
        bail!("the server never answered");
    }
    println!(
        "cove pause/resume/fork benchmark: 64 MiB Python server, n={n}, {} CPUs",
        std::thread::available_parallelism()?.get()
    );

    let (mut pauses, mut resumes) = (Vec::new(), Vec::new());
    let (mut size, mut cgroup_freed, mut avail_freed) = (0u64, 0u64, Vec::new());
    for _ in 0..n {
        let before = mem_available_mib()?;
        let t = Instant::now();
        let info = rt.checkpoint(&s.id).await?;
        pauses.push(t.elapsed());
        avail_freed.push(mem_available_mib()? - before);
        size = info.size_bytes;
        cgroup_freed = info.memory_freed_bytes.unwrap_or(0);
        let t = Instant::now();
        rt.restore(&s.id, &[]).await?;
        resumes.push(t.elapsed());
        if digest(&rt, &s.id).await? != want {
            bail!("the data changed across a pause");
        }
    }
    summary("pause (checkpoint)", pauses);
    summary("resume (restore)", resumes);

    rt.checkpoint(&s.id).await?;
    let mut forks = Vec::new();
    for i in 0..n {
        let f = spec(&format!("bench-fork-{i}"));
        guard.1.push(f.id.clone());
        let t = Instant::now();
        rt.fork(&s.id, &f, &[]).await?;
        forks.push(t.elapsed());
        if digest(&rt, &f.id).await? != want {
            bail!("a fork has other data");
        }
        rt.destroy(&f.id).await?;
    }
    summary("fork (from a checkpoint)", forks);
    avail_freed.sort_by(f64::total_cmp);
    println!(
        "{:<28} {:>7.1} MiB on disk",
        "checkpoint size",
        size as f64 / (1 << 20) as f64
    );
    println!(
        "{:<28} {:>7.1} MiB (sandbox cgroup charge before the dump)",
        "host memory freed",
        cgroup_freed as f64 / (1 << 20) as f64
    );
    println!(
        "{:<28} {:>7.1} MiB (p50 change of MemAvailable; noisy, other jobs run)",
        "MemAvailable gained",
        avail_freed[(avail_freed.len() - 1) / 2]
    );
    Ok(())
}
