//! A bridge network's life outside its attachments: the defaults and host
//! checks of `network create`, what `network rm` removes, what `inspect`
//! and `ls` show, and the teardown of its attachments' veths by record.

use ipnet::Ipv4Net;
use ocinet_common::model::network::{bridge_name_for, find_conflict, BridgeOptions, DriverOptions};
use ocinet_common::model::{Attachment, Driver, Endpoint, Network, NetworkRequest};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::networks::Broken;
use ocinet_common::{Error, Result};
use serde_json::json;

use super::veth::{self, Veths};
use super::{bridge_of, device, BridgeDriver};
use crate::context::Locked;
use crate::drivers::{NetworkDriver, NetworkKind};
use crate::host;

/// The bridge kind of network.
pub struct Bridge;

impl NetworkKind for Bridge {
    fn driver(&self) -> Driver {
        Driver::Bridge
    }

    fn for_network(&self, net: Network) -> Box<dyn NetworkDriver> {
        Box::new(BridgeDriver { net })
    }

    /// The first /24 of 10.90.0.0/15 (past the ranges Podman hands out)
    /// that conflicts with nothing.
    fn default_subnet(&self, ctx: &Locked, host: &mut Netlink) -> Result<Ipv4Net> {
        let (existing, _) = ctx.config.list();
        let routes = host::routes(host)?;
        for i in 0..512u32 {
            let base = u32::from(std::net::Ipv4Addr::new(10, 90, 0, 0)) + (i << 8);
            let cand = Ipv4Net::new(base.into(), 24).map_err(|e| Error::Conflict(e.to_string()))?;
            // Nameless and bridgeless: only its subnet can conflict.
            let probe = Network {
                name: String::new(),
                options: DriverOptions::Bridge(BridgeOptions::named("")),
                ..Network::default_network().with_subnet(cand)
            };
            if find_conflict(&probe, &existing, &routes).is_none() {
                return Ok(cand);
            }
        }
        Err(Error::Conflict(
            "no free /24 left in 10.90.0.0/15; pass --subnet".into(),
        ))
    }

    fn shape(&self, req: &NetworkRequest, net: &mut Network) {
        net.dns = !req.disable_dns;
    }

    fn check_host(
        &self,
        _ctx: &Locked,
        host: &mut Netlink,
        net: &mut Network,
        _mtu: Option<u32>,
    ) -> Result<()> {
        match host.link_by_name(bridge_of(net))? {
            Some(l) => Err(Error::invalid(
                "bridge",
                bridge_of(net),
                format!(
                    "interface {} (index {}) already exists on the host",
                    l.name, l.index
                ),
            )),
            None => Ok(()),
        }
    }

    fn remove(&self, _ctx: &Locked, host: &mut Netlink, net: &Network) -> Result<()> {
        match host.link_by_name(bridge_of(net))? {
            Some(l) if device::is_ours(&l) => {
                host.delete_link(bridge_of(net))?;
            }
            Some(l) => tracing::warn!(
                network = %net.name,
                interface = %l.name,
                "left alone: an interface of the bridge's name that ocinet did not create"
            ),
            None => {}
        }
        Ok(())
    }

    /// Every bridge the definition may have meant: the one its file names,
    /// the one of its parsed contents, and the default for its name.
    fn remove_broken(
        &self,
        _ctx: &Locked,
        host: &mut Netlink,
        b: &Broken,
        good: &[Network],
    ) -> Result<()> {
        let mut bridges: Vec<String> = b
            .bridge
            .iter()
            .cloned()
            .chain(
                b.parsed
                    .iter()
                    .filter_map(|n| n.bridge_name().map(str::to_string)),
            )
            .chain([bridge_name_for(&b.name)])
            .filter(|br| !br.is_empty())
            .collect();
        bridges.sort();
        bridges.dedup();
        for br in bridges {
            if good.iter().any(|n| n.bridge_name() == Some(br.as_str())) {
                continue;
            }
            if let Some(l) = host.link_by_name(&br)? {
                if device::is_ours(&l) {
                    host.delete_link(&br)?;
                }
            }
        }
        Ok(())
    }

    fn options(&self, net: &Network) -> serde_json::Value {
        let Some(b) = net.bridge() else {
            return json!({});
        };
        json!({
            "bridge": b.bridge,
            "mtu": net.mtu,
            "gateway_mode": b.gateway_mode.as_str(),
            "gateway_mode_ipv4": b.gateway_mode.as_str(),
            "gateway_mode_ipv6": net.v6().map(|_| b.gateway_mode_v6().as_str()),
            "host_binding_ipv4": b.host_binding_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string()),
        })
    }

    fn device<'a>(&self, net: &'a Network) -> Option<&'a str> {
        net.bridge_name()
    }

    /// A veth made, or meant to be (a name that turned out to be someone
    /// else's is dropped from the record, the bridge stays).
    fn made(&self, att: &Attachment) -> bool {
        att.host_veth.is_some() || att.bridge.is_some()
    }

    fn retire_inside(&self, ep: &Endpoint, atts: &[&Attachment]) {
        veth::retire_inside(ep, atts);
    }

    fn remove_devices(
        &self,
        ctx: &Locked,
        _ep: &Endpoint,
        atts: &[&Attachment],
        how: Veths,
        errors: &mut Vec<Error>,
    ) {
        veth::remove_host_ends(ctx, atts, how, errors);
        veth::forget_neighbours6(atts, errors);
    }
}
