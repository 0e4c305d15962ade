//! The OCI `config.json` of a sandbox, hardened as DESIGN.md says: own
//! user namespace (root → `uid_base`, 65536 ids), pid/net/ipc/uts/mount/
//! cgroup namespaces (runc creates them, so the network namespace belongs
//! to the sandbox's user namespace and `/sys` mounts as sysfs), Docker's
//! default seccomp profile (`generated/seccomp_x86_64.json`, compiled once
//! by `seccomp.rs` and loaded by the agent, not by runc), Docker's
//! default capabilities without `CAP_NET_RAW`, no new privileges, masked and
//! read-only `/proc` paths, cgroup limits from the shape. `cove-agent` is
//! PID 1, bound read-only from the host. (Lowering its OOM score is not
//! allowed inside the user namespace, so the agent instead raises the score
//! of every command it starts: the kernel kills those first.)

use serde_json::{json, Value};

use super::layout::SandboxPaths;
use crate::{BindMount, SandboxSpec};

const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the config needs besides the spec.
pub struct SpecInputs<'a> {
    pub spec: &'a SandboxSpec,
    pub paths: &'a SandboxPaths,
    pub agent_bin: &'a std::path::Path,
    pub uid_base: u32,
    pub uid_count: u32,
    pub cgroup_parent: &'a str,
    /// Host directories bound into the sandbox (disks). A checkpoint
    /// treats every declared bind as an external mount.
    pub mounts: &'a [BindMount],
}

/// Number of mount entries every sandbox has before its declared binds.
pub const BASE_MOUNTS: usize = 11;

/// Replaces the declared binds of a built config with `mounts`.
pub fn replace_binds(config: &mut Value, mounts: &[BindMount]) {
    if let Some(list) = config["mounts"].as_array_mut() {
        list.truncate(BASE_MOUNTS);
        list.extend(mounts.iter().map(bind_entry));
    }
}

/// The OCI mount entry of one declared bind. `rbind` so a FUSE mount at
/// the host path comes along; private propagation, so nothing mounted later
/// under the host path reaches the sandbox (CRIU cannot dump that).
pub fn bind_entry(m: &BindMount) -> Value {
    let mode = if m.read_only { "ro" } else { "rw" };
    json!({
        "destination": m.container_path,
        "type": "bind",
        "source": m.host_path,
        "options": ["rbind", mode, "nosuid", "nodev", "rprivate"]
    })
}

/// CPU quota per 100 ms period: `cpu_quota_pct` of one CPU, else `vcpu` CPUs.
pub fn cpu_quota(spec: &SandboxSpec) -> i64 {
    match spec.cpu_quota_pct {
        Some(pct) => (pct.max(1) as i64) * 1000,
        None => (spec.vcpu.max(1) as i64) * 100_000,
    }
}

/// Builds the config.
pub fn build(i: &SpecInputs<'_>) -> Result<Value, serde_json::Error> {
    let mem = (i.spec.mem_mib.max(16) * 1024 * 1024) as i64;
    let caps: Vec<&str> = CAPS.to_vec();
    let map = json!([{ "containerID": 0, "hostID": i.uid_base, "size": i.uid_count }]);
    let etc = i.paths.etc();
    let mut v = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            // The agent loads the seccomp filter itself (see `seccomp.rs`).
            "args": [
                cove_api::agent::GUEST_AGENT_PATH,
                "--seccomp",
                format!("{}/{}", cove_api::agent::GUEST_RUN_DIR, cove_api::agent::SECCOMP_NAME)
            ],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": i.spec.hostname,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
            { "destination": cove_api::agent::GUEST_AGENT_PATH, "type": "bind", "source": i.agent_bin, "options": ["bind", "ro", "nosuid", "nodev"] },
            { "destination": cove_api::agent::GUEST_RUN_DIR, "type": "bind", "source": i.paths.run_dir(), "options": ["bind", "rw", "nosuid", "nodev", "noexec"] },
            { "destination": "/etc/hosts", "type": "bind", "source": etc.join("hosts"), "options": ["bind", "ro", "nosuid", "nodev", "noexec"] },
            { "destination": "/etc/resolv.conf", "type": "bind", "source": etc.join("resolv.conf"), "options": ["bind", "ro", "nosuid", "nodev", "noexec"] }
        ],
        "linux": {
            "uidMappings": map,
            "gidMappings": map,
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" },
                { "type": "mount" }, { "type": "user" }, { "type": "cgroup" }
            ],
            "cgroupsPath": format!("/{}/{}", i.cgroup_parent, i.spec.id),
            "resources": {
                "devices": [{ "allow": false, "access": "rwm" }],
                "memory": { "limit": mem, "swap": mem },
                "cpu": { "quota": cpu_quota(i.spec), "period": 100_000u64, "shares": 1024u64 },
                "pids": { "limit": i.spec.pids_limit.max(16) as i64 }
            },
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY
        },
        // runc hands this file to CRIU at checkpoint and restore (network
        // lock through nftables: there is no iptables here).
        "annotations": { "org.criu.config": i.paths.criu_conf() }
    });
    if let Some(mounts) = v["mounts"].as_array_mut() {
        mounts.extend(i.mounts.iter().map(bind_entry));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_api::ids::SandboxId;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            id: SandboxId::generate(),
            hostname: "brave-otter".into(),
            rootfs: "devbox:1".into(),
            vcpu: 2,
            cpu_quota_pct: None,
            mem_mib: 512,
            disk_mib: 1024,
            pids_limit: 256,
            mounts: Vec::new(),
        }
    }

    #[test]
    fn config_is_hardened_and_limited() {
        let s = spec();
        let paths = SandboxPaths {
            dir: "/state/sandboxes/x".into(),
        };
        let v = build(&SpecInputs {
            spec: &s,
            paths: &paths,
            agent_bin: std::path::Path::new("/usr/bin/cove-agent"),
            uid_base: 100000,
            uid_count: 65536,
            cgroup_parent: "cove",
            mounts: &[BindMount {
                host_path: "/state/disks/d1".into(),
                container_path: "/mnt/data".into(),
                read_only: true,
            }],
        })
        .unwrap();
        assert_eq!(
            v["annotations"]["org.criu.config"],
            "/state/sandboxes/x/criu.conf"
        );
        let last = v["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/mnt/data");
        assert_eq!(last["source"], "/state/disks/d1");
        assert_eq!(last["options"][1], "ro");
        assert_eq!(v["hostname"], "brave-otter");
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 100000);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 512i64 << 20);
        assert_eq!(v["linux"]["resources"]["memory"]["swap"], 512i64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 200_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 256);
        // The agent loads the filter; runc must not compile it again.
        assert!(v["linux"].get("seccomp").is_none());
        assert_eq!(v["process"]["args"][1], "--seccomp");
        assert_eq!(v["process"]["args"][2], "/.cove/run/seccomp.bpf");
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        for want in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
            assert!(ns.contains(&want), "{want}");
        }
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN" || c == "CAP_NET_RAW" || c == "CAP_NET_ADMIN"));
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
        assert_eq!(v["linux"]["cgroupsPath"], format!("/cove/{}", s.id));
    }

    #[test]
    fn declared_binds_follow_the_base_mounts_and_are_replaced() {
        let s = spec();
        let paths = SandboxPaths {
            dir: "/state/sandboxes/x".into(),
        };
        let mut v = build(&SpecInputs {
            spec: &s,
            paths: &paths,
            agent_bin: std::path::Path::new("/usr/bin/cove-agent"),
            uid_base: 100000,
            uid_count: 65536,
            cgroup_parent: "cove",
            mounts: &[],
        })
        .unwrap();
        assert_eq!(v["mounts"].as_array().unwrap().len(), BASE_MOUNTS);
        let m = BindMount {
            host_path: "/h".into(),
            container_path: "/mnt/a".into(),
            read_only: false,
        };
        replace_binds(&mut v, &[m.clone(), m]);
        replace_binds(
            &mut v,
            &[BindMount {
                host_path: "/h2".into(),
                container_path: "/mnt/b".into(),
                read_only: false,
            }],
        );
        let list = v["mounts"].as_array().unwrap();
        assert_eq!(list.len(), BASE_MOUNTS + 1);
        assert_eq!(list[BASE_MOUNTS]["destination"], "/mnt/b");
    }

    #[test]
    fn cpu_quota_prefers_the_percentage() {
        let mut s = spec();
        s.cpu_quota_pct = Some(25);
        assert_eq!(cpu_quota(&s), 25_000);
    }
}
