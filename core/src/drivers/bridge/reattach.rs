//! Putting a bridge's running containers back on it after someone deleted
//! it (its ports fall off it, its address and sysctls go with it) or took
//! a port off it by hand: at `prepare` of the next setup on the network,
//! and from `restore::restore_all`.

use super::bridge_of;
use ocinet_common::model::{Attachment, Network};
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{Error, Result};

use crate::context::Locked;

/// Put every running attachment of `net` whose host veth is not a port of
/// `bridge` back on it (with hairpin for publishing ones, as setup does).
/// Returns how many were put back.
pub fn reattach(ctx: &Locked, host: &mut Netlink, net: &Network, bridge: u32) -> Result<usize> {
    let endpoints = crate::drivers::readable_endpoints(ctx);
    reattach_these(
        host,
        net,
        bridge,
        &crate::drivers::running_on(&endpoints, &net.name),
    )
}

pub(crate) fn reattach_these(
    host: &mut Netlink,
    net: &Network,
    bridge: u32,
    running: &[&Attachment],
) -> Result<usize> {
    let _span = tracing::debug_span!("reattach", bridge = %bridge_of(net)).entered();
    let mut errors = Vec::new();
    let mut count = 0;
    for att in running {
        let Some(veth) = &att.host_veth else { continue };
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
        // Retired by a teardown that was killed before it removed the
        // record: gc or the next teardown finishes it, it never comes back.
        if (link.controller == Some(bridge) && link.up) || link.is_retired() {
            continue;
        }
        let attached = host
            .attach(
                link.index,
                bridge,
                &format!("put {veth} back on {}", bridge_of(net)),
            )
            .and_then(|()| {
                if att.ports.is_empty() {
                    Ok(())
                } else {
                    host.set_bridge_port(
                        LinkRef::Index(link.index),
                        true,
                        false,
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
