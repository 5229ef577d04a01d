//! The macvlan driver, Docker's `-d macvlan -o parent=`: each container
//! gets a macvlan sub-interface of a host interface as its eth0, made
//! directly in its namespace, with an address from the network's IPAM and
//! a default route via the gateway on the parent's segment. No bridge, no
//! NAT, no published ports: the container is a host of that segment.
//!
//! As with any macvlan, the host itself cannot reach its containers
//! through the parent (the kernel does not hand frames between a parent
//! and its sub-interfaces); neighbours on the segment and other containers
//! on the same parent (mode bridge) can.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;

use ocinet_common::model::{Endpoint, Network};
use ocinet_common::netlink::link::Link;
use ocinet_common::netlink::Netlink;
use ocinet_common::{validate, Error, Result};

use super::{bridge, NetworkDriver};
use crate::context::Context;
use crate::killpoint;
use crate::lifecycle::attach::{self, Lease};
use crate::lifecycle::inside;
use crate::lifecycle::naming::CONTAINER_IFNAME;
use crate::lifecycle::pin::{netns_link_for, pin};
use crate::settings::Settings;

pub struct MacvlanDriver {
    pub net: Network,
}

impl NetworkDriver for MacvlanDriver {
    fn setup(
        &self,
        ctx: &Context,
        ep: Endpoint,
        settings: &Settings,
        host: &mut Netlink,
        ns: &File,
        ns_path: &Path,
    ) -> Result<()> {
        setup(ctx, ep, settings, &self.net, host, ns, ns_path)
    }
}

/// The parent: it must exist, and must not be a bridge ocinet made (its
/// containers' traffic would bypass the bridge's firewall).
pub fn parent_link(net: &Network, host: &mut Netlink) -> Result<Link> {
    let parent = net.parent.as_deref().unwrap_or_default();
    let link = host.link_by_name(parent)?.ok_or_else(|| {
        Error::NotFound(format!(
            "network {}: parent interface {parent} does not exist on the host",
            net.name
        ))
    })?;
    if bridge::is_ours(&link) {
        return Err(Error::invalid(
            "parent",
            parent,
            "is a bridge of an ocinet network: give macvlan a host interface",
        ));
    }
    Ok(link)
}

fn setup(
    ctx: &Context,
    mut ep: Endpoint,
    settings: &Settings,
    net: &Network,
    host: &mut Netlink,
    ns: &File,
    ns_path: &Path,
) -> Result<()> {
    if let Some(p) = settings.ports.first() {
        return Err(Error::invalid(
            settings.ports_field,
            p,
            format!(
                "network {} uses the macvlan driver: containers are on the parent's segment with their own address, nothing is published",
                net.name
            ),
        ));
    }
    let parent = parent_link(net, host)?;
    let Lease { ip, mac } = attach::lease(ctx, net, &ep, settings, host)?;
    ep.ip = Some(ip);
    ep.prefix_len = Some(net.subnet.prefix_len());
    ep.gateway = Some(net.gateway);
    ep.mac = Some(validate::format_mac(&mac));
    ep.parent = net.parent.clone();
    ep.interface = Some(CONTAINER_IFNAME.into());
    ep.netns_link = Some(netns_link_for(&ep.id));
    attach::record_intent(ctx, net, &ep, settings, ip)?;
    let wired = wire(host, net, &mac, ip, &parent, ns).and_then(|made| {
        killpoint::reached("veth");
        // passthru takes the parent's MAC whatever was asked: record the
        // one the interface has, which teardown looks for.
        let made = validate::format_mac(&made);
        if ep.mac.as_deref() != Some(made.as_str()) {
            ep.mac = Some(made);
            ctx.state.save_setup(&ep)?;
        }
        pin(&mut ep, ns_path)
    });
    if wired.is_err() {
        // The interface is reachable through `ns` now, whether or not the
        // pin was made.
        if let Err(undo) = remove_sub_interface(ns, &ep) {
            tracing::warn!("rollback: {undo}");
        }
    }
    attach::conclude(ctx, &ep, wired)?;
    tracing::info!(network = %net.name, %ip, parent = net.parent.as_deref().unwrap_or(""), "set up");
    Ok(())
}

fn wire(
    host: &mut Netlink,
    net: &Network,
    mac: &[u8; 6],
    ip: Ipv4Addr,
    parent: &Link,
    ns: &File,
) -> Result<Vec<u8>> {
    // A sub-interface cannot be larger than its parent (EINVAL): a parent
    // made smaller since the network was created caps it.
    let mtu = net.mtu.min(parent.mtu);
    host.create_macvlan(
        CONTAINER_IFNAME,
        parent.index,
        net.macvlan_mode.unwrap_or_default(),
        mac,
        mtu,
        ns,
    )
    .map_err(|e| match e {
        Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EEXIST) => {
            Error::Conflict(format!(
                "the container already has an interface {CONTAINER_IFNAME}"
            ))
        }
        e => e,
    })?;
    let eth0 = inside::configure(
        ns,
        CONTAINER_IFNAME,
        ip,
        net.subnet.prefix_len(),
        Some(net.gateway),
    )?;
    Ok(eth0.mac)
}

/// Delete the record's macvlan interface from the namespace `ns`, if it is
/// still the one ocinet made there (a macvlan with the recorded MAC).
pub fn remove_sub_interface(ns: &File, ep: &Endpoint) -> Result<bool> {
    let (Some(name), Some(mac)) = (&ep.interface, &ep.mac) else {
        return Ok(false);
    };
    let mut inner = Netlink::new_in(ns)?;
    let Some(link) = inner.link_by_name(name)? else {
        return Ok(false);
    };
    let ours = link.kind.as_deref() == Some("macvlan")
        && validate::format_mac(&link.mac).eq_ignore_ascii_case(mac);
    if !ours {
        tracing::warn!(interface = %name, "left alone: not the macvlan interface ocinet made");
        return Ok(false);
    }
    inner.delete_link(name)
}
