//! One sandbox's attachment: the sandbox's own network namespace (created
//! by runc inside the sandbox's user namespace) given a name as `ip netns
//! attach` would, so a restarted server finds it, a veth pair with
//! `eth0` inside, the address and default route inside, `lo` up (runc only
//! brings `lo` up in namespaces it creates itself). Done over netlink
//! (`netlink.rs`); detaching still runs `ip`, off the create path.

use std::path::{Path, PathBuf};

use crate::netlink::Plug;
use crate::sys::NetSys;
use crate::{Attachment, NetConfig, NetError};

/// The name of a sandbox's network namespace (`/run/netns/<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetnsName(String);

impl NetnsName {
    /// The namespace of `owner`.
    pub fn for_owner(owner: &str) -> NetnsName {
        NetnsName(format!("cove-{owner}"))
    }

    /// The name as `ip netns` knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its bind-mounted file, for `setns` and the OCI config.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }
}

/// Host-side veth name: the prefix and the id's last (random) characters,
/// within the kernel's 15-byte limit.
pub fn veth_name(prefix: &str, owner: &str) -> String {
    let room = 15usize.saturating_sub(prefix.len()).min(owner.len());
    let tail = &owner[owner.len() - room..];
    format!("{prefix}{tail}")
}

pub fn attach(
    sys: &dyn NetSys,
    cfg: &NetConfig,
    att: &Attachment,
    pid: u32,
) -> Result<(), NetError> {
    sys.plug(&Plug {
        netns: att.netns.as_str().to_string(),
        pid,
        host_veth: att.host_veth.clone(),
        bridge: cfg.bridge.clone(),
        ip: att.ip,
        prefix: cfg.subnet.prefix(),
        gateway: cfg.subnet.gateway(),
    })
}

pub fn detach(sys: &dyn NetSys, att: &Attachment) -> Result<(), NetError> {
    if sys.link_exists(&att.host_veth) {
        match sys.run("ip", &["link", "del", &att.host_veth], None) {
            Ok(_) => {}
            Err(_) if !sys.link_exists(&att.host_veth) => {}
            Err(e) => return Err(e),
        }
    }
    // Deleting the namespace also deletes eth0 (and with it the pair).
    if sys.path_exists(&att.netns.path()) {
        sys.run("ip", &["netns", "del", att.netns.as_str()], None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Network, RecordingNetSys};

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        let v = veth_name("cv", "sb_01jd0000000000000000000000");
        assert_eq!(v.len(), 15);
        assert!(v.starts_with("cv"));
        assert_eq!(veth_name("cv", "ab"), "cvab");
    }

    #[test]
    fn attach_configures_both_ends_and_failed_attach_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingNetSys::default());
        let cfg = NetConfig {
            bridge: "covt9".into(),
            subnet: "10.212.0.0/24".parse().unwrap(),
            veth_prefix: "ct".into(),
            nat: false,
            leases_dir: dir.path().into(),
        };
        let net = Network::new(cfg, sys.clone());
        let ip = net.allocate("sb_x").unwrap();
        let att = net.attach("sb_x", ip, 4242).unwrap();
        let calls = sys.calls();
        assert_eq!(
            calls[0],
            format!(
                "plug cove-sb_x pid=4242 veth=ctsb_x master=covt9 addr={}/24 gw=10.212.0.1",
                att.ip
            )
        );

        *sys.fail_on.lock().unwrap() = Some("plug cove-sb_y".into());
        let ip_y = net.allocate("sb_y").unwrap();
        assert!(net.attach("sb_y", ip_y, 4243).is_err());
        net.detach(&net.attachment_of("sb_y", ip_y)).unwrap();
        // Its lease is gone again: only sb_x holds one.
        let leases = net.leases().all().unwrap();
        assert_eq!(leases.values().collect::<Vec<_>>(), vec!["sb_x"]);
    }
}
