//! Catalog, host and identity views (`API.md` §4.2, §6.4).

use serde::Serialize;
use utoipa::ToSchema;

/// A sandbox size from `GET /v1/shapes`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Shape {
    #[schema(example = "s-1vcpu-256mb")]
    pub id: String,
    pub vcpu: u32,
    pub mem_mib: u64,
    pub default_disk_mib: u64,
    /// Percent of one CPU (25 = a quarter CPU); absent means `vcpu` whole CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota_pct: Option<u32>,
}

/// One rootfs of the catalog.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RootfsEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
}

/// `GET /v1/rootfs` (a single object, not a list).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RootfsData {
    pub rootfs: Vec<String>,
    pub default: String,
    pub entries: Vec<RootfsEntry>,
}

/// Host health as the Python SDK's strict enum knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Active,
    Draining,
    Dead,
}

/// One host of `GET /v1/hosts`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostPublic {
    pub id: String,
    pub status: HostStatus,
    pub free_mib: u64,
    pub vm_count: u32,
    pub rootfses: Vec<String>,
}

/// Sandbox counts of `GET /v1/whoami`; `total` is every non-destroyed sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct WhoAmIStats {
    pub running: u64,
    pub paused: u64,
    pub other: u64,
    pub total: u64,
}

/// `GET /v1/whoami`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WhoAmIView {
    pub user_id: String,
    pub stats: WhoAmIStats,
}

/// `GET /healthz`.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct HealthzResponse {
    pub up: bool,
}

/// `GET /readyz` (200 when ready, 503 with a reason otherwise).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReadyzResponse {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_last_ok_ms_ago: Option<u64>,
}
