//! The bridge driver, Docker's bridge driver's way: a bridge with the
//! gateway address, a veth per container with eth0 inside, an address, a
//! default route and masquerade. This file is the order of the steps and
//! the rollback; the bridge device and the veth have a file each.

pub mod device;
mod veth;

use std::fs::File;
use std::path::Path;

use ocinet_common::firewall::{ruleset, Change, Firewall};
use ocinet_common::model::{Endpoint, Network};
use ocinet_common::netlink::Netlink;
use ocinet_common::{validate, Error, Result};

pub use device::{ensure_bridge, is_ours};

use super::NetworkDriver;
use crate::context::{Context, Subject};
use crate::killpoint;
use crate::lifecycle::mac::check_mac;
use crate::lifecycle::naming::{host_veth_name, mac_for, CONTAINER_IFNAME};
use crate::lifecycle::pin::{netns_link_for, pin};
use crate::lifecycle::ports::{check_ports, claim_ports, with_host_ip};
use crate::lifecycle::{release, restore};
use crate::settings::Settings;

/// The bridge driver.
pub struct BridgeDriver {
    pub net: Network,
}

impl NetworkDriver for BridgeDriver {
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

fn setup(
    ctx: &Context,
    mut ep: Endpoint,
    settings: &Settings,
    net: &Network,
    host: &mut Netlink,
    ns: &File,
    ns_path: &Path,
) -> Result<()> {
    let defaulted;
    let settings = match net.host_binding_ip {
        Some(hip) if settings.ports.iter().any(|p| p.host_ip.is_none()) => {
            defaulted = with_host_ip(settings, hip);
            &defaulted
        }
        _ => settings,
    };

    check_ports(net, settings, host)?;

    claim_ports(ctx, &ep, settings)?;
    let pool = ctx.state.pool(&net.name)?;
    let leased = pool.allocate(net, &ep.id, settings.ip);
    let ip = match leased {
        Ok(ip) => ip,
        Err(e) => {
            let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
            return Err(e);
        }
    };
    killpoint::reached("leased");
    if let Err(e) = check_mac(ctx, net, &ep.id, settings, ip, host) {
        let _ = pool.release(ip, &ep.id);
        let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
        return Err(e);
    }
    let mac = settings.mac.unwrap_or_else(|| mac_for(ip));
    ep.ip = Some(ip);
    ep.prefix_len = Some(net.subnet.prefix_len());
    ep.gateway = (!net.internal).then_some(net.gateway);
    let mac_text = validate::format_mac(&mac);
    let veth = host_veth_name(&ep.id);
    ep.firewall = ruleset::guard_elements(&veth, &mac_text, ip, &net.bridge);
    ep.firewall
        .extend(ruleset::port_elements(ip, &settings.ports));
    ep.mac = Some(mac_text);
    ep.bridge = Some(net.bridge.clone());
    ep.host_veth = Some(veth);
    ep.interface = Some(CONTAINER_IFNAME.into());
    ep.ports = settings.ports.clone();
    // The pin is named after the container id, so it goes into the intent
    // too (one record write fewer; unpinning a pin never made is a no-op).
    ep.netns_link = Some(netns_link_for(&ep.id));
    // Record the intent before touching the kernel: a hook killed from here
    // on leaves a record that gc (or the next hook for this id) undoes. One
    // killed before it leaves a lease and claims without a record: the next
    // hook for this id takes them again (the allocator starts where it
    // found this address, as the last one is remembered only below), and
    // gc frees them otherwise.
    if let Err(e) = ctx.state.save_setup(&ep) {
        let _ = pool.release(ip, &ep.id);
        let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
        return Err(e);
    }
    if settings.ip.is_none() {
        if let Err(e) = pool.remember_last(ip) {
            tracing::warn!("next allocation starts from the beginning of the range: {e}");
        }
    }
    killpoint::reached("recorded");

    // Done is a rename of the record written above: wire() changes the
    // endpoint only when it fails.
    let result = wire(ctx, host, net, &mut ep, &mac, ns, ns_path)
        .and_then(|()| ctx.state.finish_setup(&ep.id));
    match result {
        Ok(()) => {
            killpoint::reached("ready");
            tracing::info!(network = %net.name, %ip, veth = ep.host_veth.as_deref().unwrap_or(""), "set up");
            Ok(())
        }
        Err(e) => {
            tracing::error!("setup failed, rolling back: {e}");
            // The record as it stands now: wire() drops what turned out
            // not to be ours (a veth or pin that already existed).
            let _ = ctx.state.save_setup(&ep);
            match release::release(ctx, &ep) {
                Ok(()) => Err(e),
                Err(undo) => Err(Error::Conflict(format!(
                    "{e}; rollback incomplete (ocinet gc will retry): {undo}"
                ))),
            }
        }
    }
}

fn wire(
    ctx: &Context,
    host: &mut Netlink,
    net: &Network,
    ep: &mut Endpoint,
    mac: &[u8; 6],
    ns: &File,
    ns_path: &Path,
) -> Result<()> {
    let bridge = prepare_bridge(ctx, host, net)?;
    killpoint::reached("bridge");
    // nft runs while the veth is made and configured; its outcome is
    // awaited before the endpoint counts as ready.
    let change = Change {
        networks_present: vec![net.clone()],
        elements_added: ep.firewall.clone(),
        ..Default::default()
    };
    let pending = ctx.firewall()?.start_apply(&change)?;
    killpoint::reached("firewall-started");
    let wired = veth::wire_container(host, net, ep, mac, ns, bridge);
    if wired.is_ok() {
        killpoint::reached("veth");
    }
    let firewall = ctx.finish_firewall(pending, &change, Subject::Arriving(&ep.id));
    wired?;
    firewall?;
    killpoint::reached("firewall");
    pin(ep, ns_path)?;
    killpoint::reached("pinned");
    Ok(())
}

/// `ensure_bridge`, and if the bridge had to be made again while
/// containers were on it (someone deleted it), those containers' ports put
/// back on it. Returns its index.
fn prepare_bridge(ctx: &Context, host: &mut Netlink, net: &Network) -> Result<u32> {
    let (bridge, created) = ensure_bridge(host, net)?;
    if created {
        // Not this container's failure: it is set up either way.
        match restore::reattach(ctx, host, net, bridge) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(bridge = %net.bridge, ports = n, "bridge was gone: put the running containers back on it")
            }
            Err(e) => {
                tracing::warn!(bridge = %net.bridge, "bridge was gone; putting containers back on it failed: {e}")
            }
        }
    }
    Ok(bridge)
}
