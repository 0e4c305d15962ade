//! Catalog, host and identity views (`API.md` §4.2, §6.4).

use serde::Serialize;
use utoipa::ToSchema;

/// A sandbox size from `GET /v1/shapes`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Shape {
    /// The resource id.
    #[schema(example = "s-1vcpu-256mb")]
    pub id: String,
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Disk size when the request sets none.
    pub default_disk_mib: u64,
    /// Percent of one CPU (25 = a quarter CPU); absent means `vcpu` whole CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota_pct: Option<u32>,
}

/// One rootfs of the catalog.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RootfsEntry {
    /// Human name (the hostname for sandboxes).
    pub name: String,
    /// What the image holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Still accepted but scheduled for removal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
    /// The name to use instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
}

/// `GET /v1/rootfs` (a single object, not a list).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RootfsData {
    /// The rootfs catalog name.
    pub rootfs: Vec<String>,
    /// The rootfs used when a create names none.
    pub default: String,
    /// Catalog entries with details.
    pub entries: Vec<RootfsEntry>,
}

/// Host health as the Python SDK's strict enum knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Accepting sandboxes.
    Active,
    /// Running sandboxes but accepting no new ones.
    Draining,
    /// Unreachable.
    Dead,
}

/// One host of `GET /v1/hosts`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostPublic {
    /// The resource id.
    pub id: String,
    /// Current status.
    pub status: HostStatus,
    /// Memory not reserved by sandboxes, in MiB.
    pub free_mib: u64,
    /// Sandboxes on the host.
    pub vm_count: u32,
    /// Images the host can run.
    pub rootfses: Vec<String>,
}

/// Sandbox counts of `GET /v1/whoami`; `total` is every non-destroyed sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct WhoAmIStats {
    /// Sandboxes running.
    pub running: u64,
    /// Sandboxes paused.
    pub paused: u64,
    /// Sandboxes in any other non-destroyed status.
    pub other: u64,
    /// Every non-destroyed sandbox.
    pub total: u64,
}

/// `GET /v1/whoami`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WhoAmIView {
    /// The caller.
    pub user_id: String,
    /// Sandbox counts.
    pub stats: WhoAmIStats,
}

/// `GET /healthz`.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct HealthzResponse {
    /// Always true when the server answers.
    pub up: bool,
}

/// `GET /readyz` (200 when ready, 503 with a reason otherwise).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReadyzResponse {
    /// Whether the server can take requests.
    pub ready: bool,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds since the scheduler last succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_last_ok_ms_ago: Option<u64>,
}
