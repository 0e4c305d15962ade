//! Store rows → wire views.

use cove_api::sandbox::SandboxView;
use cove_store::SandboxRecord;

use crate::state::AppConfig;

/// The view of a row; `ip` only while the sandbox is live, and an ingress
/// template only when ingress is on and a domain is configured.
pub fn sandbox_view(r: &SandboxRecord, config: &AppConfig) -> SandboxView {
    let ingress_url_template = match (&config.ingress_domain, r.ingress_enabled) {
        (Some(domain), true) => Some(format!("https://{}-<port>.{domain}", r.id)),
        _ => None,
    };
    SandboxView {
        id: r.id.clone(),
        status: r.status,
        ip: r.ip.clone().filter(|_| !r.status.is_terminal()),
        vcpu: r.vcpu,
        mem_mib: r.mem_mib,
        disk_mib: r.disk_mib,
        created_at: r.created_at,
        ingress_enabled: r.ingress_enabled,
        ingress_url_template,
        name: Some(r.name.clone()),
        running_at: r.running_at,
        destroyed_at: r.destroyed_at,
        spawn_ms: r.spawn_ms,
        shape: r.shape.clone(),
        rootfs: r.rootfs.clone(),
        region: r.region.clone(),
        egress: r.egress.clone(),
        envs: r.env_names.clone(),
        ssh_pubkeys: r.ssh_pubkeys.clone(),
        created_by: r.created_by.clone(),
        bandwidth_ingress_bytes: r.bandwidth_ingress_bytes,
        paused_at: r.paused_at,
        last_resumed_at: r.last_resumed_at,
        forked_from: r.forked_from.clone(),
        auto_pause_after_seconds: r.auto_pause_after_seconds,
        failure_reason: r.failure_reason.clone(),
        status_reason: r.status_reason.clone(),
    }
}
