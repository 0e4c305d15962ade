//! Sandbox requests and views (`API.md` §4.3, §6.1–6.3). Optional request
//! fields accept both omission and `null` (the TS SDK drops `undefined`, the
//! Python SDK omits defaults); optional view fields are omitted when absent.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::SandboxId;
use crate::timestamp::Timestamp;

/// Where a sandbox is in its life (`API.md` §7.1). The Python SDK rejects
/// values outside this set, so none is ever added here without the SDKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    /// Spawn in progress.
    Creating,
    /// Active; can exec and transfer files.
    Running,
    /// Snapshot in progress.
    Pausing,
    /// Snapshotted to storage; host freed.
    Paused,
    /// Restoring from snapshot.
    Resuming,
    /// Bundle copy in progress (source stays paused).
    Forking,
    /// Resume or fork exhausted retries.
    Error,
    /// Delete in progress.
    Destroying,
    /// Permanently gone (the row stays readable).
    Destroyed,
    /// Terminal failure; see `failure_reason`.
    Failed,
}

impl SandboxStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [SandboxStatus; 10] = [
        Self::Creating,
        Self::Running,
        Self::Pausing,
        Self::Paused,
        Self::Resuming,
        Self::Forking,
        Self::Error,
        Self::Destroying,
        Self::Destroyed,
        Self::Failed,
    ];

    /// The status as sent on the wire and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Pausing => "pausing",
            Self::Paused => "paused",
            Self::Resuming => "resuming",
            Self::Forking => "forking",
            Self::Error => "error",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
        }
    }

    /// Parses a wire/stored status.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Terminal statuses: nothing of the sandbox is left on any machine, and
    /// its name is free again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Destroyed | Self::Failed)
    }
}

impl fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An overlay network to join (`{"id": "<name|net-id>"}`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct NetworkRef {
    /// The resource id.
    pub id: String,
}

pub use crate::disk::DiskAttachment;

/// `POST /v1/sandboxes`. Only `shape` is required. `Debug` shows env names
/// only, so logging a request can never leak a value.
#[derive(Clone, Default, Deserialize, ToSchema)]
pub struct CreateSandboxRequest {
    /// A shape id from `GET /v1/shapes`.
    #[serde(default)]
    pub shape: String,
    /// A rootfs catalog name; empty or absent means the host default.
    #[serde(default)]
    pub rootfs: Option<String>,
    /// Unique per user among live sandboxes; generated when empty.
    #[serde(default)]
    pub name: Option<String>,
    /// Overlay networks to join (not supported yet: 501).
    #[serde(default)]
    pub networks: Option<Vec<NetworkRef>>,
    /// 0 or absent means the shape's default.
    #[serde(default)]
    pub disk_mib: Option<u64>,
    /// Outbound allowlist; empty or `["*"]` allows all.
    #[serde(default)]
    pub egress: Option<Vec<String>>,
    /// Environment variables exported into every exec; values are never returned.
    #[serde(default)]
    pub envs: Option<BTreeMap<String, String>>,
    /// OpenSSH public keys.
    #[serde(default)]
    pub ssh_pubkeys: Option<Vec<String>>,
    /// Pins placement to one host.
    #[serde(default)]
    pub host_id: Option<String>,
    /// Scheduler labels the host must carry.
    #[serde(default)]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Whether public ingress is on.
    #[serde(default)]
    pub ingress_enabled: Option<bool>,
    /// Disks mounted from the start.
    #[serde(default)]
    pub disks: Option<Vec<DiskAttachment>>,
    /// Must equal the server's region.
    #[serde(default)]
    pub region: Option<String>,
    /// 60–86400.
    #[serde(default)]
    pub auto_pause_after_seconds: Option<u32>,
}

impl std::fmt::Debug for CreateSandboxRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateSandboxRequest")
            .field("shape", &self.shape)
            .field("rootfs", &self.rootfs)
            .field("name", &self.name)
            .field(
                "envs",
                &self.envs.as_ref().map(|e| e.keys().collect::<Vec<_>>()),
            )
            .field("egress", &self.egress)
            .field("disk_mib", &self.disk_mib)
            .field("region", &self.region)
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

/// A sandbox as `GET /v1/sandboxes/{id}` returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SandboxView {
    /// The resource id.
    #[schema(value_type = String, example = "sb_01h...")]
    pub id: SandboxId,
    /// Current status.
    pub status: SandboxStatus,
    /// Absent while `creating` and once the sandbox is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Disk size in MiB.
    pub disk_mib: u64,
    /// When the row was created.
    pub created_at: Timestamp,
    /// Whether public ingress is on.
    pub ingress_enabled: bool,
    /// Contains a literal `<port>`; present when ingress is on and the domain is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_url_template: Option<String>,
    /// Human name (the hostname for sandboxes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the sandbox last reached `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_at: Option<Timestamp>,
    /// When the sandbox was destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<Timestamp>,
    /// Milliseconds from create request to running (a float, as the SDKs expect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn_ms: Option<f64>,
    /// The shape id.
    pub shape: String,
    /// The rootfs catalog name.
    pub rootfs: String,
    /// Placement region.
    pub region: String,
    /// Outbound allowlist (empty allows all).
    pub egress: Vec<String>,
    /// Names only; values are never returned.
    pub envs: Vec<String>,
    /// OpenSSH public keys.
    pub ssh_pubkeys: Vec<String>,
    /// Name of the user who created it.
    pub created_by: String,
    /// Ingress bytes counted so far.
    pub bandwidth_ingress_bytes: u64,
    /// When the sandbox was last paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Timestamp>,
    /// When the sandbox was last resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_resumed_at: Option<Timestamp>,
    /// The sandbox this one was forked from.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub forked_from: Option<SandboxId>,
    /// Absent when auto-pause is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_pause_after_seconds: Option<u32>,
    /// Why a `failed` sandbox failed (cove extension; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// `POST /v1/sandboxes` response: the full view plus the bandwidth quota.
/// The Python SDK requires `status` here.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CreateSandboxResponse {
    /// The sandbox view.
    #[serde(flatten)]
    pub sandbox: SandboxView,
    /// −1 means unmetered.
    pub bandwidth_quota_bytes: i64,
}

/// `PATCH /v1/sandboxes/{id}`; omitted fields are unchanged.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct PatchSandboxRequest {
    /// Whether public ingress is on.
    #[serde(default)]
    pub ingress_enabled: Option<bool>,
    /// 60–86400.
    #[serde(default)]
    pub auto_pause_after_seconds: Option<u32>,
    /// Wins over `auto_pause_after_seconds` when both are sent.
    #[serde(default)]
    pub disable_auto_pause: Option<bool>,
}

/// `DELETE /v1/sandboxes/{id}` response.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DestroyedResponse {
    /// The resource id.
    #[schema(value_type = String)]
    pub id: SandboxId,
    /// `destroying` or `destroyed`.
    pub status: SandboxStatus,
}

/// Query of `GET /v1/sandboxes`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListSandboxesQuery {
    /// Only sandboxes in this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Page size, default 50, at most 500 (larger values are clamped).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Items skipped before this page.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// Query of the other paginated lists (`/v1/shapes`, `/v1/hosts`).
#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Page size, default 50, at most 500 (larger values are clamped).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Items skipped before this page.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// Default page size when `limit` is absent (seed 003).
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size; larger requests are clamped (`API.md` §3.2).
pub const MAX_LIMIT: u32 = 500;

/// `limit` after defaulting and clamping.
pub fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_round_trips() {
        for st in SandboxStatus::ALL {
            assert_eq!(SandboxStatus::parse(st.as_str()), Some(st));
            assert_eq!(serde_json::to_value(st).unwrap(), json!(st.as_str()));
        }
        assert_eq!(SandboxStatus::parse("zombie"), None);
    }

    #[test]
    fn create_request_accepts_python_and_nulls() {
        let py: CreateSandboxRequest = serde_json::from_value(json!({
            "shape": "s-1vcpu-256mb", "rootfs": "devbox:1", "envs": {"A": "1"}, "ingress_enabled": true
        }))
        .unwrap();
        assert_eq!(py.shape, "s-1vcpu-256mb");
        assert_eq!(py.envs.unwrap().get("A").map(String::as_str), Some("1"));
        let nulls: CreateSandboxRequest =
            serde_json::from_value(json!({"shape": "x", "egress": null, "name": null})).unwrap();
        assert!(nulls.egress.is_none() && nulls.name.is_none());
    }

    #[test]
    fn debug_never_shows_env_values() {
        let req: CreateSandboxRequest =
            serde_json::from_value(json!({"shape": "s", "envs": {"TOKEN": "sk-live-secret"}}))
                .unwrap();
        let text = format!("{req:?}");
        assert!(
            text.contains("TOKEN") && !text.contains("sk-live-secret"),
            "{text}"
        );
    }

    #[test]
    fn page_limit_defaults_and_clamps() {
        assert_eq!(page_limit(None), 50);
        assert_eq!(page_limit(Some(10)), 10);
        assert_eq!(page_limit(Some(10_000)), 500);
    }
}
