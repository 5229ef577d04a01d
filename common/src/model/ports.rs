//! Published ports, `docker run -p` style:
//! `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp|/sctp]`.

use std::fmt;
use std::net::Ipv4Addr;

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
    /// `None`: every local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    /// Number of ports in the range (1 for a single port).
    pub count: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// One published port, ranges expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    pub fn mappings(&self) -> impl Iterator<Item = PortMapping> + '_ {
        (0..self.count).map(move |i| PortMapping {
            host_ip: self.host_ip,
            host_port: self.host_port + i,
            container_port: self.container_port + i,
            protocol: self.protocol,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
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
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host, ctr) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| {
                Error::invalid(field, entry, format!("{ip:?} is not an IPv4 address"))
            })?;
            (if ip.is_unspecified() { None } else { Some(ip) }, *h, *c)
        }
        _ => {
            return Err(Error::invalid(
                field,
                entry,
                "expected [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]",
            ))
        }
    };
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
/// addresses overlap (an unspecified address overlaps every address).
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
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
        assert_eq!(l[1].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(l[1].protocol, Protocol::Udp);
        assert_eq!(l[2].count, 3);
        assert_eq!(
            l[2].mappings()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            vec![(9000, 9100), (9001, 9101), (9002, 9102)]
        );
        assert_eq!(l[3].host_ip, None);
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
}
