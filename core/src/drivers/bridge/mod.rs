//! The bridge driver, Docker's bridge driver's way: a bridge with the
//! gateway address, a veth per attachment with `ethN` inside, an address,
//! a route and masquerade. The bridge device, the veth and putting
//! containers back on a bridge that was lost have a file each.

pub mod device;
mod network;
mod reattach;
pub(crate) mod veth;

use std::fs::File;
use std::net::IpAddr;

use ocinet_common::model::{Attachment, Network, PortSpec, Protocol};
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

pub use device::{ensure_bridge, is_ours};
pub use network::Bridge;
pub use veth::Veths;

use super::{described, NetworkDriver, Prepared};
use crate::context::Locked;
use crate::host::HostAddresses;
use crate::ipam::Lease;
use crate::naming::host_veth_name;

/// The name of `net`'s bridge. The bridge driver is given bridge networks
/// only (`drivers::kind` picks it by the definition's driver): the empty
/// name, which no link has, stands for what cannot reach here.
pub(crate) fn bridge_of(net: &Network) -> &str {
    net.bridge_name().unwrap_or_default()
}

/// The bridge driver.
pub struct BridgeDriver {
    pub net: Network,
}

impl NetworkDriver for BridgeDriver {
    fn network(&self) -> &Network {
        &self.net
    }

    fn check(&self, ports: &[PortSpec], ports_field: &str, host: &mut Netlink) -> Result<()> {
        check_ports(&self.net, ports, ports_field, host)
    }

    fn describe(
        &self,
        id: &str,
        interface: &str,
        lease: &Lease,
        default_route: bool,
        ports: &[PortSpec],
    ) -> Attachment {
        Attachment {
            bridge: Some(bridge_of(&self.net).to_string()),
            host_veth: Some(host_veth_name(id, interface)),
            ports: ports.to_vec(),
            ..described(&self.net, interface, lease, default_route)
        }
    }

    fn prepare(&self, ctx: &Locked, host: &mut Netlink) -> Result<Prepared> {
        prepare_bridge(ctx, host, &self.net).map(|b| Prepared {
            link: Some(b),
            dns_link: None,
        })
    }

    fn wire(
        &self,
        host: &mut Netlink,
        att: &mut Attachment,
        ns: &File,
        prepared: Prepared,
    ) -> Result<()> {
        veth::wire_container(host, &self.net, att, ns, prepared.link.unwrap_or_default())
    }

    fn uses_firewall(&self) -> bool {
        true
    }

    fn uses_veths(&self) -> bool {
        true
    }

    fn restore(
        &self,
        _ctx: &Locked,
        host: &mut Netlink,
        running: &[&Attachment],
    ) -> Result<(usize, usize)> {
        if running.is_empty() {
            return Ok((0, 0));
        }
        let (index, created) = ensure_bridge(host, &self.net)?;
        let ports = reattach::reattach_these(host, &self.net, index, running)?;
        Ok((usize::from(created), ports))
    }
}

/// `ensure_bridge`, and if the bridge had to be made again while
/// containers were on it (someone deleted it), those containers' ports put
/// back on it. Returns its index.
fn prepare_bridge(ctx: &Locked, host: &mut Netlink, net: &Network) -> Result<u32> {
    let (bridge, created) = ensure_bridge(host, net)?;
    if created {
        // Not this container's failure: it is set up either way.
        match reattach::reattach(ctx, host, net, bridge) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(bridge = %bridge_of(net), ports = n, "bridge was gone: put the running containers back on it")
            }
            Err(e) => {
                tracing::warn!(bridge = %bridge_of(net), "bridge was gone; putting containers back on it failed: {e}")
            }
        }
    }
    Ok(bridge)
}

/// Ports need a network with a way in, and host addresses that are this
/// host's.
fn check_ports(
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
    let loopback6 = |ip: &IpAddr| ip.is_ipv6() && ip.is_loopback();
    // `[::1]` is served by the port proxy, which carries TCP and UDP.
    if let Some(p) = ports
        .iter()
        .find(|p| p.host_ip.is_some_and(|ip| loopback6(&ip)) && p.protocol == Protocol::Sctp)
    {
        return Err(Error::invalid(
            ports_field,
            p,
            "sctp cannot be published on [::1]: the port proxy that serves IPv6 loopback carries tcp and udp",
        ));
    }
    // An IPv6 host address needs a container with an IPv6 address to
    // send to; a bare port answers over IPv6 only when it has one.
    // (`[::1]` is the port proxy's, which connects to an IPv4-only
    // container's IPv4 address.)
    if net.v6().is_none() {
        if let Some(p) = ports
            .iter()
            .find(|p| p.host_ip.is_some_and(|ip| ip.is_ipv6() && !loopback6(&ip)))
        {
            return Err(Error::invalid(
                ports_field,
                p,
                format!(
                    "network {} has no IPv6 subnet: the container has no IPv6 address to publish on an IPv6 host address",
                    net.name
                ),
            ));
        }
    }
    // And the other way round: an IPv6-only container has no IPv4 address
    // for an IPv4 host address (0.0.0.0 included) to send to.
    if !net.has_ipv4() {
        if let Some(p) = ports
            .iter()
            .find(|p| p.host_ip.is_some_and(|ip| ip.is_ipv4()))
        {
            return Err(Error::invalid(
                ports_field,
                p,
                format!(
                    "network {} is IPv6-only: the container has no IPv4 address to publish on an IPv4 host address (publish on [::] or an IPv6 address)",
                    net.name
                ),
            ));
        }
    }
    // `[::1]` is checked by binding it (the port proxy reports a failure).
    let specific = |ip: &IpAddr| !ip.is_unspecified() && !loopback6(ip);
    if ports
        .iter()
        .all(|p| p.host_ip.is_none_or(|ip| !specific(&ip)))
    {
        return Ok(());
    }
    let local = HostAddresses::of(host)?;
    for p in ports {
        if let Some(ip) = p.host_ip.filter(specific) {
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
