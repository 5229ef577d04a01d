//! Address leases, one file per network. Callers hold the state lock, so a
//! read-modify-write here never races another hook.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::Network;
use crate::store::{fsutil, StateDir};
use crate::{validate, Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leases {
    /// Address -> container id.
    pub leases: BTreeMap<Ipv4Addr, String>,
    /// The last address handed out: allocation continues after it (as CNI
    /// host-local does) so a freed address is not reused at once, while
    /// stale conntrack entries or ARP caches may still point at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Ipv4Addr>,
}

impl Leases {
    /// Lease `requested`, or the next free address after `last`.
    pub fn allocate(
        &mut self,
        net: &Network,
        id: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        // One address per container and network: whatever `id` still holds
        // is left from an attempt that died before recording it.
        self.release(id);
        if let Some(ip) = requested {
            net.assignable(ip)
                .map_err(|why| Error::invalid("io.ocinet.ip", ip, why))?;
            if let Some(holder) = self.leases.get(&ip) {
                if holder != id {
                    return Err(Error::AddressInUse {
                        ip,
                        network: net.name.clone(),
                        holder: holder.clone(),
                    });
                }
            }
            self.leases.insert(ip, id.to_string());
            return Ok(ip);
        }
        let range = net.range();
        let first = u32::from(range.network());
        let last = u32::from(range.broadcast());
        let size = u64::from(last - first) + 1;
        let start = match self.last {
            Some(l) if range.contains(&l) => u32::from(l).wrapping_add(1),
            _ => first,
        };
        for step in 0..size {
            let offset = (u64::from(start.wrapping_sub(first)) + step) % size;
            let ip = Ipv4Addr::from(first + offset as u32);
            if net.assignable(ip).is_ok() && !self.leases.contains_key(&ip) {
                self.leases.insert(ip, id.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(Error::PoolExhausted {
            network: net.name.clone(),
            range: range.to_string(),
        })
    }

    /// Drop every lease `id` holds; returns whether any was held.
    pub fn release(&mut self, id: &str) -> bool {
        let before = self.leases.len();
        self.leases.retain(|_, holder| holder != id);
        before != self.leases.len()
    }
}

impl StateDir {
    fn leases_path(&self, network: &str) -> Result<PathBuf> {
        validate::name("network name", network)?;
        Ok(self.ipam_dir().join(format!("{network}.json")))
    }

    pub fn load_leases(&self, network: &str) -> Result<Leases> {
        Ok(fsutil::read_json(&self.leases_path(network)?)?.unwrap_or_default())
    }

    pub fn save_leases(&self, network: &str, leases: &Leases) -> Result<()> {
        fsutil::ensure_private_dir(&self.ipam_dir())?;
        let path = self.leases_path(network)?;
        if leases.leases.is_empty() && leases.last.is_none() {
            return fsutil::remove_if_exists(&path);
        }
        fsutil::write_json(&path, leases, fsutil::Durability::Runtime)
    }

    pub fn remove_leases(&self, network: &str) -> Result<()> {
        fsutil::remove_if_exists(&self.leases_path(network)?)
    }

    /// Networks that have a lease file.
    pub fn leased_networks(&self) -> Vec<String> {
        let mut out: Vec<String> = fsutil::json_files(&self.ipam_dir())
            .unwrap_or_default()
            .into_iter()
            .map(|(stem, _)| stem)
            .filter(|n| validate::name("network name", n).is_ok())
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(cidr: &str, range: Option<&str>) -> Network {
        Network::new(
            "t",
            cidr.parse().unwrap(),
            None,
            range.map(|r| r.parse().unwrap()),
            Some("br-t"),
            None,
            false,
        )
        .unwrap()
    }

    #[test]
    fn sequential_allocation_skips_reserved() {
        let n = net("10.1.0.0/29", None); // .1 gateway, .7 broadcast
        let mut l = Leases::default();
        let got: Vec<_> = (0..5)
            .map(|i| l.allocate(&n, &format!("c{i}"), None).unwrap())
            .collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 1, 0, h)).collect();
        assert_eq!(got, want);
        let e = l.allocate(&n, "c9", None).unwrap_err().to_string();
        assert!(e.contains("no address left in network t"), "{e}");
    }

    #[test]
    fn freed_address_is_not_reused_at_once() {
        let n = net("10.1.0.0/29", None);
        let mut l = Leases::default();
        let a = l.allocate(&n, "a", None).unwrap();
        l.allocate(&n, "b", None).unwrap();
        assert!(l.release("a"));
        assert!(!l.release("a"));
        let c = l.allocate(&n, "c", None).unwrap();
        assert_ne!(a, c);
        // Wraps around to the freed address once the rest is taken.
        for i in 0..2 {
            l.allocate(&n, &format!("x{i}"), None).unwrap();
        }
        assert_eq!(l.allocate(&n, "d", None).unwrap(), a);
    }

    #[test]
    fn a_container_holds_one_address_per_network() {
        let n = net("10.1.0.0/24", None);
        let mut l = Leases::default();
        l.allocate(&n, "a", None).unwrap();
        let again = l.allocate(&n, "a", None).unwrap();
        assert_eq!(l.leases.len(), 1);
        assert_eq!(l.leases.get(&again).map(String::as_str), Some("a"));
        let fixed = Ipv4Addr::new(10, 1, 0, 9);
        l.allocate(&n, "a", Some(fixed)).unwrap();
        assert_eq!(l.leases.keys().copied().collect::<Vec<_>>(), vec![fixed]);
    }

    #[test]
    fn static_requests() {
        let n = net("10.1.0.0/24", None);
        let mut l = Leases::default();
        let ip = Ipv4Addr::new(10, 1, 0, 50);
        assert_eq!(l.allocate(&n, "a", Some(ip)).unwrap(), ip);
        let e = l.allocate(&n, "b", Some(ip)).unwrap_err().to_string();
        assert!(
            e.contains("10.1.0.50") && e.contains("in use by container a"),
            "{e}"
        );
        for bad in ["10.1.0.1", "10.1.0.0", "10.1.0.255", "10.2.0.5"] {
            let e = l
                .allocate(&n, "b", Some(bad.parse().unwrap()))
                .unwrap_err()
                .to_string();
            assert!(e.contains("io.ocinet.ip") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn ip_range_limits_dynamic_allocation() {
        let n = net("10.1.0.0/24", Some("10.1.0.128/30"));
        let mut l = Leases::default();
        let got: Vec<_> = (0..4)
            .map(|i| l.allocate(&n, &format!("c{i}"), None).unwrap())
            .collect();
        assert_eq!(
            got,
            (128..=131)
                .map(|h| Ipv4Addr::new(10, 1, 0, h))
                .collect::<Vec<_>>()
        );
        assert!(l.allocate(&n, "z", None).is_err());
    }
}
