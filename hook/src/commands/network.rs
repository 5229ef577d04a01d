//! `ocinet network create|ls|inspect|rm`.

use std::collections::BTreeMap;

use ocinet_common::firewall::Change;
use ocinet_common::health::Health;
use ocinet_common::model::network::MAX_MTU;
use ocinet_common::model::{Driver, GatewayMode, MacvlanMode, Network, Origin};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::networks::{Broken, Definition};
use ocinet_common::{Error, Result};
use serde_json::json;

use crate::cli::NetworkCommand;
use ocinet_core::connect;
use ocinet_core::context::{Context, Locked, Subject};
use ocinet_core::drivers::{bridge, macvlan};
use ocinet_core::networks;
use ocinet_core::ports::HostAddresses;

pub fn run(ctx: &Context, cmd: &NetworkCommand) -> Result<String> {
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            ip_range,
            bridge,
            mtu,
            internal,
            gateway_mode,
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
        } => create(
            ctx,
            name,
            *subnet,
            *gateway,
            *ip_range,
            bridge.as_deref(),
            *mtu,
            *internal,
            Extra {
                gateway_mode: *gateway_mode,
                aux_addresses: aux_address,
                host_binding_ip: *host_binding_ip,
                driver: *driver,
                parent: parent.clone(),
                macvlan_mode: *mode,
                // A macvlan network resolves names in mode bridge only (see
                // Network::validate); asked for explicitly, other modes
                // are refused there.
                dns: !*disable_dns
                    && (*driver == Driver::Bridge
                        || mode.unwrap_or_default() == MacvlanMode::Bridge
                        || !dns_upstream.is_empty()
                        || dns_rate_limit.is_some()
                        || dns_address.is_some()),
                dns_address: *dns_address,
                no_masquerade: no_masquerade.clone(),
                dns_upstreams: dns_upstream.clone(),
                dns_rate_limit: *dns_rate_limit,
            },
        ),
        NetworkCommand::Ls => ls(ctx),
        NetworkCommand::Inspect { name } => inspect(ctx, name),
        NetworkCommand::Rm { name } => rm(ctx, name),
        NetworkCommand::Connect {
            network,
            container,
            ip,
            alias,
        } => connect::connect(
            ctx,
            network,
            container,
            &connect::ConnectOptions {
                addresses: ip.iter().copied().collect(),
                aliases: alias.clone(),
                aliases_field: "--alias".into(),
                interface: None,
                by: Origin::Oci,
            },
        ),
        NetworkCommand::Disconnect { network, container } => {
            connect::disconnect(ctx, network, container)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn create(
    ctx: &Context,
    name: &str,
    subnet: Option<ipnet::Ipv4Net>,
    gateway: Option<std::net::Ipv4Addr>,
    ip_range: Option<ipnet::Ipv4Net>,
    bridge: Option<&str>,
    mtu: Option<u32>,
    internal: bool,
    extra: Extra,
) -> Result<String> {
    let ctx = &ctx.lock()?;
    let mut nl = Netlink::new()?;
    if ctx.config.load(name)?.is_some() {
        return Err(Error::Conflict(format!("network {name} already exists")));
    }
    let subnet = match (subnet, extra.driver) {
        (Some(s), _) => s,
        (None, Driver::Bridge) => free_subnet(ctx, &mut nl)?,
        // A free private range means nothing on someone else's segment.
        (None, Driver::Macvlan) => {
            return Err(Error::invalid(
                "subnet",
                "none",
                "--driver macvlan needs --subnet, the parent's segment",
            ))
        }
    };
    if extra.driver == Driver::Macvlan {
        if let Some(b) = bridge {
            return Err(Error::invalid(
                "bridge",
                b,
                "only applies to bridge networks: a macvlan network has no bridge",
            ));
        }
    }
    let base = Network::new(name, subnet, gateway, ip_range, bridge, mtu, internal)?;
    let mut net = Network {
        bridge: match extra.driver {
            Driver::Bridge => base.bridge.clone(),
            Driver::Macvlan => String::new(),
        },
        driver: extra.driver,
        parent: extra.parent,
        macvlan_mode: match extra.driver {
            Driver::Macvlan => Some(extra.macvlan_mode.unwrap_or_default()),
            Driver::Bridge => extra.macvlan_mode,
        },
        gateway_mode: extra.gateway_mode,
        aux_addresses: parse_aux_addresses(extra.aux_addresses)?,
        host_binding_ip: extra.host_binding_ip.filter(|ip| !ip.is_unspecified()),
        dns: extra.dns,
        dns_upstreams: extra.dns_upstreams,
        dns_rate_limit: extra.dns_rate_limit,
        dns_address: extra.dns_address,
        no_masquerade: extra.no_masquerade,
        ..base
    };
    if net.driver == Driver::Macvlan && net.dns && net.dns_address.is_none() {
        net.dns_address = net.default_dns_address();
    }
    // Checked here for the flags' own errors; `save` checks the final
    // definition again (after the parent's MTU is taken), with the same
    // function the reader uses.
    net.validate()?;
    if let Some(ip) = net.host_binding_ip {
        if !HostAddresses::of(&mut nl)?.has(ip) {
            return Err(Error::invalid(
                "host-binding-ip",
                ip,
                "is not an address of this host",
            ));
        }
    }
    networks::check_conflicts(ctx, &net, &mut nl)?;
    match net.driver {
        Driver::Bridge => {
            if let Some(l) = nl.link_by_name(&net.bridge)? {
                return Err(Error::Conflict(format!(
                    "network {name}: interface {} (index {}) already exists on the host",
                    net.bridge, l.index
                )));
            }
        }
        Driver::Macvlan => {
            let parent = macvlan::parent_link(&net, &mut nl)?;
            let (eps, _) = ctx.state.list_endpoints();
            if let Some(e) = eps.iter().find(|e| {
                e.attachments
                    .iter()
                    .any(|a| a.host_veth.as_deref() == Some(parent.name.as_str()))
            }) {
                return Err(Error::invalid(
                    "--parent",
                    &parent.name,
                    format!(
                        "is the host end of container {}'s veth: give macvlan a host interface",
                        e.id
                    ),
                ));
            }
            // As Docker: the parent's MTU unless one is given, and never
            // more than it (the kernel refuses a larger sub-interface), nor
            // more than a macvlan can have.
            match mtu {
                None => net.mtu = parent.mtu.min(MAX_MTU),
                Some(m) if m > parent.mtu => {
                    return Err(Error::invalid(
                        "mtu",
                        m,
                        format!(
                            "is larger than the MTU {} of parent {}",
                            parent.mtu, parent.name
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    ctx.config.save(&net)?;
    tracing::info!(network = name, subnet = %net.subnet(), bridge = %net.bridge, "network created");
    Ok(format!("{name}\n"))
}

/// What `network create` takes beyond `Network::new`'s arguments.
struct Extra<'a> {
    gateway_mode: GatewayMode,
    aux_addresses: &'a [String],
    host_binding_ip: Option<std::net::Ipv4Addr>,
    driver: Driver,
    parent: Option<String>,
    macvlan_mode: Option<MacvlanMode>,
    dns: bool,
    dns_upstreams: Vec<std::net::Ipv4Addr>,
    dns_rate_limit: Option<u32>,
    dns_address: Option<std::net::Ipv4Addr>,
    no_masquerade: Vec<ipnet::Ipv4Net>,
}

/// `NAME=IP` entries, each name and address once.
fn parse_aux_addresses(entries: &[String]) -> Result<BTreeMap<String, std::net::Ipv4Addr>> {
    let mut out = BTreeMap::new();
    for e in entries {
        let bad = |why: &str| Error::invalid("aux-address", e, why);
        let (name, ip) = e.split_once('=').ok_or_else(|| bad("must be NAME=IP"))?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address after ="))?;
        if let Some((other, _)) = out.iter().find(|(_, a)| **a == ip) {
            return Err(bad(&format!("{ip} is already given as {other}")));
        }
        if out.insert(name.to_string(), ip).is_some() {
            return Err(bad(&format!("{name} is given twice")));
        }
    }
    Ok(out)
}

/// The first /24 of 10.90.0.0/15 (past the ranges Podman hands out) that
/// conflicts with nothing.
fn free_subnet(ctx: &Context, nl: &mut Netlink) -> Result<ipnet::Ipv4Net> {
    let (existing, _) = ctx.config.list();
    let routes = networks::host_routes(nl)?;
    for i in 0..512u32 {
        let base = u32::from(std::net::Ipv4Addr::new(10, 90, 0, 0)) + (i << 8);
        let cand =
            ipnet::Ipv4Net::new(base.into(), 24).map_err(|e| Error::Conflict(e.to_string()))?;
        // Nameless and bridgeless: only its subnet can conflict.
        let probe = Network {
            name: String::new(),
            bridge: String::new(),
            ..Network::default_network().with_subnet(cand)
        };
        if ocinet_common::model::network::find_conflict(&probe, &existing, &routes).is_none() {
            return Ok(cand);
        }
    }
    Err(Error::Conflict(
        "no free /24 left in 10.90.0.0/15; pass --subnet".into(),
    ))
}

fn ls(ctx: &Context) -> Result<String> {
    let (nets, _) = ctx.config.list();
    let broken = ctx.config.broken();
    let (eps, _) = ctx.state.list_endpoints();
    let mut rows = vec![[
        "NAME",
        "DRIVER",
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
            n.driver.as_str().to_string(),
            match n.driver {
                Driver::Bridge => n.bridge.to_string(),
                Driver::Macvlan => "-".to_string(),
            },
            n.subnet().to_string(),
            n.gateway().to_string(),
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
                    "HostInterface": a.host_veth,
                    "Interface": a.interface,
                    "Aliases": a.aliases,
                    "DefaultRoute": a.gateway.is_some(),
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
            if s.subnet.addr().is_ipv4() && !net.aux_addresses.is_empty() {
                c["AuxiliaryAddresses"] = json!(net.aux_addresses);
            }
            c
        })
        .collect();
    let doc = json!([{
        "Name": net.name,
        "Driver": net.driver.as_str(),
        "Internal": net.internal,
        "DNSEnabled": net.dns,
        "DNSUpstreams": net.dns_upstreams,
        "DNSRateLimit": net.dns.then(|| net.dns_rate_limit.unwrap_or(ocinet_common::model::network::DEFAULT_DNS_RATE)),
        "DNSAddress": net.dns.then(|| net.resolver_address()),
        "NoMasquerade": net.no_masquerade,
        "IPAM": {"Driver": "ocinet", "Config": ipam},
        "Options": match net.driver {
            Driver::Bridge => json!({
                "bridge": net.bridge,
                "mtu": net.mtu,
                "gateway_mode": net.gateway_mode.as_str(),
                "host_binding_ipv4": net.host_binding_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string()),
            }),
            Driver::Macvlan => json!({
                "parent": net.parent,
                "macvlan_mode": net.macvlan_mode.unwrap_or_default().as_str(),
                "mtu": net.mtu,
            }),
        },
        "Containers": containers,
    }]);
    serde_json::to_string_pretty(&doc)
        .map(|s| s + "\n")
        .map_err(|e| Error::Conflict(e.to_string()))
}

fn rm(ctx: &Context, name: &str) -> Result<String> {
    let ctx = &ctx.lock()?;
    let def = match ctx.config.probe(name)? {
        Definition::Missing => {
            return Err(Error::NotFound(format!("network {name:?} does not exist")))
        }
        d => d,
    };
    // Whether containers use it is the records' say (`is_on` reads the
    // attachments), not the definition's: a broken one is checked the same.
    let (eps, unreadable) = ctx.state.list_endpoints();
    // A record that cannot be read may be a running container of this
    // network: removing the bridge would cut it off (gc is as careful).
    if let Some(e) = unreadable.first() {
        return Err(Error::Conflict(format!(
            "network {name}: cannot tell whether every container has left it: {e}; fix or remove that record first"
        )));
    }
    let attached: Vec<&str> = eps
        .iter()
        .filter(|e| e.is_on(name))
        .map(|e| e.id.as_str())
        .collect();
    if !attached.is_empty() {
        return Err(Error::Conflict(format!(
            "network {name} has {} attached container(s): {}",
            attached.len(),
            attached.join(", ")
        )));
    }
    let mut nl = Netlink::new()?;
    let net = match def {
        Definition::Good(n) => n,
        Definition::Broken(b) => return rm_broken(ctx, &b, &mut nl),
        Definition::Missing => unreachable!("returned above"),
    };
    let bridge = match net.driver {
        Driver::Bridge => nl.link_by_name(&net.bridge)?,
        // Its parent is not ocinet's; its DNS shim is (removed above).
        Driver::Macvlan => None,
    };
    if net.driver == Driver::Macvlan {
        macvlan::remove_shim(&mut nl, name)?;
    }
    match bridge {
        Some(l) if bridge::is_ours(&l) => {
            nl.delete_link(&net.bridge)?;
        }
        Some(l) => tracing::warn!(
            network = name,
            interface = %l.name,
            "left alone: an interface of the bridge's name that ocinet did not create"
        ),
        None => {}
    }
    ctx.apply_firewall(
        &Change {
            networks_removed: vec![net.clone()],
            ..Default::default()
        },
        Subject::Nobody,
    )?;
    ctx.state.pool(name)?.remove()?;
    ctx.config.remove(name)?;
    tracing::info!(network = name, "network removed");
    Ok(format!("{name}\n"))
}

/// Remove a definition ocinet cannot use (a file edited by hand, or one
/// an earlier version wrote and this one refuses), with what ocinet may
/// have made for it: its DNS shim and bridge (each only if ocinet made it
/// and no good network names it), its leases, and its firewall elements
/// (the table is rebuilt from the definitions that are left).
fn rm_broken(ctx: &Locked, b: &Broken, nl: &mut Netlink) -> Result<String> {
    let name = b.name.as_str();
    let warning = format!(
        "network {name}: its definition {} is unusable ({}); removing it anyway",
        b.path.display(),
        b.reason
    );
    tracing::warn!("{warning}");
    eprintln!("ocinet: warning: {warning}");
    macvlan::remove_shim(nl, name)?;
    let (good, _) = ctx.config.list();
    let mut bridges: Vec<String> = b
        .bridge
        .iter()
        .cloned()
        .chain(b.parsed.iter().map(|n| n.bridge.clone()))
        .chain([ocinet_common::model::network::bridge_name_for(name)])
        .filter(|br| !br.is_empty())
        .collect();
    bridges.sort();
    bridges.dedup();
    for br in bridges {
        if good.iter().any(|n| n.bridge == br) {
            continue;
        }
        if let Some(l) = nl.link_by_name(&br)? {
            if bridge::is_ours(&l) {
                nl.delete_link(&br)?;
            }
        }
    }
    ctx.state.pool(name)?.remove()?;
    ctx.config.remove(name)?;
    ctx.rebuild_firewall(&ctx.firewall()?, Subject::Nobody, &[])?;
    tracing::info!(network = name, "network removed");
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
