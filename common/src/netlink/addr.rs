use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::AddressMessageBuilder;

use super::socket::is_errno;
use super::Netlink;
use crate::Result;

impl Netlink {
    /// Add an IPv4 address; an address that is already there is fine.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let _span = tracing::debug_span!("addr_add", index, %ip, prefix_len).entered();
        let mut msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, prefix_len)
            .build();
        if prefix_len < 31 {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            let brd = Ipv4Addr::from(u32::from(ip) | host_bits);
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        match self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {ip}/{prefix_len}"),
        ) {
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Add an IPv6 address usable at once: no duplicate address detection
    /// (IFA_F_NODAD), since IPAM leased it to this interface alone and a
    /// process may connect in its first millisecond. An address that is
    /// already there is fine.
    pub fn add_address6(&mut self, index: u32, ip: Ipv6Addr, prefix_len: u8) -> Result<()> {
        let _span = tracing::debug_span!("addr_add6", index, %ip, prefix_len).entered();
        let mut msg = AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(ip, prefix_len)
            .build();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {ip}/{prefix_len}"),
        ) {
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Delete an address of either family; one that is not there is fine.
    pub fn delete_address(&mut self, index: u32, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let _span = tracing::debug_span!("addr_delete", index, %ip, prefix_len).entered();
        let msg = match ip {
            IpAddr::V4(v4) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(v4, prefix_len)
                .build(),
            IpAddr::V6(v6) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(v6, prefix_len)
                .build(),
        };
        match self.ack(
            RouteNetlinkMessage::DelAddress(msg),
            0,
            &format!("delete address {ip}/{prefix_len}"),
        ) {
            Err(e) if is_errno(&e, nix::libc::EADDRNOTAVAIL) => Ok(()),
            r => r,
        }
    }

    /// IPv4 addresses with their prefix length, per interface index.
    pub fn ipv4_addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>> {
        let mut req = AddressMessage::default();
        req.header.family = netlink_packet_route::AddressFamily::Inet;
        let replies = self.get(RouteNetlinkMessage::GetAddress(req), true, "dump addresses")?;
        let mut out = Vec::new();
        for r in replies {
            if let RouteNetlinkMessage::NewAddress(m) = r {
                for a in &m.attributes {
                    if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                        out.push((m.header.index, *ip, m.header.prefix_len));
                    }
                }
            }
        }
        Ok(out)
    }

    /// IPv6 addresses with their prefix length, per interface index (a
    /// kernel without IPv6 has none).
    pub fn ipv6_addresses(&mut self) -> Result<Vec<(u32, Ipv6Addr, u8)>> {
        let mut req = AddressMessage::default();
        req.header.family = netlink_packet_route::AddressFamily::Inet6;
        let replies = match self.get(
            RouteNetlinkMessage::GetAddress(req),
            true,
            "dump IPv6 addresses",
        ) {
            Err(e) if is_errno(&e, nix::libc::EAFNOSUPPORT) => return Ok(Vec::new()),
            r => r?,
        };
        let mut out = Vec::new();
        for r in replies {
            if let RouteNetlinkMessage::NewAddress(m) = r {
                for a in &m.attributes {
                    if let AddressAttribute::Address(IpAddr::V6(ip)) = a {
                        out.push((m.header.index, *ip, m.header.prefix_len));
                    }
                }
            }
        }
        Ok(out)
    }
}
