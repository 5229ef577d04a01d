//! Published ports at setup: checked against the network and the host's
//! addresses, defaulted to the network's host address, and claimed (after
//! freeing those of holders that are gone).

use std::net::Ipv4Addr;

use ocinet_common::model::{Network, PortSpec};
use ocinet_common::netlink::Netlink;
use ocinet_common::{validate, Error, Result};

use super::release;
use crate::context::Locked;

/// The network's default host address on the mappings that name none
/// (`--host-binding-ip`): claimed, published and recorded as if written.
pub(crate) fn with_host_ip(ports: &[PortSpec], ip: Option<Ipv4Addr>) -> Vec<PortSpec> {
    ports
        .iter()
        .map(|p| PortSpec {
            host_ip: p.host_ip.or(ip),
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

/// Ports need a network with a way in, and host addresses that are this
/// host's.
/// The host's IPv4 addresses, to check a port binding against: one of
/// them, or loopback (every 127/8 address is the host's).
pub struct HostAddresses(Vec<Ipv4Addr>);

impl HostAddresses {
    pub fn of(host: &mut Netlink) -> Result<Self> {
        Ok(HostAddresses(
            host.ipv4_addresses()?
                .into_iter()
                .map(|(_, ip, _)| ip)
                .collect(),
        ))
    }

    pub fn has(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.0.contains(&ip)
    }
}

pub(crate) fn check_ports(
    net: &Network,
    ports: &[PortSpec],
    ports_field: &str,
    host: &mut Netlink,
) -> Result<()> {
    let Some(first) = ports.first() else {
        return Ok(());
    };
    if net.internal {
        return Err(Error::invalid(
            ports_field,
            first,
            format!(
                "network {} is internal: nothing can be published from it",
                net.name
            ),
        ));
    }
    if ports.iter().all(|p| p.host_ip.is_none()) {
        return Ok(());
    }
    let local = HostAddresses::of(host)?;
    for p in ports {
        if let Some(ip) = p.host_ip {
            if !local.has(ip) {
                return Err(Error::invalid(
                    ports_field,
                    p,
                    format!("{ip} is not an address of this host"),
                ));
            }
        }
    }
    Ok(())
}
