//! Helpers for cove's integration tests against a live `cove serve` binary
//! with real runc sandboxes: the prerequisites check, a `TempServer` guard,
//! and a small HTTP client for the API (`Api`).
//!
//! Each test binary compiles this module and uses part of it, hence
//! `allow(dead_code)`.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod server;

pub use api::{Api, ExecOut, FrameReader, Resp};
pub use server::TempServer;

use std::path::PathBuf;

/// Where the base images live (`scripts/lib/image.sh` builds them).
pub fn images_dir() -> PathBuf {
    std::env::var_os("COVE_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cove/images"))
}

/// Fails (never skips) with a message naming what is missing and how to
/// provide it, so a machine without the real parts cannot pass silently.
pub fn require_real_parts() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "cove integration tests need root (runc, cgroups, mounts); run them through ./scripts/test"
    );
    let runc = std::process::Command::new("runc").arg("--version").output();
    assert!(
        matches!(runc, Ok(ref o) if o.status.success()),
        "runc is missing from PATH (apt-get install -y runc)"
    );
    if std::env::var_os("COVE_AGENT_BIN").is_none() {
        let agent = std::path::Path::new(env!("CARGO_BIN_EXE_cove")).with_file_name("cove-agent");
        assert!(
            agent.is_file(),
            "cove-agent is missing next to cove ({}): cargo build -p cove-agent, or set COVE_AGENT_BIN",
            agent.display()
        );
    }
    let bash = images_dir().join("devbox-1/rootfs/bin/bash");
    assert!(
        bash.exists(),
        "base image devbox:1 is missing ({} not found): run scripts/lib/image.sh; \
         env COVE_IMAGES_DIR points to the images directory",
        bash.display()
    );
}

/// A plain-HTTP client for loopback. reqwest's TLS feature set is unified
/// with bucketfs's (`rustls-no-provider`), so a process-wide crypto provider
/// must exist before any client is built, even one that never uses TLS.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("a plain-HTTP reqwest client always builds")
}

/// A lowercase, DNS-label-safe name unique across parallel runs.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Deterministic pseudo-random bytes (xorshift64*), so a large body can be
/// generated twice (to send and to check) without holding it in memory.
pub struct PseudoRandom(u64);

impl PseudoRandom {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Peak resident set size (VmHWM) of a process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmHWM:") {
            let kib = rest.trim().trim_end_matches("kB").trim().parse()?;
            return Ok(kib);
        }
    }
    anyhow::bail!("no VmHWM in /proc/{pid}/status")
}
