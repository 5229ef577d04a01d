//! What IPAM hands an attachment: a leased address and the MAC that goes
//! with it. Leasing itself (through `ocinet_common::ipam`, the MAC check)
//! is `attach::lease`; this is the type every driver describes its
//! attachments from, kept apart from the lifecycle so drivers depend on it
//! and not on `attach`.

use std::net::IpAddr;

use ipnet::IpNet;
use ocinet_common::model::Network;

/// An address leased for an attachment, and the MAC it will have.
pub struct Lease {
    pub ip: IpAddr,
    pub mac: [u8; 6],
    /// Whether the address was asked for (a free one found by the
    /// allocator moves its cursor once recorded).
    pub requested: bool,
    /// The IPv6 address on a dual-stack network, and whether it was
    /// asked for.
    pub ip6: Option<(std::net::Ipv6Addr, bool)>,
}

impl Lease {
    /// Every leased address with its subnet's prefix length, IPv4 first.
    pub fn nets(&self, net: &Network) -> Vec<IpNet> {
        let mut out = vec![self.net(net)];
        if let Some((ip6, _)) = self.ip6 {
            let prefix = net.subnet6().map_or(128, |s| s.prefix_len());
            out.push(IpNet::new(ip6.into(), prefix).unwrap_or_else(|_| IpAddr::V6(ip6).into()));
        }
        out
    }

    /// The addresses the allocator found itself (not asked for), whose
    /// family's cursor moves past them once recorded.
    pub fn found(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = (!self.requested).then_some(self.ip);
        let v6 = self
            .ip6
            .and_then(|(ip, requested)| (!requested).then_some(IpAddr::V6(ip)));
        v4.into_iter().chain(v6)
    }

    /// The address with the prefix length of the network's subnet of its
    /// family (the host route alone when the network has none).
    pub fn net(&self, net: &Network) -> IpNet {
        let prefix = net
            .subnets
            .iter()
            .map(|s| s.subnet)
            .find(|s| s.contains(&self.ip))
            .map_or(host_prefix(self.ip), |s| s.prefix_len());
        IpNet::new(self.ip, prefix).unwrap_or_else(|_| self.ip.into())
    }
}

fn host_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}
