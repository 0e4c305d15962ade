//! The real bridge and NAT (root, `ip` and `nft`): `ensure` twice leaves one
//! bridge with the gateway address and exactly one masquerade rule in the
//! bridge's own chain of table `ip cove`. Touches only a bridge and chain
//! named for this test, removed at the end.

use std::process::Command;
use std::sync::Arc;

use cove_net::{CommandNetSys, NetConfig, Network};

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        let _ = Command::new("nft")
            .args(["delete", "chain", "ip", "cove", &format!("nat-{}", self.0)])
            .status();
    }
}

fn out(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().expect("run");
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ensure_is_idempotent_with_real_ip_and_nft() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (ip, nft)"
    );
    let bridge = format!("covn{}", std::process::id() % 100_000);
    let _c = Cleanup(bridge.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = NetConfig {
        bridge: bridge.clone(),
        subnet: "10.215.7.0/24".parse().unwrap(),
        veth_prefix: "cn".into(),
        nat: true,
        leases_dir: dir.path().join("leases"),
    };
    let net = Network::new(cfg, Arc::new(CommandNetSys));
    net.ensure().unwrap();
    net.ensure().unwrap();
    let addr = out("ip", &["-4", "-o", "addr", "show", "dev", &bridge]);
    assert_eq!(addr.matches("inet 10.215.7.1/24").count(), 1, "{addr}");
    let chain = out(
        "nft",
        &["list", "chain", "ip", "cove", &format!("nat-{bridge}")],
    );
    assert_eq!(chain.matches("masquerade").count(), 1, "{chain}");
    assert!(chain.contains("ip saddr 10.215.7.0/24"), "{chain}");
}
