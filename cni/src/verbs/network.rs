//! The ocinet network a configuration names: made from its inline
//! definition on the first ADD, checked against it afterwards.

use ocinet_common::model::{Network, NetworkRequest};
use ocinet_common::netlink::Netlink;
use ocinet_core::context::Locked;
use rscni_types::error::Error as CniError;

use crate::conf::{Conf, Inline};
use crate::errors::to_cni;

/// The network, made first if the configuration defines it and it does
/// not exist yet.
pub fn ensure(ctx: &Locked, conf: &Conf) -> Result<Network, CniError> {
    let mut nl = Netlink::new().map_err(to_cni)?;
    if let Some(existing) = ctx.config.load(&conf.network).map_err(to_cni)? {
        agrees(&existing, &conf.inline)?;
        return Ok(existing);
    }
    if conf.inline.is_empty() {
        return ocinet_core::networks::get(ctx, &conf.network, &mut nl).map_err(to_cni);
    }
    let i = &conf.inline;
    if i.subnet.is_none() && i.subnet6.is_none() {
        return Err(CniError::InvalidNetworkConfig(format!(
            "network {} does not exist: an inline definition needs a subnet",
            conf.network
        )));
    }
    // The CLI's `network create`, with what an inline definition can say;
    // its per-family rules (a gateway only with a subnet of its family)
    // are the CLI's too.
    let subnets: Vec<ipnet::IpNet> = i
        .subnet
        .map(ipnet::IpNet::V4)
        .into_iter()
        .chain(i.subnet6.map(ipnet::IpNet::V6))
        .collect();
    let gateways: Vec<std::net::IpAddr> = i
        .gateway
        .map(std::net::IpAddr::V4)
        .into_iter()
        .chain(i.gateway6.map(std::net::IpAddr::V6))
        .collect();
    let req = NetworkRequest {
        name: conf.network.clone(),
        bridge: i.bridge.clone(),
        mtu: i.mtu,
        internal: i.internal.unwrap_or(false),
        disable_dns: i.disable_dns.unwrap_or(false),
        dns_upstreams: i.dns_upstreams.clone().unwrap_or_default(),
        no_masquerade: i.no_masquerade.clone().unwrap_or_default(),
        ..NetworkRequest::default()
    }
    .with_families(&subnets, &gateways, &[], true, i.ipv6.unwrap_or(false))
    .map_err(to_cni)?;
    let net = ocinet_core::networks::create_locked(ctx, &req).map_err(to_cni)?;
    tracing::info!(network = %net.name, "network created from the CNI configuration");
    Ok(net)
}

/// Every key the configuration gives must say what the definition says.
fn agrees(net: &Network, i: &Inline) -> Result<(), CniError> {
    let differs = |key: &str, given: String, saved: String| {
        Err(CniError::InvalidNetworkConfig(format!(
            "invalid {key} {given:?}: network {} exists with {key} {saved:?}",
            net.name
        )))
    };
    let v4 = net.v4();
    let none = || "no IPv4 subnet".to_string();
    if let Some(s) = i.subnet {
        if Some(s) != v4.map(|v| v.subnet) {
            let saved = v4.map_or_else(none, |v| v.subnet.to_string());
            return differs("subnet", s.to_string(), saved);
        }
    }
    if let Some(g) = i.gateway {
        if Some(g) != v4.map(|v| v.gateway) {
            let saved = v4.map_or_else(none, |v| v.gateway.to_string());
            return differs("gateway", g.to_string(), saved);
        }
    }
    // A definition that names subnets names the network's families: an
    // IPv6 subnet it lacks (or has that the network lacks) differs, as
    // an IPv4 one would.
    if (i.subnet.is_some() || i.subnet6.is_some()) && i.subnet6 != net.subnet6() {
        let show = |s: Option<ipnet::Ipv6Net>| {
            s.map(|s| s.to_string())
                .unwrap_or_else(|| "no IPv6 subnet".into())
        };
        return differs("subnet", show(i.subnet6), show(net.subnet6()));
    }
    if let Some(g) = i.gateway6 {
        if Some(g) != net.gateway6() {
            return differs(
                "gateway",
                g.to_string(),
                net.gateway6()
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "no IPv6 gateway".into()),
            );
        }
    }
    if let Some(x) = i.ipv6 {
        if x != net.v6().is_some() {
            return differs("ipv6", x.to_string(), net.v6().is_some().to_string());
        }
    }
    if let Some(b) = &i.bridge {
        let theirs = net.bridge_name().unwrap_or_default();
        if b != theirs {
            return differs("bridge", b.clone(), theirs.to_string());
        }
    }
    if let Some(m) = i.mtu {
        if m != net.mtu {
            return differs("mtu", m.to_string(), net.mtu.to_string());
        }
    }
    if let Some(x) = i.internal {
        if x != net.internal {
            return differs("internal", x.to_string(), net.internal.to_string());
        }
    }
    if let Some(d) = i.disable_dns {
        if d == net.dns {
            return differs("disableDns", d.to_string(), (!net.dns).to_string());
        }
    }
    if let Some(u) = &i.dns_upstreams {
        if *u != net.dns_upstreams {
            return differs(
                "dnsUpstreams",
                format!("{u:?}"),
                format!("{:?}", net.dns_upstreams),
            );
        }
    }
    if let Some(n) = &i.no_masquerade {
        let theirs = net
            .bridge()
            .map(|b| b.no_masquerade.as_slice())
            .unwrap_or_default();
        if n.as_slice() != theirs {
            return differs("noMasquerade", format!("{n:?}"), format!("{theirs:?}"));
        }
    }
    Ok(())
}
