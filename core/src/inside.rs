//! What every mode does inside the container's namespace: `lo` up, and
//! the container's interface configured once a driver has made it.

use std::fs::File;

use ocinet_common::model::Attachment;
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

/// `ifname`, just made in the container's namespace `ns` for `att`: `lo`
/// up (`enter`), then the interface itself: no IPv6 autoconf (set before
/// it comes up, so no link-local is made), up, its addresses (IPv4 unless
/// the network is IPv6-only, IPv6 on a dual-stack or IPv6-only one) and a
/// default route per family whose gateway the attachment has. One socket
/// and one lookup for both families. Returns the link.
pub(crate) fn configure_attachment(ns: &File, ifname: &str, att: &Attachment) -> Result<Link> {
    let mut inner = enter(ns)?;
    let link = inner.link_by_name(ifname)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{ifname} vanished from the container right after creation"
        ))
    })?;
    inner.disable_ipv6_autoconf(LinkRef::Index(link.index))?;
    inner.set_up(link.index, &format!("set {ifname} up"))?;
    if let Some(addr) = att.ipv4_net() {
        inner.add_address(link.index, addr.addr(), addr.prefix_len())?;
    }
    if let Some(gw) = att.gateway_v4() {
        inner.add_default_route(gw, link.index)?;
    }
    if let Some(addr6) = att.ipv6_net() {
        configure6(&mut inner, link.index, addr6, att.gateway6)?;
    }
    Ok(link)
}

/// The IPv6 half: its address, usable at once (no duplicate address
/// detection: IPAM leased it to this interface alone), and the default
/// route via `gateway` when there is one.
fn configure6(
    inner: &mut Netlink,
    index: u32,
    addr: ipnet::Ipv6Net,
    gateway: Option<std::net::Ipv6Addr>,
) -> Result<()> {
    inner.add_address6(index, addr.addr(), addr.prefix_len())?;
    match gateway {
        // Outside the address's prefix (an overlay network's, on-link
        // within its host's block only): reached on-link all the same.
        Some(gw) if !addr.contains(&gw) => inner.add_default_route6_onlink(gw, index)?,
        Some(gw) => inner.add_default_route6(gw, index)?,
        None => {}
    }
    Ok(())
}
