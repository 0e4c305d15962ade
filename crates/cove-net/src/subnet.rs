//! An IPv4 subnet in CIDR form (`10.88.0.0/16`), parsed and iterated.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet: a base address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    base: Ipv4Addr,
    prefix: u8,
}

/// A subnet string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid subnet {0:?} (expected a.b.c.d/n with 8 <= n <= 30)")]
pub struct SubnetError(pub String);

impl Subnet {
    /// A subnet from a base address and prefix; host bits of `base` are cleared.
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        if !(8..=30).contains(&prefix) {
            return Err(SubnetError(format!("{base}/{prefix}")));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            base: Ipv4Addr::from(u32::from(base) & mask),
            prefix,
        })
    }

    /// The network address.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The gateway: the first host address, given to the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// The number of addresses in the subnet, network and broadcast included.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The address at `offset` from the base, if inside the subnet.
    pub fn nth(&self, offset: u32) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.base) + offset))
    }

    /// Whether `ip` is a usable sandbox address: inside, and neither the
    /// network address, the gateway nor the broadcast address.
    pub fn is_sandbox_addr(&self, ip: Ipv4Addr) -> bool {
        let off = u32::from(ip).wrapping_sub(u32::from(self.base));
        off >= 2 && off < self.size() - 1
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SubnetError(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        Subnet::new(ip, prefix).map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clears_host_bits() {
        let s: Subnet = "10.88.3.7/16".parse().unwrap();
        assert_eq!(s.base(), Ipv4Addr::new(10, 88, 0, 0));
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.to_string(), "10.88.0.0/16");
    }

    #[test]
    fn network_gateway_and_broadcast_are_not_sandbox_addresses() {
        let s: Subnet = "10.1.2.0/24".parse().unwrap();
        assert!(!s.is_sandbox_addr(Ipv4Addr::new(10, 1, 2, 0)));
        assert!(!s.is_sandbox_addr(Ipv4Addr::new(10, 1, 2, 1)));
        assert!(s.is_sandbox_addr(Ipv4Addr::new(10, 1, 2, 2)));
        assert!(!s.is_sandbox_addr(Ipv4Addr::new(10, 1, 2, 255)));
        assert!(!s.is_sandbox_addr(Ipv4Addr::new(10, 1, 3, 5)));
    }

    #[test]
    fn bad_subnets_are_rejected() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/31",
            "x/8",
            "10.0.0.0/4",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }
}
