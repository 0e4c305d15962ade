//! `SandboxRecord`: what create decided for a sandbox, written to
//! `record.json` before anything is made (phase `creating`) and again when
//! it runs, so a restarted runtime (and destroy) knows what to look for.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where a sandbox is in its life, as far as the record knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Creating,
    Running,
    /// A dump is under way (the container may still run).
    Checkpointing,
    /// `checkpoint/` is complete and the container is gone.
    Checkpointed,
    /// A restore from `checkpoint/` is under way.
    Restoring,
    /// A fork is building this sandbox from another's checkpoint.
    Forking,
    Destroying,
}

/// The persisted facts of one sandbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub hostname: String,
    pub image: String,
    pub ip: Option<Ipv4Addr>,
    pub host_veth: Option<String>,
    pub mem_mib: u64,
    pub disk_mib: u64,
    pub phase: Phase,
}

impl SandboxRecord {
    /// Writes the record atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, path)
    }

    /// Reads a record; `None` when absent or unreadable.
    pub fn load(path: &Path) -> Option<SandboxRecord> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
impl SandboxRecord {
    /// A running sandbox's record with address `ip`.
    pub fn for_tests(id: &cove_api::ids::SandboxId, ip: Option<Ipv4Addr>) -> SandboxRecord {
        SandboxRecord {
            id: id.to_string(),
            hostname: "test".into(),
            image: "devbox:1".into(),
            ip,
            host_veth: None,
            mem_mib: 256,
            disk_mib: 256,
            phase: Phase::Running,
        }
    }
}
