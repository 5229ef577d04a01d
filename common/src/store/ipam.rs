//! Address leases, the way CNI's host-local keeps them: one entry (see
//! `entries`) per leased address under `<state>/ipam/<network>/`, named for
//! the address. One JSON file per network, parsed and rewritten whole on
//! every setup and teardown, cost 1.2 ms a setup at 1,000 containers (with
//! the port claims); this costs the same at 1 and at 1,000. Callers that
//! change leases hold the state lock.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::error::IoContext;
use crate::model::Network;
use crate::store::entries::{drop_entry, holder_at, take_entry, Taken};
use crate::store::{fsutil, legacy, Need, StateDir};
use crate::{validate, Error, Result};

/// Where the next dynamic allocation starts: after the address handed out
/// last (as host-local does), so a freed address is not reused at once
/// while stale conntrack entries or ARP caches may still point at it.
const LAST: &str = "last";

/// One network's leases.
#[derive(Debug, Clone)]
pub struct Pool {
    state: StateDir,
    dir: PathBuf,
    legacy: PathBuf,
}

impl StateDir {
    pub fn pool(&self, network: &str) -> Result<Pool> {
        validate::name("network name", network)?;
        Ok(Pool {
            state: self.clone(),
            dir: self.ipam_dir().join(network),
            legacy: self.legacy_leases_path(network),
        })
    }

    /// Networks that have leases (or had: an empty pool keeps its directory
    /// until the network is removed).
    pub fn leased_networks(&self) -> Result<Vec<String>> {
        let dir = self.ipam_dir();
        if !self.dir(&dir, Need::Existing)? {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = fsutil::dir_entries(&dir)?
            .into_iter()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let old_file = e.file_type().is_ok_and(|t| t.is_file());
                let name = name
                    .strip_suffix(".json")
                    .filter(|_| old_file)
                    .map(str::to_string)
                    .unwrap_or(name);
                validate::name("network name", &name)
                    .is_ok()
                    .then_some(name)
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl Pool {
    fn entry(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Lease `ip` to `id`: `None` when `id` holds it now, else its holder.
    pub fn take(&self, ip: Ipv4Addr, id: &str) -> Result<Option<String>> {
        let _span = tracing::debug_span!("lease", %ip).entered();
        Ok(match take_entry(&self.state, &self.entry(ip), id, None)? {
            Taken::HeldBy(holder) => Some(holder),
            Taken::Made | Taken::Already => None,
        })
    }

    /// Lease `requested`, or the next free address after the last one
    /// handed out. An address `id` already holds counts as free for it: a
    /// hook killed after leasing and before recording finds its own lease
    /// again (the last address is remembered only once the record exists).
    pub fn allocate(
        &self,
        net: &Network,
        id: &str,
        requested: Option<Ipv4Addr>,
        field: &str,
    ) -> Result<Ipv4Addr> {
        let _span = tracing::debug_span!("allocate", network = %net.name).entered();
        // Checks ipam/ before the old-layout file in it is looked at.
        self.state.dir(&self.dir, Need::Create)?;
        legacy::unconverted(&self.legacy)?;
        if let Some(ip) = requested {
            net.assignable(ip)
                .map_err(|why| Error::invalid(field, ip, why))?;
            return match self.take(ip, id)? {
                None => Ok(ip),
                Some(holder) => Err(Error::AddressInUse {
                    ip,
                    network: net.name.clone(),
                    holder,
                }),
            };
        }
        let range = net.range();
        let first = u32::from(range.network());
        let last = u32::from(range.broadcast());
        let size = u64::from(last - first) + 1;
        let start = match self.last() {
            Some(l) if range.contains(&l) => u32::from(l).wrapping_add(1),
            _ => first,
        };
        for step in 0..size {
            let offset = (u64::from(start.wrapping_sub(first)) + step) % size;
            let ip = Ipv4Addr::from(first + offset as u32);
            if net.assignable(ip).is_ok() && self.take(ip, id)?.is_none() {
                return Ok(ip);
            }
        }
        Err(Error::PoolExhausted {
            network: net.name.clone(),
            range: range.to_string(),
        })
    }

    /// Who holds `ip`, if anyone (one readlink).
    pub fn holder(&self, ip: Ipv4Addr) -> Result<Option<String>> {
        holder_at(&self.state, &self.entry(ip))
    }

    /// Give `ip` back if `id` holds it; whether it did.
    pub fn release(&self, ip: Ipv4Addr, id: &str) -> Result<bool> {
        let _span = tracing::debug_span!("unlease", %ip).entered();
        drop_entry(&self.state, &self.entry(ip), id)
    }

    /// Record where the next dynamic allocation starts. Written in place,
    /// not through a renamed temporary file: it is a hint, read under the
    /// lock and checked on reading, and a wrong value only moves where the
    /// search starts. Fixed width, so a shorter address overwrites all of
    /// a longer one.
    pub fn remember_last(&self, ip: Ipv4Addr) -> Result<()> {
        let _span = tracing::debug_span!("state_write", file = LAST).entered();
        let path = self.dir.join(LAST);
        self.state.dir(&self.dir, Need::Create)?;
        let f = fsutil::open_nofollow(
            &path,
            fs::OpenOptions::new().write(true).create(true).mode(0o600),
            0,
        )?;
        // Written in place, so not through a second name.
        fsutil::check_own_file(&f, &path)?;
        f.write_all_at(format!("{ip:<15}\n").as_bytes(), 0)
            .at(&path)
    }

    fn last(&self) -> Option<Ipv4Addr> {
        let _span = tracing::debug_span!("state_read", file = LAST).entered();
        if !self.state.dir(&self.dir, Need::Existing).ok()? {
            return None;
        }
        let mut text = String::new();
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.dir.join(LAST))
            .and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut text))
            .ok()?;
        text.trim().parse().ok()
    }

    /// Every lease: address -> holder. Reads an old-layout file not yet
    /// converted, for readers that hold no lock.
    pub fn leases(&self) -> Result<BTreeMap<Ipv4Addr, String>> {
        if let Some(old) = self.old_leases()? {
            return Ok(old.leases);
        }
        let mut out = BTreeMap::new();
        for ip in self.addresses_in_dir()? {
            if let Some(holder) = holder_at(&self.state, &self.entry(ip))? {
                out.insert(ip, holder);
            }
        }
        Ok(out)
    }

    /// The leased addresses, without reading who holds them.
    pub fn addresses(&self) -> Result<Vec<Ipv4Addr>> {
        if let Some(old) = self.old_leases()? {
            return Ok(old.leases.into_keys().collect());
        }
        self.addresses_in_dir()
    }

    /// Whether ipam/ (where an old-layout file would be) is there, checked.
    fn old_leases_dir_ok(&self) -> Result<bool> {
        match self.legacy.parent() {
            Some(ipam) => self.state.dir(ipam, Need::Existing),
            None => Ok(false),
        }
    }

    fn old_leases(&self) -> Result<Option<legacy::Leases>> {
        if !self.old_leases_dir_ok()? {
            return Ok(None);
        }
        legacy::read_leases(&self.legacy)
    }

    fn addresses_in_dir(&self) -> Result<Vec<Ipv4Addr>> {
        let _span = tracing::debug_span!("state_read", dir = %self.dir.display()).entered();
        if !self.state.dir(&self.dir, Need::Existing)? {
            return Ok(Vec::new());
        }
        let mut out: Vec<Ipv4Addr> = fsutil::dir_entries(&self.dir)?
            .into_iter()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Forget the network's leases (`network rm`, with nothing attached).
    pub fn remove(&self) -> Result<()> {
        // A symlink there is refused, not removed: someone put it there,
        // and the error names it for them.
        let exists = self.state.dir(&self.dir, Need::Existing)?;
        self.state.forget(&self.dir);
        if exists {
            match fs::remove_dir_all(&self.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&self.dir, e)),
            }
        }
        if self.old_leases_dir_ok()? && legacy::is_old_file(&self.legacy) {
            fsutil::remove_if_exists(&self.legacy)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lock::StateLock;

    struct Scratch(StateDir);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("ocinet-ipam-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            Scratch(StateDir::new(d))
        }
        fn pool(&self) -> Pool {
            self.0.pool("t").unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(self.0.root());
        }
    }

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

    /// Allocate as setup does: lease, then (once recorded) remember it.
    fn lease(p: &Pool, n: &Network, id: &str) -> Result<Ipv4Addr> {
        let ip = p.allocate(n, id, None, "io.ocinet.ip")?;
        p.remember_last(ip)?;
        Ok(ip)
    }

    #[test]
    fn sequential_allocation_skips_reserved() {
        let s = Scratch::new("seq");
        let (p, n) = (s.pool(), net("10.1.0.0/29", None)); // .1 gateway, .7 broadcast
        let got: Vec<_> = (0..5)
            .map(|i| lease(&p, &n, &format!("c{i}")).unwrap())
            .collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 1, 0, h)).collect();
        assert_eq!(got, want);
        let e = lease(&p, &n, "c9").unwrap_err().to_string();
        assert!(e.contains("no address left in network t"), "{e}");
        assert_eq!(
            p.leases().unwrap().get(&want[2]).map(String::as_str),
            Some("c2")
        );
    }

    #[test]
    fn freed_address_is_not_reused_at_once() {
        let s = Scratch::new("reuse");
        let (p, n) = (s.pool(), net("10.1.0.0/29", None));
        let a = lease(&p, &n, "a").unwrap();
        lease(&p, &n, "b").unwrap();
        assert!(p.release(a, "a").unwrap());
        assert!(!p.release(a, "a").unwrap());
        let c = lease(&p, &n, "c").unwrap();
        assert_ne!(a, c);
        // Wraps around to the freed address once the rest is taken.
        for i in 0..2 {
            lease(&p, &n, &format!("x{i}")).unwrap();
        }
        assert_eq!(lease(&p, &n, "d").unwrap(), a);
    }

    #[test]
    fn only_the_holder_releases_and_a_retry_finds_its_own_lease() {
        let s = Scratch::new("own");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        let a = lease(&p, &n, "a").unwrap();
        assert!(!p.release(a, "b").unwrap());
        assert_eq!(p.addresses().unwrap(), vec![a]);
        // Leased but never remembered (the hook died before recording):
        // the next attempt for the same container gets the same address.
        let b = p.allocate(&n, "b", None, "io.ocinet.ip").unwrap();
        assert_eq!(p.allocate(&n, "b", None, "io.ocinet.ip").unwrap(), b);
        assert_eq!(p.leases().unwrap().len(), 2);
    }

    #[test]
    fn static_requests() {
        let s = Scratch::new("static");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        let ip = Ipv4Addr::new(10, 1, 0, 50);
        assert_eq!(p.allocate(&n, "a", Some(ip), "io.ocinet.ip").unwrap(), ip);
        assert_eq!(p.allocate(&n, "a", Some(ip), "io.ocinet.ip").unwrap(), ip);
        let e = p
            .allocate(&n, "b", Some(ip), "io.ocinet.ip")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.1.0.50") && e.contains("in use by container a"),
            "{e}"
        );
        for bad in ["10.1.0.1", "10.1.0.0", "10.1.0.255", "10.2.0.5"] {
            let e = p
                .allocate(&n, "b", Some(bad.parse().unwrap()), "io.ocinet.ip")
                .unwrap_err()
                .to_string();
            assert!(e.contains("io.ocinet.ip") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn ip_range_limits_dynamic_allocation() {
        let s = Scratch::new("range");
        let (p, n) = (s.pool(), net("10.1.0.0/24", Some("10.1.0.128/30")));
        let got: Vec<_> = (0..4)
            .map(|i| lease(&p, &n, &format!("c{i}")).unwrap())
            .collect();
        assert_eq!(
            got,
            (128..=131)
                .map(|h| Ipv4Addr::new(10, 1, 0, h))
                .collect::<Vec<_>>()
        );
        assert!(lease(&p, &n, "z").is_err());
    }

    #[test]
    fn a_garbled_hint_or_a_foreign_entry_is_survived() {
        let s = Scratch::new("hint");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        lease(&p, &n, "a").unwrap();
        fs::write(p.dir.join(LAST), "not an address").unwrap();
        fs::write(p.dir.join("10.1.0.3"), "a plain file").unwrap();
        let b = lease(&p, &n, "b").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 1, 0, 4));
        assert_eq!(
            p.leases()
                .unwrap()
                .get(&Ipv4Addr::new(10, 1, 0, 3))
                .map(String::as_str),
            Some("?")
        );
        // A longer address remembered before a shorter one leaves no tail.
        p.remember_last(Ipv4Addr::new(10, 1, 0, 200)).unwrap();
        p.remember_last(Ipv4Addr::new(10, 1, 0, 9)).unwrap();
        assert_eq!(p.last(), Some(Ipv4Addr::new(10, 1, 0, 9)));
    }

    #[test]
    fn a_network_named_like_an_old_file_is_not_one() {
        let s = Scratch::new("dotjson");
        let n = Network::new(
            "web.json",
            "10.2.0.0/24".parse().unwrap(),
            None,
            None,
            Some("br-w"),
            None,
            false,
        )
        .unwrap();
        let p = s.0.pool("web.json").unwrap();
        let ip = lease(&p, &n, "a").unwrap();
        let lock = StateLock::acquire(&s.0.lock_file()).unwrap();
        let (done, failed) = s.0.migrate_legacy(&lock);
        assert!(done.is_empty() && failed.is_empty(), "{done:?} {failed:?}");
        assert_eq!(s.0.leased_networks().unwrap(), vec!["web.json".to_string()]);
        let web = s.0.pool("web").unwrap();
        assert!(web.leases().unwrap().is_empty());
        web.remove().unwrap();
        assert_eq!(p.addresses().unwrap(), vec![ip]);
    }

    #[test]
    fn an_old_file_that_cannot_be_converted_stops_only_what_it_holds() {
        let s = Scratch::new("badold");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        let held = lease(&p, &n, "a").unwrap();
        fs::write(s.0.legacy_leases_path("t"), "{\"leases\": [").unwrap();
        fs::write(s.0.legacy_ports_path(), "not json").unwrap();
        let lock = StateLock::acquire(&s.0.lock_file()).unwrap();
        let (done, failed) = s.0.migrate_legacy(&lock);
        assert_eq!((done.len(), failed.len()), (0, 2), "{failed:?}");
        let e = p
            .allocate(&n, "b", None, "io.ocinet.ip")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.json") && e.contains("previous state layout"),
            "{e}"
        );
        let claims = s.0.port_claims();
        let ports = crate::model::ports::parse_list("p", "8080:80").unwrap();
        let e = claims.claim("b", "n", &ports).unwrap_err().to_string();
        assert!(e.contains("ports.json"), "{e}");
        // Giving back still works, and so does another network.
        assert!(p.release(held, "a").unwrap());
        let other = s.0.pool("u").unwrap();
        let mut u = net("10.3.0.0/24", None);
        u.name = "u".into();
        assert!(other.allocate(&u, "c", None, "io.ocinet.ip").is_ok());
    }

    #[test]
    fn the_old_layout_is_converted_once() {
        let s = Scratch::new("legacy");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        fs::create_dir_all(s.0.ipam_dir()).unwrap();
        let old = legacy::Leases {
            leases: [(Ipv4Addr::new(10, 1, 0, 7), "old".to_string())].into(),
            last: Some(Ipv4Addr::new(10, 1, 0, 7)),
        };
        fs::write(
            s.0.legacy_leases_path("t"),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        // Readers without the lock see the old file as it is.
        assert_eq!(p.leases().unwrap(), old.leases);
        assert_eq!(s.0.leased_networks().unwrap(), vec!["t".to_string()]);
        let lock = StateLock::acquire(&s.0.lock_file()).unwrap();
        let (done, failed) = s.0.migrate_legacy(&lock);
        assert_eq!((done.len(), failed.len()), (1, 0));
        assert_eq!(s.0.migrate_legacy(&lock).0, Vec::<PathBuf>::new());
        assert_eq!(p.leases().unwrap(), old.leases);
        assert_eq!(lease(&p, &n, "new").unwrap(), Ipv4Addr::new(10, 1, 0, 8));
        assert!(p.release(Ipv4Addr::new(10, 1, 0, 7), "old").unwrap());
    }
}
