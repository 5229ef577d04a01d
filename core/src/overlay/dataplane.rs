//! The kernel's part of an overlay network on one host, all in the
//! kernel so that no packet between hosts passes a user-space process:
//! - the network's VXLAN device (`ocv<VNI>`, learning off, this host's
//!   advertise address as its source, its MAC derived from it);
//! - for each block another host holds: a route to the block via the
//!   block's first address on the device (onlink), a permanent neighbour
//!   entry giving that address the other host's VXLAN MAC, and an FDB
//!   entry sending that MAC to the host's advertise address.
//!
//! Three entries per remote host and block, none per container: a
//! container set up elsewhere in a block already routed is reached at
//! once, with nothing to program.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use ocinet_cluster::values::Block;
use ocinet_cluster::{blocks, ClusterConfig};
use ocinet_common::model::{Network, VXLAN_PORT};
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

/// The network's VXLAN device, made (up) if missing: its index, and
/// whether it was made now.
pub fn ensure_device(
    host: &mut Netlink,
    cfg: &ClusterConfig,
    net: &Network,
) -> Result<(u32, bool)> {
    let o = net
        .overlay()
        .ok_or_else(|| Error::invalid("driver", net.driver().as_str(), "is not overlay"))?;
    let dev = o.device();
    let _span = tracing::debug_span!("vxlan_ensure", %dev).entered();
    let created = host.create_vxlan(
        &dev,
        o.vni,
        cfg.advertise,
        VXLAN_PORT,
        net.mtu,
        blocks::vtep_mac(cfg.advertise),
    )?;
    let info = host
        .vxlan_info(&dev)?
        .ok_or_else(|| Error::NotFound(format!("VXLAN device {dev} vanished after it was made")))?;
    if info.local != Some(cfg.advertise) {
        return Err(Error::Conflict(format!(
            "VXLAN device {dev} has source {:?}, not this host's advertise address {}: was it made by hand?",
            info.local, cfg.advertise
        )));
    }
    if net.v6().is_some() {
        // IPv6 over the device (a new namespace may have it off).
        ocinet_common::sysctl::enable_ipv6_on(&dev)?;
    }
    if !info.up {
        host.set_up(info.index, &dev)?;
    }
    Ok((info.index, created))
}

/// Delete the network's VXLAN device (its routes, neighbour and FDB
/// entries go with it). Only a VXLAN device of the network's VNI: an
/// interface of that name ocinet did not make is left alone.
pub fn remove_device(host: &mut Netlink, net: &Network) -> Result<()> {
    let Some(o) = net.overlay() else {
        return Ok(());
    };
    let dev = o.device();
    match host.vxlan_info(&dev) {
        Ok(Some(info)) if info.vni == o.vni => {
            host.delete_link(&dev)?;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%dev, "left alone: {e}"),
    }
    Ok(())
}

/// What the device should lead to: every block of `held` another host
/// has. Returns (added, removed) entries.
pub fn program(
    host: &mut Netlink,
    cfg: &ClusterConfig,
    net: &Network,
    held: &BTreeMap<Ipv4Net, Block>,
) -> Result<(usize, usize)> {
    let Some(o) = net.overlay() else {
        return Ok((0, 0));
    };
    let dev = o.device();
    let Some(info) = host.vxlan_info(&dev)? else {
        return Ok((0, 0));
    };
    if info.vni != o.vni {
        return Ok((0, 0));
    }
    let _span = tracing::debug_span!("vxlan_program", %dev).entered();
    let remote: Vec<(Ipv4Net, Ipv4Addr)> = held
        .iter()
        .filter(|(_, b)| b.node != cfg.node && b.advertise != cfg.advertise)
        .map(|(block, b)| (*block, b.advertise))
        .collect();
    let want_fdb: BTreeSet<([u8; 6], Ipv4Addr)> = remote
        .iter()
        .map(|(_, a)| (blocks::vtep_mac(*a), *a))
        .collect();
    let want_neigh: BTreeMap<Ipv4Addr, [u8; 6]> = remote
        .iter()
        .map(|(b, a)| (blocks::vtep_address(*b), blocks::vtep_mac(*a)))
        .collect();
    let want_routes: BTreeSet<(Ipv4Net, Ipv4Addr)> = remote
        .iter()
        .map(|(b, _)| (*b, blocks::vtep_address(*b)))
        .collect();
    let (mut added, mut removed) = (0, 0);
    let idx = info.index;
    // Removals first: a block that moved to another host gets its new
    // entries after the old ones are gone.
    for (r, via) in host.routes_onlink_via(idx)? {
        if !want_routes.contains(&(r, via)) && host.route_onlink_del(r, via, idx)? {
            removed += 1;
        }
    }
    for (ip, mac) in host.neigh_list4(idx)? {
        if want_neigh.get(&ip) != Some(&mac) && host.neigh_del4(idx, ip)? {
            removed += 1;
        }
    }
    let fdb: BTreeSet<([u8; 6], Ipv4Addr)> = host.fdb_list(idx)?.into_iter().collect();
    for (mac, dst) in &fdb {
        if !want_fdb.contains(&(*mac, *dst)) && host.fdb_del(idx, *mac, *dst)? {
            removed += 1;
        }
    }
    for (mac, dst) in want_fdb.difference(&fdb) {
        host.fdb_add(idx, *mac, *dst)?;
        added += 1;
    }
    let neigh: BTreeMap<Ipv4Addr, [u8; 6]> = host.neigh_list4(idx)?.into_iter().collect();
    for (ip, mac) in &want_neigh {
        if neigh.get(ip) != Some(mac) {
            host.neigh_set4(idx, *ip, *mac)?;
            added += 1;
        }
    }
    let routes: BTreeSet<(Ipv4Net, Ipv4Addr)> = host.routes_onlink_via(idx)?.into_iter().collect();
    for (r, via) in want_routes.difference(&routes) {
        host.route_onlink_add(*r, *via, idx)?;
        added += 1;
    }
    if let (Some(v6), Some((subnet, _))) = (net.v6(), super::definitions::subnet_of(net)) {
        let (a, r) = program6(host, idx, subnet, v6.subnet, &remote)?;
        added += a;
        removed += r;
    }
    if added + removed > 0 {
        tracing::info!(%dev, added, removed, "overlay entries programmed");
    }
    Ok((added, removed))
}

/// The IPv6 half of `program` on a dual-stack network: per remote block,
/// its IPv6 block routed via the block's first address, on-link, and that
/// address at the host's VXLAN MAC (the FDB entry is the IPv4 half's).
fn program6(
    host: &mut Netlink,
    idx: u32,
    subnet: Ipv4Net,
    subnet6: ipnet::Ipv6Net,
    remote: &[(Ipv4Net, Ipv4Addr)],
) -> Result<(usize, usize)> {
    // Per remote block: its IPv6 block via the holder's link-local
    // address, which a permanent neighbour entry gives the holder's MAC.
    let pairs: Vec<(ipnet::Ipv6Net, std::net::Ipv6Addr, [u8; 6])> = remote
        .iter()
        .filter_map(|(b, a)| {
            blocks::block6(subnet, subnet6, *b)
                .map(|b6| (b6, blocks::vtep6(*a), blocks::vtep_mac(*a)))
        })
        .collect();
    let want_neigh: BTreeMap<std::net::Ipv6Addr, [u8; 6]> =
        pairs.iter().map(|(_, via, mac)| (*via, *mac)).collect();
    let want_routes: BTreeSet<(ipnet::Ipv6Net, std::net::Ipv6Addr)> =
        pairs.iter().map(|(b6, via, _)| (*b6, *via)).collect();
    let (mut added, mut removed) = (0, 0);
    for (r, via) in host.routes6_onlink_via(idx)? {
        if !want_routes.contains(&(r, via)) && host.route6_onlink_del(r, via, idx)? {
            removed += 1;
        }
    }
    for (ip, mac) in host.neigh_list6(idx)? {
        if want_neigh.get(&ip) != Some(&mac) && host.neigh_del6(idx, ip)? {
            removed += 1;
        }
    }
    let neigh: BTreeMap<std::net::Ipv6Addr, [u8; 6]> = host.neigh_list6(idx)?.into_iter().collect();
    for (ip, mac) in &want_neigh {
        if neigh.get(ip) != Some(mac) {
            host.neigh_set6(idx, *ip, *mac)?;
            added += 1;
        }
    }
    let routes: BTreeSet<(ipnet::Ipv6Net, std::net::Ipv6Addr)> =
        host.routes6_onlink_via(idx)?.into_iter().collect();
    for (r, via) in want_routes.difference(&routes) {
        host.route6_onlink_add(*r, *via, idx)?;
        added += 1;
    }
    Ok((added, removed))
}
