//! What IPAM hands an attachment: its leased addresses and the MAC that
//! goes with them. Leasing itself (through `ocinet_common::ipam`, the MAC check)
//! is `attach::lease`; this is the type every driver describes its
//! attachments from, kept apart from the lifecycle so drivers depend on it
//! and not on `attach`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ocinet_common::model::Network;

/// The addresses leased for an attachment, one per family of its
/// network, and the MAC it will have.
pub struct Lease {
    /// The IPv4 address (none on an IPv6-only network), and whether it was
    /// asked for (a free one found by the allocator moves its cursor once
    /// recorded).
    pub ip4: Option<(Ipv4Addr, bool)>,
    /// The IPv6 address on a network with an IPv6 subnet, and whether it
    /// was asked for.
    pub ip6: Option<(Ipv6Addr, bool)>,
    pub mac: [u8; 6],
}

impl Lease {
    /// The leased addresses, IPv4 first.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.ip4.map(|(ip, _)| IpAddr::V4(ip));
        v4.into_iter().chain(self.ip6.map(|(ip, _)| IpAddr::V6(ip)))
    }

    /// Every leased address with its subnet's prefix length, IPv4 first.
    pub fn nets(&self, net: &Network) -> Vec<IpNet> {
        self.addresses()
            .map(|ip| {
                let prefix = net
                    .subnets
                    .iter()
                    .map(|s| s.subnet)
                    .find(|s| s.contains(&ip))
                    .map_or(host_prefix(ip), |s| s.prefix_len());
                IpNet::new(ip, prefix).unwrap_or_else(|_| ip.into())
            })
            .collect()
    }

    /// The addresses the allocator found itself (not asked for), whose
    /// family's cursor moves past them once recorded.
    pub fn found(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self
            .ip4
            .and_then(|(ip, requested)| (!requested).then_some(IpAddr::V4(ip)));
        let v6 = self
            .ip6
            .and_then(|(ip, requested)| (!requested).then_some(IpAddr::V6(ip)));
        v4.into_iter().chain(v6)
    }
}

fn host_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}
