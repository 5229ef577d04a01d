use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::RouteMessageBuilder;

use super::socket::is_errno;
use super::Netlink;
use crate::Result;

/// A route of the main table, of either family, reduced to what conflict
/// checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
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

    /// The IPv6 default route via `gateway` out of `oif`. Already there is
    /// fine.
    pub fn add_default_route6(&mut self, gateway: Ipv6Addr, oif: u32) -> Result<()> {
        let _span = tracing::debug_span!("route_add_default6", %gateway).entered();
        let msg = RouteMessageBuilder::<Ipv6Addr>::new()
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

    /// The IPv6 default route via `gateway` out of `oif`, on-link
    /// (RTNH_F_ONLINK): `gateway` is in no prefix of `oif` (an overlay
    /// gateway outside the container's own /128 or block), so the kernel
    /// must take it as reachable on `oif` rather than refuse it. Already
    /// there is fine.
    pub fn add_default_route6_onlink(&mut self, gateway: Ipv6Addr, oif: u32) -> Result<()> {
        let _span = tracing::debug_span!("route_add_default6_onlink", %gateway, oif).entered();
        let msg = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gateway)
            .output_interface(oif)
            .onlink()
            .build();
        match self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {gateway} on link {oif} onlink"),
        ) {
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// A route to the one address `ip` on the link `oif`, from `src` (of
    /// `ip`'s family). Already there is fine.
    pub fn add_host_route(&mut self, ip: IpAddr, oif: u32, src: IpAddr) -> Result<()> {
        let _span = tracing::debug_span!("route_add_host", %ip, oif).entered();
        let msg = host_route(ip, oif, Some(src));
        match self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add route to {ip} on link {oif}"),
        ) {
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Remove what `add_host_route` made; `Ok(false)` when it was not there.
    pub fn delete_host_route(&mut self, ip: IpAddr, oif: u32) -> Result<bool> {
        let _span = tracing::debug_span!("route_delete_host", %ip, oif).entered();
        let msg = host_route(ip, oif, None);
        match self.ack(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            &format!("delete route to {ip} on link {oif}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// IPv4 routes of the main table.
    pub fn ipv4_routes(&mut self) -> Result<Vec<Route>> {
        self.main_routes(AddressFamily::Inet, None)
    }

    /// IPv6 routes of the main table. Link-local and multicast routes,
    /// which every interface has, are left out; a kernel booted with
    /// ipv6.disable=1 has none.
    pub fn ipv6_routes(&mut self) -> Result<Vec<Route>> {
        self.main_routes(AddressFamily::Inet6, None)
    }

    /// IPv4 routes of the main table out of `oif`: the kernel filters the
    /// dump (see `strict_dumps`), so a host with a full routing table is
    /// not walked for the few routes through one interface.
    pub fn ipv4_routes_via(&mut self, oif: u32) -> Result<Vec<Route>> {
        self.strict_dumps()?;
        self.main_routes(AddressFamily::Inet, Some(oif))
    }

    /// IPv6 routes of the main table out of `oif`, as `ipv4_routes_via`.
    pub fn ipv6_routes_via(&mut self, oif: u32) -> Result<Vec<Route>> {
        self.strict_dumps()?;
        self.main_routes(AddressFamily::Inet6, Some(oif))
    }

    fn main_routes(&mut self, family: AddressFamily, via: Option<u32>) -> Result<Vec<Route>> {
        let main = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
        let mut req = RouteMessage::default();
        req.header.address_family = family;
        if let Some(oif) = via {
            req.header.table = main;
            req.attributes.push(RouteAttribute::Oif(oif));
        }
        let replies = match self.get(RouteNetlinkMessage::GetRoute(req), true, "dump routes") {
            Err(e) if family == AddressFamily::Inet6 && is_errno(&e, nix::libc::EAFNOSUPPORT) => {
                return Ok(Vec::new())
            }
            r => r?,
        };
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewRoute(m) = r else {
                continue;
            };
            if m.header.table != main {
                continue;
            }
            // No destination attribute: the default route.
            let mut dst = match family {
                AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            let mut oif = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = IpAddr::V4(*ip),
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => dst = IpAddr::V6(*ip),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            // Again here: a kernel without strict checking dumps them all.
            if via.is_some() && oif != via {
                continue;
            }
            let everyones = match dst {
                IpAddr::V6(d) => (d.segments()[0] & 0xffc0) == 0xfe80 || d.is_multicast(),
                IpAddr::V4(_) => false,
            };
            if everyones {
                continue;
            }
            if let Ok(destination) = IpNet::new(dst, m.header.destination_prefix_length) {
                out.push(Route { destination, oif });
            }
        }
        Ok(out)
    }
}

/// The route message for `add_host_route`/`delete_host_route`: `ip` alone,
/// on the link, from `src` when given (a source of the other family is
/// left out; the kernel would refuse it).
fn host_route(ip: IpAddr, oif: u32, src: Option<IpAddr>) -> RouteMessage {
    use netlink_packet_route::route::RouteScope;
    match ip {
        IpAddr::V4(ip) => {
            let b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(ip, 32)
                .output_interface(oif)
                .scope(RouteScope::Link);
            match src {
                Some(IpAddr::V4(s)) => b.pref_source(s).build(),
                _ => b.build(),
            }
        }
        IpAddr::V6(ip) => {
            let b = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(ip, 128)
                .output_interface(oif);
            match src {
                Some(IpAddr::V6(s)) => b.pref_source(s).build(),
                _ => b.build(),
            }
        }
    }
}
