//! Published ports, `docker run -p` style:
//! `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp|/sctp]`, an
//! IPv6 HOST_IP in brackets (`[fd00::1]:8080:80`).
//!
//! What the host address means: none (bare `8080:80`) is every address of
//! both families, IPv6 ones when the container has an IPv6 address (Docker
//! treats it so); `0.0.0.0` is every IPv4 address only; `[::]` is every
//! address of both families, as a socket bound to `::` is, and needs a
//! container with IPv6; anything else is that one address.
//!
//! IPv6 loopback is not the kernel's to forward (no route_localnet for
//! IPv6: netavark#790, podman#14491): `[::1]` and the `::1` side of bare
//! and `[::]` mappings are served by the port proxy (`ocinet-proxy`), not
//! by DNAT (see `loopback6`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The protocol named `name` (as `name()` spells it).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of a port list, ranges kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// `None`: every local address of both families; `0.0.0.0` and `::`
    /// are kept as written (see the module's comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// Number of ports in the range (1 for a single port).
    pub count: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// One published port, ranges expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// Each port of the range. The parser refuses a range past 65535; a
    /// record that says otherwise (edited by hand, corrupt) ends its range
    /// there rather than wrapping or panicking.
    pub fn mappings(&self) -> impl Iterator<Item = PortMapping> + '_ {
        (0..self.count).map_while(move |i| {
            Some(PortMapping {
                host_ip: self.host_ip,
                host_port: self.host_port.checked_add(i)?,
                container_port: self.container_port.checked_add(i)?,
                protocol: self.protocol,
            })
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        let range = |start: u16| {
            if self.count > 1 {
                format!("{start}-{}", start + (self.count - 1))
            } else {
                start.to_string()
            }
        };
        write!(
            f,
            "{}:{}/{}",
            range(self.host_port),
            range(self.container_port),
            self.protocol
        )
    }
}

/// Most ports one container may publish (each is a map element).
pub const MAX_PORTS: usize = 4096;

fn port(field: &str, entry: &str, s: &str) -> Result<u16> {
    let n: u32 = s
        .parse()
        .map_err(|_| Error::invalid(field, entry, format!("{s:?} is not a port number")))?;
    if n == 0 || n > 65535 {
        return Err(Error::invalid(
            field,
            entry,
            format!("port {n} is outside 1-65535"),
        ));
    }
    Ok(n as u16)
}

fn range(field: &str, entry: &str, s: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        None => {
            let p = port(field, entry, s)?;
            Ok((p, 1))
        }
        Some((a, b)) => {
            let (a, b) = (port(field, entry, a)?, port(field, entry, b)?);
            if b < a {
                return Err(Error::invalid(
                    field,
                    entry,
                    format!("range {a}-{b} is reversed"),
                ));
            }
            Ok((a, b - a + 1))
        }
    }
}

/// Parse one entry (no commas).
pub fn parse_entry(field: &str, entry: &str) -> Result<PortSpec> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(Error::invalid(field, entry, "empty port entry"));
    }
    let (body, protocol) = match entry.rsplit_once('/') {
        None => (entry, Protocol::Tcp),
        Some((b, p)) => (
            b,
            Protocol::from_name(p).ok_or_else(|| {
                Error::invalid(
                    field,
                    entry,
                    format!("protocol {p:?} is not tcp, udp or sctp"),
                )
            })?,
        ),
    };
    let (host_ip, ports) = host_address(field, entry, body)?;
    let parts: Vec<&str> = ports.split(':').collect();
    let (host, ctr) = match (host_ip, parts.as_slice()) {
        (_, [h, c]) => (*h, *c),
        (None, [ip, h, c]) => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| {
                Error::invalid(field, entry, format!("{ip:?} is not an IPv4 address"))
            })?;
            return finish(field, entry, Some(IpAddr::V4(ip)), h, c, protocol);
        }
        (None, [_, _, _, _, ..]) => {
            return Err(Error::invalid(
                field,
                entry,
                "an IPv6 host address is written in brackets, as [::1]:8080:80",
            ))
        }
        _ => {
            return Err(Error::invalid(
                field,
                entry,
                "expected [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]",
            ))
        }
    };
    finish(field, entry, host_ip, host, ctr, protocol)
}

/// A bracketed IPv6 host address at the start of `body`, and what follows
/// its colon; `(None, body)` when `body` does not start with a bracket.
fn host_address<'a>(field: &str, entry: &str, body: &'a str) -> Result<(Option<IpAddr>, &'a str)> {
    let Some(inner) = body.strip_prefix('[') else {
        return Ok((None, body));
    };
    let Some((addr, rest)) = inner.split_once(']') else {
        return Err(Error::invalid(
            field,
            entry,
            "the host address's bracket is not closed",
        ));
    };
    let Some(rest) = rest.strip_prefix(':') else {
        return Err(Error::invalid(
            field,
            entry,
            "expected [IPV6]:HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]",
        ));
    };
    if addr.is_empty() {
        return Err(Error::invalid(
            field,
            entry,
            "the brackets hold no address (every IPv6 address is [::])",
        ));
    }
    if addr.parse::<Ipv4Addr>().is_ok() {
        return Err(Error::invalid(
            field,
            entry,
            format!("brackets are for IPv6 addresses; write {addr} without them"),
        ));
    }
    let ip: Ipv6Addr = addr
        .parse()
        .map_err(|_| Error::invalid(field, entry, format!("{addr:?} is not an IPv6 address")))?;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Err(Error::invalid(
            field,
            entry,
            format!("{ip} is an IPv4-mapped address; write {v4} without brackets"),
        ));
    }
    Ok((Some(IpAddr::V6(ip)), rest))
}

fn finish(
    field: &str,
    entry: &str,
    host_ip: Option<IpAddr>,
    host: &str,
    ctr: &str,
    protocol: Protocol,
) -> Result<PortSpec> {
    let (host_port, count) = range(field, entry, host)?;
    let (container_port, ccount) = range(field, entry, ctr)?;
    if count != ccount {
        return Err(Error::invalid(
            field,
            entry,
            format!("host range has {count} ports but container range has {ccount}"),
        ));
    }
    Ok(PortSpec {
        host_ip,
        host_port,
        count,
        container_port,
        protocol,
    })
}

/// Parse a comma-separated list; refuses entries that publish the same host
/// port twice.
pub fn parse_list(field: &str, list: &str) -> Result<Vec<PortSpec>> {
    let mut out: Vec<PortSpec> = Vec::new();
    for entry in list.split(',') {
        let spec = parse_entry(field, entry)?;
        out.push(spec);
    }
    check_unique(field, &out)?;
    Ok(out)
}

pub fn check_unique(field: &str, specs: &[PortSpec]) -> Result<()> {
    let mut seen: Vec<PortMapping> = Vec::new();
    let total: usize = specs.iter().map(|s| usize::from(s.count)).sum();
    if total > MAX_PORTS {
        return Err(Error::invalid(
            field,
            format!("{total} ports"),
            format!("at most {MAX_PORTS} ports per container"),
        ));
    }
    let mut by: Vec<usize> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        for m in s.mappings() {
            if let Some(k) = seen.iter().position(|o| conflicts(o, &m)) {
                let o = &seen[k];
                let other = &specs[by[k]];
                let also = if by[k] == i {
                    String::new()
                } else {
                    format!(", also by {other}")
                };
                return Err(Error::invalid(
                    field,
                    s.to_string(),
                    format!(
                        "host port {}/{} is published twice{also}",
                        o.host_port, o.protocol
                    ),
                ));
            }
            seen.push(m);
            by.push(i);
        }
    }
    Ok(())
}

/// Two mappings claim the same host port: same protocol and port, and the
/// addresses overlap.
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && addresses_overlap(a.host_ip, b.host_ip)
}

/// Whether two host addresses of published ports share an address: none
/// (bare) and `::` stand for every address of both families (a bare port
/// is both families whether or not its container has IPv6 now, as in
/// Docker, so which family a host port is free in does not depend on
/// which container holds it), `0.0.0.0` for every IPv4 one.
pub fn addresses_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    let covers =
        |wide: IpAddr, other: IpAddr| wide.is_unspecified() && (wide.is_ipv6() || other.is_ipv4());
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a == b || covers(a, b) || covers(b, a),
    }
}

/// Whether a mapping on `host_ip` answers on the host's IPv6 addresses
/// through the kernel (DNAT, for a container that has one): not `[::1]`,
/// which the port proxy serves.
pub fn answers_ipv6(host_ip: Option<IpAddr>) -> bool {
    host_ip.is_none_or(|ip| ip.is_ipv6() && !ip.is_loopback())
}

/// How a mapping on `host_ip` answers on the host's `[::1]` (through the
/// port proxy), for a container with an IPv6 address (`has_ipv6`):
/// `Some(true)` written `[::1]` (whatever the container's families: the
/// proxy connects to its IPv4 address when it has no IPv6 one),
/// `Some(false)` bare or `[::]` on a container with IPv6 (as a socket
/// bound to `::` answers on `::1`), `None` not at all (an IPv4-only
/// container's bare port stays IPv4, as before). TCP and UDP only.
pub fn loopback6(host_ip: Option<IpAddr>, protocol: Protocol, has_ipv6: bool) -> Option<bool> {
    if protocol == Protocol::Sctp {
        return None;
    }
    match host_ip {
        Some(IpAddr::V6(ip)) if ip.is_loopback() => Some(true),
        None => has_ipv6.then_some(false),
        Some(IpAddr::V6(ip)) if ip.is_unspecified() => has_ipv6.then_some(false),
        _ => None,
    }
}

/// Whether a mapping on `host_ip` answers on the host's IPv4 addresses.
pub fn answers_ipv4(host_ip: Option<IpAddr>) -> bool {
    host_ip.is_none_or(|ip| ip.is_ipv4() || ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms() {
        let l = parse_list(
            "p",
            "8080:80, 127.0.0.1:5353:53/udp,9000-9002:9100-9102/sctp,0.0.0.0:443:8443",
        )
        .unwrap();
        assert_eq!(
            l[0],
            PortSpec {
                host_ip: None,
                host_port: 8080,
                count: 1,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        assert_eq!(l[1].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(l[1].protocol, Protocol::Udp);
        assert_eq!(l[2].count, 3);
        assert_eq!(
            l[2].mappings()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            vec![(9000, 9100), (9001, 9101), (9002, 9102)]
        );
        // Written 0.0.0.0: every IPv4 address, and only those.
        assert_eq!(l[3].host_ip, Some(Ipv4Addr::UNSPECIFIED.into()));
        assert_eq!(l[3].to_string(), "0.0.0.0:443:8443/tcp");
        assert_eq!(l[1].to_string(), "127.0.0.1:5353:53/udp");
        assert_eq!(l[2].to_string(), "9000-9002:9100-9102/sctp");
    }

    #[test]
    fn refuses_bad_entries_naming_them() {
        for (bad, why) in [
            ("80", "expected"),
            ("0:80", "outside 1-65535"),
            ("8080:70000", "outside 1-65535"),
            ("8080:80/icmp", "not tcp, udp or sctp"),
            ("x:80", "not a port number"),
            ("1.2.3:8080:80", "not an IPv4 address"),
            ("9002-9000:80-82", "reversed"),
            ("9000-9002:80-81", "3 ports but container range has 2"),
            ("8080:80,8080:81", "published twice"),
            ("127.0.0.1:8080:80,8080:81", "published twice"),
            ("8080:80,", "empty port entry"),
            ("1-65535:1-65535", "at most"),
        ] {
            let e = parse_list("io.ocinet.ports", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid io.ocinet.ports"), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = parse_list("p", "8081:80,127.0.0.1:8081:80")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"127.0.0.1:8081:80/tcp\"") && e.contains("also by 8081:80/tcp"),
            "{e}"
        );
        // Same port, different protocols or different host IPs: fine.
        parse_list("p", "53:53/udp,53:53/tcp,127.0.0.1:80:80,127.0.0.2:80:80").unwrap();
    }

    #[test]
    fn parses_ipv6_host_addresses_in_brackets() {
        let l = parse_list(
            "p",
            "[::]:8080:80,[fd00::1]:8081:81/udp,[2001:db8::1]:9000-9001:90-91",
        )
        .unwrap();
        assert_eq!(l[0].host_ip, Some(Ipv6Addr::UNSPECIFIED.into()));
        assert_eq!(l[1].host_ip, Some("fd00::1".parse().unwrap()));
        assert_eq!(l[1].protocol, Protocol::Udp);
        assert_eq!(l[2].count, 2);
        assert_eq!(l[0].to_string(), "[::]:8080:80/tcp");
        assert_eq!(l[1].to_string(), "[fd00::1]:8081:81/udp");
        // What prints parses back to the same.
        let printed: Vec<String> = l.iter().map(ToString::to_string).collect();
        assert_eq!(parse_list("p", &printed.join(",")).unwrap(), l);
        // Bare and 0.0.0.0 stay as they were written.
        assert_eq!(parse_entry("p", "8080:80").unwrap().host_ip, None);
        assert_eq!(
            parse_entry("p", "0.0.0.0:8080:80").unwrap().host_ip,
            Some(Ipv4Addr::UNSPECIFIED.into())
        );
    }

    #[test]
    fn refuses_bracket_errors_naming_them() {
        for (bad, why) in [
            ("[::1:8080:80", "bracket is not closed"),
            ("::1:8080:80", "written in brackets"),
            ("fd00::1:8080:80", "written in brackets"),
            ("[]:8080:80", "hold no address"),
            ("[1.2.3.4]:80:80", "write 1.2.3.4 without them"),
            ("[::ffff:1.2.3.4]:80:80", "IPv4-mapped"),
            ("[fd00::1]8080:80", "expected [IPV6]"),
            ("[fd00::zz]:8080:80", "not an IPv6 address"),
            ("[fe80::1%eth0]:8080:80", "not an IPv6 address"),
            ("[fd00::1]:8080", "expected"),
            ("[fd00::1]:8080:80:90", "expected"),
        ] {
            let e = parse_list("io.ocinet.ports", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid io.ocinet.ports"), "{bad}: {e}");
            assert!(
                e.contains(&format!("{bad:?}")),
                "names the value: {bad}: {e}"
            );
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    /// Issue 22: `[::1]` parses (the port proxy serves it), is a host
    /// address like any other for conflicts, and is never a DNAT element.
    #[test]
    fn ipv6_loopback_is_the_proxys() {
        let l = parse_list("p", "[::1]:8080:80,[::1]:5353:53/udp").unwrap();
        assert_eq!(l[0].host_ip, Some(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(l[0].to_string(), "[::1]:8080:80/tcp");
        let lo = l[0].host_ip;
        assert!(!answers_ipv6(lo) && !answers_ipv4(lo));
        assert_eq!(loopback6(lo, Protocol::Tcp, false), Some(true));
        assert_eq!(loopback6(lo, Protocol::Sctp, true), None);
        assert_eq!(loopback6(None, Protocol::Udp, true), Some(false));
        assert_eq!(loopback6(None, Protocol::Udp, false), None);
        let any6 = Some(Ipv6Addr::UNSPECIFIED.into());
        assert_eq!(loopback6(any6, Protocol::Tcp, true), Some(false));
        let any4 = Some(Ipv4Addr::UNSPECIFIED.into());
        assert_eq!(loopback6(any4, Protocol::Tcp, true), None);
        assert!(addresses_overlap(None, lo) && addresses_overlap(any6, lo));
        assert!(!addresses_overlap(any4, lo));
        assert!(!addresses_overlap(Some(Ipv4Addr::LOCALHOST.into()), lo));
        let e = parse_list("p", "8080:80,[::1]:8080:80")
            .unwrap_err()
            .to_string();
        assert!(e.contains("published twice"), "{e}");
    }

    #[test]
    fn host_addresses_overlap_by_family() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let any4 = ip("0.0.0.0");
        let any6 = ip("::");
        let v4 = ip("10.0.0.1");
        let v6 = ip("2001:db8::1");
        for (a, b, want) in [
            (None, any4, true),
            (None, any6, true),
            (None, v6, true),
            (any4, any6, true),
            (any4, v4, true),
            (any4, v6, false),
            (any6, v4, true),
            (any6, v6, true),
            (v4, v6, false),
            (v6, v6, true),
            (v6, ip("2001:db8::2"), false),
        ] {
            assert_eq!(addresses_overlap(a, b), want, "{a:?} {b:?}");
            assert_eq!(addresses_overlap(b, a), want, "{b:?} {a:?}");
        }
        parse_list("p", "0.0.0.0:80:80,[2001:db8::1]:80:80").unwrap();
        let e = parse_list("p", "8080:80,[::]:8080:80")
            .unwrap_err()
            .to_string();
        assert!(e.contains("published twice"), "{e}");
        let e = parse_list("p", "0.0.0.0:8080:80,[::]:8080:80")
            .unwrap_err()
            .to_string();
        assert!(e.contains("published twice"), "{e}");
    }
}
