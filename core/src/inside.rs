//! What every mode does inside the container's namespace: `lo` up, and
//! the container's interface configured once a driver has made it.

use std::fs::File;
use std::net::Ipv4Addr;

use ocinet_common::netlink::link::Link;
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{Error, Result};

/// `lo`'s index in every network namespace (the kernel's
/// `LOOPBACK_IFINDEX`).
const LOOPBACK_INDEX: u32 = 1;

/// A socket in the container's namespace, with `lo` up (a namespace made
/// by `unshare` has it down; runc and crun bring it up themselves). Set
/// up without looking first: an up that changes nothing is as cheap as
/// the lookup, whose answer (a whole link message) costs more to read.
pub(crate) fn enter(ns: &File) -> Result<Netlink> {
    let mut inner = Netlink::new_in(ns)?;
    inner.set_up(LOOPBACK_INDEX, "set lo up")?;
    Ok(inner)
}

/// `ifname`, just made in the namespace (`inner`: its socket, from
/// `enter`): no IPv6 autoconf (set before it comes up, so no link-local is
/// made), up, its IPv4 address (none on an IPv6-only network), and the
/// default route via `gateway` when there is one. Returns the link.
pub(crate) fn configure(
    inner: &mut Netlink,
    ifname: &str,
    v4: Option<ipnet::Ipv4Net>,
    gateway: Option<Ipv4Addr>,
) -> Result<Link> {
    let link = inner.link_by_name(ifname)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{ifname} vanished from the container right after creation"
        ))
    })?;
    inner.disable_ipv6_autoconf(LinkRef::Index(link.index))?;
    inner.set_up(link.index, &format!("set {ifname} up"))?;
    if let Some(addr) = v4 {
        inner.add_address(link.index, addr.addr(), addr.prefix_len())?;
    }
    if let Some(gw) = gateway {
        inner.add_default_route(gw, link.index)?;
    }
    Ok(link)
}

/// The IPv6 half of a dual-stack attachment, on `ifname` configured
/// already: its address, usable at once (no duplicate address
/// detection: IPAM leased it to this interface alone), and the default
/// route via `gateway` when there is one.
pub(crate) fn configure6(
    inner: &mut Netlink,
    ifname: &str,
    addr: ipnet::Ipv6Net,
    gateway: Option<std::net::Ipv6Addr>,
) -> Result<()> {
    let link = inner.link_by_name(ifname)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{ifname} vanished from the container right after creation"
        ))
    })?;
    inner.add_address6(link.index, addr.addr(), addr.prefix_len())?;
    match gateway {
        // Outside the address's prefix (an overlay network's, on-link
        // within its host's block only): reached on-link all the same.
        Some(gw) if !addr.contains(&gw) => inner.add_default_route6_onlink(gw, link.index)?,
        Some(gw) => inner.add_default_route6(gw, link.index)?,
        None => {}
    }
    Ok(())
}
