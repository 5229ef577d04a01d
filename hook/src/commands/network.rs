//! `ocinet network create|ls|inspect|rm`.

use std::collections::BTreeMap;

use ocinet_common::health::Health;
use ocinet_common::model::{Endpoint, Network, NetworkRequest, Origin};
use ocinet_common::store::networks::Definition;
use ocinet_common::{Error, Result};
use serde_json::json;

use super::docker;
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
        NetworkCommand::Inspect { names } => inspect(ctx, names),
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

/// `network inspect NAME...`: Docker's `docker network inspect` array
/// (API v1.52, see `docker.rs`), with ocinet's own fields beside Docker's.
/// Like Docker, the networks found are printed even when another is not,
/// and the command then fails naming it.
fn inspect(ctx: &Context, names: &[String]) -> Result<String> {
    let (eps, _) = ctx.state.list_endpoints();
    let health = ocinet_common::health::of_macvlans(&eps).unwrap_or_default();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match ctx.config.probe(name) {
            Ok(Definition::Good(net)) => found.push(network_object(ctx, &net, &eps, &health)),
            Ok(Definition::Missing) => {
                missing.push(Error::NotFound(format!("network {name:?} does not exist")))
            }
            // Said as it is (the file, why, and the way out), not "not found".
            Ok(Definition::Broken(b)) => missing.push(b.error()),
            Err(e) => missing.push(e),
        }
    }
    docker::array_or_fail(&found, missing)
}

/// Docker's id of network `name`: derived from the name, so the same on
/// every call and on every host of a cluster (ocinet's definitions keep
/// no id); `ocinet inspect` shows it as each network's `NetworkID`.
pub(crate) fn network_id(name: &str) -> String {
    docker::derived_id("network", &[name])
}

/// Docker's id of a container's endpoint on a network.
pub(crate) fn endpoint_id(container: &str, network: &str) -> String {
    docker::derived_id("endpoint", &[container, network])
}

/// When the definition was written (its file's modification time), or Go's
/// zero time when that cannot be read.
fn created(ctx: &Context, name: &str) -> String {
    let path = ctx.config.networks_dir().join(format!("{name}.json"));
    std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(
            || docker::ZERO_TIME.to_string(),
            |d| docker::rfc3339(d.as_secs(), d.subsec_nanos()),
        )
}

/// The driver's options as Docker's `map[string]string`, under ocinet's
/// names (what ocinet's users and tests read) and, where Docker's driver
/// has the same option, under Docker's name too (what Docker scripts
/// read).
fn options(net: &Network) -> BTreeMap<String, String> {
    const DOCKER_NAMES: [(&str, &str); 5] = [
        ("bridge", "com.docker.network.bridge.name"),
        ("mtu", "com.docker.network.driver.mtu"),
        (
            "gateway_mode_ipv4",
            "com.docker.network.bridge.gateway_mode_ipv4",
        ),
        (
            "gateway_mode_ipv6",
            "com.docker.network.bridge.gateway_mode_ipv6",
        ),
        (
            "host_binding_ipv4",
            "com.docker.network.bridge.host_binding_ipv4",
        ),
    ];
    let raw = drivers::kind(net.driver()).options(net);
    let mut out: BTreeMap<String, String> = raw
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), docker::option_text(v)?)))
        .collect();
    for (ours, theirs) in DOCKER_NAMES {
        if let Some(v) = out.get(ours).cloned() {
            out.entry(theirs.to_string()).or_insert(v);
        }
    }
    if net.internal {
        out.entry("com.docker.network.internal".into())
            .or_insert_with(|| "true".into());
    }
    out
}

/// Addresses of `subnet` that are the subnet's own or reserved by its
/// definition (network address, IPv4 broadcast, gateway, auxiliary
/// addresses): Docker counts them as in use.
fn reserved(net: &Network, s: &ocinet_common::model::Subnet) -> u64 {
    let own = match s.subnet {
        ipnet::IpNet::V4(n) if n.prefix_len() < 31 => 2,
        ipnet::IpNet::V4(_) => 0,
        ipnet::IpNet::V6(n) if n.prefix_len() < 127 => 1,
        ipnet::IpNet::V6(_) => 0,
    };
    let gateway = u64::from(s.gateway.is_some_and(|g| s.subnet.contains(&g)));
    let aux = net
        .aux_addresses
        .values()
        .filter(|ip| s.subnet.contains(*ip))
        .count() as u64;
    own + gateway + aux
}

/// Docker's `Status`: per subnet, addresses in use and addresses left to
/// hand out (from the pool, as the exporter's `ocinet_network_addresses`;
/// left out, with a warning, when the pool cannot be read).
fn status(ctx: &Context, net: &Network) -> docker::NetworkStatus {
    let mut subnets = BTreeMap::new();
    let fills = ocinet_common::ipam::open(&ctx.state, &net.name)
        .and_then(|pool| Ok((pool.fill(net)?, pool.fill6(net)?)));
    match fills {
        Ok((fill4, fill6)) => {
            for s in &net.subnets {
                let fill = match s.subnet {
                    ipnet::IpNet::V4(_) => Some(fill4),
                    ipnet::IpNet::V6(_) => fill6,
                };
                if let Some(f) = fill {
                    subnets.insert(
                        s.subnet.to_string(),
                        docker::SubnetStatus {
                            IPsInUse: f.allocated.saturating_add(reserved(net, s)),
                            DynamicIPsAvailable: f.free,
                        },
                    );
                }
            }
        }
        Err(e) => eprintln!("ocinet: network {}: address use not shown: {e}", net.name),
    }
    docker::NetworkStatus {
        IPAM: docker::IpamStatus { Subnets: subnets },
    }
}

/// Network `net` as one element of `docker network inspect`'s array.
fn network_object(
    ctx: &Context,
    net: &Network,
    eps: &[Endpoint],
    health: &std::collections::HashMap<ocinet_common::health::Key, Health>,
) -> docker::NetworkInspect {
    let name = net.name.as_str();
    let containers: BTreeMap<_, _> = eps
        .iter()
        .filter_map(|e| Some((e, e.attachment_on(name)?)))
        .map(|(e, a)| {
            let mut ocinet = docker::Extras::new();
            for (k, v) in [
                ("HostInterface", json!(a.host_veth)),
                ("Interface", json!(a.interface)),
                ("Aliases", json!(a.aliases)),
                ("DefaultRoute", json!(a.carries_default_route())),
                ("NetworkNamespace", json!(e.netns_link)),
                (
                    "State",
                    json!(match health.get(&(e.id.clone(), name.to_string())) {
                        Some(h) if *h != Health::Ok => h.as_str().to_string(),
                        _ => attachment_state(e, a),
                    }),
                ),
                (
                    "Ports",
                    json!(a.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
                ),
            ] {
                ocinet.insert(k.to_string(), v);
            }
            (
                e.id.clone(),
                docker::EndpointResource {
                    Name: e.name.clone(),
                    EndpointID: endpoint_id(&e.id, name),
                    MacAddress: a.mac.clone().unwrap_or_default(),
                    IPv4Address: a.ipv4_net().map(|n| n.to_string()).unwrap_or_default(),
                    IPv6Address: a.ipv6_net().map(|n| n.to_string()).unwrap_or_default(),
                    ocinet,
                },
            )
        })
        .collect();
    // One entry per subnet, as `docker network inspect` has.
    let config = net
        .subnets
        .iter()
        .map(|s| docker::IpamConfig {
            Subnet: s.subnet.to_string(),
            IPRange: s.ip_range.map(|r| r.to_string()),
            Gateway: s.gateway.map(|g| g.to_string()),
            AuxiliaryAddresses: net
                .aux_addresses
                .iter()
                .filter(|(_, ip)| s.subnet.contains(*ip))
                .map(|(k, ip)| (k.clone(), ip.to_string()))
                .collect(),
        })
        .collect();
    // An overlay network's hosts, as Docker's `Peers`: each host holding
    // a block of it, with its underlay address (from the store; left out,
    // with a warning, when the store cannot be reached).
    let peers = match net.overlay() {
        Some(_) => match ocinet_core::overlay::with_member(ctx, |m| {
            ocinet_core::overlay::lease::held(m, net)
        }) {
            Ok(held) => {
                let mut hosts: BTreeMap<String, String> = BTreeMap::new();
                for b in held.values() {
                    hosts.insert(b.node.clone(), b.advertise.to_string());
                }
                Some(
                    hosts
                        .into_iter()
                        .map(|(n, ip)| docker::PeerInfo { Name: n, IP: ip })
                        .collect(),
                )
            }
            Err(e) => {
                eprintln!("ocinet: the network's peers are not shown: {e}");
                None
            }
        },
        None => None,
    };
    let mut ocinet = docker::Extras::new();
    for (k, v) in [
        ("DNSEnabled", json!(net.dns)),
        ("DNSUpstreams", json!(net.dns_upstreams)),
        (
            "DNSRateLimit",
            json!(net.dns.then(|| net
                .dns_rate_limit
                .unwrap_or(ocinet_common::model::network::DEFAULT_DNS_RATE))),
        ),
        (
            "DNSAddress",
            json!(net.dns.then(|| net.resolver_address()).flatten()),
        ),
        (
            "DNSAddress6",
            json!(net.dns.then(|| net.resolver_address6()).flatten()),
        ),
        (
            "NoMasquerade",
            json!(net
                .bridge()
                .map(|b| b.no_masquerade.clone())
                .unwrap_or_default()),
        ),
    ] {
        ocinet.insert(k.to_string(), v);
    }
    docker::NetworkInspect {
        Name: net.name.clone(),
        Id: network_id(name),
        Created: created(ctx, name),
        Scope: net.driver().scope().to_string(),
        Driver: net.driver().as_str().to_string(),
        EnableIPv4: net.has_ipv4(),
        EnableIPv6: net.v6().is_some(),
        IPAM: docker::Ipam {
            Driver: "ocinet".into(),
            Options: BTreeMap::new(),
            Config: config,
        },
        Internal: net.internal,
        Attachable: false,
        Ingress: false,
        ConfigFrom: docker::ConfigReference::default(),
        ConfigOnly: false,
        Options: options(net),
        Labels: BTreeMap::new(),
        Peers: peers,
        Containers: containers,
        Status: status(ctx, net),
        ocinet,
    }
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
