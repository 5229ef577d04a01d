//! What IPAM hands an attachment: a leased address and the MAC that goes
//! with it. Leasing itself (the pool, the MAC check) is `attach::lease`;
//! this is the type every driver describes its attachments from, kept
//! apart from the lifecycle so drivers depend on it and not on `attach`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use ocinet_common::model::Network;

/// An address leased for an attachment, and the MAC it will have.
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Whether the address was asked for (a free one found by the
    /// allocator moves its cursor once recorded).
    pub requested: bool,
}

impl Lease {
    /// The address with the network's prefix length.
    pub fn net(&self, net: &Network) -> Ipv4Net {
        Ipv4Net::new(self.ip, net.subnet().prefix_len()).unwrap_or_else(|_| self.ip.into())
    }
}
