//! Putting running containers back after someone removed what they stand
//! on: a deleted bridge (its ports fall off it and its address and
//! sysctls go with it) or a port taken off a bridge by hand. The firewall
//! half of the repair is `Context::rebuild_firewall`.

use ocinet_common::model::{Endpoint, Network, Phase};
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{Error, Result};

use super::drivers::bridge;
use crate::context::Context;

/// The records that can be read; the others are logged and skipped.
fn readable_endpoints(ctx: &Context) -> Vec<Endpoint> {
    let (endpoints, bad) = ctx.state.list_endpoints();
    for e in bad {
        tracing::warn!("restore: skipping {e}");
    }
    endpoints
}

/// Endpoints of `net` that should be on its bridge now.
fn running_on<'a>(endpoints: &'a [Endpoint], net: &str) -> Vec<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|e| e.phase == Phase::Ready && e.network() == Some(net) && !e.is_stale())
        .collect()
}

/// Put every running container of `net` whose host veth is not a port of
/// `bridge` back on it (with hairpin for publishing containers, as setup
/// does). Returns how many were put back. Callers hold the lock.
pub fn reattach(ctx: &Context, host: &mut Netlink, net: &Network, bridge: u32) -> Result<usize> {
    let endpoints = readable_endpoints(ctx);
    reattach_these(host, net, bridge, &running_on(&endpoints, &net.name))
}

fn reattach_these(
    host: &mut Netlink,
    net: &Network,
    bridge: u32,
    running: &[&Endpoint],
) -> Result<usize> {
    let _span = tracing::debug_span!("reattach", bridge = %net.bridge).entered();
    let mut errors = Vec::new();
    let mut count = 0;
    for ep in running {
        let Some(veth) = &ep.host_veth else { continue };
        let link = match host.link_by_name(veth) {
            Ok(Some(l)) => l,
            // Its namespace died with the container; poststop or gc will
            // clear the record.
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if link.controller == Some(bridge) && link.up {
            continue;
        }
        let attached = host
            .attach(
                link.index,
                bridge,
                &format!("put {veth} back on {}", net.bridge),
            )
            .and_then(|()| {
                if ep.ports.is_empty() {
                    Ok(())
                } else {
                    host.set_bridge_port(
                        LinkRef::Index(link.index),
                        true,
                        &format!("set hairpin on {veth}"),
                    )
                }
            });
        match attached {
            Ok(()) => count += 1,
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(count)
    } else {
        Err(Error::Many(errors))
    }
}

/// Every network that has running containers gets its bridge (made again
/// if need be) and its containers' ports back. Returns (bridges made,
/// ports put back). Callers hold the lock.
pub fn restore_all(ctx: &Context) -> Result<(usize, usize)> {
    let mut host = Netlink::new()?;
    let endpoints = readable_endpoints(ctx);
    let (networks, bad) = ctx.config.list();
    for e in bad {
        tracing::warn!("restore: skipping {e}");
    }
    let (mut made, mut ports) = (0, 0);
    // Only bridges can be lost and made again; a macvlan sub-interface
    // lives and dies with its container's namespace.
    for net in networks
        .iter()
        .filter(|n| n.driver == ocinet_common::model::Driver::Bridge)
    {
        let running = running_on(&endpoints, &net.name);
        if running.is_empty() {
            continue;
        }
        let (index, created) = bridge::ensure_bridge(&mut host, net)?;
        made += usize::from(created);
        ports += reattach_these(&mut host, net, index, &running)?;
    }
    Ok((made, ports))
}
