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
use ocinet_common::{validate, Result};

pub use device::{ensure_bridge, is_ours};

use super::NetworkDriver;
use crate::context::{Context, Subject};
use crate::killpoint;
use crate::lifecycle::attach::{self, Lease};
use crate::lifecycle::naming::{host_veth_name, CONTAINER_IFNAME};
use crate::lifecycle::pin::{netns_link_for, pin};
use crate::lifecycle::ports::{check_ports, claim_ports, with_host_ip};
use crate::lifecycle::restore;
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
    let Lease { ip, mac } = attach::lease(ctx, net, &ep, settings, host)?;
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
    attach::record_intent(ctx, net, &ep, settings, ip)?;
    // wire() changes the endpoint only when it fails.
    let wired = wire(ctx, host, net, &mut ep, &mac, ns, ns_path);
    attach::conclude(ctx, &ep, wired)?;
    tracing::info!(network = %net.name, %ip, veth = ep.host_veth.as_deref().unwrap_or(""), "set up");
    Ok(())
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
