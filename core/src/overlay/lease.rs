//! Addresses on an overlay network: from this host's blocks of the
//! subnet. A block is leased to the host by a transaction that succeeds
//! only while no host holds it, on the host's store lease, so an address
//! is never given to containers of two hosts however their setups
//! interleave; inside a block the host's own IPAM (under the state lock)
//! keeps its containers apart.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use ocinet_cluster::values::{self, Block, VERSION};
use ocinet_cluster::{blocks, keys};
use ocinet_common::ipam::Ipam;
use ocinet_common::model::Network;
use ocinet_common::store::{fsutil, StateDir};
use ocinet_common::{Error, Result};

use super::definitions::subnet_of;
use super::{agent, Member};
use crate::context::Locked;

/// The blocks of `net` in the store: block -> (host, advertise address).
/// Refused values are logged and skipped.
pub fn held(m: &mut Member, net: &Network) -> Result<BTreeMap<Ipv4Net, Block>> {
    let Some((subnet, _)) = subnet_of(net) else {
        return Ok(BTreeMap::new());
    };
    let (kvs, _) = m.store.list(&keys::blocks(&net.name))?;
    Ok(parse_blocks(&kvs, &net.name, subnet))
}

/// Blocks of one network from its keys, each checked to be a block of
/// its subnet.
pub fn parse_blocks(
    kvs: &[ocinet_cluster::store::Kv],
    network: &str,
    subnet: Ipv4Net,
) -> BTreeMap<Ipv4Net, Block> {
    let mut out = BTreeMap::new();
    for kv in kvs {
        if !kv.key.starts_with(&keys::blocks(network)) {
            continue;
        }
        let Some((_, block)) = keys::parse_block(&kv.key) else {
            super::refused(
                &kv.key,
                &kv.value,
                "a block key that is not NETWORK/ADDRESS-LENGTH of a block's first address",
            );
            continue;
        };
        if block.prefix_len() != blocks::block_len(subnet) || !subnet.contains(&block) {
            super::refused(
                &kv.key,
                &kv.value,
                format!("a block that is not one of {subnet}'s"),
            );
            continue;
        }
        match Block::read(&kv.key, &kv.value) {
            Ok(b) => {
                out.insert(block, b);
            }
            Err(e) => super::refused(&kv.key, &kv.value, e),
        }
    }
    out
}

/// Blocks other hosts were last seen holding: network -> block -> node.
/// A block's key goes with its holder's lease, so once a host is cut off
/// past its lease the store no longer says the block was its; the host
/// may still run containers there (a partition, not a death). The agent
/// remembers each pass's holders here while the holder is a member that
/// is down, and a new block is taken from the ones nobody was seen
/// holding first, so that such a host's addresses are not given again
/// while any other block is free.
pub type Holders = BTreeMap<String, BTreeMap<Ipv4Net, String>>;

fn holders_path(state: &StateDir) -> PathBuf {
    state.cluster_dir().join("holders.json")
}

/// What the agent last remembered (nothing if it never wrote, or the
/// file cannot be read: then allocation is as without it).
pub fn remembered(state: &StateDir) -> Holders {
    match fsutil::read_json::<Holders>(&holders_path(state)) {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("last block holders not read: {e}");
            Holders::new()
        }
    }
}

pub fn remember(state: &StateDir, h: &Holders) -> Result<()> {
    state.ensure_cluster_dir()?;
    fsutil::write_json(&holders_path(state), h, fsutil::Durability::Runtime)
}

/// This host's value for its blocks.
pub fn mine(m: &Member) -> Vec<u8> {
    values::encode(&Block {
        version: VERSION,
        node: m.cfg.node.clone(),
        advertise: m.cfg.advertise,
    })
}

/// Lease `block` to this host on its store lease: whether it is ours now
/// (it was free, or already ours).
pub fn claim(m: &mut Member, network: &str, block: Ipv4Net, lease: i64) -> Result<bool> {
    let value = mine(m);
    let _span = tracing::debug_span!("block_claim", network, %block).entered();
    let side = (keys::held(network, block), value.clone());
    // Only while the network is defined: a `network rm` between this
    // host's read of the definition and its claim would otherwise be
    // followed by a block and a last-holder key of a network that no
    // longer exists (the last one on no lease: forever).
    let defined = keys::network(network);
    if m.store
        .claim(&keys::block(network, block), value, lease, side, &defined)?
    {
        return Ok(true);
    }
    if m.store.get(&defined)?.is_none() {
        return Err(ocinet_common::Error::NotFound(format!(
            "overlay network {network} is no longer in the cluster store (removed meanwhile)"
        )));
    }
    Ok(false)
}

/// The host each block of `net` was last held by, as the store says
/// (`keys::held`), other than this host: blocks whose holder may still
/// run containers there though its lease is gone.
pub fn last_holders(m: &mut Member, net: &Network) -> Result<BTreeMap<Ipv4Net, String>> {
    let (kvs, _) = m.store.list(&keys::helds(&net.name))?;
    let mut out = BTreeMap::new();
    for kv in kvs {
        let Some((_, block)) = keys::parse_held(&kv.key) else {
            super::refused(
                &kv.key,
                &kv.value,
                "a last-holder key that is not NETWORK/ADDRESS-LENGTH",
            );
            continue;
        };
        match Block::read(&kv.key, &kv.value) {
            Ok(b) if b.node != m.cfg.node => {
                out.insert(block, b.node);
            }
            Ok(_) => {}
            Err(e) => super::refused(&kv.key, &kv.value, e),
        }
    }
    Ok(out)
}

/// Blocks of `net` not to take while another is free: those a host
/// that is down was last seen holding, by this host's agent or in the
/// store.
fn avoided(ctx: &Locked, m: &mut Member, net: &Network) -> Result<BTreeMap<Ipv4Net, String>> {
    let mut avoid = remembered(&ctx.state).remove(&net.name).unwrap_or_default();
    for (b, node) in last_holders(m, net)? {
        avoid.entry(b).or_insert(node);
    }
    Ok(avoid)
}

/// An IPv4 address of `net` for container `id`: `wanted` (in a block of
/// this host's, or a free block it then takes), or a free one of this
/// host's blocks, taking a new block when they are full.
pub fn allocate(
    ctx: &Locked,
    net: &Network,
    id: &str,
    wanted: Option<Ipv4Addr>,
    field: &str,
    pool: &dyn Ipam,
) -> Result<Ipv4Addr> {
    let (subnet, gateway) = subnet_of(net).ok_or_else(|| {
        Error::invalid(
            "subnet",
            "none",
            format!("overlay network {} has no IPv4 subnet", net.name),
        )
    })?;
    super::with_member(ctx, |m| {
        let stale = ctx.state.agent_state().map(|a| a.lease);
        match allocate_with(ctx, m, net, id, wanted, field, pool, subnet, gateway) {
            // Nothing was claimed: run again on the agent's new lease.
            Err(e)
                if ocinet_cluster::lease_gone(&e)
                    && super::agent_registered_again(ctx, m.cfg.ttl, stale) =>
            {
                allocate_with(ctx, m, net, id, wanted, field, pool, subnet, gateway)
            }
            r => r,
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn allocate_with(
    ctx: &Locked,
    m: &mut Member,
    net: &Network,
    id: &str,
    wanted: Option<Ipv4Addr>,
    field: &str,
    pool: &dyn Ipam,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
) -> Result<Ipv4Addr> {
    agent::ensure(ctx, &m.cfg)?;
    let lease = m.lease_of(ctx)?;
    let taken = held(m, net)?;
    let me = m.cfg.node.clone();
    if let Some(ip) = wanted {
        if !super::definitions::assignable(net, ip) {
            return Err(Error::invalid(
                field,
                ip,
                format!("is reserved on overlay network {} (a block's first address is its host's VXLAN address; the gateway and broadcast are the network's)", net.name),
            ));
        }
        let block = blocks::of(subnet, ip)
            .ok_or_else(|| Error::invalid(field, ip, format!("is not in {subnet}")))?;
        match taken.get(&block) {
            Some(b) if b.node != me => {
                return Err(Error::invalid(
                    field,
                    ip,
                    format!(
                        "is in block {block} of overlay network {}, leased to host {}",
                        net.name, b.node
                    ),
                ))
            }
            Some(_) => {}
            None => {
                if let Some(node) = avoided(ctx, m, net)?.remove(&block).filter(|n| *n != me) {
                    return Err(Error::invalid(
                        field,
                        ip,
                        format!(
                            "is in block {block} of overlay network {}, last leased to host {node}, which is down: its containers may still run there",
                            net.name
                        ),
                    ));
                }
                if !claim(m, &net.name, block, lease)? {
                    return Err(Error::invalid(
                        field,
                        ip,
                        format!("block {block} was just leased by another host"),
                    ));
                }
            }
        }
        return match pool.allocate(net, id, Some(IpAddr::V4(ip)), field)? {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(v6) => Err(Error::invalid(field, v6, "is not IPv4")),
        };
    }
    let found = |b: Ipv4Net| -> Result<Option<Ipv4Addr>> {
        let Some((first, last)) = blocks::usable(subnet, gateway, b) else {
            return Ok(None);
        };
        Ok(
            match pool.allocate_between(net, id, first.into(), last.into())? {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            },
        )
    };
    for (b, _) in taken.iter().filter(|(_, v)| v.node == me) {
        if let Some(ip) = found(*b)? {
            return Ok(ip);
        }
    }
    // A new block: the first free one, one a host that is down was last
    // seen holding only when no other is free. A transaction lost to
    // another host's setup moves on to the next.
    let avoid = avoided(ctx, m, net)?;
    let free = |b: &Ipv4Net| !taken.contains_key(b);
    let unseen = blocks::all(subnet).filter(|b| free(b) && !avoid.contains_key(b));
    let seen = blocks::all(subnet).filter(|b| free(b) && avoid.contains_key(b));
    for b in unseen.chain(seen) {
        if let Some(node) = avoid.get(&b) {
            tracing::warn!(network = %net.name, block = %b, holder = %node, "every other block is taken: reusing a block of a host that is down");
        }
        if claim(m, &net.name, b, lease)? {
            tracing::info!(network = %net.name, block = %b, "block leased to this host");
            if let Some(ip) = found(b)? {
                return Ok(ip);
            }
        }
    }
    Err(Error::PoolExhausted {
        network: net.name.clone(),
        range: format!("{subnet}: every block is leased to a host or full"),
    })
}

/// Give back this host's blocks of `net` that hold no lease of its IPAM
/// (none of its containers has an address there): only while they are
/// still ours, each with its last-holder key in the same transaction (a
/// hook killed between two deletions would leave the holder key behind,
/// naming this host forever). Last-holder keys naming this host for a
/// block no host holds (its key went with an expired lease) and with no
/// lease of ours inside go too: nothing of this host runs there, and
/// such a key would keep other hosts off the block and `network rm`
/// refused. Under the state lock, so no setup is between its block and
/// its lease.
pub fn release_empty(ctx: &Locked, m: &mut Member, net: &Network) -> Result<usize> {
    let Some((subnet, _)) = subnet_of(net) else {
        return Ok(0);
    };
    let leased: Vec<Ipv4Addr> = ocinet_common::ipam::open(&ctx.state, &net.name)?
        .addresses()?
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .collect();
    let empty = |b: &Ipv4Net| subnet.contains(b) && !leased.iter().any(|ip| b.contains(ip));
    let me = m.cfg.node.clone();
    let value = mine(m);
    // Both prefixes in one read: a teardown pays no extra round trip.
    let (mut read, _) = m
        .store
        .snapshot(&[keys::blocks(&net.name), keys::helds(&net.name)])?;
    let holders = read.pop().unwrap_or_default();
    let blocks = parse_blocks(&read.pop().unwrap_or_default(), &net.name, subnet);
    let mut n = 0;
    for (b, _) in blocks.iter().filter(|(b, v)| v.node == me && empty(b)) {
        let _span =
            tracing::debug_span!("block_release", network = %net.name, block = %b).entered();
        if m.store.delete_with_side(
            &keys::block(&net.name, *b),
            &keys::held(&net.name, *b),
            &value,
        )? {
            tracing::info!(network = %net.name, block = %b, "block given back");
            crate::killpoint::reached("block-released");
            n += 1;
        }
    }
    for kv in holders.iter().filter(|kv| kv.value == value) {
        let Some((_, b)) = keys::parse_held(&kv.key) else {
            continue;
        };
        if blocks.contains_key(&b) || !empty(&b) {
            continue;
        }
        let _span = tracing::debug_span!("held_release", network = %net.name, block = %b).entered();
        if m.store
            .delete_if_without(&kv.key, &value, &keys::block(&net.name, b))?
        {
            tracing::info!(network = %net.name, block = %b, "last-holder key of a block this host no longer holds removed");
            crate::killpoint::reached("held-released");
        }
    }
    Ok(n)
}

/// The IPv6 address of a dual-stack overlay attachment whose IPv4
/// address is `ip4`: from the IPv6 block of the same index as `ip4`'s
/// block (held by the same key, so no store round trip), `wanted6` if it
/// is there, else a free one found without walking the block.
pub fn allocate6(
    net: &Network,
    id: &str,
    ip4: Ipv4Addr,
    wanted6: Option<std::net::Ipv6Addr>,
    field: &str,
    pool: &dyn Ipam,
) -> Result<std::net::Ipv6Addr> {
    let (subnet, _) = subnet_of(net).ok_or_else(|| {
        Error::invalid(
            "subnet",
            "none",
            format!("overlay network {} has no IPv4 subnet", net.name),
        )
    })?;
    let v6 = net.v6().ok_or_else(|| {
        Error::invalid(
            "subnet",
            "none",
            format!("overlay network {} has no IPv6 subnet", net.name),
        )
    })?;
    let b6 = blocks::of(subnet, ip4)
        .and_then(|b| blocks::block6(subnet, v6.subnet, b))
        .ok_or_else(|| {
            Error::invalid(
                "subnet",
                v6.subnet,
                format!(
                    "cannot be cut into the blocks of overlay network {}",
                    net.name
                ),
            )
        })?;
    let (first, last) = blocks::usable6(v6.gateway, b6);
    if let Some(w) = wanted6 {
        if !(first..=last).contains(&w) {
            return Err(Error::invalid(
                field,
                w,
                format!("is not in {b6}, the IPv6 block of this host's IPv4 block of overlay network {} (an address on an overlay network follows its host's block)", net.name),
            ));
        }
        return pool.allocate6(net, id, Some(w), field);
    }
    match pool.allocate_between(net, id, first.into(), last.into())? {
        Some(IpAddr::V6(ip)) => Ok(ip),
        _ => Err(Error::PoolExhausted {
            network: net.name.clone(),
            range: b6.to_string(),
        }),
    }
}

/// The prefix an address of `net` has inside a container: an overlay
/// network's IPv6 addresses are on-link only within their host's block
/// (no proxy NDP for a whole prefix exists, as proxy ARP does for IPv4);
/// everything else of the subnet goes via the gateway, on-link.
pub fn container_prefix6(net: &Network, ip4: Option<Ipv4Addr>) -> Option<u8> {
    let (subnet, _) = subnet_of(net)?;
    let v6 = net.v6()?;
    let b = blocks::of(subnet, ip4?)?;
    blocks::block6(subnet, v6.subnet, b).map(|b6| b6.prefix_len())
}
