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

/// Per-interface neighbour-resolution parameters (ARP's `arp_cache` or
/// NDP's `ndisc_cache` table): how long an unanswered solicitation waits
/// before the next, and how many are sent before the address is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourParms {
    /// `retrans_time_ms`.
    pub retrans_ms: u64,
    /// `mcast_solicit`: broadcast (multicast for NDP) solicitations of an
    /// unresolved address.
    pub mcast_probes: u32,
    /// `ucast_solicit`: unicast probes of a known but stale address.
    pub ucast_probes: u32,
}

impl Netlink {
    /// Set `parms` on link `index` (RTM_SETNEIGHTBL), in the IPv6
    /// neighbour table when `v6`, else the ARP table: the same as writing
    /// `net/ipv{4,6}/neigh/<if>/{retrans_time_ms,mcast_solicit,
    /// ucast_solicit}`, without entering the namespace for /proc/sys.
    pub fn set_neighbour_parms(
        &mut self,
        index: u32,
        v6: bool,
        parms: NeighbourParms,
    ) -> Result<()> {
        use netlink_packet_route::neighbour_table::{
            NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
        };
        let table = if v6 { "ndisc_cache" } else { "arp_cache" };
        let _span = tracing::debug_span!(
            "neightbl_set",
            table,
            index,
            retrans_ms = parms.retrans_ms,
            mcast_probes = parms.mcast_probes,
            ucast_probes = parms.ucast_probes
        )
        .entered();
        let mut msg = NeighbourTableMessage::default();
        msg.header.family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        msg.attributes
            .push(NeighbourTableAttribute::Name(table.to_string()));
        msg.attributes.push(NeighbourTableAttribute::Parms(vec![
            NeighbourTableParameter::Ifindex(index),
            NeighbourTableParameter::RetransTime(parms.retrans_ms),
            NeighbourTableParameter::McastProbes(parms.mcast_probes),
            NeighbourTableParameter::UcastProbes(parms.ucast_probes),
        ]));
        self.ack(
            RouteNetlinkMessage::SetNeighbourTable(msg),
            0,
            &format!(
                "set {table} of interface {index}: retrans_time_ms={} mcast_solicit={} ucast_solicit={}",
                parms.retrans_ms, parms.mcast_probes, parms.ucast_probes
            ),
        )
    }
}
