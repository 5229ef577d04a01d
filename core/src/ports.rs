//! Published ports at setup: checked against the network and the host's
//! addresses, defaulted to the network's host address, and claimed (after
//! freeing those of holders that are gone).

use std::net::{IpAddr, Ipv4Addr};

use ocinet_common::model::PortSpec;
use ocinet_common::{validate, Error, Result};

use super::release;
use crate::context::Locked;

/// The network's default host address on the mappings that name none
/// (`--host-binding-ip`): claimed, published and recorded as if written.
pub(crate) fn with_host_ip(ports: &[PortSpec], ip: Option<Ipv4Addr>) -> Vec<PortSpec> {
    ports
        .iter()
        .map(|p| PortSpec {
            host_ip: p.host_ip.or(ip.map(IpAddr::V4)),
            ..p.clone()
        })
        .collect()
}

/// Claim the published ports for container `id`, first freeing any held
/// by a container that is gone (its runtime died without poststop) or by a
/// hook that died before recording, so they do not wait for gc. The
/// claims name `network`, the one the ports are published from.
pub(crate) fn claim_ports(ctx: &Locked, id: &str, network: &str, ports: &[PortSpec]) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let claims = ctx.state.port_claims();
    let mut released: Vec<String> = Vec::new();
    for o in claims.overlaps(id, ports)? {
        let holder = &o.held.holder;
        if released.contains(holder) {
            continue;
        }
        let record = match validate::container_id("container id", holder) {
            Ok(()) => ctx.state.load_endpoint(holder)?,
            Err(_) => None,
        };
        match record {
            Some(h) if h.is_stale() => {
                tracing::warn!(holder = %holder, "releasing the ports of a container that is gone");
                release::release(ctx, &h)?;
                // A claim its record does not list (left by a killed
                // retry) goes too.
                claims.release_claim(&o.held)?;
                released.push(holder.clone());
            }
            Some(h) => {
                return Err(Error::Conflict(format!(
                    "host port {} is already published by container {} ({}) as {}",
                    o.wanted, h.id, h.name, o.held
                )));
            }
            None => {
                // Claimed but never recorded: a hook died in between.
                claims.release_claim(&o.held)?;
            }
        }
    }
    claims.claim(id, network, ports)
}
