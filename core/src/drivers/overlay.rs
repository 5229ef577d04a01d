//! The overlay driver: on each host, a bridge network (the bridge kind's
//! devices, veths and firewall elements) whose addresses come from the
//! host's blocks of the cluster-wide subnet, with proxy ARP on the bridge
//! and the network's VXLAN device beside it, routed to the other hosts'
//! blocks by the agent (`crate::overlay`). Its attachments are bridge
//! attachments in the record, so teardown is the bridge kind's; what the
//! cluster store holds of them goes in `overlay::names::released`.

use std::fs::File;

use ipnet::Ipv4Net;
use ocinet_common::model::{Attachment, Driver, Endpoint, Network, NetworkRequest, PortSpec};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::networks::Broken;
use ocinet_common::{sysctl, Error, Result};
use serde_json::json;

use super::bridge::{Bridge, BridgeDriver, Veths};
use super::{NetworkDriver, NetworkKind, Prepared};
use crate::context::Locked;
use crate::ipam::Lease;
use crate::overlay::{dataplane, definitions, neighbours};

/// The overlay kind of network.
pub struct Overlay;

impl NetworkKind for Overlay {
    fn driver(&self) -> Driver {
        Driver::Overlay
    }

    fn for_network(&self, net: Network) -> Box<dyn NetworkDriver> {
        Box::new(OverlayDriver {
            bridge: BridgeDriver { net },
        })
    }

    /// None: every member must agree on the subnet, so the user names it.
    fn default_subnet(&self, _ctx: &Locked, _host: &mut Netlink) -> Result<Ipv4Net> {
        Err(Error::invalid(
            "subnet",
            "none",
            "an overlay network needs --subnet: one subnet spans every host of the cluster",
        ))
    }

    fn shape(&self, req: &NetworkRequest, net: &mut Network) {
        net.dns = !req.disable_dns;
    }

    /// The bridge's checks, then the cluster's: the MTU the underlay
    /// carries, the name and VNI free in the cluster (taken there now).
    fn check_host(
        &self,
        ctx: &Locked,
        host: &mut Netlink,
        net: &mut Network,
        mtu: Option<u32>,
    ) -> Result<()> {
        Bridge.check_host(ctx, host, net, mtu)?;
        let vni = net.overlay().map(|o| o.device()).unwrap_or_default();
        if let Some(l) = host.link_by_name(&vni)? {
            return Err(Error::invalid(
                "vni",
                vni.trim_start_matches("ocv"),
                format!(
                    "interface {} (index {}) already exists on this host",
                    l.name, l.index
                ),
            ));
        }
        definitions::publish(ctx, host, net, mtu)
    }

    fn remove(&self, ctx: &Locked, host: &mut Netlink, net: &Network) -> Result<()> {
        dataplane::remove_device(host, net)?;
        Bridge.remove(ctx, host, net)
    }

    fn remove_broken(
        &self,
        _ctx: &Locked,
        _host: &mut Netlink,
        _b: &Broken,
        _good: &[Network],
    ) -> Result<()> {
        // The bridge kind removes its bridge; a VXLAN device of a broken
        // definition has no VNI to be known by (gc's agent pass removes
        // devices of networks the cluster no longer has).
        Ok(())
    }

    fn options(&self, net: &Network) -> serde_json::Value {
        let mut o = Bridge.options(net);
        if let (Some(ov), Some(map)) = (net.overlay(), o.as_object_mut()) {
            map.insert(
                "com.docker.network.driver.overlay.vxlanid_list".into(),
                json!(ov.vni.to_string()),
            );
            map.insert("vxlan_device".into(), json!(ov.device()));
        }
        o
    }

    fn device<'a>(&self, net: &'a Network) -> Option<&'a str> {
        net.bridge_name()
    }

    /// Never: an overlay attachment is a bridge attachment in the record
    /// (the bridge kind tears it down).
    fn made(&self, _att: &Attachment) -> bool {
        false
    }

    fn remove_devices(
        &self,
        _ctx: &Locked,
        _ep: &Endpoint,
        _atts: &[&Attachment],
        _how: Veths,
        _errors: &mut Vec<Error>,
    ) {
    }
}

/// An overlay network's attachments: the bridge driver's, with the
/// network's VXLAN device and proxy ARP prepared beside the bridge.
pub struct OverlayDriver {
    bridge: BridgeDriver,
}

impl NetworkDriver for OverlayDriver {
    fn network(&self) -> &Network {
        self.bridge.network()
    }

    fn check(&self, ports: &[PortSpec], ports_field: &str, host: &mut Netlink) -> Result<()> {
        self.bridge.check(ports, ports_field, host)
    }

    fn describe(
        &self,
        id: &str,
        interface: &str,
        lease: &Lease,
        default_route: bool,
        ports: &[PortSpec],
    ) -> Attachment {
        let mut att = self
            .bridge
            .describe(id, interface, lease, default_route, ports);
        // An IPv6 address is on-link within its host's block only (the
        // default route reaches the gateway on-link: `inside::configure_attachment`).
        let net = self.network();
        if let Some(len) =
            crate::overlay::lease::container_prefix6(net, lease.ip4.map(|(ip, _)| ip))
        {
            for a in att.addresses.iter_mut() {
                if let ipnet::IpNet::V6(v6) = a {
                    if let Ok(n) = ipnet::Ipv6Net::new(v6.addr(), len) {
                        *a = ipnet::IpNet::V6(n);
                    }
                }
            }
        }
        att
    }

    fn prepare(&self, ctx: &Locked, host: &mut Netlink) -> Result<Prepared> {
        let prepared = self.bridge.prepare(ctx, host)?;
        let net = self.network();
        let cfg = ocinet_cluster::ClusterConfig::required(ctx.config.root())?;
        if let Some(b) = net.bridge_name() {
            proxy_arp(b)?;
            if let Some(index) = prepared.link {
                neighbours::tune_bridge(host, b, index, net.v6().is_some())?;
            }
        }
        // Between the bridge and the VXLAN device the host routes, an
        // internal network's too (the firewall keeps it from anything
        // else; the bridge kind turns forwarding on only for networks
        // with a way out).
        sysctl::enable_ipv4_forwarding()?;
        if net.v6().is_some() {
            sysctl::enable_ipv6_forwarding()?;
        }
        let (_, created) = dataplane::ensure_device(host, &cfg, net)?;
        if created {
            // The host's first container here: the routes to the other
            // hosts' blocks now, not at the agent's next pass, or the
            // container's first ARP falls in between and waits for its
            // retry (`neighbours`; measured: BENCHMARKS.md section 16.2).
            let held = crate::overlay::with_member(ctx, |m| crate::overlay::lease::held(m, net))?;
            dataplane::program(host, &cfg, net, &held)?;
        }
        Ok(prepared)
    }

    fn wire(
        &self,
        host: &mut Netlink,
        att: &mut Attachment,
        ns: &File,
        prepared: Prepared,
    ) -> Result<()> {
        self.bridge.wire(host, att, ns, prepared)?;
        neighbours::tune(ns, att)
    }

    fn unwire_inside(&self, ns: &File, att: &Attachment) -> Result<()> {
        self.bridge.unwire_inside(ns, att)
    }

    fn uses_firewall(&self) -> bool {
        true
    }

    fn uses_veths(&self) -> bool {
        true
    }

    fn restore(
        &self,
        ctx: &Locked,
        host: &mut Netlink,
        running: &[&Attachment],
    ) -> Result<(usize, usize)> {
        let r = self.bridge.restore(ctx, host, running)?;
        if !running.is_empty() {
            if let Some(b) = self.network().bridge_name() {
                proxy_arp(b)?;
                if let Some(l) = host.link_by_name(b)? {
                    neighbours::tune_bridge(host, b, l.index, self.network().v6().is_some())?;
                }
            }
            let cfg = ocinet_cluster::ClusterConfig::required(ctx.config.root())?;
            dataplane::ensure_device(host, &cfg, self.network())?;
        }
        Ok(r)
    }
}

/// Proxy ARP on the bridge: a container's ARP for a container of another
/// host (on-link in the subnet) is answered with the bridge's MAC, at
/// once (the kernel delays a proxied answer by up to 0.8 s by default,
/// measured as the first ping to a new remote container taking ~1 s).
fn proxy_arp(bridge: &str) -> Result<()> {
    sysctl::set_proxy_arp(bridge, true)?;
    sysctl::write(
        &format!("/proc/sys/net/ipv4/neigh/{bridge}/proxy_delay"),
        "0",
    )
}
