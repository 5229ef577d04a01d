//! Which containers this host has on overlay networks, in the store: the
//! other hosts' resolvers answer their names from it, and `network rm`
//! on any host sees them. Each key is on the host's lease, so a host
//! that dies takes its entries with it once the lease expired.

use ocinet_cluster::keys;
use ocinet_cluster::values::{self, Container, VERSION};
use ocinet_common::model::{Attachment, Endpoint, Network};
use ocinet_common::netlink::Netlink;

use super::{lease, Member};
use crate::context::Locked;

/// The store's entry for `att`, the attachment of `ep` to an overlay network.
pub fn entry(m: &Member, ep: &Endpoint, att: &Attachment) -> Vec<u8> {
    values::encode(&Container {
        version: VERSION,
        node: m.cfg.node.clone(),
        id: ep.id.clone(),
        name: (!ep.name.is_empty()).then(|| ep.name.clone()),
        aliases: att.aliases.clone(),
        addresses: att
            .ipv4()
            .map(std::net::IpAddr::V4)
            .into_iter()
            .chain(att.ipv6().map(std::net::IpAddr::V6))
            .collect(),
    })
}

fn overlay_attachments<'a>(ctx: &Locked, ep: &'a Endpoint) -> Vec<(&'a Attachment, Network)> {
    ep.attachments
        .iter()
        .filter_map(|a| {
            let net = ctx.config.load(&a.network).ok().flatten()?;
            net.overlay().is_some().then_some((a, net))
        })
        .collect()
}

/// After `ep` is set up: its overlay attachments in the store. A failure
/// is logged, not the setup's: the container runs and reaches the other
/// hosts by address; the agent puts the entry there when it can.
pub fn registered(ctx: &Locked, ep: &Endpoint) {
    let atts = overlay_attachments(ctx, ep);
    if atts.is_empty() {
        return;
    }
    let put = super::with_member(ctx, |m| {
        let lease = m.lease_of(ctx)?;
        for (a, net) in &atts {
            let key = keys::container(&net.name, &m.cfg.node, &ep.id);
            let value = entry(m, ep, a);
            m.store.put(&key, value, Some(lease))?;
        }
        Ok(())
    });
    if let Err(e) = put {
        tracing::warn!(id = %ep.id, "the other hosts do not know the container's name yet (the agent retries): {e}");
    }
}

/// After `ep`'s record (or its attachments `atts`) is gone: their
/// entries leave the store, and on a network where this host has no
/// container left, its blocks and its VXLAN device go too. A store that
/// cannot be reached is logged: the agent removes what has no record
/// once it can.
pub fn released(ctx: &Locked, ep: &Endpoint, atts: &[Attachment]) {
    let nets: Vec<(String, Network)> = atts
        .iter()
        .filter_map(|a| {
            let net = ctx.config.load(&a.network).ok().flatten()?;
            net.overlay().is_some().then(|| (a.network.clone(), net))
        })
        .collect();
    if nets.is_empty() {
        return;
    }
    let (others, _) = ctx.state.list_endpoints();
    let result = super::with_member(ctx, |m| {
        for (name, net) in &nets {
            m.store
                .delete(&keys::container(name, &m.cfg.node, &ep.id))?;
            let left = others.iter().any(|e| e.id != ep.id && e.is_on(name));
            if !left {
                lease::release_empty(ctx, m, net)?;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!(id = %ep.id, "the cluster store still lists the container (the agent removes it): {e}");
    }
    // The agent, started again if it died while this host still has
    // overlay containers: without systemd to restart it, a teardown is
    // where the host notices soonest (gc does too). `others` was read
    // after the record lost these attachments.
    match super::agent::revive(ctx, &others, false) {
        Ok(Some(pid)) => tracing::warn!(pid, "the overlay agent was not running: started again"),
        Ok(None) => {}
        Err(e) => tracing::warn!("the overlay agent is not running and did not start: {e}"),
    }
    for (name, net) in &nets {
        if !others.iter().any(|e| e.id != ep.id && e.is_on(name)) {
            if let Err(e) =
                Netlink::new().and_then(|mut nl| super::dataplane::remove_device(&mut nl, net))
            {
                tracing::warn!(network = %name, "VXLAN device left: {e}");
            }
        }
    }
}
