//! What the host has that a new network or a published port is checked
//! against: its IPv4 addresses and routes. A leaf: drivers and the
//! lifecycle both read it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use ocinet_common::netlink::Netlink;
use ocinet_common::Result;

/// The host's IPv4 routes as (destination, device name).
pub fn routes(nl: &mut Netlink) -> Result<Vec<(Ipv4Net, String)>> {
    let links = nl.links()?;
    let name = |idx: Option<u32>| {
        idx.and_then(|i| links.iter().find(|l| l.index == i))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    Ok(nl
        .ipv4_routes()?
        .into_iter()
        .map(|r| (r.destination, name(r.oif)))
        .collect())
}

/// The host's IPv6 routes with their device's name (`?` when it has none).
pub fn routes6(nl: &mut Netlink) -> Result<Vec<(ipnet::Ipv6Net, String)>> {
    let links = nl.links()?;
    Ok(nl
        .ipv6_routes()?
        .into_iter()
        .map(|(dst, oif)| {
            let dev = oif
                .and_then(|i| links.iter().find(|l| l.index == i))
                .map_or_else(|| "?".to_string(), |l| l.name.clone());
            (dst, dev)
        })
        .collect())
}

/// The host's IPv4 addresses, to check a port binding against: one of
/// them, or loopback (every 127/8 address is the host's).
pub struct HostAddresses(Vec<Ipv4Addr>);

impl HostAddresses {
    pub fn of(host: &mut Netlink) -> Result<Self> {
        Ok(HostAddresses(
            host.ipv4_addresses()?
                .into_iter()
                .map(|(_, ip, _)| ip)
                .collect(),
        ))
    }

    pub fn has(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.0.contains(&ip)
    }
}
