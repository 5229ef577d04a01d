//! Looking networks up, creating the default one on first use, and checking
//! a new network against the others and the host's routes.

use ipnet::Ipv4Net;
use ocinet_common::model::network::{find_conflict, DEFAULT_NETWORK};
use ocinet_common::model::Network;
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

use crate::context::Locked;

/// The host's IPv4 routes as (destination, device name).
pub fn host_routes(nl: &mut Netlink) -> Result<Vec<(Ipv4Net, String)>> {
    let links = nl.links()?;
    let name = |idx: Option<u32>| {
        idx.and_then(|i| links.iter().find(|l| l.index == i))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    Ok(nl
        .ipv4_routes()?
        .into_iter()
        .map(|r| (r.destination, name(r.oif)))
        .collect())
}

pub fn check_conflicts(ctx: &Locked, candidate: &Network, nl: &mut Netlink) -> Result<()> {
    let (existing, bad) = ctx.config.list();
    for e in bad {
        tracing::warn!("skipping unreadable network definition: {e}");
    }
    match find_conflict(candidate, &existing, &host_routes(nl)?) {
        Some(why) => Err(Error::Conflict(format!(
            "network {}: {why}",
            candidate.name
        ))),
        None => Ok(()),
    }
}

/// Load a network; the default network is created (and checked) on first use.
pub fn get(ctx: &Locked, name: &str, nl: &mut Netlink) -> Result<Network> {
    if let Some(n) = ctx.config.load(name)? {
        return Ok(n);
    }
    if name != DEFAULT_NETWORK {
        return ctx.config.get(name);
    }
    let n = Network::default_network();
    check_conflicts(ctx, &n, nl)?;
    ctx.config.save(&n)?;
    tracing::info!(network = %n.name, subnet = %n.subnet(), "created the default network");
    Ok(n)
}
