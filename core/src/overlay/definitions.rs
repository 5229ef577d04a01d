//! Overlay network definitions: created in the store (with their VNI, in
//! one transaction, so two hosts cannot make the same name or VNI at
//! once), copied into each member's config directory when first used
//! there or listed, and removed from the store only while no host may
//! have a container on the network (`unpublish`).

use std::collections::{BTreeMap, BTreeSet};

use ocinet_cluster::store::Kv;
use ocinet_cluster::values::{self, NetworkValue, Vni, VERSION};
use ocinet_cluster::{blocks, keys, Guard};
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
        // Killed before the transaction, nothing is in the store; after it,
        // the definition and its VNI are (both or neither) and this host's
        // copy is not: `network ls` or a first container here adopts it,
        // `network rm` removes it.
        crate::killpoint::reached("network-publishing");
        if m.store.create_all(&pairs, None)? {
            crate::killpoint::reached("network-published");
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

/// How many times `unpublish` reads and decides again when the store
/// changed between its read and its transaction.
const UNPUBLISH_ATTEMPTS: usize = 5;

/// `network rm` of an overlay network, once the caller found no container
/// of this host on it (under the state lock): refused while any other
/// host may have a container on it, naming them; else its definition,
/// VNI, blocks and last-holder keys leave the store in one transaction
/// that holds only while what the decision was made on is unchanged.
///
/// A container entry is written only once a setup is ready, and goes
/// with its host's lease, so entries alone do not say who is on the
/// network. Another host may have a container on it when:
/// - an entry names it;
/// - it holds a block (on its lease: it is up): a setup under way, one
///   that was killed, or an entry not put back yet;
/// - a last-holder key names it and it is still a member: cut off from
///   the store past its lease, it may still run containers there (a
///   partition, not a death), and one that is up again puts its blocks
///   back at its agent's next pass.
///
/// A last-holder key of a host that is no member (it left, with no
/// container) is stale and goes with the network. This host's own blocks
/// and keys go too: the caller proved it has no container here.
pub fn unpublish(ctx: &Locked, net: &Network) -> Result<()> {
    super::with_member(ctx, |m| {
        let o = net
            .overlay()
            .cloned()
            .ok_or_else(|| Error::invalid("driver", net.driver().as_str(), "is not overlay"))?;
        // This host's empty blocks and stale last-holder keys first, in
        // their own transactions: true whether or not the removal is
        // refused, and what lets a refused `network rm` on a host that
        // last held a block clear it.
        super::lease::release_empty(ctx, m, net)?;
        crate::killpoint::reached("network-released");
        for _ in 0..UNPUBLISH_ATTEMPTS {
            let plan = plan_removal(m, net)?;
            if !plan.users.is_empty() {
                return Err(Error::Conflict(format!(
                    "network {} is in use in the cluster: {}",
                    net.name,
                    plan.users.join("; ")
                )));
            }
            let _span = tracing::debug_span!("network_unpublish", network = %net.name).entered();
            if m.store.delete_guarded(
                &[keys::network(&net.name), keys::vni(o.vni)],
                &[keys::blocks(&net.name), keys::helds(&net.name)],
                &plan.guards,
            )? {
                // Killed here, the store has nothing of the network and this
                // host its local copy: `network rm` again removes the copy
                // (nothing is left to remove in the store), as does the
                // agent's pass.
                crate::killpoint::reached("network-unpublished");
                tracing::info!(network = %net.name, "overlay network removed from the cluster store");
                return Ok(());
            }
            tracing::debug!(network = %net.name, "the store changed since it was read: reading again");
        }
        Err(Error::Conflict(format!(
            "network {}: the cluster store changed under each of {UNPUBLISH_ATTEMPTS} attempts to remove it; try again",
            net.name
        )))
    })
}

/// What `unpublish` found: who may still be on the network (empty: it
/// can go), and what its transaction must find unchanged.
struct Removal {
    users: Vec<String>,
    guards: Vec<Guard>,
}

fn plan_removal(m: &mut Member, net: &Network) -> Result<Removal> {
    let me = m.cfg.node.clone();
    let prefixes = [
        keys::containers(&net.name),
        keys::blocks(&net.name),
        keys::helds(&net.name),
        keys::members(),
        keys::nodes(),
    ];
    let (read, rev) = m.store.snapshot(&prefixes)?;
    let [containers, blocks, holders, members, nodes] = <[Vec<Kv>; 5]>::try_from(read)
        .map_err(|_| Error::Conflict("cluster store: a snapshot of the wrong size".into()))?;
    let members: BTreeMap<String, Option<u64>> = members
        .iter()
        .filter_map(|kv| {
            let n = keys::name_under(&kv.key, &keys::members())?;
            // A member value that does not read still makes its node a
            // member: it may run containers.
            let down = values::Member::read(&kv.key, n, &kv.value)
                .ok()
                .and_then(|v| v.down_since);
            Some((n.to_string(), down))
        })
        .collect();
    let up: BTreeSet<String> = nodes
        .iter()
        .filter_map(|kv| keys::name_under(&kv.key, &keys::nodes()).map(str::to_string))
        .collect();

    let mut users = Vec::new();
    let subnet = subnet_of(net).map(|(s, _)| s);
    let mut with_entries: BTreeSet<String> = BTreeSet::new();
    for kv in &containers {
        let Some((_, node, id)) = keys::parse_container(&kv.key) else {
            // Not one of ours to read, but under the network: it blocks.
            users.push(format!("the store key {}", kv.key));
            continue;
        };
        // The name helps the user find it; a value that does not read
        // still blocks the removal, named by its id.
        let name = subnet
            .and_then(|s| {
                values::Container::read_in(&kv.key, &node, &id, s, net.subnet6(), &kv.value).ok()
            })
            .and_then(|c| c.name);
        users.push(match name {
            Some(n) => format!("container {n} ({id}) on host {node}"),
            None => format!("container {id} on host {node}"),
        });
        with_entries.insert(node);
    }

    // Blocks and last holders, by node (this host's are its own to drop).
    let mut leased: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for kv in &blocks {
        let Some((_, b)) = keys::parse_block(&kv.key) else {
            super::refused(
                &kv.key,
                &kv.value,
                "a block key that is not NETWORK/ADDRESS-LENGTH",
            );
            continue;
        };
        match values::Block::read(&kv.key, &kv.value) {
            Ok(v) if v.node != me => {
                leased.entry(v.node).or_default().push(b.to_string());
            }
            Ok(_) => {}
            // Names no host: nothing can be said to run there.
            Err(e) => super::refused(&kv.key, &kv.value, e),
        }
    }
    let mut last: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for kv in &holders {
        let Some((_, b)) = keys::parse_held(&kv.key) else {
            super::refused(
                &kv.key,
                &kv.value,
                "a last-holder key that is not NETWORK/ADDRESS-LENGTH",
            );
            continue;
        };
        let node = match values::Block::read(&kv.key, &kv.value) {
            Ok(v) => v.node,
            Err(e) => {
                super::refused(&kv.key, &kv.value, e);
                continue;
            }
        };
        let holds_it = leased
            .get(&node)
            .is_some_and(|bs| bs.contains(&b.to_string()));
        if node == me || holds_it {
            continue;
        }
        if members.contains_key(&node) || up.contains(&node) {
            last.entry(node).or_default().push(b.to_string());
        } else {
            gone.insert(node);
        }
    }
    for (node, bs) in &leased {
        if with_entries.contains(node) {
            continue;
        }
        users.push(format!(
            "host {node} holds block {} with no container registered on it (a setup under way there, or one that was killed: `ocinet gc` on {node} gives the block back)",
            bs.join(", ")
        ));
    }
    let now = values::now();
    for (node, bs) in &last {
        if with_entries.contains(node) || leased.contains_key(node) {
            continue;
        }
        let bs = bs.join(", ");
        users.push(match (up.contains(node), members.get(node).copied().flatten()) {
            (false, since) => format!(
                "host {node} is down{} and last held block {bs}: cut off from the store, it may still run containers there (if it is gone for good, its machine off or its containers stopped, `ocinet cluster rm {node}` forgets it)",
                since
                    .map(|t| format!(" (for {} s)", now.saturating_sub(t)))
                    .unwrap_or_default()
            ),
            (true, _) => format!(
                "host {node} last held block {bs} and has not put it back: its containers may still run there (if none does, `ocinet network rm {}` on {node} clears it)",
                net.name
            ),
        });
    }

    let mut guards = vec![
        Guard::Empty(keys::containers(&net.name)),
        Guard::Unchanged(keys::blocks(&net.name), rev),
        Guard::Unchanged(keys::helds(&net.name), rev),
    ];
    // A stale last holder must still be none when its key is deleted.
    for node in gone {
        guards.push(Guard::Absent(keys::member(&node)));
        guards.push(Guard::Absent(keys::node(&node)));
    }
    Ok(Removal { users, guards })
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
