//! Helpers for the real-runc tests: a runtime on a temporary state dir with
//! its own bridge and subnet (so it never meets a running server's), and a
//! sandbox guard that destroys on drop. Needs root, runc, the base image
//! (env `COVE_IMAGES_DIR`) and the agent binary (next to the test binary's
//! parent dir, or env `COVE_AGENT_BIN`).
#![allow(dead_code)]

pub mod workload;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cove_api::ids::SandboxId;
use cove_net::Subnet;
use cove_runtime::runc::{RuncConfig, RuncRuntime};
use cove_runtime::{ExecOutput, ExecSpec, Runtime, SandboxSpec};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A runtime whose state dir, bridge and subnet belong to this test alone.
pub struct TestRuntime {
    pub rt: RuncRuntime,
    pub dir: tempfile::TempDir,
    pub bridge: String,
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// The images dir from `COVE_IMAGES_DIR`, failing clearly when it is unset or empty.
pub fn images_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("COVE_IMAGES_DIR")
        .map(PathBuf::from)
        .context("COVE_IMAGES_DIR is not set: build the base image with scripts/lib/image.sh and point COVE_IMAGES_DIR at its images dir")?;
    if !dir.join("devbox-1/stamp").is_file() {
        bail!(
            "COVE_IMAGES_DIR={} has no devbox-1 image (run scripts/lib/image.sh)",
            dir.display()
        );
    }
    Ok(dir)
}

/// A config for a fresh state dir with a per-test bridge `covt<N>` and
/// subnet in 10.200.0.0/13 derived from the pid.
pub fn test_config(dir: &std::path::Path) -> Result<RuncConfig> {
    if !rustix::process::geteuid().is_root() {
        bail!("the runc tests need root");
    }
    let n = std::process::id() * 4 + NEXT.fetch_add(1, Ordering::SeqCst);
    let mut cfg = RuncConfig::for_state_dir(dir);
    cfg.images_dir = images_dir()?;
    cfg.lower_dir = std::env::temp_dir().join("cove-test-lower");
    cfg.bridge = format!("covt{}", n % 100_000);
    cfg.veth_prefix = "ct".into();
    cfg.subnet = Subnet::new(
        Ipv4Addr::new(10, 200 + ((n / 256) % 8) as u8, (n % 256) as u8, 0),
        24,
    )?;
    cfg.nat = false;
    cfg.cgroup_parent = "cove-test".into();
    if !cfg.agent_bin.is_file() {
        bail!(
            "cove-agent not found at {} (cargo build -p cove-agent, or set COVE_AGENT_BIN)",
            cfg.agent_bin.display()
        );
    }
    Ok(cfg)
}

impl TestRuntime {
    pub async fn start() -> Result<TestRuntime> {
        let dir = tempfile::tempdir()?;
        let cfg = test_config(dir.path())?;
        let bridge = cfg.bridge.clone();
        let rt = RuncRuntime::start(cfg)
            .await
            .context("starting the runc runtime")?;
        Ok(TestRuntime { rt, dir, bridge })
    }

    /// Creates a sandbox with small limits; destroyed when the guard drops.
    pub async fn sandbox(&self) -> Result<TestSandbox> {
        self.sandbox_with(|_| {}).await
    }

    pub async fn sandbox_with(&self, tweak: impl FnOnce(&mut SandboxSpec)) -> Result<TestSandbox> {
        let mut spec = spec_for_tests();
        tweak(&mut spec);
        let created = self.rt.create(&spec).await.context("create")?;
        Ok(TestSandbox {
            rt: self.rt.clone(),
            id: spec.id,
            ip: created.ip,
        })
    }
}

/// The spec of the tests' sandboxes: a new id, small limits.
pub fn spec_for_tests() -> SandboxSpec {
    SandboxSpec {
        id: SandboxId::generate(),
        hostname: "test-box".into(),
        rootfs: "devbox:1".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 256,
        disk_mib: 256,
        pids_limit: 128,
        mounts: Vec::new(),
    }
}

/// A sandbox destroyed on drop.
pub struct TestSandbox {
    pub rt: RuncRuntime,
    pub id: SandboxId,
    pub ip: Ipv4Addr,
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        let rt = self.rt.clone();
        let id = self.id.clone();
        // Drop cannot await; a separate thread with its own runtime can.
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

impl TestSandbox {
    pub async fn run(&self, cmd: &str, args: &[&str]) -> Result<ExecOutput> {
        let spec = ExecSpec {
            cmd: cmd.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Ok(self.rt.exec(&self.id, spec).await?)
    }

    pub async fn sh(&self, script: &str) -> Result<ExecOutput> {
        self.run("bash", &["-c", script]).await
    }

    pub async fn write(&self, path: &str, data: Vec<u8>) -> Result<u64> {
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(data))]);
        Ok(self.rt.write_file(&self.id, path, Box::pin(body)).await?)
    }

    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        use futures::StreamExt;
        let (_, mut s) = self.rt.read_file(&self.id, path).await?;
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }
}

pub fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}
