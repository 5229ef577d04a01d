//! The kernel's part of an overlay network on one host, all in the
//! kernel so that no packet between hosts passes a user-space process:
//! - the network's VXLAN device (`ocv<VNI>`, learning off, this host's
//!   advertise address as its source, its MAC derived from it);
//! - for each block another host holds: a route to the block via the
//!   block's first address on the device (onlink), a permanent neighbour
//!   entry giving that address the other host's VXLAN MAC, and an FDB
//!   entry sending that MAC to the host's advertise address.
//!
//! A route and a neighbour entry per remote block, an FDB entry per
//! remote host (dual stack: an IPv6 route per remote block, an IPv6
//! neighbour per remote host), none per container: a container set up
//! elsewhere in a block already routed is reached at once, with nothing
//! to program.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
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
    // Per remote block and family: the block routed via an address of
    // the holder's, which a permanent neighbour entry gives the holder's
    // VXLAN MAC. IPv4: the block's first address. IPv6 (a dual-stack
    // network's IPv6 block of the same index): the holder's link-local
    // `vtep6`, as the kernel refuses an on-link global gateway that a
    // route on another device (the bridge's /64) covers.
    let dual = match (net.v6(), super::definitions::subnet_of(net)) {
        (Some(v6), Some((subnet, _))) => Some((subnet, v6.subnet)),
        _ => None,
    };
    let mut want_neigh: BTreeMap<IpAddr, [u8; 6]> = BTreeMap::new();
    let mut want_routes: BTreeSet<(IpNet, IpAddr)> = BTreeSet::new();
    for (b, a) in &remote {
        let (mac, via) = (blocks::vtep_mac(*a), IpAddr::V4(blocks::vtep_address(*b)));
        want_neigh.insert(via, mac);
        want_routes.insert(((*b).into(), via));
        if let Some(b6) = dual.and_then(|(s, s6)| blocks::block6(s, s6, *b)) {
            let via6 = IpAddr::V6(blocks::vtep6(*a));
            want_neigh.insert(via6, mac);
            want_routes.insert((b6.into(), via6));
        }
    }
    let families: &[bool] = if dual.is_some() {
        &[false, true]
    } else {
        &[false]
    };
    let (mut added, mut removed) = (0, 0);
    let idx = info.index;
    // Removals first: a block that moved to another host gets its new
    // entries after the old ones are gone.
    for &v6 in families {
        for (r, via) in host.onlink_routes(idx, v6)? {
            if !want_routes.contains(&(r, via)) && host.delete_onlink_route(r, via, idx)? {
                removed += 1;
            }
        }
        for (ip, mac) in host.permanent_neighbours(idx, v6)? {
            if want_neigh.get(&ip) != Some(&mac) && host.delete_neighbour(idx, ip)? {
                removed += 1;
            }
        }
    }
    let fdb: BTreeSet<([u8; 6], Ipv4Addr)> = host.fdb_list(idx)?.into_iter().collect();
    for (mac, dst) in &fdb {
        if !want_fdb.contains(&(*mac, *dst)) && host.fdb_del(idx, *mac, *dst)? {
            removed += 1;
        }
    }
    if removed > 0 {
        crate::killpoint::reached("vxlan-stale-removed");
    }
    let fdb_added = added;
    for (mac, dst) in want_fdb.difference(&fdb) {
        host.fdb_add(idx, *mac, *dst)?;
        added += 1;
    }
    if added > fdb_added {
        crate::killpoint::reached("vxlan-fdb-added");
    }
    // Per family: routes only once their neighbour entries are in, so
    // that a process killed between the two leaves no route whose
    // gateway has no entry (a dead agent's next pass adds the rest).
    let mut set_neighbour = false;
    for &v6 in families {
        let neigh: BTreeMap<IpAddr, [u8; 6]> =
            host.permanent_neighbours(idx, v6)?.into_iter().collect();
        for (ip, mac) in want_neigh.iter().filter(|(ip, _)| ip.is_ipv6() == v6) {
            if neigh.get(ip) != Some(mac) {
                host.set_neighbour(idx, *ip, *mac)?;
                added += 1;
                set_neighbour = true;
            }
        }
        if set_neighbour {
            crate::killpoint::reached("vxlan-neighbours-set");
        }
        let routes: BTreeSet<(IpNet, IpAddr)> = host.onlink_routes(idx, v6)?.into_iter().collect();
        for (r, via) in want_routes.iter().filter(|(_, via)| via.is_ipv6() == v6) {
            if !routes.contains(&(*r, *via)) {
                host.add_onlink_route(*r, *via, idx)?;
                added += 1;
            }
        }
    }
    if added + removed > 0 {
        tracing::info!(%dev, added, removed, "overlay entries programmed");
    }
    Ok((added, removed))
}
