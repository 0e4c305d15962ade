//! `create`: lay out a new sandbox's bundle (record, disk, overlay root,
//! agent dir, /etc files, OCI config), then hand over to `start.rs`. Every
//! step leaves something `destroy` knows how to remove, so a failure at any
//! point is rolled back by running `destroy` on the same id.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::layout::SandboxPaths;
use super::record::{Phase, SandboxRecord};
use super::spec::{self, SpecInputs};
use super::{criu, disk, Inner};
use crate::{BindMount, RuntimeError, SandboxSpec};

/// Builds the bundle of `spec` on `lower`, with `mounts` declared as binds;
/// returns its record (phase `creating`).
pub fn prepare(
    inner: &Inner,
    spec: &SandboxSpec,
    lower: &Path,
    mounts: &[BindMount],
) -> Result<SandboxRecord, RuntimeError> {
    let cfg = &inner.config;
    let paths = SandboxPaths::new(&cfg.state_dir, &spec.id);
    if paths.dir.exists() {
        return Err(failed(
            spec,
            format!("{} already exists", paths.dir.display()),
        ));
    }
    std::fs::create_dir(&paths.dir)?;
    // The sandbox's root (uid_base) must traverse to its rootfs and binds.
    std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o711))?;
    let mut rec = SandboxRecord {
        id: spec.id.to_string(),
        hostname: spec.hostname.clone(),
        image: spec.rootfs.clone(),
        ip: None,
        host_veth: None,
        mem_mib: spec.mem_mib,
        disk_mib: spec.disk_mib,
        phase: Phase::Creating,
    };
    rec.save(&paths.record())?;
    let ip = inner
        .net
        .allocate(spec.id.as_str())
        .map_err(|e| failed(spec, e.to_string()))?;
    rec.ip = Some(ip);
    rec.save(&paths.record())?;

    disk::create(
        inner.sys.as_ref(),
        &paths,
        spec.disk_mib,
        cfg.uid_base,
        &inner.pool,
    )?;
    disk::mount_overlay(inner.sys.as_ref(), &paths, lower)?;

    make_run_dir(inner, &paths)?;
    write_seccomp(inner, &paths)?;
    write_etc(&paths, &spec.hostname, ip, &cfg.dns)?;
    write_config(inner, spec, &paths, mounts, "create")?;
    Ok(rec)
}

/// The agent's socket dir, owned by the sandbox's root.
pub fn make_run_dir(inner: &Inner, paths: &SandboxPaths) -> Result<(), RuntimeError> {
    let run = paths.run_dir();
    std::fs::create_dir_all(&run)?;
    inner
        .sys
        .chown(&run, inner.config.uid_base, inner.config.uid_base)?;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// The seccomp filter the agent loads first thing (see `seccomp.rs`);
/// read-only for the sandbox's root.
pub fn write_seccomp(inner: &Inner, paths: &SandboxPaths) -> Result<(), RuntimeError> {
    let path = paths.run_dir().join(cove_api::agent::SECCOMP_NAME);
    std::fs::write(&path, &inner.seccomp_bpf)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    Ok(())
}

/// Writes `config.json` (and the `criu.conf` it names) for `spec` with
/// `mounts` declared; atomically, so a crash never leaves half a config.
pub fn write_config(
    inner: &Inner,
    spec: &SandboxSpec,
    paths: &SandboxPaths,
    mounts: &[BindMount],
    op: &'static str,
) -> Result<(), RuntimeError> {
    let cfg = &inner.config;
    let fail = |message: String| RuntimeError::Failed {
        id: spec.id.clone(),
        op,
        message,
    };
    criu::write_conf(paths)?;
    let config = spec::build(&SpecInputs {
        spec,
        paths,
        agent_bin: &cfg.agent_bin,
        uid_base: cfg.uid_base,
        uid_count: cfg.uid_count,
        cgroup_parent: &cfg.cgroup_parent,
        mounts,
    })
    .map_err(|e| fail(format!("building config.json: {e}")))?;
    let bytes = serde_json::to_vec_pretty(&config).map_err(|e| fail(e.to_string()))?;
    let tmp = paths.config().with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, paths.config())?;
    Ok(())
}

fn failed(spec: &SandboxSpec, message: String) -> RuntimeError {
    RuntimeError::Failed {
        id: spec.id.clone(),
        op: "create",
        message,
    }
}

/// `/etc/hosts` (the sandbox's own name and address) and `/etc/resolv.conf`
/// (the configured servers, else the host's non-loopback ones).
pub fn write_etc(
    paths: &SandboxPaths,
    hostname: &str,
    ip: Ipv4Addr,
    dns: &[Ipv4Addr],
) -> std::io::Result<()> {
    let etc = paths.etc();
    std::fs::create_dir(&etc)?;
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755))?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{hostname}\n"
    );
    std::fs::write(etc.join("hosts"), hosts)?;
    let mut servers: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
    if servers.is_empty() {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        servers = host
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|s| s.trim().to_string())
            .filter(|s| s.parse::<Ipv4Addr>().is_ok_and(|a| !a.is_loopback()))
            .collect();
    }
    let resolv: String = servers
        .iter()
        .map(|s| format!("nameserver {s}\n"))
        .collect();
    std::fs::write(etc.join("resolv.conf"), resolv)?;
    for f in ["hosts", "resolv.conf"] {
        std::fs::set_permissions(etc.join(f), std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}
