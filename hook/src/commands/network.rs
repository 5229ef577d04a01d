//! `ocinet network create|ls|inspect|rm`.

use std::collections::BTreeMap;

use ocinet_common::health::Health;
use ocinet_common::model::{NetworkRequest, Origin};
use ocinet_common::store::networks::Definition;
use ocinet_common::{Error, Result};
use serde_json::json;

use crate::cli::NetworkCommand;
use ocinet_core::connect;
use ocinet_core::context::Context;
use ocinet_core::drivers;
use ocinet_core::networks;

pub fn run(ctx: &Context, cmd: &NetworkCommand) -> Result<String> {
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            ip_range,
            ipv6,
            ipv4,
            bridge,
            mtu,
            internal,
            gateway_mode,
            gateway_mode_ipv4,
            gateway_mode_ipv6,
            aux_address,
            host_binding_ip,
            driver,
            parent,
            mode,
            disable_dns,
            dns_upstream,
            dns_rate_limit,
            dns_address,
            no_masquerade,
            vni,
        } => create(
            ctx,
            &NetworkRequest {
                name: name.clone(),
                driver: *driver,
                bridge: bridge.clone(),
                mtu: *mtu,
                internal: *internal,
                aux_addresses: aux_address.clone(),
                host_binding_ip: *host_binding_ip,
                parent: parent.clone(),
                macvlan_mode: *mode,
                disable_dns: *disable_dns,
                dns_upstreams: dns_upstream.clone(),
                dns_rate_limit: *dns_rate_limit,
                no_masquerade: no_masquerade.clone(),
                vni: *vni,
                ..Default::default()
            }
            .with_families(subnet, gateway, ip_range, *ipv4, *ipv6)?
            .with_dns_addresses(dns_address)?
            .with_gateway_modes(*gateway_mode, *gateway_mode_ipv4, *gateway_mode_ipv6),
        ),
        NetworkCommand::Ls => ls(ctx),
        NetworkCommand::Inspect { name } => inspect(ctx, name),
        NetworkCommand::Rm { name } => rm(ctx, name),
        NetworkCommand::Connect {
            network,
            container,
            ip,
            ip6,
            alias,
        } => connect::connect(
            ctx,
            network,
            container,
            &connect::ConnectOptions {
                addresses: ip
                    .iter()
                    .copied()
                    .chain(ip6.map(std::net::IpAddr::V6))
                    .collect(),
                ip_field: "--ip".into(),
                ip6_field: if ip.is_some_and(|a| a.is_ipv6()) {
                    "--ip".into()
                } else {
                    "--ip6".into()
                },
                aliases: alias.clone(),
                aliases_field: "--alias".into(),
                ranges: Vec::new(),
                ranges_field: String::new(),
                interface: None,
                by: Origin::Oci,
            },
        ),
        NetworkCommand::Disconnect { network, container } => {
            connect::disconnect(ctx, network, container)
        }
    }
}

fn create(ctx: &Context, req: &NetworkRequest) -> Result<String> {
    networks::create(ctx, req)?;
    Ok(format!("{}\n", req.name))
}

fn ls(ctx: &Context) -> Result<String> {
    // A member lists the cluster's overlay networks, wherever made.
    if ocinet_core::overlay::joined(ctx) {
        if let Err(e) = ocinet_core::overlay::definitions::sync(ctx) {
            eprintln!("ocinet: overlay networks of the cluster not listed: {e}");
        }
    }
    let (nets, _) = ctx.config.list();
    let broken = ctx.config.broken();
    let (eps, _) = ctx.state.list_endpoints();
    let mut rows = vec![[
        "NAME",
        "DRIVER",
        "SCOPE",
        "BRIDGE",
        "SUBNET",
        "GATEWAY",
        "INTERNAL",
        "CONTAINERS",
    ]
    .map(String::from)
    .to_vec()];
    for n in nets {
        let count = eps.iter().filter(|e| e.is_on(&n.name)).count();
        rows.push(vec![
            n.name.to_string(),
            n.driver().as_str().to_string(),
            n.driver().scope().to_string(),
            drivers::kind(n.driver())
                .device(&n)
                .unwrap_or("-")
                .to_string(),
            n.subnets
                .iter()
                .map(|s| s.subnet.to_string())
                .collect::<Vec<_>>()
                .join(","),
            n.subnets
                .iter()
                .filter_map(|s| s.gateway.map(|g| g.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            n.internal.to_string(),
            count.to_string(),
        ]);
    }
    // A definition ocinet cannot use is listed, not skipped: it still
    // holds its name, and `network rm` removes it.
    for b in &broken {
        eprintln!("ocinet: network {}: {}", b.name, b.error());
        let dash = || "-".to_string();
        rows.push(vec![
            b.name.clone(),
            "broken".to_string(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            eps.iter().filter(|e| e.is_on(&b.name)).count().to_string(),
        ]);
    }
    rows[1..].sort_by(|a, b| a[0].cmp(&b[0]));
    let out = super::table(&rows);
    Ok(out)
}

fn inspect(ctx: &Context, name: &str) -> Result<String> {
    let net = match ctx.config.probe(name)? {
        Definition::Good(n) => n,
        Definition::Missing => {
            return Err(Error::NotFound(format!("network {name:?} does not exist")))
        }
        // Said as it is (the file, why, and the way out), not "not found".
        Definition::Broken(b) => return Err(b.error()),
    };
    let (eps, _) = ctx.state.list_endpoints();
    let health = ocinet_common::health::of_macvlans(&eps).unwrap_or_default();
    let containers: BTreeMap<_, _> = eps
        .iter()
        .filter_map(|e| Some((e, e.attachment_on(name)?)))
        .map(|(e, a)| {
            (
                e.id.clone(),
                json!({
                    "Name": e.name,
                    "MacAddress": a.mac,
                    "IPv4Address": a.ipv4_net().map(|n| n.to_string()),
                    "IPv6Address": a.ipv6_net().map(|n| n.to_string()),
                    "HostInterface": a.host_veth,
                    "Interface": a.interface,
                    "Aliases": a.aliases,
                    "DefaultRoute": a.carries_default_route(),
                    "NetworkNamespace": e.netns_link,
                    "State": match health.get(&(e.id.clone(), name.to_string())) {
                        Some(h) if *h != Health::Ok => h.as_str().to_string(),
                        _ => attachment_state(e, a),
                    },
                    "Ports": a.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    // One entry per subnet, as `docker network inspect` has.
    let ipam: Vec<_> = net
        .subnets
        .iter()
        .map(|s| {
            let mut c = json!({"Subnet": s.subnet.to_string()});
            if let Some(g) = s.gateway {
                c["Gateway"] = json!(g.to_string());
            }
            if let Some(r) = s.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            let aux: BTreeMap<_, _> = net
                .aux_addresses
                .iter()
                .filter(|(_, ip)| s.subnet.contains(*ip))
                .collect();
            if !aux.is_empty() {
                c["AuxiliaryAddresses"] = json!(aux);
            }
            c
        })
        .collect();
    // An overlay network's hosts, as Docker's `Peers`: each host holding
    // a block of it, with its underlay address (from the store; left out,
    // with a warning, when the store cannot be reached).
    let peers = match net.overlay() {
        Some(_) => match ocinet_core::overlay::with_member(ctx, |m| {
            ocinet_core::overlay::lease::held(m, &net)
        }) {
            Ok(held) => {
                let mut hosts: BTreeMap<String, String> = BTreeMap::new();
                for b in held.values() {
                    hosts.insert(b.node.clone(), b.advertise.to_string());
                }
                Some(
                    hosts
                        .into_iter()
                        .map(|(n, ip)| json!({"Name": n, "IP": ip}))
                        .collect::<Vec<_>>(),
                )
            }
            Err(e) => {
                eprintln!("ocinet: the network's peers are not shown: {e}");
                None
            }
        },
        None => None,
    };
    let mut doc = json!([{
        "Name": net.name,
        "Driver": net.driver().as_str(),
        "Scope": net.driver().scope(),
        "Internal": net.internal,
        "EnableIPv4": net.has_ipv4(),
        "EnableIPv6": net.v6().is_some(),
        "DNSEnabled": net.dns,
        "DNSUpstreams": net.dns_upstreams,
        "DNSRateLimit": net.dns.then(|| net.dns_rate_limit.unwrap_or(ocinet_common::model::network::DEFAULT_DNS_RATE)),
        "DNSAddress": net.dns.then(|| net.resolver_address()).flatten(),
        "DNSAddress6": net.dns.then(|| net.resolver_address6()).flatten(),
        "NoMasquerade": net.bridge().map(|b| b.no_masquerade.clone()).unwrap_or_default(),
        "IPAM": {"Driver": "ocinet", "Config": ipam},
        "Options": drivers::kind(net.driver()).options(&net),
        "Containers": containers,
    }]);
    if let Some(p) = peers {
        doc[0]["Peers"] = json!(p);
    }
    serde_json::to_string_pretty(&doc)
        .map(|s| s + "\n")
        .map_err(|e| Error::Conflict(e.to_string()))
}

fn rm(ctx: &Context, name: &str) -> Result<String> {
    if let Some(warning) = networks::remove(ctx, name)? {
        eprintln!("ocinet: warning: {warning}");
    }
    Ok(format!("{name}\n"))
}

/// `setup`/`ready` as the record says, or the change under way on this
/// attachment (`connecting`, `disconnecting`).
pub(crate) fn attachment_state(
    e: &ocinet_common::model::Endpoint,
    a: &ocinet_common::model::Attachment,
) -> String {
    use ocinet_common::model::{ChangeVerb, Phase};
    match (a.changing.map(|c| c.verb), e.phase) {
        (Some(ChangeVerb::Connect), _) => "connecting".into(),
        (Some(ChangeVerb::Disconnect), _) => "disconnecting".into(),
        (None, Phase::Setup) => "setup".into(),
        (None, Phase::Ready) => "ready".into(),
    }
}
