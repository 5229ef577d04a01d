//! Overlay network definitions: created in the store (with their VNI, in
//! one transaction, so two hosts cannot make the same name or VNI at
//! once), copied into each member's config directory when first used
//! there or listed, and removed from the store only while no container
//! of any host is on the network.

use ocinet_cluster::values::{self, NetworkValue, Vni, VERSION};
use ocinet_cluster::{blocks, keys};
use ocinet_common::model::network::find_conflict;
use ocinet_common::model::Network;
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

use super::Member;
use crate::context::Locked;
use crate::host;

/// Every overlay definition in the store; values that are refused are
/// logged and left out.
pub fn list(m: &mut Member) -> Result<Vec<Network>> {
    let prefix = keys::networks();
    let (kvs, _) = m.store.list(&prefix)?;
    Ok(kvs
        .iter()
        .filter_map(|kv| {
            let name = keys::name_under(&kv.key, &prefix)?;
            match NetworkValue::read(&kv.key, name, &kv.value) {
                Ok(n) => Some(n),
                Err(e) => {
                    super::refused(&kv.key, &kv.value, e);
                    None
                }
            }
        })
        .collect())
}

/// `network create --driver overlay`, once the definition is checked
/// against this host: the MTU the underlay carries, no overlap with the
/// cluster's other overlay networks, then the name and VNI taken in one
/// transaction.
pub fn publish(
    ctx: &Locked,
    host: &mut Netlink,
    net: &mut Network,
    mtu: Option<u32>,
) -> Result<()> {
    super::with_member(ctx, |m| {
        let o = net
            .overlay()
            .cloned()
            .ok_or_else(|| Error::invalid("driver", net.driver().as_str(), "is not overlay"))?;
        let underlay = underlay_mtu(host, m)?;
        let most = underlay.saturating_sub(50);
        match mtu {
            Some(x) if x > most => {
                return Err(Error::invalid(
                    "mtu",
                    x,
                    format!(
                        "the underlay carries {underlay} bytes; VXLAN adds 50, so at most {most}"
                    ),
                ))
            }
            Some(_) => {}
            None => net.mtu = most,
        }
        let others = list(m)?;
        if let Some(why) = find_conflict(net, &others, &[]) {
            return Err(Error::Conflict(format!(
                "network {}: {why} (in the cluster)",
                net.name
            )));
        }
        // The whole /prefix of a local route counts too (find_conflict, with
        // the host's routes, was run by the caller).
        let pairs = vec![
            (
                keys::network(&net.name),
                values::encode(&NetworkValue {
                    version: VERSION,
                    network: net.clone(),
                }),
            ),
            (
                keys::vni(o.vni),
                values::encode(&Vni {
                    version: VERSION,
                    network: net.name.clone(),
                }),
            ),
        ];
        if m.store.create_all(&pairs, None)? {
            tracing::info!(network = %net.name, vni = o.vni, "overlay network created in the cluster store");
            return Ok(());
        }
        if let Some(kv) = m.store.get(&keys::vni(o.vni))? {
            let holder = values::parse::<Vni>(&kv.key, &kv.value)
                .map(|v| v.network)
                .unwrap_or_else(|_| "?".into());
            return Err(Error::invalid(
                "vni",
                o.vni,
                format!("is in use by overlay network {holder}"),
            ));
        }
        Err(Error::Conflict(format!(
            "network {} already exists in the cluster",
            net.name
        )))
    })
}

/// The MTU of the interface holding this host's advertise address.
fn underlay_mtu(host: &mut Netlink, m: &Member) -> Result<u32> {
    let index = host
        .ipv4_addresses()?
        .into_iter()
        .find(|(_, ip, _)| *ip == m.cfg.advertise)
        .map(|(i, _, _)| i)
        .ok_or_else(|| {
            Error::invalid(
                "advertise-addr",
                m.cfg.advertise,
                "is no longer an address of this host",
            )
        })?;
    let link = host
        .links()?
        .into_iter()
        .find(|l| l.index == index)
        .ok_or_else(|| Error::NotFound(format!("the interface of {}", m.cfg.advertise)))?;
    Ok(link.mtu)
}

/// The definition of overlay network `name` from the store, checked
/// against this host's networks and routes and saved in the config
/// directory: a member's first container on a network made elsewhere.
pub fn fetch(ctx: &Locked, name: &str, host: &mut Netlink) -> Result<Option<Network>> {
    super::with_member(ctx, |m| {
        let key = keys::network(name);
        let Some(kv) = m.store.get(&key)? else {
            return Ok(None);
        };
        let net = NetworkValue::read(&key, name, &kv.value)?;
        adopt(ctx, &net, host)?;
        Ok(Some(net))
    })
}

/// Save a store's definition locally, unless it conflicts with this
/// host's own networks or routes (refused, naming both).
pub fn adopt(ctx: &Locked, net: &Network, host: &mut Netlink) -> Result<()> {
    let (existing, _) = ctx.config.list();
    let others: Vec<Network> = existing
        .into_iter()
        .filter(|n| n.name != net.name)
        .collect();
    let routes: Vec<_> = host::routes(host)?
        .into_iter()
        .filter(|(_, dev)| Some(dev.as_str()) != net.overlay().map(|o| o.device()).as_deref())
        .collect();
    if let Some(why) = find_conflict(net, &others, &routes) {
        return Err(Error::Conflict(format!(
            "overlay network {} cannot be used on this host: {why}",
            net.name
        )));
    }
    // Another host wrote the bridge's name: never an interface of this
    // host that ocinet did not make (its underlay, say), which the first
    // container's setup would otherwise take as the bridge.
    if let Some(b) = net.bridge_name() {
        if let Some(l) = host.link_by_name(b)? {
            if !crate::drivers::bridge::is_ours(&l) {
                return Err(Error::Conflict(format!(
                    "overlay network {} cannot be used on this host: its bridge {b} is an interface ocinet did not make",
                    net.name
                )));
            }
        }
    }
    ctx.config.save(net)?;
    tracing::info!(network = %net.name, "overlay network definition taken from the cluster store");
    Ok(())
}

/// `network rm` of an overlay network: refused while any host has a
/// container on it (naming them), else its definition, VNI and blocks
/// leave the store in one transaction guarded by "no container keys".
pub fn unpublish(ctx: &Locked, net: &Network) -> Result<()> {
    super::with_member(ctx, |m| {
        let o = net
            .overlay()
            .cloned()
            .ok_or_else(|| Error::invalid("driver", net.driver().as_str(), "is not overlay"))?;
        let guard = keys::containers(&net.name);
        let removed = m.store.delete_all_unless(
            &[keys::network(&net.name), keys::vni(o.vni)],
            &[keys::blocks(&net.name), keys::helds(&net.name)],
            &guard,
        )?;
        if removed {
            tracing::info!(network = %net.name, "overlay network removed from the cluster store");
            return Ok(());
        }
        let (kvs, _) = m.store.list(&guard)?;
        let subnet = subnet_of(net).map(|(s, _)| s);
        let on: Vec<String> = kvs
            .iter()
            .filter_map(|kv| {
                let (_, node, id) = keys::parse_container(&kv.key)?;
                // The name helps the user find it; a value that does not read
                // still blocks the removal, named by its id.
                let name = subnet
                    .and_then(|s| {
                        values::Container::read_in(&kv.key, &node, &id, s, net.subnet6(), &kv.value)
                            .ok()
                    })
                    .and_then(|c| c.name);
                Some(match name {
                    Some(n) => format!("{n} ({id}) on host {node}"),
                    None => format!("{id} on host {node}"),
                })
            })
            .collect();
        Err(Error::Conflict(format!(
            "network {} has {} container(s) in the cluster: {}",
            net.name,
            on.len(),
            on.join(", ")
        )))
    })
}

/// The block arithmetic's view of a definition: its subnet and gateway.
pub fn subnet_of(net: &Network) -> Option<(ipnet::Ipv4Net, std::net::Ipv4Addr)> {
    net.v4().map(|v| (v.subnet, v.gateway))
}

/// Whether `ip` can be a container's on `net` at all (not a block's
/// first address, which is its host's VXLAN address).
pub fn assignable(net: &Network, ip: std::net::Ipv4Addr) -> bool {
    subnet_of(net).is_some_and(|(s, g)| {
        blocks::of(s, ip)
            .is_some_and(|b| blocks::usable(s, g, b).is_some_and(|(f, l)| f <= ip && ip <= l))
    })
}

/// The lowest VNI from 4096 no overlay network of the cluster holds
/// (below it: the range other VXLAN users, flannel's 1 among them, tend
/// to pick by hand).
pub fn free_vni(ctx: &crate::context::Context) -> Result<u32> {
    super::with_member(ctx, |m| {
        let prefix = keys::vnis();
        let (kvs, _) = m.store.list(&prefix)?;
        let used: std::collections::BTreeSet<u32> = kvs
            .iter()
            .filter_map(|kv| keys::name_under(&kv.key, &prefix)?.parse().ok())
            .collect();
        (4096..=0x00ff_ffff)
            .find(|v| !used.contains(v))
            .ok_or_else(|| Error::Conflict("every VNI is in use in the cluster".into()))
    })
}

/// `network ls` on a member: the cluster's overlay definitions this host
/// lacks are copied in (those that conflict with a local network are
/// named on stderr by the caller's log).
pub fn sync(ctx: &crate::context::Context) -> Result<()> {
    super::with_member(ctx, |m| {
        let all = list(m)?;
        let locked = ctx.lock()?;
        let (local, _) = locked.config.list();
        let mut nl = Netlink::new()?;
        for n in all
            .iter()
            .filter(|n| !local.iter().any(|l| l.name == n.name))
        {
            if let Err(e) = adopt(&locked, n, &mut nl) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    })
}
