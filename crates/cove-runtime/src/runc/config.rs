//! `RuncConfig`: where the runc runtime keeps its state and which host
//! resources (bridge, subnet, uid range, images) it uses. Every field is
//! public so a caller (the server, a test) can override the defaults.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cove_net::Subnet;

/// Configuration of a [`RuncRuntime`](super::RuncRuntime).
#[derive(Clone, Debug)]
pub struct RuncConfig {
    /// Root of everything the runtime writes: `sandboxes/`, `runc/`, `lower/`, `net/`.
    pub state_dir: PathBuf,
    /// Where shifted copies of the base images are kept (`<state>/lower` by
    /// default; tests share one between runtimes to copy each image once).
    pub lower_dir: PathBuf,
    /// Base images, one directory per catalog name (`devbox:1` → `devbox-1/rootfs`),
    /// as built by `scripts/lib/image.sh`. Read only.
    pub images_dir: PathBuf,
    /// The `cove-agent` binary bind-mounted read-only into every sandbox.
    pub agent_bin: PathBuf,
    /// The `runc` binary.
    pub runc_bin: PathBuf,
    /// CRIU 4.x, passed to runc as `--criu` for checkpoint and restore
    /// (Debian 12's 3.17 fails on this kernel; `scripts/lib/criu.sh` builds it).
    pub criu_bin: PathBuf,
    /// Host bridge the sandboxes' veths join.
    pub bridge: String,
    /// Address range of the bridge; the first host address is the gateway.
    pub subnet: Subnet,
    /// Host uid/gid that root inside a sandbox maps to.
    pub uid_base: u32,
    /// Number of uids/gids mapped (container ids `0..uid_count`).
    pub uid_count: u32,
    /// Catalog name used when a spec asks for the empty rootfs.
    pub default_image: String,
    /// Parent of every sandbox cgroup (`/<cgroup_parent>/<id>` in each v1 hierarchy).
    pub cgroup_parent: String,
    /// Masquerade sandbox egress through the host (nftables table `cove`).
    pub nat: bool,
    /// Prefix of host-side veth names; with the bridge name it keeps two
    /// runtimes (a server and a test) from colliding.
    pub veth_prefix: String,
    /// How long create waits for the agent to answer.
    pub agent_timeout: Duration,
    /// Formatted disks kept ready per disk size (0 = format on create).
    pub disk_pool: usize,
    /// DNS servers written into each sandbox's `/etc/resolv.conf`.
    pub dns: Vec<Ipv4Addr>,
}

impl RuncConfig {
    /// Defaults for a state dir: images from `COVE_IMAGES_DIR`, else
    /// `<state>/images` when it exists, else `/var/cache/cove/images`; the agent
    /// from `COVE_AGENT_BIN`, else `cove-agent` next to the running binary (or
    /// its parent, for test and example binaries in `target/*/{deps,examples}`); CRIU from
    /// `COVE_CRIU_BIN`, else `$COVE_CACHE_DIR/criu/bin/criu` (default cache
    /// `/var/cache/cove`); bridge `cove0` on
    /// `10.88.0.0/16`; root mapped to host uid 100000 (65536 ids).
    pub fn for_state_dir(state_dir: &Path) -> RuncConfig {
        RuncConfig {
            state_dir: state_dir.to_path_buf(),
            images_dir: default_images_dir(state_dir),
            lower_dir: state_dir.join("lower"),
            agent_bin: default_agent_bin(),
            runc_bin: PathBuf::from("runc"),
            criu_bin: default_criu_bin(),
            bridge: "cove0".to_string(),
            subnet: Subnet::new(Ipv4Addr::new(10, 88, 0, 0), 16)
                .unwrap_or_else(|_| unreachable!("16 is a valid prefix")),
            uid_base: 100_000,
            uid_count: 65_536,
            default_image: "devbox:1".to_string(),
            cgroup_parent: "cove".to_string(),
            nat: true,
            veth_prefix: "cv".to_string(),
            agent_timeout: Duration::from_secs(10),
            disk_pool: 2,
            dns: Vec::new(),
        }
    }
}

fn default_images_dir(state_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("COVE_IMAGES_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let in_state = state_dir.join("images");
    if in_state.is_dir() {
        return in_state;
    }
    PathBuf::from("/var/cache/cove/images")
}

fn default_criu_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("COVE_CRIU_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(bin);
    }
    let cache = std::env::var_os("COVE_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cove"));
    cache.join("criu/bin/criu")
}

fn default_agent_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("COVE_AGENT_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test and example binaries live in target/<profile>/{deps,examples};
    // the agent in target/<profile>.
    if !dir.join("cove-agent").is_file() && (dir.ends_with("deps") || dir.ends_with("examples")) {
        dir.pop();
    }
    dir.join("cove-agent")
}
