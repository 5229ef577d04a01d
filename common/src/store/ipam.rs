//! Address leases, the way CNI's host-local keeps them: one entry (see
//! `entries`) per leased address under `<state>/ipam/<network>/`, named for
//! the address. One JSON file per network, parsed and rewritten whole on
//! every setup and teardown, cost 1.2 ms a setup at 1,000 containers (with
//! the port claims); this costs the same at 1 and at 1,000. Callers that
//! change leases hold the state lock. This is the host's implementation
//! of `crate::ipam::Ipam`, which is how callers reach it.
//!
//! Entries are per address, of either family (an IPv6 one is named by the
//! address's canonical text), so a pool never stores a subnet whole.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use ipnet::IpNet;

use crate::error::IoContext;
use crate::ipam::{Fill, Ipam};
use crate::model::Network;
use crate::store::entries::{drop_entry, holder_at, take_entry, Taken};
use crate::store::{fsutil, legacy, Need, StateDir};
use crate::{validate, Error, Result};

/// Where the next dynamic allocation starts: after the address handed out
/// last (as host-local does), so a freed address is not reused at once
/// while stale conntrack entries or ARP caches may still point at it.
/// One hint per family, each as wide as its longest address.
const LAST: &str = "last";
const LAST6: &str = "last6";

/// The hint file of `ip`'s family and the width its text is padded to.
fn hint_of(ip: IpAddr) -> (&'static str, usize) {
    match ip {
        IpAddr::V4(_) => (LAST, 15),
        IpAddr::V6(_) => (LAST6, 39),
    }
}

/// One network's leases.
#[derive(Debug, Clone)]
pub struct Pool {
    network: String,
    state: StateDir,
    dir: PathBuf,
    legacy: PathBuf,
}

impl StateDir {
    pub fn pool(&self, network: &str) -> Result<Pool> {
        validate::name("network name", network)?;
        Ok(Pool {
            network: network.to_string(),
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
    fn entry(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Lease `ip` to `id`: `None` when `id` holds it now, else its holder.
    pub fn take(&self, ip: IpAddr, id: &str) -> Result<Option<String>> {
        let _span = tracing::debug_span!("lease", %ip).entered();
        Ok(match take_entry(&self.state, &self.entry(ip), id, None)? {
            Taken::HeldBy(holder) => Some(holder),
            Taken::Made | Taken::Already => None,
        })
    }

    /// Lease `requested` (checked against `net`) to `id`.
    fn take_requested(
        &self,
        net: &Network,
        id: &str,
        requested: IpAddr,
        field: &str,
    ) -> Result<IpAddr> {
        net.assignable_ip(requested)
            .map_err(|why| Error::invalid(field, requested, why))?;
        match self.take(requested, id)? {
            None => Ok(requested),
            Some(holder) => Err(Error::AddressInUse {
                ip: requested,
                network: net.name.clone(),
                holder,
            }),
        }
    }

    /// The next free address of `net`'s IPv4 range after the last one
    /// handed out, leased to `id`. The range is walked address by address:
    /// an IPv4 one is at most 2^32 (and in practice a /16 or smaller);
    /// IPv6 leasing will search, not walk, its /64.
    fn take_free_ipv4(&self, net: &Network, id: &str, field: &str) -> Result<IpAddr> {
        let Some(v4) = net.v4() else {
            return Err(Error::invalid(
                field,
                &net.name,
                "the network has no IPv4 subnet",
            ));
        };
        let range = v4.range();
        let first = u32::from(range.network());
        let last = u32::from(range.broadcast());
        let size = u64::from(last - first) + 1;
        let start = match self.last(LAST) {
            Some(IpAddr::V4(l)) if range.contains(&l) => u32::from(l).wrapping_add(1),
            _ => first,
        };
        for step in 0..size {
            let offset = (u64::from(start.wrapping_sub(first)) + step) % size;
            let ip = Ipv4Addr::from(first + offset as u32);
            if net.assignable(ip).is_ok() && self.take(ip.into(), id)?.is_none() {
                return Ok(ip.into());
            }
        }
        Err(Error::PoolExhausted {
            network: net.name.clone(),
            range: range.to_string(),
        })
    }

    /// The next free address of `net`'s IPv6 range after the last one
    /// handed out, leased to `id`. Addresses are tried in order from
    /// there, wrapping at the range's end; each one tried is either free
    /// (and taken), or leased or reserved, so the search ends within
    /// leases + reserved + 1 steps, whatever the range's size (a /64 is
    /// never walked).
    fn take_free_ipv6(&self, net: &Network, id: &str) -> Result<Ipv6Addr> {
        let exhausted = || Error::PoolExhausted {
            network: net.name.clone(),
            range: net.v6().map(|v| v.range().to_string()).unwrap_or_default(),
        };
        let range = net.v6().ok_or_else(exhausted)?.range();
        match self.take_free_between(net, id, range.network().into(), range.broadcast().into())? {
            Some(IpAddr::V6(ip)) => Ok(ip),
            _ => Err(exhausted()),
        }
    }

    /// A free address of `first..=last` (one family), leased to `id`:
    /// tried in order from after the last one handed out, each either
    /// free (and taken), or leased or
    /// reserved, so at most leases + reserved + 1 are tried however large
    /// the interval (an IPv6 one is never walked). `None` when every
    /// address there is taken.
    fn take_free_between(
        &self,
        net: &Network,
        id: &str,
        first: IpAddr,
        last: IpAddr,
    ) -> Result<Option<IpAddr>> {
        let (lo, hi) = (addr_bits(first), addr_bits(last));
        if first.is_ipv4() != last.is_ipv4() || lo > hi {
            return Ok(None);
        }
        // From after the last address handed out when it is in here, as
        // the network's own search: a freed one is not reused at once.
        let hint = self.last(if first.is_ipv4() { LAST } else { LAST6 });
        let start = match hint.map(addr_bits) {
            Some(l)
                if hint.is_some_and(|h| h.is_ipv4() == first.is_ipv4())
                    && (lo..hi).contains(&l) =>
            {
                l + 1
            }
            _ => lo,
        };
        let size = (hi - lo).saturating_add(1);
        let taken = self.addresses_in_dir()?.len() as u128;
        let reserved = net.aux_addresses.len() as u128 + 4;
        let bound = size.min(taken + reserved);
        for step in 0..bound {
            let ip = bits_addr(first, lo + (start - lo + step) % size);
            if net.assignable_ip(ip).is_ok() && self.take(ip, id)?.is_none() {
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }

    fn last(&self, file: &str) -> Option<IpAddr> {
        let _span = tracing::debug_span!("state_read", file).entered();
        if !self.state.dir(&self.dir, Need::Existing).ok()? {
            return None;
        }
        let mut text = String::new();
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.dir.join(file))
            .and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut text))
            .ok()?;
        text.trim().parse().ok()
    }

    /// Whether ipam/ (where an old-layout file would be) is there, checked.
    fn old_leases_dir_ok(&self) -> Result<bool> {
        match self.legacy.parent() {
            Some(ipam) => self.state.dir(ipam, Need::Existing),
            None => Ok(false),
        }
    }

    /// The leases of an old-layout file not yet converted (IPv4 only: the
    /// only family that layout had).
    fn old_leases(&self) -> Result<Option<BTreeMap<IpAddr, String>>> {
        if !self.old_leases_dir_ok()? {
            return Ok(None);
        }
        Ok(legacy::read_leases(&self.legacy)?.map(|old| {
            old.leases
                .into_iter()
                .map(|(ip, holder)| (IpAddr::V4(ip), holder))
                .collect()
        }))
    }

    fn addresses_in_dir(&self) -> Result<Vec<IpAddr>> {
        let _span = tracing::debug_span!("state_read", dir = %self.dir.display()).entered();
        if !self.state.dir(&self.dir, Need::Existing)? {
            return Ok(Vec::new());
        }
        let mut out: Vec<IpAddr> = fsutil::dir_entries(&self.dir)?
            .into_iter()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort();
        Ok(out)
    }
}

impl Ipam for Pool {
    fn network(&self) -> &str {
        &self.network
    }

    /// Lease `requested`, or the next free address after the last one
    /// handed out. An address `id` already holds counts as free for it: a
    /// hook killed after leasing and before recording finds its own lease
    /// again (the last address is remembered only once the record exists).
    fn allocate(
        &self,
        net: &Network,
        id: &str,
        requested: Option<IpAddr>,
        field: &str,
    ) -> Result<IpAddr> {
        let _span = tracing::debug_span!("allocate", network = %net.name).entered();
        // Checks ipam/ before the old-layout file in it is looked at.
        self.state.dir(&self.dir, Need::Create)?;
        legacy::unconverted(&self.legacy)?;
        match requested {
            Some(ip) => self.take_requested(net, id, ip, field),
            None => self.take_free_ipv4(net, id, field),
        }
    }

    fn allocate6(
        &self,
        net: &Network,
        id: &str,
        requested: Option<Ipv6Addr>,
        field: &str,
    ) -> Result<Ipv6Addr> {
        let _span = tracing::debug_span!("allocate6", network = %net.name).entered();
        self.state.dir(&self.dir, Need::Create)?;
        legacy::unconverted(&self.legacy)?;
        match requested {
            Some(ip) => self.take_requested(net, id, ip.into(), field).map(|_| ip),
            None => self.take_free_ipv6(net, id),
        }
    }

    fn allocate_between(
        &self,
        net: &Network,
        id: &str,
        first: IpAddr,
        last: IpAddr,
    ) -> Result<Option<IpAddr>> {
        let _span =
            tracing::debug_span!("allocate_between", network = %net.name, %first, %last).entered();
        self.state.dir(&self.dir, Need::Create)?;
        legacy::unconverted(&self.legacy)?;
        self.take_free_between(net, id, first, last)
    }

    /// Written in place, not through a renamed temporary file: it is a
    /// hint, read under the lock and checked on reading, and a wrong value
    /// only moves where the search starts. Fixed width, so a shorter
    /// address overwrites all of a longer one.
    fn remember_last(&self, ip: IpAddr) -> Result<()> {
        let (file, width) = hint_of(ip);
        let _span = tracing::debug_span!("state_write", file).entered();
        let path = self.dir.join(file);
        self.state.dir(&self.dir, Need::Create)?;
        let f = fsutil::open_nofollow(
            &path,
            fs::OpenOptions::new().write(true).create(true).mode(0o600),
            0,
        )?;
        // Written in place, so not through a second name.
        fsutil::check_own_file(&f, &path)?;
        f.write_all_at(format!("{:<width$}\n", ip.to_string()).as_bytes(), 0)
            .at(&path)
    }

    /// One readlink.
    fn holder(&self, ip: IpAddr) -> Result<Option<String>> {
        holder_at(&self.state, &self.entry(ip))
    }

    fn release(&self, ip: IpAddr, id: &str) -> Result<bool> {
        let _span = tracing::debug_span!("unlease", %ip).entered();
        drop_entry(&self.state, &self.entry(ip), id)
    }

    /// Reads an old-layout file not yet converted, for readers that hold
    /// no lock.
    fn leases(&self) -> Result<BTreeMap<IpAddr, String>> {
        if let Some(old) = self.old_leases()? {
            return Ok(old);
        }
        let mut out = BTreeMap::new();
        for ip in self.addresses_in_dir()? {
            if let Some(holder) = holder_at(&self.state, &self.entry(ip))? {
                out.insert(ip, holder);
            }
        }
        Ok(out)
    }

    fn addresses(&self) -> Result<Vec<IpAddr>> {
        if let Some(old) = self.old_leases()? {
            return Ok(old.into_keys().collect());
        }
        self.addresses_in_dir()
    }

    /// The range's size less its network, broadcast and gateway addresses
    /// and the leases in it; static addresses outside `--ip-range` take
    /// nothing from the range's free pool.
    fn fill(&self, net: &Network) -> Result<Fill> {
        let Some(v4) = net.v4() else {
            return Ok(Fill {
                allocated: 0,
                free: 0,
            });
        };
        let reserved = [v4.subnet.network(), v4.subnet.broadcast(), v4.gateway].map(IpAddr::V4);
        Ok(fill_of(
            net,
            IpNet::V4(v4.range()),
            &reserved,
            &self.addresses()?,
        ))
    }

    fn fill6(&self, net: &Network) -> Result<Option<Fill>> {
        let Some(v6) = net.v6() else {
            return Ok(None);
        };
        let reserved = [v6.subnet.network(), v6.gateway].map(IpAddr::V6);
        Ok(Some(fill_of(
            net,
            IpNet::V6(v6.range()),
            &reserved,
            &self.addresses()?,
        )))
    }

    fn remove(&self) -> Result<()> {
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

/// How full `range` is: its size (saturating at `u64::MAX` for 2^64
/// addresses or more) less `reserved`, the network's auxiliary and
/// resolver addresses and the `leased` addresses in it; `allocated`
/// counts every lease of the range's family.
fn fill_of(net: &Network, range: IpNet, reserved: &[IpAddr], leased: &[IpAddr]) -> Fill {
    let bits = if range.addr().is_ipv4() { 32 } else { 128 };
    let size = 1u128
        .checked_shl(bits - u32::from(range.prefix_len()))
        .unwrap_or(u128::MAX);
    let held: std::collections::BTreeSet<IpAddr> = reserved
        .iter()
        .copied()
        .chain(net.aux_addresses.values().copied())
        .chain(net.dns_address().map(IpAddr::V4))
        .chain(leased.iter().copied())
        .filter(|a| range.contains(a))
        .collect();
    let family = |ip: &&IpAddr| ip.is_ipv4() == range.addr().is_ipv4();
    Fill {
        allocated: leased.iter().filter(family).count() as u64,
        free: u64::try_from(size.saturating_sub(held.len() as u128)).unwrap_or(u64::MAX),
    }
}

/// An address as a number, for interval arithmetic of either family.
fn addr_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `like`'s family numbered `bits`.
fn bits_addr(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
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
    fn lease(p: &Pool, n: &Network, id: &str) -> Result<IpAddr> {
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
        let want: Vec<IpAddr> = (2..=6).map(|h| Ipv4Addr::new(10, 1, 0, h).into()).collect();
        assert_eq!(got, want);
        let e = lease(&p, &n, "c9").unwrap_err().to_string();
        assert!(e.contains("no address left in network t"), "{e}");
        assert_eq!(
            p.leases().unwrap().get(&want[2]).map(String::as_str),
            Some("c2")
        );
    }

    #[test]
    fn ipv6_leases_are_searched_not_walked_and_skip_reserved() {
        let s = Scratch::new("v6");
        let p = s.pool();
        let mut n = net("10.1.0.0/24", None).with_ipv6("fd00:1::/64".parse().unwrap(), None, None);
        n.aux_addresses
            .insert("r".into(), "fd00:1::3".parse().unwrap());
        let mut got = Vec::new();
        for i in 0..3 {
            let ip = p
                .allocate6(&n, &format!("c{i}"), None, "io.ocinet.ip6")
                .unwrap();
            p.remember_last(ip.into()).unwrap();
            got.push(ip.to_string());
        }
        // ::1 is the gateway, ::3 an aux address.
        assert_eq!(got, ["fd00:1::2", "fd00:1::4", "fd00:1::5"]);
        let e = p
            .allocate6(&n, "x", Some("fd00:1::4".parse().unwrap()), "io.ocinet.ip6")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fd00:1::4") && e.contains("c1"), "{e}");
        for (bad, why) in [
            ("fd00:2::5", "outside"),
            ("fd00:1::1", "gateway"),
            ("fd00:1::", "network"),
        ] {
            let e = p
                .allocate6(&n, "x", Some(bad.parse().unwrap()), "io.ocinet.ip6")
                .unwrap_err()
                .to_string();
            assert!(e.contains("io.ocinet.ip6") && e.contains(why), "{bad}: {e}");
        }
        let f = p.fill6(&n).unwrap().unwrap();
        assert_eq!(f.allocated, 3);
        // 2^64 less the network address, the gateway, the auxiliary
        // address and the three leases.
        assert_eq!(f.free, u64::MAX - 5);
        // A full /120 range is exhausted after its 254 hosts, found without
        // walking further than the leases.
        let small = net("10.2.0.0/24", None).with_ipv6("fd00:2::/120".parse().unwrap(), None, None);
        let s2 = Scratch::new("v6full");
        let p2 = s2.pool();
        for i in 0..254 {
            let ip = p2.allocate6(&small, &format!("c{i}"), None, "f").unwrap();
            p2.remember_last(ip.into()).unwrap();
        }
        let e = p2
            .allocate6(&small, "last", None, "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no address left"), "{e}");
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
        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 50));
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
    fn an_ipv6_request_on_an_ipv4_network_is_refused_and_nothing_is_leased() {
        let s = Scratch::new("v6");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        let e = p
            .allocate(&n, "a", "fd00::5".parse().ok(), "io.ocinet.ip")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("io.ocinet.ip") && e.contains("fd00::5") && e.contains("no IPv6 subnet"),
            "{e}"
        );
        assert!(p.leases().unwrap().is_empty());
    }

    #[test]
    fn entries_of_either_family_are_leases() {
        // A per-address entry named by an IPv6 address is a lease like an
        // IPv4 one: the layout holds both families without a subnet walk.
        let s = Scratch::new("fam");
        let (p, n) = (s.pool(), net("10.1.0.0/24", None));
        let v4 = lease(&p, &n, "a").unwrap();
        let v6: IpAddr = "fd00:1::7".parse().unwrap();
        assert_eq!(p.take(v6, "a").unwrap(), None);
        assert_eq!(p.take(v6, "b").unwrap().as_deref(), Some("a"));
        assert!(fs::symlink_metadata(p.dir.join("fd00:1::7")).is_ok());
        assert_eq!(p.addresses().unwrap(), vec![v4, v6]);
        assert_eq!(p.holder(v6).unwrap().as_deref(), Some("a"));
        assert!(p.release(v6, "a").unwrap());
        assert_eq!(p.addresses().unwrap(), vec![v4]);
    }

    #[test]
    fn fill_counts_the_range_less_reserved_and_leased() {
        let s = Scratch::new("fill");
        let (p, n) = (s.pool(), net("10.1.0.0/29", None)); // 8, less .0 .1 .7
        assert_eq!(
            p.fill(&n).unwrap(),
            Fill {
                allocated: 0,
                free: 5
            }
        );
        lease(&p, &n, "a").unwrap();
        // A static address outside --ip-range takes nothing from it.
        let (q, r) = (
            s.0.pool("u").unwrap(),
            net("10.1.0.0/24", Some("10.1.0.128/30")),
        );
        q.allocate(&r, "s", "10.1.0.9".parse().ok(), "io.ocinet.ip")
            .unwrap();
        lease(&q, &r, "d").unwrap();
        assert_eq!(
            p.fill(&n).unwrap(),
            Fill {
                allocated: 1,
                free: 4
            }
        );
        assert_eq!(
            q.fill(&r).unwrap(),
            Fill {
                allocated: 2,
                free: 3
            }
        );
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
                .map(|h| Ipv4Addr::new(10, 1, 0, h).into())
                .collect::<Vec<IpAddr>>()
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
        assert_eq!(b, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 4)));
        assert_eq!(
            p.leases()
                .unwrap()
                .get(&Ipv4Addr::new(10, 1, 0, 3).into())
                .map(String::as_str),
            Some("?")
        );
        // A longer address remembered before a shorter one leaves no tail.
        p.remember_last(Ipv4Addr::new(10, 1, 0, 200).into())
            .unwrap();
        p.remember_last(Ipv4Addr::new(10, 1, 0, 9).into()).unwrap();
        assert_eq!(p.last(LAST), Some(Ipv4Addr::new(10, 1, 0, 9).into()));
        // Each family has its own hint, as wide as its longest address.
        p.remember_last("fd00::1:2:3:4:5:6".parse().unwrap())
            .unwrap();
        p.remember_last("fd00::9".parse().unwrap()).unwrap();
        assert_eq!(p.last(LAST6), "fd00::9".parse().ok());
        assert_eq!(p.last(LAST), Some(Ipv4Addr::new(10, 1, 0, 9).into()));
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
        let as_ips: BTreeMap<IpAddr, String> = old
            .leases
            .iter()
            .map(|(ip, h)| (IpAddr::V4(*ip), h.clone()))
            .collect();
        // Readers without the lock see the old file as it is.
        assert_eq!(p.leases().unwrap(), as_ips);
        assert_eq!(s.0.leased_networks().unwrap(), vec!["t".to_string()]);
        let lock = StateLock::acquire(&s.0.lock_file()).unwrap();
        let (done, failed) = s.0.migrate_legacy(&lock);
        assert_eq!((done.len(), failed.len()), (1, 0));
        assert_eq!(s.0.migrate_legacy(&lock).0, Vec::<PathBuf>::new());
        assert_eq!(p.leases().unwrap(), as_ips);
        assert_eq!(
            lease(&p, &n, "new").unwrap(),
            IpAddr::V4(Ipv4Addr::new(10, 1, 0, 8))
        );
        assert!(p.release(Ipv4Addr::new(10, 1, 0, 7).into(), "old").unwrap());
    }
}
