//! Putting running containers back after someone removed what they stand
//! on: a deleted bridge (its ports fall off it and its address and
//! sysctls go with it) or a port taken off a bridge by hand. Each driver
//! says how (`NetworkDriver::restore`); the firewall half of the repair is
//! `Context::rebuild_firewall`.

use ocinet_common::health::Health;
use ocinet_common::model::{Attachment, Phase};
use ocinet_common::netlink::Netlink;
use ocinet_common::Result;

use super::drivers;
use crate::context::{Context, Locked, Subject};

/// Every network that has running containers gets what its driver needs
/// back (a bridge made again, its ports put back on it). Returns (devices
/// made, ports put back).
pub fn restore_all(ctx: &Locked) -> Result<(usize, usize)> {
    let mut host = Netlink::new()?;
    let endpoints = drivers::readable_endpoints(ctx);
    let (networks, bad) = ctx.config.list();
    for e in bad {
        tracing::warn!("restore: skipping {e}");
    }
    // A macvlan interface that went with its parent is not there to be
    // routed to: its attachment is left out (and shown by `ps`).
    let health = ocinet_common::health::of_macvlans(&endpoints)?;
    let (mut made, mut ports) = (0, 0);
    for net in networks {
        let running: Vec<&Attachment> = endpoints
            .iter()
            .filter(|e| e.phase == Phase::Ready && !e.is_stale())
            .filter_map(|e| Some((e, e.attachment_on(&net.name)?)))
            .filter(|(e, a)| {
                let h = health.get(&(e.id.clone(), a.network.clone()));
                let broken = h.is_some_and(|h| *h != Health::Ok);
                if broken {
                    tracing::warn!(
                        id = %e.id,
                        network = %a.network,
                        interface = %a.interface,
                        state = h.map(|h| h.as_str()),
                        "not put back: the container's macvlan interface went with its parent"
                    );
                }
                !broken
            })
            .map(|(_, a)| a)
            .collect();
        let name = net.name.clone();
        let (m, p) = drivers::for_network(net).restore(ctx, &mut host, &running)?;
        if m + p > 0 {
            tracing::info!(network = %name, made = m, ports = p, "restored");
        }
        made += m;
        ports += p;
    }
    Ok((made, ports))
}

/// `ocinet firewall reload`, under the state lock (taken here): the table
/// rebuilt from the saved state, then what the drivers need put back.
/// Returns ((networks, container interfaces) in the table, (devices made,
/// ports put back)).
pub fn reload(ctx: &Context) -> Result<((usize, usize), (usize, usize))> {
    let ctx = &ctx.lock()?;
    let (networks, attachments) = ctx.rebuild_firewall(&ctx.firewall()?, Subject::Nobody, &[])?;
    tracing::info!(networks, attachments, "firewall rebuilt");
    let (bridges, ports) = restore_all(ctx)?;
    tracing::info!(bridges, ports, "bridges restored");
    Ok(((networks, attachments), (bridges, ports)))
}
