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

/// A real network on a bridge named for this test (removed, with its lease
/// directory, when the guards drop).
fn test_network(
    prefix: &str,
    subnet: &str,
    veth_prefix: &str,
    nat: bool,
) -> (Network, String, (Cleanup, tempfile::TempDir)) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (ip, nft)"
    );
    let bridge = format!("{prefix}{}", std::process::id() % 100_000);
    let cleanup = Cleanup(bridge.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = NetConfig {
        bridge: bridge.clone(),
        subnet: subnet.parse().unwrap(),
        veth_prefix: veth_prefix.into(),
        nat,
        leases_dir: dir.path().join("leases"),
    };
    let net = Network::new(cfg, Arc::new(CommandNetSys));
    (net, bridge, (cleanup, dir))
}

#[test]
fn ensure_is_idempotent_with_real_ip_and_nft() {
    let (net, bridge, _guards) = test_network("covn", "10.215.7.0/24", "cn", true);
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

/// A namespace name (and the veth with it) removed on drop, should the
/// test fail before it detaches.
struct NetnsCleanup(String);

impl Drop for NetnsCleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A process in a network namespace of its own, killed on drop.
struct NsProcess(std::process::Child);

impl Drop for NsProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `attach` over netlink wires a real namespace as the `ip` commands did:
/// a name under /run/netns, the host veth up on the bridge, `lo` and `eth0`
/// up inside with the address and the default route via the gateway, and
/// the sandbox reaches the gateway; `detach` removes it all.
#[test]
fn attach_over_netlink_wires_a_real_namespace_and_detach_removes_it() {
    let (net, bridge, _guards) = test_network("covp", "10.215.9.0/24", "cp", false);
    net.ensure().unwrap();
    let child = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .unwrap();
    let ns_proc = NsProcess(child);
    let pid = ns_proc.0.id();
    // unshare execs sleep once the namespace exists.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    for _ in 0..200 {
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l != own)
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let owner = format!("sb_plug{}", std::process::id());
    let _ns_name = NetnsCleanup(format!("cove-{owner}"));
    let ip = net.allocate(&owner).unwrap();
    let att = net.attach(&owner, ip, pid).unwrap();
    let ns = att.netns.as_str().to_string();
    assert!(att.netns.path().exists());

    let host = out("ip", &["-o", "link", "show", "dev", &att.host_veth]);
    assert!(host.contains(&format!("master {bridge}")), "{host}");
    assert!(host.contains(",UP"), "{host}");
    let lo = out("ip", &["-n", &ns, "-o", "link", "show", "dev", "lo"]);
    assert!(lo.contains(",UP"), "{lo}");
    let addr = out(
        "ip",
        &["-n", &ns, "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    let route = out("ip", &["-n", &ns, "-4", "route", "show", "default"]);
    assert!(route.contains("default via 10.215.9.1 dev eth0"), "{route}");
    // The sandbox reaches a listener on the gateway address.
    let listener = std::net::TcpListener::bind("10.215.9.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    out(
        "ip",
        &[
            "netns",
            "exec",
            &ns,
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/10.215.9.1/{port}"),
        ],
    );
    assert!(listener.accept().is_ok());

    net.detach(&net.attachment_of(&owner, ip)).unwrap();
    assert!(!att.netns.path().exists());
    assert!(!std::path::Path::new("/sys/class/net")
        .join(&att.host_veth)
        .exists());
}
