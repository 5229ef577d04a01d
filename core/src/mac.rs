//! Whether a container may have the MAC it asks for.

use std::net::{IpAddr, Ipv4Addr};

use ocinet_common::ipam;
use ocinet_common::model::{AttachmentRequest, Network};
use ocinet_common::netlink::Netlink;
use ocinet_common::{validate, Error, Result};

use super::drivers::owned::device_mac as bridge_mac;
use crate::context::Locked;

/// A MAC is one port's on a bridge: once a second port sends with it, the
/// bridge moves the address to that port and the first container loses
/// its traffic. So a static MAC may not be the bridge's, another
/// container's on this network, nor `02:6f:<address>` of an address in the
/// subnet other than the container's own (ocinet derives those for the
/// containers that get the addresses). Under the state lock (`&Locked`), as
/// leasing is, so two setups cannot both take one MAC; the kernel refuses
/// a second owner too (`ruleset::MAP_MAC_OWNER`).
pub(crate) fn check_mac(
    ctx: &Locked,
    net: &Network,
    id: &str,
    req: &AttachmentRequest,
    ip: IpAddr,
    host: &mut Netlink,
) -> Result<()> {
    let Some(mac) = req.mac else {
        return Ok(());
    };
    let text = validate::format_mac(&mac);
    let refuse = |why: String| Err(Error::invalid(&req.mac_field, &text, why));
    // The bridge's MAC, as ocinet sets it and as it is now.
    if let Some(bridge) = net.bridge_name() {
        let now = host.link_by_name(bridge)?.map(|l| l.mac);
        if mac == bridge_mac(bridge) || now.as_deref() == Some(&mac[..]) {
            return refuse(format!(
                "is the MAC of bridge {bridge} of network {}",
                net.name
            ));
        }
    }
    if mac[..2] == [0x02, 0x6f] {
        let derived_for = Ipv4Addr::new(mac[2], mac[3], mac[4], mac[5]);
        let in_subnet = net.v4().is_some_and(|v4| v4.subnet.contains(&derived_for));
        if IpAddr::V4(derived_for) != ip && in_subnet {
            let holder = ipam::open(&ctx.state, &net.name)?
                .leases()?
                .remove(&derived_for.into());
            return refuse(match holder {
                Some(h) => format!("is the MAC of container {h} (derived from its address {derived_for})"),
                None => format!(
                    "is derived from {derived_for} and kept for the container that gets that address"
                ),
            });
        }
    }
    let (eps, unreadable) = ctx.state.list_endpoints();
    for e in unreadable {
        tracing::warn!("MAC check: skipping an unreadable record: {e}");
    }
    if let Some(holder) = eps.iter().find(|e| {
        e.id != id
            && e.attachment_on(&net.name)
                .is_some_and(|a| a.mac.as_deref() == Some(text.as_str()))
    }) {
        return refuse(format!(
            "is already the MAC of container {} ({}) on network {}",
            holder.id, holder.name, net.name
        ));
    }
    Ok(())
}
