//! The host bridge and NAT. The bridge gets the subnet's gateway address.
//! NAT is one chain per bridge inside the nftables table `ip cove`, so a
//! server's bridge and a test's bridge never overwrite each other's rules;
//! the chain is flushed and refilled in one `nft -f` transaction, which
//! makes `ensure` idempotent.

use crate::sys::NetSys;
use crate::{NetConfig, NetError};

/// Creates the bridge and NAT when missing.
pub fn ensure(sys: &dyn NetSys, cfg: &NetConfig) -> Result<(), NetError> {
    let br = cfg.bridge.as_str();
    if !sys.link_exists(br) {
        match sys.run("ip", &["link", "add", br, "type", "bridge"], None) {
            Ok(_) => {}
            // Another runtime on the same bridge won the race.
            Err(_) if sys.link_exists(br) => {}
            Err(e) => return Err(e),
        }
    }
    let addr = format!("{}/{}", cfg.subnet.gateway(), cfg.subnet.prefix());
    // `replace` is idempotent where `add` fails on an existing address.
    sys.run("ip", &["addr", "replace", &addr, "dev", br], None)?;
    sys.run("ip", &["link", "set", br, "up"], None)?;
    if cfg.nat {
        sys.write_sysctl("net.ipv4.ip_forward", "1")?;
        sys.run("nft", &["-f", "-"], Some(&nat_ruleset(cfg)))?;
    }
    Ok(())
}

/// The nftables script for the bridge's NAT chain.
pub fn nat_ruleset(cfg: &NetConfig) -> String {
    let chain = format!("nat-{}", cfg.bridge);
    format!(
        "add table ip cove\n\
         add chain ip cove {chain} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain ip cove {chain}\n\
         add rule ip cove {chain} ip saddr {subnet} oifname != \"{br}\" masquerade\n",
        subnet = cfg.subnet,
        br = cfg.bridge,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordingNetSys;

    fn cfg(nat: bool) -> NetConfig {
        NetConfig {
            bridge: "covt1".into(),
            subnet: "10.211.0.0/24".parse().unwrap(),
            veth_prefix: "ct".into(),
            nat,
            leases_dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn ensure_creates_missing_bridge_with_gateway_and_nat() {
        let sys = RecordingNetSys::default();
        ensure(&sys, &cfg(true)).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], "ip link add covt1 type bridge");
        assert_eq!(calls[1], "ip addr replace 10.211.0.1/24 dev covt1");
        assert_eq!(calls[2], "ip link set covt1 up");
        assert_eq!(calls[3], "sysctl net.ipv4.ip_forward=1");
        assert!(calls[4].contains("flush chain ip cove nat-covt1"));
        assert!(calls[4].contains("ip saddr 10.211.0.0/24 oifname != \"covt1\" masquerade"));
    }

    #[test]
    fn ensure_skips_existing_bridge_and_nat_when_off() {
        let sys = RecordingNetSys::default();
        sys.links.lock().unwrap().insert("covt1".into());
        ensure(&sys, &cfg(false)).unwrap();
        let calls = sys.calls();
        assert!(!calls.iter().any(|c| c.contains("link add")));
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("nft") || c.starts_with("sysctl")));
    }
}
