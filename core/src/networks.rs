//! Networks for every front end: looking them up (the default one created
//! on first use), creating one from a `NetworkRequest`, checking it against
//! the others and the host's routes, and removing one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ocinet_common::firewall::Change;
use ocinet_common::ipam;
use ocinet_common::model::network::{
    bridge_name_for, find_conflict, free_ula64, DriverOptions, DEFAULT_NETWORK,
};
use ocinet_common::model::{Network, NetworkRequest};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::networks::{Broken, Definition};
use ocinet_common::{Error, Result};

use crate::context::{Context, Locked, Subject};
use crate::drivers;
use crate::host::{self, HostAddresses};

pub fn check_conflicts(ctx: &Locked, candidate: &Network, nl: &mut Netlink) -> Result<()> {
    let (existing, bad) = ctx.config.list();
    for e in bad {
        tracing::warn!("skipping unreadable network definition: {e}");
    }
    match find_conflict(candidate, &existing, &host::routes(nl)?) {
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
        // An overlay network made on another member: its definition from
        // the cluster store, the first time this host uses it.
        if crate::overlay::joined(ctx) && ocinet_common::validate::name("network", name).is_ok() {
            if let Some(n) = crate::overlay::definitions::fetch(ctx, name, nl)? {
                return Ok(n);
            }
        }
        return ctx.config.get(name);
    }
    let n = Network::default_network();
    check_conflicts(ctx, &n, nl)?;
    ctx.config.save(&n)?;
    tracing::info!(network = %n.name, "created the default network");
    Ok(n)
}

/// Create a network from a front end's request: one path for the CLI and
/// CNI. The network's driver (`drivers::kind`) fills in its defaults and
/// checks the host; the checks every network has (the name free, a valid
/// definition, no overlap with another network or a host route) are
/// here, in that order. Nothing is made on the host: a bridge or a shim
/// is made by the first container's setup. Under the state lock (taken
/// here).
pub fn create(ctx: &Context, req: &NetworkRequest) -> Result<Network> {
    create_locked(&ctx.lock()?, req)
}

/// `create` for a front end that holds the lock for more than it (a CNI
/// ADD: the network made, then the container set up on it).
pub fn create_locked(ctx: &Locked, req: &NetworkRequest) -> Result<Network> {
    let name = req.name.as_str();
    let mut nl = Netlink::new()?;
    if ctx.config.load(name)?.is_some() {
        return Err(Error::Conflict(format!("network {name} already exists")));
    }
    let kind = drivers::kind(req.driver);
    let picked;
    let req = if req.driver == ocinet_common::model::Driver::Overlay && req.vni.is_none() {
        picked = NetworkRequest {
            vni: Some(crate::overlay::definitions::free_vni(ctx)?),
            ..req.clone()
        };
        &picked
    } else {
        req
    };
    // What only another driver takes is refused first, by its flag.
    let options =
        DriverOptions::from_flat(req.driver, req.flat_options(), || bridge_name_for(name))?;
    let base = if req.ipv6_only {
        Network::without_subnets(name, None, req.mtu, req.internal)
    } else {
        let subnet = match req.subnet {
            Some(s) => s,
            None => kind.default_subnet(ctx, &mut nl)?,
        };
        Network::new(
            name,
            subnet,
            req.gateway,
            req.ip_range,
            None,
            req.mtu,
            req.internal,
        )?
    };
    let mut net = Network {
        aux_addresses: parse_aux_addresses(&req.aux_addresses)?,
        dns_upstreams: req.dns_upstreams.clone(),
        dns_rate_limit: req.dns_rate_limit,
        options,
        ..base
    };
    if req.ipv6 {
        let subnet6 = match req.subnet6 {
            Some(s) => s,
            None if req.driver != ocinet_common::model::Driver::Bridge => {
                return Err(Error::invalid(
                    "ipv6",
                    "true",
                    format!(
                        "--driver {} needs an IPv6 --subnet, the parent's segment's",
                        req.driver.as_str()
                    ),
                ))
            }
            None => {
                let (existing, _) = ctx.config.list();
                free_ula64(&existing, &host::routes(&mut nl)?).ok_or_else(|| {
                    Error::Conflict(format!(
                        "network {name}: no free /64 is left in {}: give --subnet with an IPv6 subnet",
                        ocinet_common::model::network::ULA_POOL6
                    ))
                })?
            }
        };
        net = net.with_ipv6(subnet6, req.gateway6, req.ip_range6);
    }
    kind.shape(req, &mut net);
    // Checked here for the request's own errors; `save` checks the final
    // definition again (after the driver took what it takes from the
    // host), with the same function the reader uses.
    net.validate()?;
    if let Some(ip) = net.bridge().and_then(|b| b.host_binding_ip) {
        if !HostAddresses::of(&mut nl)?.has(ip) {
            return Err(Error::invalid(
                "host-binding-ip",
                ip,
                "is not an address of this host",
            ));
        }
    }
    check_conflicts(ctx, &net, &mut nl)?;
    kind.check_host(ctx, &mut nl, &mut net, req.mtu)?;
    ctx.config.save(&net)?;
    let subnets: Vec<String> = net.subnets.iter().map(|s| s.subnet.to_string()).collect();
    tracing::info!(network = name, driver = net.driver().as_str(), subnets = %subnets.join(","), "network created");
    Ok(net)
}

/// `NAME=IP` entries, each name and address once.
fn parse_aux_addresses(entries: &[String]) -> Result<BTreeMap<String, IpAddr>> {
    let mut out = BTreeMap::new();
    for e in entries {
        let bad = |why: &str| Error::invalid("aux-address", e, why);
        let (name, ip) = e.split_once('=').ok_or_else(|| bad("must be NAME=IP"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad("not an IPv4 address (nor an IPv6 one) after ="))?;
        if let Some((other, _)) = out.iter().find(|(_, a)| **a == ip) {
            return Err(bad(&format!("{ip} is already given as {other}")));
        }
        if out.insert(name.to_string(), ip).is_some() {
            return Err(bad(&format!("{name} is given twice")));
        }
    }
    Ok(out)
}

/// Remove a network no container is on (checked here, from the records):
/// what its driver made on the host, its firewall elements, its leases
/// and its definition. A definition ocinet cannot use is removed too,
/// with what any driver may have made for it. Returns a warning for the
/// user when the definition was unusable. Under the state lock (taken
/// here): no container may join between the check and the removal.
pub fn remove(ctx: &Context, name: &str) -> Result<Option<String>> {
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
        Definition::Broken(b) => return remove_broken(ctx, &b, &mut nl).map(Some),
        Definition::Missing => unreachable!("returned above"),
    };
    if net.overlay().is_some() {
        // Everywhere, once no host has a container on it (refused
        // otherwise, naming them); the other members' agents remove
        // their copies.
        crate::overlay::definitions::unpublish(ctx, &net)?;
    }
    remove_local(ctx, &net)?;
    Ok(None)
}

/// What a network has on this host, its firewall elements, its leases and
/// its definition, once the caller found no container of this host on it.
pub(crate) fn remove_local(ctx: &Locked, net: &Network) -> Result<()> {
    let name = net.name.as_str();
    let mut nl = Netlink::new()?;
    drivers::kind(net.driver()).remove(ctx, &mut nl, net)?;
    ctx.apply_firewall(
        &Change {
            networks_removed: vec![net.clone()],
            ..Default::default()
        },
        Subject::Nobody,
    )?;
    ipam::open(&ctx.state, name)?.remove()?;
    ctx.config.remove(name)?;
    tracing::info!(network = name, "network removed");
    Ok(())
}

/// Remove a definition ocinet cannot use (a file edited by hand, or one
/// an earlier version wrote and this one refuses), with what ocinet may
/// have made for it: whatever each driver can prove it made and no good
/// network names (a DNS shim, a bridge), its leases, and its firewall
/// elements (the table is rebuilt from the definitions that are left).
fn remove_broken(ctx: &Locked, b: &Broken, nl: &mut Netlink) -> Result<String> {
    let name = b.name.as_str();
    let warning = format!(
        "network {name}: its definition {} is unusable ({}); removing it anyway",
        b.path.display(),
        b.reason
    );
    tracing::warn!("{warning}");
    let (good, _) = ctx.config.list();
    for kind in drivers::kinds() {
        kind.remove_broken(ctx, nl, b, &good)?;
    }
    ipam::open(&ctx.state, name)?.remove()?;
    ctx.config.remove(name)?;
    ctx.rebuild_firewall(&ctx.firewall()?, Subject::Nobody, &[])?;
    tracing::info!(network = name, "network removed");
    Ok(warning)
}
