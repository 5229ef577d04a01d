use std::net::Ipv6Addr;

use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::is_errno;
use super::Netlink;
use crate::Result;

impl Netlink {
    /// Forget the neighbour entry of IPv6 `ip` on link `index`: a
    /// container's MAC follows its IPv4 address, so the next holder of
    /// the same IPv6 address may have another MAC, and a stale entry
    /// would send it the previous holder's frames until the kernel
    /// re-probes (seconds). None there is fine.
    pub fn delete_neighbour6(&mut self, index: u32, ip: Ipv6Addr) -> Result<()> {
        let _span = tracing::debug_span!("neigh_del", index, %ip).entered();
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)));
        match self.ack(
            RouteNetlinkMessage::DelNeighbour(msg),
            0,
            &format!("delete neighbour {ip}"),
        ) {
            Err(e) if is_errno(&e, nix::libc::ENOENT) || is_errno(&e, nix::libc::ENODEV) => Ok(()),
            r => r,
        }
    }
}
