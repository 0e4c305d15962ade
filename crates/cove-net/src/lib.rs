//! Sandbox networking: a host bridge with an address range, one network
//! namespace per sandbox joined to the bridge by a veth pair, addresses
//! allocated from the range and persisted, and NAT for egress through an
//! nftables table named `cove`. Every external command goes through the
//! [`NetSys`] trait, passed in, so unit tests record what an operation would
//! run. Knows nothing of containers or of what runs inside a namespace.

mod attach;
mod bridge;
mod leases;
mod netlink;
mod subnet;
mod sys;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

pub use attach::NetnsName;
pub use leases::Leases;
pub use netlink::Plug;
pub use subnet::{Subnet, SubnetError};
#[cfg(any(test, feature = "testing"))]
pub use sys::RecordingNetSys;
pub use sys::{CommandNetSys, NetSys};

/// Errors of network operations.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("no free address left in {0}")]
    Exhausted(Subnet),
    #[error("lease store {path}: {source}")]
    Leases {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where and how sandboxes are networked.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Host bridge name (at most 15 bytes).
    pub bridge: String,
    /// The bridge's range; its first host address is the gateway.
    pub subnet: Subnet,
    /// Prefix of host-side veth names (with 11 characters of the sandbox id).
    pub veth_prefix: String,
    /// Masquerade egress from the subnet and turn on IPv4 forwarding.
    pub nat: bool,
    /// Directory of address leases (one file per address in use).
    pub leases_dir: PathBuf,
}

/// One sandbox's place on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub netns: NetnsName,
    pub host_veth: String,
    pub ip: Ipv4Addr,
}

/// The network of one runtime: its bridge, leases and NAT rules.
pub struct Network {
    cfg: NetConfig,
    sys: Arc<dyn NetSys>,
    leases: Leases,
}

impl Network {
    /// A network over `sys`; nothing is touched until [`ensure`](Self::ensure).
    pub fn new(cfg: NetConfig, sys: Arc<dyn NetSys>) -> Network {
        let leases = Leases::new(cfg.leases_dir.clone(), cfg.subnet);
        Network { cfg, sys, leases }
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The address leases.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Creates the bridge, its address and the NAT rules when missing. Idempotent.
    pub fn ensure(&self) -> Result<(), NetError> {
        bridge::ensure(self.sys.as_ref(), &self.cfg)
    }

    /// Allocates an address for `owner` (persisted until [`detach`](Self::detach)).
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, NetError> {
        self.leases.allocate(owner)
    }

    /// Names the network namespace of process `pid` after `owner`
    /// (`ip netns attach`, so it outlives the server and `ip -n` reaches it),
    /// creates the veth pair into it and configures both ends with `ip`.
    /// Undoes what it did on failure (the lease stays with the caller).
    pub fn attach(&self, owner: &str, ip: Ipv4Addr, pid: u32) -> Result<Attachment, NetError> {
        let att = self.attachment_of(owner, ip);
        match attach::attach(self.sys.as_ref(), &self.cfg, &att, pid) {
            Ok(()) => Ok(att),
            Err(e) => {
                let _ = attach::detach(self.sys.as_ref(), &att);
                Err(e)
            }
        }
    }

    /// The attachment `owner` would have with address `ip` (for cleanup of
    /// an attachment known only by its owner).
    pub fn attachment_of(&self, owner: &str, ip: Ipv4Addr) -> Attachment {
        Attachment {
            netns: NetnsName::for_owner(owner),
            host_veth: attach::veth_name(&self.cfg.veth_prefix, owner),
            ip,
        }
    }

    /// Removes the veth, the namespace and the lease. Idempotent.
    pub fn detach(&self, att: &Attachment) -> Result<(), NetError> {
        attach::detach(self.sys.as_ref(), att)?;
        self.leases.release(att.ip)?;
        Ok(())
    }

    /// Removes the veth and the namespace name but keeps the address lease:
    /// a sandbox being checkpointed leaves the network (CRIU cannot dump a
    /// veth whose peer is on the host) and gets the same address again with
    /// [`attach`](Self::attach) after its restore. Idempotent.
    pub fn unplug(&self, att: &Attachment) -> Result<(), NetError> {
        attach::detach(self.sys.as_ref(), att)
    }

    /// Removes what is left of `owner`'s attachment when its address is unknown.
    pub fn detach_owner(&self, owner: &str) -> Result<(), NetError> {
        let att = self.attachment_of(owner, Ipv4Addr::UNSPECIFIED);
        attach::detach(self.sys.as_ref(), &att)?;
        self.leases.release_owner(owner)
    }

    /// Whether the host-side veth of `owner` exists.
    pub fn veth_exists(&self, owner: &str) -> bool {
        self.sys
            .link_exists(&attach::veth_name(&self.cfg.veth_prefix, owner))
    }
}
