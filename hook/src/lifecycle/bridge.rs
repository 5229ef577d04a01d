//! Bridge mode, Docker's bridge driver's way: a bridge with the gateway
//! address, a veth per container with eth0 inside, an address, a default
//! route and masquerade.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ocinet_common::firewall::{ruleset, Change, Firewall};
use ocinet_common::model::{Driver, Endpoint, Network};
use ocinet_common::netlink::link::Link;
use ocinet_common::netlink::{LinkRef, Netlink};
use ocinet_common::{netns, sysctl, validate, Error, Result};

use super::driver::NetworkDriver;
use super::{release, restore};
use crate::context::{Context, Subject};
use crate::killpoint;
use crate::settings::Settings;

pub const CONTAINER_IFNAME: &str = "eth0";

/// Host end of a container's veth: stable per container id, within IFNAMSIZ.
pub fn host_veth_name(id: &str) -> String {
    format!(
        "oc{:012x}",
        validate::fnv1a64(id.as_bytes()) & 0xffff_ffff_ffff
    )
}

/// Locally administered MAC derived from the address, as Docker does, so a
/// reused address keeps its MAC and neighbours' ARP caches stay right.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x6f, o[0], o[1], o[2], o[3]]
}

/// A stable bridge MAC: otherwise a bridge takes the lowest MAC of its ports
/// and changes it as containers come and go, breaking neighbours' caches.
/// It is also how ocinet knows its own bridges (`is_ours`).
fn bridge_mac(bridge: &str) -> [u8; 6] {
    let h = validate::fnv1a64(bridge.as_bytes()).to_be_bytes();
    [0x02, 0x6e, h[0], h[1], h[2], h[3]]
}

/// Whether `link` is a bridge ocinet made. The record is the MAC it gave
/// the bridge when it created it: the kernel keeps it with the interface,
/// so it cannot outlive the bridge or be wrong about one that someone else
/// made again under the same name (a record in the state directory could
/// be both), and bridges made by earlier versions carry it too.
pub fn is_ours(link: &Link) -> bool {
    link.kind.as_deref() == Some("bridge") && link.mac == bridge_mac(&link.name)
}

/// Refuse an interface of the bridge's name that ocinet did not make:
/// never configure or delete someone else's interface.
fn foreign(net: &Network, link: &Link) -> Error {
    let what = match link.kind.as_deref() {
        Some("bridge") => format!(
            "is a bridge ocinet did not create (its MAC {} is not the {} ocinet gives it)",
            validate::format_mac(&link.mac),
            validate::format_mac(&bridge_mac(&link.name))
        ),
        Some(kind) => format!("is a {kind} interface, not a bridge"),
        None => "is not a bridge".into(),
    };
    Error::Conflict(format!(
        "network {}: interface {} (index {}) {what}; ocinet leaves it alone: remove it, or use a network with another bridge",
        net.name, link.name, link.index
    ))
}

pub(crate) fn netns_link_for(id: &str) -> PathBuf {
    netns::free_pin_path(id)
}

/// The bridge driver.
pub struct BridgeDriver {
    pub net: Network,
}

impl NetworkDriver for BridgeDriver {
    fn setup(
        &self,
        ctx: &Context,
        ep: Endpoint,
        settings: &Settings,
        host: &mut Netlink,
        ns: &File,
        ns_path: &Path,
    ) -> Result<()> {
        setup(ctx, ep, settings, &self.net, host, ns, ns_path)
    }
}

fn setup(
    ctx: &Context,
    mut ep: Endpoint,
    settings: &Settings,
    net: &Network,
    host: &mut Netlink,
    ns: &File,
    ns_path: &Path,
) -> Result<()> {
    let defaulted;
    let settings = match net.host_binding_ip {
        Some(hip) if settings.ports.iter().any(|p| p.host_ip.is_none()) => {
            defaulted = with_host_ip(settings, hip);
            &defaulted
        }
        _ => settings,
    };

    check_ports(net, settings, host)?;

    claim_ports(ctx, &ep, settings)?;
    let pool = ctx.state.pool(&net.name)?;
    let leased = pool.allocate(net, &ep.id, settings.ip);
    let ip = match leased {
        Ok(ip) => ip,
        Err(e) => {
            let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
            return Err(e);
        }
    };
    killpoint::reached("leased");
    if let Err(e) = check_mac(ctx, net, &ep.id, settings, ip, host) {
        let _ = pool.release(ip, &ep.id);
        let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
        return Err(e);
    }
    let mac = settings.mac.unwrap_or_else(|| mac_for(ip));
    ep.ip = Some(ip);
    ep.prefix_len = Some(net.subnet.prefix_len());
    ep.gateway = (!net.internal).then_some(net.gateway);
    let mac_text = validate::format_mac(&mac);
    let veth = host_veth_name(&ep.id);
    ep.firewall = ruleset::guard_elements(&veth, &mac_text, ip, &net.bridge);
    ep.firewall
        .extend(ruleset::port_elements(ip, &settings.ports));
    ep.mac = Some(mac_text);
    ep.bridge = Some(net.bridge.clone());
    ep.host_veth = Some(veth);
    ep.interface = Some(CONTAINER_IFNAME.into());
    ep.ports = settings.ports.clone();
    // The pin is named after the container id, so it goes into the intent
    // too (one record write fewer; unpinning a pin never made is a no-op).
    ep.netns_link = Some(netns_link_for(&ep.id));
    // Record the intent before touching the kernel: a hook killed from here
    // on leaves a record that gc (or the next hook for this id) undoes. One
    // killed before it leaves a lease and claims without a record: the next
    // hook for this id takes them again (the allocator starts where it
    // found this address, as the last one is remembered only below), and
    // gc frees them otherwise.
    if let Err(e) = ctx.state.save_setup(&ep) {
        let _ = pool.release(ip, &ep.id);
        let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
        return Err(e);
    }
    if settings.ip.is_none() {
        if let Err(e) = pool.remember_last(ip) {
            tracing::warn!("next allocation starts from the beginning of the range: {e}");
        }
    }
    killpoint::reached("recorded");

    // Done is a rename of the record written above: wire() changes the
    // endpoint only when it fails.
    let result = wire(ctx, host, net, &mut ep, &mac, ns, ns_path)
        .and_then(|()| ctx.state.finish_setup(&ep.id));
    match result {
        Ok(()) => {
            killpoint::reached("ready");
            tracing::info!(network = %net.name, %ip, veth = ep.host_veth.as_deref().unwrap_or(""), "set up");
            Ok(())
        }
        Err(e) => {
            tracing::error!("setup failed, rolling back: {e}");
            // The record as it stands now: wire() drops what turned out
            // not to be ours (a veth or pin that already existed).
            let _ = ctx.state.save_setup(&ep);
            match release::release(ctx, &ep) {
                Ok(()) => Err(e),
                Err(undo) => Err(Error::Conflict(format!(
                    "{e}; rollback incomplete (ocinet gc will retry): {undo}"
                ))),
            }
        }
    }
}

/// The network's default host address on the mappings that name none
/// (`--host-binding-ip`): claimed, published and recorded as if written.
fn with_host_ip(settings: &Settings, ip: Ipv4Addr) -> Settings {
    Settings {
        ports: settings
            .ports
            .iter()
            .map(|p| ocinet_common::model::PortSpec {
                host_ip: p.host_ip.or(Some(ip)),
                ..p.clone()
            })
            .collect(),
        ..settings.clone()
    }
}

/// A MAC is one port's on a bridge: once a second port sends with it, the
/// bridge moves the address to that port and the first container loses
/// its traffic. So a static MAC may not be the bridge's, another
/// container's on this network, nor `02:6f:<address>` of an address in the
/// subnet other than the container's own (ocinet derives those for the
/// containers that get the addresses). Called under the state lock, as
/// leasing is, so two setups cannot both take one MAC; the kernel refuses
/// a second owner too (`ruleset::MAP_MAC_OWNER`).
pub(crate) fn check_mac(
    ctx: &Context,
    net: &Network,
    id: &str,
    settings: &Settings,
    ip: Ipv4Addr,
    host: &mut Netlink,
) -> Result<()> {
    let Some(mac) = settings.mac else {
        return Ok(());
    };
    let text = validate::format_mac(&mac);
    let refuse = |why: String| Err(Error::invalid(settings.mac_field, &text, why));
    let bridge_now = match net.driver {
        Driver::Bridge => host.link_by_name(&net.bridge)?.map(|l| l.mac),
        Driver::Macvlan => None,
    };
    let is_bridges = net.driver == Driver::Bridge && mac == bridge_mac(&net.bridge);
    if is_bridges || bridge_now.as_deref() == Some(&mac[..]) {
        return refuse(format!(
            "is the MAC of bridge {} of network {}",
            net.bridge, net.name
        ));
    }
    if mac[..2] == [0x02, 0x6f] {
        let derived_for = Ipv4Addr::new(mac[2], mac[3], mac[4], mac[5]);
        if derived_for != ip && net.subnet.contains(&derived_for) {
            let holder = ctx.state.pool(&net.name)?.leases()?.remove(&derived_for);
            return refuse(match holder {
                Some(h) => format!("is the MAC of container {h} (derived from its address {derived_for})"),
                None => format!(
                    "is derived from {derived_for} and kept for the container that gets that address"
                ),
            });
        }
    }
    let (eps, unreadable) = ctx.state.list_endpoints();
    for e in unreadable {
        tracing::warn!("MAC check: skipping an unreadable record: {e}");
    }
    if let Some(holder) = eps.iter().find(|e| {
        e.id != id
            && e.network() == Some(net.name.as_str())
            && e.mac.as_deref() == Some(text.as_str())
    }) {
        return refuse(format!(
            "is already the MAC of container {} ({}) on network {}",
            holder.id, holder.name, net.name
        ));
    }
    Ok(())
}

/// Claim the published ports for `ep`, first freeing any held by a
/// container that is gone (its runtime died without poststop) or by a hook
/// that died before recording, so they do not wait for gc.
fn claim_ports(ctx: &Context, ep: &Endpoint, settings: &Settings) -> Result<()> {
    if settings.ports.is_empty() {
        return Ok(());
    }
    let claims = ctx.state.port_claims();
    let mut released: Vec<String> = Vec::new();
    for o in claims.overlaps(&ep.id, &settings.ports)? {
        let holder = &o.held.holder;
        if released.contains(holder) {
            continue;
        }
        let record = match validate::container_id("container id", holder) {
            Ok(()) => ctx.state.load_endpoint(holder)?,
            Err(_) => None,
        };
        match record {
            Some(h) if h.is_stale() => {
                tracing::warn!(holder = %holder, "releasing the ports of a container that is gone");
                release::release(ctx, &h)?;
                // A claim its record does not list (left by a killed
                // retry) goes too.
                claims.release_claim(&o.held)?;
                released.push(holder.clone());
            }
            Some(h) => {
                return Err(Error::Conflict(format!(
                    "host port {} is already published by container {} ({}) as {}",
                    o.wanted, h.id, h.name, o.held
                )));
            }
            None => {
                // Claimed but never recorded: a hook died in between.
                claims.release_claim(&o.held)?;
            }
        }
    }
    claims.claim(&ep.id, &settings.ports)
}

fn wire(
    ctx: &Context,
    host: &mut Netlink,
    net: &Network,
    ep: &mut Endpoint,
    mac: &[u8; 6],
    ns: &File,
    ns_path: &Path,
) -> Result<()> {
    let bridge = prepare_bridge(ctx, host, net)?;
    killpoint::reached("bridge");
    // nft runs while the veth is made and configured; its outcome is
    // awaited before the endpoint counts as ready.
    let change = Change {
        networks_present: vec![net.clone()],
        elements_added: ep.firewall.clone(),
        ..Default::default()
    };
    let pending = ctx.firewall()?.start_apply(&change)?;
    killpoint::reached("firewall-started");
    let wired = wire_container(host, net, ep, mac, ns, bridge);
    if wired.is_ok() {
        killpoint::reached("veth");
    }
    let firewall = ctx.finish_firewall(pending, &change, Subject::Arriving(&ep.id));
    wired?;
    firewall?;
    killpoint::reached("firewall");
    pin(ep, ns_path)?;
    killpoint::reached("pinned");
    Ok(())
}

fn wire_container(
    host: &mut Netlink,
    net: &Network,
    ep: &mut Endpoint,
    mac: &[u8; 6],
    ns: &File,
    bridge: u32,
) -> Result<()> {
    let veth = ep.host_veth.clone().unwrap_or_default();
    host.create_veth(&veth, CONTAINER_IFNAME, ns, mac, net.mtu, bridge).map_err(|e| match e {
        Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EEXIST) => {
            // Someone else's interface: the rollback must not delete it.
            ep.host_veth = None;
            Error::Conflict(format!(
                "cannot create {veth} with {CONTAINER_IFNAME} in the container: an interface of that name already exists"
            ))
        }
        e => e,
    })?;

    // Before eth0 comes up: until then the host end has no carrier and no
    // link-local address yet.
    host.disable_ipv6_autoconf(LinkRef::Name(&veth))?;
    if !ep.ports.is_empty() {
        // Hairpin: the container reaching its own published port through a
        // host address gets its packets back out of the port they came in
        // by. Only for publishing containers: it also reflects their
        // broadcasts back to them.
        host.set_bridge_port(
            LinkRef::Name(&veth),
            true,
            &format!("set hairpin on {veth}"),
        )?;
    }

    let mut inner = Netlink::new_in(ns)?;
    if let Some(lo) = inner.link_by_name("lo")? {
        if !lo.up {
            inner.set_up(lo.index, "set lo up")?;
        }
    }
    let eth0 = inner.link_by_name(CONTAINER_IFNAME)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{CONTAINER_IFNAME} vanished from the container right after creation"
        ))
    })?;
    inner.disable_ipv6_autoconf(LinkRef::Index(eth0.index))?;
    inner.set_up(eth0.index, "set eth0 up")?;
    let ip = ep.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    inner.add_address(eth0.index, ip, net.subnet.prefix_len())?;
    if !net.internal {
        inner.add_default_route(net.gateway, eth0.index)?;
    }
    Ok(())
}

/// Pin the namespace at the path the record already names.
/// Pin at the path the record names (chosen before the record was written).
pub(crate) fn pin(ep: &mut Endpoint, ns_path: &Path) -> Result<()> {
    let Some(link) = ep.netns_link.clone() else {
        return Ok(());
    };
    if let Err(e) = netns::pin(
        ns_path,
        &link.file_name().unwrap_or_default().to_string_lossy(),
    ) {
        // Not ours to unmount: pin failed before anything was mounted.
        ep.netns_link = None;
        return Err(e);
    }
    Ok(())
}

/// Ports need a network with a way in, and host addresses that are this
/// host's.
fn check_ports(net: &Network, settings: &Settings, host: &mut Netlink) -> Result<()> {
    let Some(first) = settings.ports.first() else {
        return Ok(());
    };
    if net.internal {
        return Err(Error::invalid(
            settings.ports_field,
            first,
            format!(
                "network {} is internal: nothing can be published from it",
                net.name
            ),
        ));
    }
    if settings.ports.iter().all(|p| p.host_ip.is_none()) {
        return Ok(());
    }
    let local: Vec<Ipv4Addr> = host
        .ipv4_addresses()?
        .into_iter()
        .map(|(_, ip, _)| ip)
        .collect();
    for p in &settings.ports {
        if let Some(ip) = p.host_ip {
            if !ip.is_loopback() && !local.contains(&ip) {
                return Err(Error::invalid(
                    settings.ports_field,
                    p,
                    format!("{ip} is not an address of this host"),
                ));
            }
        }
    }
    Ok(())
}

/// `ensure_bridge`, and if the bridge had to be made again while
/// containers were on it (someone deleted it), those containers' ports put
/// back on it. Returns its index.
fn prepare_bridge(ctx: &Context, host: &mut Netlink, net: &Network) -> Result<u32> {
    let (bridge, created) = ensure_bridge(host, net)?;
    if created {
        // Not this container's failure: it is set up either way.
        match restore::reattach(ctx, host, net, bridge) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(bridge = %net.bridge, ports = n, "bridge was gone: put the running containers back on it")
            }
            Err(e) => {
                tracing::warn!(bridge = %net.bridge, "bridge was gone; putting containers back on it failed: {e}")
            }
        }
    }
    Ok(bridge)
}

/// The bridge up, with its gateway address, a stable MAC, the network's MTU
/// and its sysctls; created if missing. Returns its index and whether it
/// was created.
pub fn ensure_bridge(nl: &mut Netlink, net: &Network) -> Result<(u32, bool)> {
    let _span = tracing::debug_span!("ensure_bridge", bridge = %net.bridge).entered();
    let mut created = false;
    let link = match nl.link_by_name(&net.bridge)? {
        Some(l) => l,
        None => {
            created = nl.create_bridge(&net.bridge, net.mtu, &bridge_mac(&net.bridge))?;
            nl.link_by_name(&net.bridge)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "bridge {} vanished right after creation",
                    net.bridge
                ))
            })?
        }
    };
    if !is_ours(&link) {
        return Err(foreign(net, &link));
    }
    if !link.up {
        nl.set_up(link.index, &format!("set {} up", net.bridge))?;
    }
    nl.add_address(link.index, net.gateway, net.subnet.prefix_len())?;
    if !net.internal {
        sysctl::enable_ipv4_forwarding()?;
        // 127.0.0.1:PORT is DNATed to a container: let loopback-sourced
        // packets be routed out of the bridge (they are masqueraded there).
        sysctl::write(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
            "1",
        )?;
    }
    Ok((link.index, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_are_stable() {
        let n = host_veth_name("c1");
        assert_eq!(n.len(), 14);
        assert_eq!(n, host_veth_name("c1"));
        assert_ne!(n, host_veth_name("c2"));
        validate::ifname("veth", &n).unwrap();
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 87, 0, 2)),
            [2, 0x6f, 10, 87, 0, 2]
        );
        assert_eq!(bridge_mac("ocinet0")[0] & 1, 0);
    }
}
