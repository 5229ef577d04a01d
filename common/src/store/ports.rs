//! Which container holds which host port: one symlink per claimed port
//! under `<state>/ports/`, named for the port and pointing at the holder,
//! `<container id>@<network>` (the network the ports are published from),
//! so a conflict check and a claim cost the same at 1 or
//! 1,000 containers (no file of every claim to parse and rewrite).
//!
//! A port published on every address is `<proto>-<port>`; one published on
//! one address is `<proto>-<port>.d/<address>`, so a claim on every address
//! finds the claims on single addresses it overlaps by listing one small
//! directory, usually absent. A range is one entry, `ranges/<proto>-<first>-
//! <last>` (or `...@<address>`): one symlink for 4,096 ports instead of
//! 4,096, each an inode to allocate (~300 µs apiece on a journal-less ext4
//! `/run` after many deletions). Every claim lists `ranges/` (absent unless
//! some container publishes a range), and a range still looks up each of
//! its ports, which is cheap, to find single claims, those an earlier
//! version made for a range included. Callers that change claims hold the
//! state lock: a check and the claim that follows it never race another
//! hook.

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::model::ports::{addresses_overlap, conflicts, Protocol};
use crate::model::{PortMapping, PortSpec};
use crate::store::entries::{drop_entry, holder_at, split_holder, take_entry, Taken};
use crate::store::{fsutil, legacy, Need, StateDir};
use crate::{Error, Result};

/// A host port held by a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub protocol: Protocol,
    /// The first port; `count` ports from here.
    pub host_port: u16,
    pub count: u16,
    /// `None`: every address of both families.
    pub host_ip: Option<IpAddr>,
    /// The holder's container id.
    pub holder: String,
    /// The network the holder publishes the ports from (`None`: a claim
    /// made before claims named it).
    pub network: Option<String>,
}

/// A holder as its entry names it.
type Holder = (String, Option<String>);

fn holder(raw: String) -> Holder {
    let (id, net) = split_holder(&raw);
    (id.to_string(), net.map(str::to_string))
}

impl Claim {
    fn of(m: &PortMapping, (holder, network): Holder) -> Self {
        Claim {
            protocol: m.protocol,
            host_port: m.host_port,
            count: 1,
            host_ip: m.host_ip,
            holder,
            network,
        }
    }

    fn of_range(s: &PortSpec, (holder, network): Holder) -> Self {
        Claim {
            protocol: s.protocol,
            host_port: s.host_port,
            count: s.count,
            host_ip: s.host_ip,
            holder,
            network,
        }
    }

    /// Whether `ports` (a record's) account for this claim: the same range,
    /// or for a single port, any port of them (ranges were claimed port by
    /// port before range entries).
    pub fn is_held_by(&self, ports: &[PortSpec]) -> bool {
        ports.iter().any(|s| {
            s.protocol == self.protocol
                && s.host_ip == self.host_ip
                && if self.count > 1 {
                    s.host_port == self.host_port && s.count == self.count
                } else {
                    s.mappings().any(|m| m.host_port == self.host_port)
                }
        })
    }

    /// Whether this claim and mapping `m` want one port.
    fn overlaps(&self, m: &PortMapping) -> bool {
        let last = u32::from(self.host_port) + u32::from(self.count) - 1;
        m.protocol == self.protocol
            && (u32::from(self.host_port)..=last).contains(&u32::from(m.host_port))
            && addresses_overlap(m.host_ip, self.host_ip)
    }

    fn as_mapping(&self) -> PortMapping {
        PortMapping {
            host_ip: self.host_ip,
            host_port: self.host_port,
            container_port: 0,
            protocol: self.protocol,
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = match self.host_ip {
            Some(IpAddr::V6(i)) => format!("[{i}]"),
            Some(i) => i.to_string(),
            None => "0.0.0.0".into(),
        };
        if self.count > 1 {
            let last = u32::from(self.host_port) + u32::from(self.count) - 1;
            write!(
                f,
                "{addr}:{}-{last}/{}",
                self.host_port,
                self.protocol.name()
            )
        } else {
            write!(f, "{addr}:{}/{}", self.host_port, self.protocol.name())
        }
    }
}

/// A wanted port and the claim of another container it overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub wanted: Claim,
    pub held: Claim,
}

#[derive(Debug, Clone)]
pub struct PortClaims {
    state: StateDir,
    dir: PathBuf,
    legacy: PathBuf,
}

impl StateDir {
    pub fn port_claims(&self) -> PortClaims {
        PortClaims {
            state: self.clone(),
            dir: self.ports_dir(),
            legacy: self.legacy_ports_path(),
        }
    }
}

impl PortClaims {
    fn all_addresses(&self, protocol: Protocol, port: u16) -> PathBuf {
        self.dir.join(format!("{}-{port}", protocol.name()))
    }

    fn one_address_dir(&self, protocol: Protocol, port: u16) -> PathBuf {
        self.dir.join(format!("{}-{port}.d", protocol.name()))
    }

    fn ranges_dir(&self) -> PathBuf {
        self.dir.join("ranges")
    }

    fn range_entry(&self, s: &PortSpec) -> PathBuf {
        let last = u32::from(s.host_port) + u32::from(s.count) - 1;
        let name = format!("{}-{}-{last}", s.protocol.name(), s.host_port);
        self.ranges_dir().join(match s.host_ip {
            None => name,
            Some(ip) => format!("{name}@{ip}"),
        })
    }

    /// Every range claim (`ranges/` is usually absent: one lstat).
    fn ranges(&self) -> Result<Vec<Claim>> {
        let dir = self.ranges_dir();
        let mut out = Vec::new();
        if !self.state.dir(&dir, Need::Existing)? {
            return Ok(out);
        }
        for e in fsutil::dir_entries(&dir)? {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let (ports, host_ip) = match name.split_once('@') {
                Some((p, ip)) => match ip.parse() {
                    Ok(ip) => (p.to_string(), Some(ip)),
                    Err(_) => continue,
                },
                None => (name, None),
            };
            let mut parts = ports.splitn(3, '-');
            let (Some(proto), Some(first), Some(last)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Some(protocol), Ok(first), Ok(last)) = (
                Protocol::from_name(proto),
                first.parse::<u16>(),
                last.parse::<u16>(),
            ) else {
                continue;
            };
            if last <= first {
                continue;
            }
            if let Some(raw) = holder_at(&self.state, &e.path())? {
                let (holder, network) = holder(raw);
                out.push(Claim {
                    protocol,
                    host_port: first,
                    count: last - first + 1,
                    host_ip,
                    holder,
                    network,
                });
            }
        }
        Ok(out)
    }

    fn entry(&self, m: &PortMapping) -> PathBuf {
        match m.host_ip {
            None => self.all_addresses(m.protocol, m.host_port),
            Some(ip) => self
                .one_address_dir(m.protocol, m.host_port)
                .join(ip.to_string()),
        }
    }

    /// The claims on single addresses of one port.
    fn single_address_claims(&self, protocol: Protocol, port: u16) -> Result<Vec<Claim>> {
        let mut out = Vec::new();
        let dir = self.one_address_dir(protocol, port);
        if !self.state.dir(&dir, Need::Existing)? {
            return Ok(out);
        }
        for e in fsutil::dir_entries(&dir)? {
            let Some(ip) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(raw) = holder_at(&self.state, &e.path())? {
                let (holder, network) = holder(raw);
                out.push(Claim {
                    protocol,
                    host_port: port,
                    count: 1,
                    host_ip: Some(ip),
                    holder,
                    network,
                });
            }
        }
        Ok(out)
    }

    /// Claims of containers other than `id` that overlap `ports`.
    pub fn overlaps(&self, id: &str, ports: &[PortSpec]) -> Result<Vec<Overlap>> {
        let _span = tracing::debug_span!("port_overlaps").entered();
        let ranges = self.ranges()?;
        let mut out = Vec::new();
        for m in ports.iter().flat_map(|s| s.mappings()) {
            let mut held = Vec::new();
            if let Some(raw) = holder_at(&self.state, &self.all_addresses(m.protocol, m.host_port))?
            {
                held.push(Claim::of(&PortMapping { host_ip: None, ..m }, holder(raw)));
            }
            match m.host_ip {
                // One address overlaps only its own entry, unless someone
                // holds the port on 0.0.0.0 or :: (entries beside it).
                Some(ip) if !ip.is_unspecified() => {
                    if let Some(raw) = holder_at(&self.state, &self.entry(&m))? {
                        held.push(Claim::of(&m, holder(raw)));
                    }
                    for wide in [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])] {
                        let w = PortMapping {
                            host_ip: Some(wide),
                            ..m
                        };
                        if let Some(raw) = holder_at(&self.state, &self.entry(&w))? {
                            held.push(Claim::of(&w, holder(raw)));
                        }
                    }
                }
                _ => held.extend(self.single_address_claims(m.protocol, m.host_port)?),
            }
            held.extend(ranges.iter().filter(|r| r.overlaps(&m)).cloned());
            out.extend(
                held.into_iter()
                    .filter(|c| c.holder != id && (c.count > 1 || conflicts(&m, &c.as_mapping())))
                    .map(|c| Overlap {
                        wanted: Claim::of(&m, (id.to_string(), None)),
                        held: c,
                    }),
            );
        }
        Ok(out)
    }

    /// Claim every port of `ports` for `id`, publishing them from
    /// `network`; ports it holds already are kept. Nothing is claimed when
    /// one is held by another container (the caller checked with
    /// `overlaps`, so that means the state changed under a lock it should
    /// hold).
    pub fn claim(&self, id: &str, network: &str, ports: &[PortSpec]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        legacy::unconverted(&self.legacy)?;
        self.take_all(id, Some(network), ports)
    }

    /// `claim` without the check for an unconverted old file (the
    /// conversion itself, which may not know the network).
    pub(crate) fn take_all(
        &self,
        id: &str,
        network: Option<&str>,
        ports: &[PortSpec],
    ) -> Result<()> {
        let _span = tracing::debug_span!("port_claim").entered();
        let mut made: Vec<&PortSpec> = Vec::new();
        let result = (|| {
            for s in ports {
                let (entry, wanted) = match s.count {
                    1 => {
                        let m = s
                            .mappings()
                            .next()
                            .ok_or_else(|| Error::invalid("ports", s, "has no port"))?;
                        (self.entry(&m), Claim::of(&m, (id.to_string(), None)))
                    }
                    _ => {
                        // One entry cannot collide with the single claims
                        // inside it: look for them (and other ranges).
                        if let Some(o) = self.overlaps(id, std::slice::from_ref(s))?.first() {
                            return Err(Error::Conflict(format!(
                                "host port {} is already published by container {}",
                                o.held, o.held.holder
                            )));
                        }
                        (
                            self.range_entry(s),
                            Claim::of_range(s, (id.to_string(), None)),
                        )
                    }
                };
                match take_entry(&self.state, &entry, id, network)? {
                    Taken::Made => made.push(s),
                    Taken::Already => {}
                    Taken::HeldBy(holder) => {
                        return Err(Error::Conflict(format!(
                            "host port {wanted} is already published by container {holder}"
                        )))
                    }
                }
            }
            Ok(())
        })();
        if result.is_err() {
            for s in made {
                let _ = self.release_spec(s, id);
            }
        }
        result
    }

    fn release_one(&self, m: &PortMapping, id: &str) -> Result<bool> {
        let dropped = drop_entry(&self.state, &self.entry(m), id)?;
        if dropped && m.host_ip.is_some() {
            // Gone with its last entry; another claim on the port keeps it.
            let dir = self.one_address_dir(m.protocol, m.host_port);
            if fs::remove_dir(&dir).is_ok() {
                self.state.forget(&dir);
            }
        }
        Ok(dropped)
    }

    /// Give back one entry of `ports`: a range's one entry, or, for a
    /// range claimed port by port (by an earlier version), each port's;
    /// how many entries `id` held.
    fn release_spec(&self, s: &PortSpec, id: &str) -> Result<usize> {
        if s.count > 1 && drop_entry(&self.state, &self.range_entry(s), id)? {
            return Ok(1);
        }
        let mut n = 0;
        for m in s.mappings() {
            n += usize::from(self.release_one(&m, id)?);
        }
        Ok(n)
    }

    /// Give back the ports of `ports` that `id` holds; how many entries it
    /// held (a range claimed whole is one).
    pub fn release(&self, id: &str, ports: &[PortSpec]) -> Result<usize> {
        let _span = tracing::debug_span!("port_release").entered();
        let mut n = 0;
        for s in ports {
            n += self.release_spec(s, id)?;
        }
        Ok(n)
    }

    /// Give back one claim, if its holder still holds it.
    pub fn release_claim(&self, c: &Claim) -> Result<bool> {
        if c.count > 1 {
            let spec = PortSpec {
                host_ip: c.host_ip,
                host_port: c.host_port,
                count: c.count,
                container_port: 0,
                protocol: c.protocol,
            };
            return drop_entry(&self.state, &self.range_entry(&spec), &c.holder);
        }
        self.release_one(&c.as_mapping(), &c.holder)
    }

    /// Every claim (for gc).
    pub fn list(&self) -> Result<Vec<Claim>> {
        let _span = tracing::debug_span!("state_read", dir = "ports").entered();
        let mut out = Vec::new();
        if !self.state.dir(&self.dir, Need::Existing)? {
            return Ok(out);
        }
        for e in fsutil::dir_entries(&self.dir)? {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let (base, single) = match name.strip_suffix(".d") {
                Some(b) => (b.to_string(), true),
                None => (name, false),
            };
            if base == "ranges" {
                continue;
            }
            let Some((proto, port)) = base.split_once('-') else {
                continue;
            };
            let (Some(protocol), Ok(port)) = (Protocol::from_name(proto), port.parse::<u16>())
            else {
                continue;
            };
            if single {
                out.extend(self.single_address_claims(protocol, port)?);
            } else if let Some(raw) = holder_at(&self.state, &e.path())? {
                let (holder, network) = holder(raw);
                out.push(Claim {
                    protocol,
                    host_port: port,
                    count: 1,
                    host_ip: None,
                    holder,
                    network,
                });
            }
        }
        out.extend(self.ranges()?);
        out.sort_by_key(|c| (c.protocol.number(), c.host_port, c.host_ip));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ports::parse_list;

    struct Scratch(StateDir);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("ocinet-ports-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            Scratch(StateDir::new(d))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(self.0.root());
        }
    }

    fn p(s: &str) -> Vec<PortSpec> {
        parse_list("p", s).unwrap()
    }

    impl PortSpec {
        fn with_port(self, host_port: u16) -> Self {
            PortSpec { host_port, ..self }
        }
    }

    fn holders(o: &[Overlap]) -> Vec<String> {
        o.iter()
            .map(|o| format!("{} {}", o.held, o.held.holder))
            .collect()
    }

    #[test]
    fn claims_overlap_by_address_family() {
        let s = Scratch::new("family");
        let c = s.0.port_claims();
        c.claim(
            "a",
            "n",
            &p("0.0.0.0:8080:80,[2001:db8::1]:8081:81,[::]:8082:82"),
        )
        .unwrap();
        // 0.0.0.0 is IPv4 only: an IPv6 address's port is free.
        assert!(c
            .overlaps("b", &p("[2001:db8::1]:8080:80"))
            .unwrap()
            .is_empty());
        assert_eq!(
            holders(&c.overlaps("b", &p("10.0.0.1:8080:80")).unwrap()),
            ["0.0.0.0:8080/tcp a"]
        );
        // A bare port is both families: it overlaps 0.0.0.0 and one IPv6 address.
        assert_eq!(
            holders(&c.overlaps("b", &p("8080:80")).unwrap()),
            ["0.0.0.0:8080/tcp a"]
        );
        assert_eq!(
            holders(&c.overlaps("b", &p("8081:80")).unwrap()),
            ["[2001:db8::1]:8081/tcp a"]
        );
        assert_eq!(
            holders(&c.overlaps("b", &p("[::]:8081:80")).unwrap()),
            ["[2001:db8::1]:8081/tcp a"]
        );
        assert!(c
            .overlaps("b", &p("[2001:db8::2]:8081:80,0.0.0.0:8081:80"))
            .unwrap()
            .is_empty());
        // [::] is every address of both families.
        for wanted in [
            "8082:80",
            "0.0.0.0:8082:80",
            "10.0.0.1:8082:80",
            "[2001:db8::2]:8082:80",
        ] {
            assert_eq!(
                holders(&c.overlaps("b", &p(wanted)).unwrap()),
                ["[::]:8082/tcp a"],
                "{wanted}"
            );
        }
        let e = c
            .claim("b", "n", &p("[::]:8082:80"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[::]:8082/tcp"), "{e}");
        assert_eq!(c.list().unwrap().len(), 3);
        assert_eq!(
            c.release(
                "a",
                &p("0.0.0.0:8080:80,[2001:db8::1]:8081:81,[::]:8082:82")
            )
            .unwrap(),
            3
        );
        assert!(c.list().unwrap().is_empty());
    }

    #[test]
    fn claims_overlap_by_protocol_port_and_address() {
        let s = Scratch::new("overlap");
        let c = s.0.port_claims();
        c.claim("a", "n", &p("8080:80,127.0.0.1:9000:90")).unwrap();
        assert_eq!(
            holders(&c.overlaps("b", &p("8080:81")).unwrap()),
            ["0.0.0.0:8080/tcp a"]
        );
        // Every address overlaps the one address claimed, and back.
        assert_eq!(
            holders(&c.overlaps("b", &p("9000:90")).unwrap()),
            ["127.0.0.1:9000/tcp a"]
        );
        assert_eq!(
            holders(&c.overlaps("b", &p("10.0.0.1:8080:80")).unwrap()),
            ["0.0.0.0:8080/tcp a"]
        );
        let free = p("8080:80/udp,127.0.0.2:9000:90");
        assert!(c.overlaps("b", &free).unwrap().is_empty());
        c.claim("b", "n", &free).unwrap();
        // Claiming one's own ports again is fine; releasing frees them.
        assert!(c.overlaps("a", &p("8080:80")).unwrap().is_empty());
        c.claim("a", "n", &p("8080:80")).unwrap();
        assert_eq!(c.release("a", &p("8080:80,127.0.0.1:9000:90")).unwrap(), 2);
        assert!(c.overlaps("c", &p("8080:80")).unwrap().is_empty());
        // b still holds 127.0.0.2:9000, so its directory stays.
        assert_eq!(
            holders(&c.overlaps("c", &p("9000:90")).unwrap()),
            ["127.0.0.2:9000/tcp b"]
        );
        assert_eq!(c.list().unwrap().len(), 2);
        assert_eq!(c.release("b", &free).unwrap(), 2);
        assert_eq!(
            fs::read_dir(&c.dir).unwrap().count(),
            0,
            "nothing left behind"
        );
    }

    #[test]
    fn a_refused_claim_claims_nothing() {
        let s = Scratch::new("refused");
        let c = s.0.port_claims();
        c.claim("a", "n", &p("8082:80")).unwrap();
        // Claimed behind the check's back: the claim names the holder and
        // takes back the ports it had made.
        let e = c
            .claim("b", "n", &p("8080-8083:80-83"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0.0.0.0:8082/tcp") && e.contains("container a"),
            "{e}"
        );
        assert_eq!(
            c.list()
                .unwrap()
                .iter()
                .map(|c| c.holder.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn list_and_release_a_single_claim() {
        let s = Scratch::new("list");
        let c = s.0.port_claims();
        c.claim("a", "n", &p("127.0.0.1:53:53/udp,2000-2001:20-21/sctp"))
            .unwrap();
        let all = c.list().unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|c| format!("{c} {} {:?}", c.holder, c.network))
            .collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:53/udp a Some(\"n\")",
                "0.0.0.0:2000-2001/sctp a Some(\"n\")"
            ]
        );
        for claim in &all {
            assert!(c.release_claim(claim).unwrap());
        }
        assert!(c.list().unwrap().is_empty());
    }

    #[test]
    fn a_claim_that_names_no_network_is_still_its_containers() {
        // As claims were made before they named the network.
        let s = Scratch::new("oldholder");
        let c = s.0.port_claims();
        fs::create_dir_all(&c.dir).unwrap();
        std::os::unix::fs::symlink("a", c.dir.join("tcp-8080")).unwrap();
        let all = c.list().unwrap();
        assert_eq!(
            (all[0].holder.as_str(), all[0].network.as_deref()),
            ("a", None)
        );
        // Claimed again by its holder: kept; by another: refused, naming it.
        c.claim("a", "n", &p("8080:80")).unwrap();
        let e = c.claim("b", "n", &p("8080:80")).unwrap_err().to_string();
        assert!(e.contains("by container a"), "{e}");
        assert_eq!(c.release("a", &p("8080:80")).unwrap(), 1);
        assert!(c.list().unwrap().is_empty());
    }

    #[test]
    fn a_range_is_one_entry_and_overlaps_like_its_ports() {
        let s = Scratch::new("ranges");
        let c = s.0.port_claims();
        c.claim("a", "n", &p("30000-30099:80-179")).unwrap();
        assert_eq!(fs::read_dir(c.ranges_dir()).unwrap().count(), 1);
        // A single port inside it, another range across its end, and one
        // address of it: all held by a.
        for wanted in ["30050:80", "30090-30110:80-100", "127.0.0.1:30000:80"] {
            assert_eq!(
                holders(&c.overlaps("b", &p(wanted)).unwrap())
                    .first()
                    .map(String::as_str),
                Some("0.0.0.0:30000-30099/tcp a"),
                "{wanted}"
            );
        }
        assert!(c
            .overlaps("b", &p("30100-30199:80-179,30050:80/udp"))
            .unwrap()
            .is_empty());
        // A range over a single claim is refused by claim itself, too.
        c.claim("b", "n", &p("40005:80")).unwrap();
        let e = c
            .claim("c", "n", &p("40000-40009:80-89"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0.0.0.0:40005/tcp") && e.contains("container b"),
            "{e}"
        );
        // Ranges on one address each do not meet.
        c.claim("d", "n", &p("127.0.0.1:50000-50009:80-89"))
            .unwrap();
        c.claim("e", "n", &p("127.0.0.2:50000-50009:80-89"))
            .unwrap();
        assert_eq!(
            holders(&c.overlaps("f", &p("50005:80")).unwrap()).len(),
            2,
            "every address overlaps both"
        );
        // gc's question: is a listed claim accounted for by its holder's ports?
        let range = c
            .list()
            .unwrap()
            .into_iter()
            .find(|x| x.holder == "a")
            .unwrap();
        assert!(range.is_held_by(&p("30000-30099:80-179")));
        assert!(!range.is_held_by(&p("30000-30098:80-178")));
        assert_eq!(c.release("a", &p("30000-30099:80-179")).unwrap(), 1);
        assert!(c.overlaps("b", &p("30050:80")).unwrap().is_empty());
    }

    #[test]
    fn a_range_claimed_port_by_port_by_an_earlier_version_is_released() {
        let s = Scratch::new("oldrange");
        let c = s.0.port_claims();
        let old = p("2000-2002:20-22");
        for m in old.iter().flat_map(|s| s.mappings()) {
            c.claim(
                "a",
                "n",
                &[PortSpec {
                    count: 1,
                    ..old[0].clone()
                }
                .with_port(m.host_port)],
            )
            .unwrap();
        }
        assert_eq!(c.list().unwrap().len(), 3);
        assert!(c.list().unwrap().iter().all(|x| x.is_held_by(&old)));
        assert_eq!(c.release("a", &old).unwrap(), 3);
        assert!(c.list().unwrap().is_empty());
    }
}
