//! Sandbox benchmark (not a test): create → running p50/p99 over N creates
//! next to a plain `runc run -d` of the same image (the floor), exec `true`
//! round trip p50/p99, and file upload/download MiB/s for a 256 MiB file.
//!
//! Run as root with the base image built:
//! `COVE_IMAGES_DIR=/var/cache/cove/images cargo run --release -p cove-runtime --example bench`
//! (the agent is taken from `target/release/cove-agent`, or `COVE_AGENT_BIN`;
//! build it with `cargo build --release -p cove-agent`). Env `BENCH_N`
//! (default 50) sets the number of creates. Uses its own bridge `covb0` on
//! 10.209.0.0/24 and a temporary state dir.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cove_api::ids::SandboxId;
use cove_runtime::runc::{RuncConfig, RuncRuntime};
use cove_runtime::{ExecSpec, Runtime, SandboxSpec};
use futures::StreamExt;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(name: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    let p50 = pct(&v, 0.5);
    println!(
        "{name:<34} p50 {p50:>8.2} ms   p99 {:>8.2} ms   (n={})",
        pct(&v, 0.99),
        v.len()
    );
    p50
}

/// A plain runc bundle over the same image: `runc spec` defaults, read-only root.
fn plain_bundle(dir: &Path, rootfs: &Path) -> Result<()> {
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()?;
    if !st.success() {
        bail!("runc spec failed");
    }
    let path = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    v["root"]["path"] = rootfs.display().to_string().into();
    v["root"]["readonly"] = true.into();
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = serde_json::json!(["/bin/sleep", "1000"]);
    std::fs::write(&path, serde_json::to_vec(&v)?)?;
    Ok(())
}

fn runc_floor(n: usize, images: &Path) -> Result<Vec<Duration>> {
    let tmp = tempfile::tempdir()?;
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle)?;
    plain_bundle(&bundle, &images.join("devbox-1/rootfs"))?;
    let root = tmp.path().join("runc");
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("covbench-floor-{}-{i}", std::process::id());
        let t = Instant::now();
        let st = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        out.push(t.elapsed());
        if !st.success() {
            bail!("plain runc run failed");
        }
        Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["delete", "-f", &id])
            .status()?;
    }
    Ok(out)
}

/// Destroys the sandbox if the benchmark stops early (an error, a closed pipe).
struct Guard(RuncRuntime, Option<SandboxId>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(id) = self.1.take() {
            let rt = self.0.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(r) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = r.block_on(rt.destroy(&id));
                }
            })
            .join();
        }
    }
}

fn spec(disk_mib: u64) -> SandboxSpec {
    SandboxSpec {
        id: SandboxId::generate(),
        hostname: "bench".into(),
        rootfs: "devbox:1".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 512,
        disk_mib,
        pids_limit: 256,
        mounts: Vec::new(),
    }
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
        .unwrap_or(50);
    let images =
        std::path::PathBuf::from(std::env::var("COVE_IMAGES_DIR").context("set COVE_IMAGES_DIR")?);
    let state = tempfile::tempdir()?;
    let mut cfg = RuncConfig::for_state_dir(state.path());
    cfg.images_dir = images.clone();
    cfg.bridge = "covb0".into();
    cfg.subnet = "10.209.0.0/24".parse()?;
    cfg.nat = false;
    cfg.veth_prefix = "cb".into();
    let rt = RuncRuntime::start(cfg).await?;

    println!(
        "cove sandbox benchmark, {n} creates, {} CPUs",
        std::thread::available_parallelism()?.get()
    );
    let floor = summary("plain runc run -d (floor)", runc_floor(n, &images)?);

    let mut creates = Vec::new();
    let mut destroys = Vec::new();
    for _ in 0..n {
        let s = spec(1024);
        let mut guard = Guard(rt.clone(), Some(s.id.clone()));
        let t = Instant::now();
        rt.create(&s).await?;
        creates.push(t.elapsed());
        guard.1 = None;
        let t = Instant::now();
        rt.destroy(&s.id).await?;
        destroys.push(t.elapsed());
    }
    let create = summary("cove create -> agent answers", creates);
    println!(
        "{:<34} {:.2}x the floor",
        "create p50 ratio",
        create / floor
    );
    summary("cove destroy", destroys);

    let s = spec(1024);
    let _guard = Guard(rt.clone(), Some(s.id.clone()));
    rt.create(&s).await?;
    let mut execs = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let out = rt
            .exec(
                &s.id,
                ExecSpec {
                    cmd: "true".into(),
                    ..Default::default()
                },
            )
            .await?;
        execs.push(t.elapsed());
        if out.exit_code != 0 {
            bail!("true failed");
        }
    }
    summary("exec `true` round trip", execs);

    const MIB: usize = 256;
    let chunk = Bytes::from(vec![0x5au8; 1 << 20]);
    let body = futures::stream::iter((0..MIB).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let t = Instant::now();
    rt.write_file(&s.id, "/root/bench.bin", Box::pin(body))
        .await?;
    let up = t.elapsed();
    let t = Instant::now();
    let (_, mut stream) = rt.read_file(&s.id, "/root/bench.bin").await?;
    let mut got = 0usize;
    while let Some(c) = stream.next().await {
        got += c?.len();
    }
    let down = t.elapsed();
    if got != MIB << 20 {
        bail!("downloaded {got} bytes");
    }
    println!(
        "{:<34} {:>8.0} MiB/s",
        "upload 256 MiB",
        MIB as f64 / up.as_secs_f64()
    );
    println!(
        "{:<34} {:>8.0} MiB/s",
        "download 256 MiB",
        MIB as f64 / down.as_secs_f64()
    );
    rt.destroy(&s.id).await?;
    let _ = Command::new("ip").args(["link", "del", "covb0"]).status();
    Ok(())
}
