use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::RouteMessageBuilder;

use super::socket::is_errno;
use super::Netlink;
use crate::Result;

/// An IPv4 route of the main table, reduced to what conflict checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Net,
    pub oif: Option<u32>,
}

impl Netlink {
    pub fn add_default_route(&mut self, gateway: Ipv4Addr, oif: u32) -> Result<()> {
        let _span = tracing::debug_span!("route_add_default", %gateway).entered();
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(oif)
            .build();
        match self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {gateway}"),
        ) {
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// IPv4 routes of the main table.
    pub fn ipv4_routes(&mut self) -> Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = netlink_packet_route::AddressFamily::Inet;
        let replies = self.get(RouteNetlinkMessage::GetRoute(req), true, "dump routes")?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewRoute(m) = r else {
                continue;
            };
            if m.header.table != netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN {
                continue;
            }
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut oif = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            if let Ok(destination) = Ipv4Net::new(dst, m.header.destination_prefix_length) {
                out.push(Route { destination, oif });
            }
        }
        Ok(out)
    }
}
