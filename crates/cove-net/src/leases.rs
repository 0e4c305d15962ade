//! Address leases: one file per address in use, named after the address and
//! holding its owner, created with `O_EXCL`. Creating the file is the
//! allocation, so two runtimes on one lease dir never hand out the same
//! address, and a restarted process sees every address still in use.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::{NetError, Subnet};

/// The lease directory of one subnet.
pub struct Leases {
    dir: PathBuf,
    subnet: Subnet,
}

impl Leases {
    /// Leases kept in `dir` for addresses of `subnet`.
    pub fn new(dir: PathBuf, subnet: Subnet) -> Leases {
        Leases { dir, subnet }
    }

    fn err(&self, source: std::io::Error) -> NetError {
        NetError::Leases {
            path: self.dir.clone(),
            source,
        }
    }

    /// Takes a free address for `owner`. The search starts at a point
    /// derived from the owner so consecutive creates rarely contend.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, NetError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.err(e))?;
        let usable = self.subnet.size() - 3; // network, gateway, broadcast
        let start = owner
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
            % usable;
        for i in 0..usable {
            let Some(ip) = self.subnet.nth(2 + (start + i) % usable) else {
                continue;
            };
            let path = self.dir.join(ip.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes()).map_err(|e| self.err(e))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.err(e)),
            }
        }
        Err(NetError::Exhausted(self.subnet))
    }

    /// Frees an address. Idempotent.
    pub fn release(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        if ip.is_unspecified() {
            return Ok(());
        }
        match std::fs::remove_file(self.dir.join(ip.to_string())) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Frees every address held by `owner`. Idempotent.
    pub fn release_owner(&self, owner: &str) -> Result<(), NetError> {
        for (ip, o) in self.all()? {
            if o == owner {
                self.release(ip)?;
            }
        }
        Ok(())
    }

    /// Every lease: address → owner.
    pub fn all(&self) -> Result<BTreeMap<Ipv4Addr, String>, NetError> {
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(self.err(e)),
        };
        for entry in entries.flatten() {
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if let Ok(owner) = std::fs::read_to_string(entry.path()) {
                out.insert(ip, owner);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_until_released_and_survive_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        let subnet: Subnet = "10.250.0.0/29".parse().unwrap(); // 5 usable
        let leases = Leases::new(dir.path().join("l"), subnet);
        let mut got = Vec::new();
        for i in 0..5 {
            let ip = leases.allocate(&format!("o{i}")).unwrap();
            assert!(subnet.is_sandbox_addr(ip), "{ip}");
            assert!(!got.contains(&ip));
            got.push(ip);
        }
        // A restarted process sees the same leases.
        let again = Leases::new(dir.path().join("l"), subnet);
        assert!(matches!(again.allocate("x"), Err(NetError::Exhausted(_))));
        again.release(got[2]).unwrap();
        again.release(got[2]).unwrap();
        assert_eq!(again.allocate("y").unwrap(), got[2]);
        again.release_owner("y").unwrap();
        assert!(!again.all().unwrap().contains_key(&got[2]));
    }
}
