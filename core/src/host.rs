//! What the host has that a new network or a published port is checked
//! against: its IPv4 addresses and routes. A leaf: drivers and the
//! lifecycle both read it.

use ipnet::IpNet;
use ocinet_common::netlink::Netlink;
use ocinet_common::Result;

/// The host's routes of both families as (destination, device name; `?`
/// when it has none).
pub fn routes(nl: &mut Netlink) -> Result<Vec<(IpNet, String)>> {
    let links = nl.links()?;
    let name = |idx: Option<u32>| {
        idx.and_then(|i| links.iter().find(|l| l.index == i))
            .map_or_else(|| "?".to_string(), |l| l.name.clone())
    };
    let mut all = nl.ipv4_routes()?;
    all.extend(nl.ipv6_routes()?);
    Ok(all
        .into_iter()
        .map(|r| (r.destination, name(r.oif)))
        .collect())
}

/// The host's addresses, to check a port binding against: one of them, or
/// IPv4 loopback (every 127/8 address is the host's).
pub struct HostAddresses(Vec<std::net::IpAddr>);

impl HostAddresses {
    pub fn of(host: &mut Netlink) -> Result<Self> {
        let mut all: Vec<std::net::IpAddr> = host
            .ipv4_addresses()?
            .into_iter()
            .map(|(_, ip, _)| ip.into())
            .collect();
        all.extend(
            host.ipv6_addresses()?
                .into_iter()
                .map(|(_, ip, _)| std::net::IpAddr::from(ip)),
        );
        Ok(HostAddresses(all))
    }

    pub fn has(&self, ip: impl Into<std::net::IpAddr>) -> bool {
        let ip = ip.into();
        (ip.is_ipv4() && ip.is_loopback()) || self.0.contains(&ip)
    }
}
