//! Sandbox networking: a host bridge with an address range, one network
//! namespace per sandbox joined to the bridge by a veth pair, addresses
//! allocated from the range and persisted, and NAT for egress through an
//! nftables table named `cove`. Every system call and external command goes
//! through the [`NetSys`] trait, passed in, so unit tests record what an
//! operation would run. Knows nothing of containers or sandboxes' contents.

mod subnet;

pub use subnet::{Subnet, SubnetError};
