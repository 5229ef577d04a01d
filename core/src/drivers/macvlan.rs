//! The macvlan driver, Docker's `-d macvlan -o parent=`: each attachment
//! is a macvlan sub-interface of a host interface (`ethN` inside), made
//! directly in its namespace, with an address from the network's IPAM and
//! a default route via the gateway on the parent's segment. No bridge, no
//! NAT, no published ports: the container is a host of that segment.
//!
//! As with any macvlan, the host itself cannot reach its containers
//! through the parent (the kernel does not hand frames between a parent
//! and its sub-interfaces); neighbours on the segment and other containers
//! on the same parent (mode bridge) can. A network with name resolution
//! therefore gets a shim: a bridge-mode sub-interface of the parent in the
//! host namespace holding the network's DNS address (/32, so the host's
//! own routes to the segment stay as they are), and a route to each
//! container's address through it, so the resolver answers them (and a
//! strict rp_filter takes their queries).

use std::fs::File;

use ipnet::Ipv4Net;
use ocinet_common::health::Health;
use ocinet_common::model::network::{shim_name, DriverOptions, MAX_MTU};
use ocinet_common::model::{
    Attachment, Driver, Endpoint, MacvlanMode, Network, NetworkRequest, PortSpec,
};
use ocinet_common::netlink::link::Link;
use ocinet_common::netlink::Netlink;
use ocinet_common::store::networks::Broken;
use ocinet_common::{netns, validate, Error, Result};
use serde_json::json;

use super::owned::{device_mac, is_our_bridge, is_our_shim};
use super::{described, NetworkDriver, NetworkKind, Prepared, Veths};
use crate::context::Locked;
use crate::inside;
use crate::ipam::Lease;

/// The macvlan kind of network.
pub struct Macvlan;

impl NetworkKind for Macvlan {
    fn driver(&self) -> Driver {
        Driver::Macvlan
    }

    fn for_network(&self, net: Network) -> Box<dyn NetworkDriver> {
        Box::new(MacvlanDriver { net })
    }

    /// A free private range means nothing on someone else's segment.
    fn default_subnet(&self, _ctx: &Locked, _host: &mut Netlink) -> Result<Ipv4Net> {
        Err(Error::invalid(
            "subnet",
            "none",
            "--driver macvlan needs --subnet, the parent's segment",
        ))
    }

    /// Name resolution in
    /// mode bridge only (see `Network::validate`), unless a DNS option
    /// asks for it in another mode, which `validate` then refuses by name;
    /// with it, the resolver on an address of the segment.
    fn shape(&self, req: &NetworkRequest, net: &mut Network) {
        let Some(mode) = net.macvlan().map(|m| m.mode) else {
            return;
        };
        // An IPv6-only network has no IPv4 address for the resolver's
        // shim: name resolution there only when asked (and then refused
        // by `validate`, naming why).
        net.dns = !req.disable_dns
            && (mode == MacvlanMode::Bridge
                || !req.dns_upstreams.is_empty()
                || req.dns_rate_limit.is_some()
                || req.dns_address.is_some()
                || req.dns_address6.is_some());
        let (default4, default6) = (net.default_dns_address(), net.default_dns_address6());
        if let DriverOptions::Macvlan(m) = &mut net.options {
            if net.dns {
                m.dns_address = m.dns_address.or(default4);
                m.dns_address6 = m.dns_address6.or(default6);
            }
        }
    }

    fn check_host(
        &self,
        ctx: &Locked,
        host: &mut Netlink,
        net: &mut Network,
        mtu: Option<u32>,
    ) -> Result<()> {
        let parent = parent_link(net, host)?;
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
        // As Docker: the parent's MTU unless one is given, and never more
        // than it (the kernel refuses a larger sub-interface), nor more
        // than a macvlan can have.
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
        Ok(())
    }

    /// Its parent is not ocinet's; its DNS shim is.
    fn remove(&self, _ctx: &Locked, host: &mut Netlink, net: &Network) -> Result<()> {
        remove_shim(host, &net.name)
    }

    fn remove_broken(
        &self,
        _ctx: &Locked,
        host: &mut Netlink,
        b: &Broken,
        _good: &[Network],
    ) -> Result<()> {
        remove_shim(host, &b.name)
    }

    fn options(&self, net: &Network) -> serde_json::Value {
        json!({
            "parent": net.parent(),
            "macvlan_mode": net.macvlan().map(|m| m.mode).unwrap_or_default().as_str(),
            "mtu": net.mtu,
        })
    }

    fn device<'a>(&self, _net: &'a Network) -> Option<&'a str> {
        None
    }

    fn made(&self, att: &Attachment) -> bool {
        att.parent.is_some()
    }

    fn remove_devices(
        &self,
        _ctx: &Locked,
        ep: &Endpoint,
        atts: &[&Attachment],
        how: Veths,
        errors: &mut Vec<Error>,
    ) {
        remove(ep, atts, how, errors);
    }
}

pub struct MacvlanDriver {
    pub net: Network,
}

impl NetworkDriver for MacvlanDriver {
    fn network(&self) -> &Network {
        &self.net
    }

    fn check(&self, ports: &[PortSpec], ports_field: &str, host: &mut Netlink) -> Result<()> {
        if let Some(p) = ports.first() {
            return Err(Error::invalid(
                ports_field,
                p,
                format!(
                    "network {} uses the macvlan driver: containers are on the parent's segment with their own address, nothing is published",
                    self.net.name
                ),
            ));
        }
        parent_link(&self.net, host).map(|_| ())
    }

    fn describe(
        &self,
        _id: &str,
        interface: &str,
        lease: &Lease,
        default_route: bool,
        _ports: &[PortSpec],
    ) -> Attachment {
        Attachment {
            parent: self.net.parent().map(str::to_string),
            ..described(&self.net, interface, lease, default_route)
        }
    }

    fn prepare(&self, _ctx: &Locked, host: &mut Netlink) -> Result<Prepared> {
        let parent = parent_link(&self.net, host)?;
        let dns_link = match self.net.dns {
            true => Some(ensure_shim(host, &self.net, &parent)?),
            false => None,
        };
        Ok(Prepared {
            link: Some(parent.index),
            dns_link,
        })
    }

    fn wire(
        &self,
        host: &mut Netlink,
        att: &mut Attachment,
        ns: &File,
        prepared: Prepared,
    ) -> Result<()> {
        let parent = parent_link(&self.net, host)?;
        let made = wire(host, &self.net, att, &parent, ns)?;
        // passthru takes the parent's MAC whatever was asked: record the
        // one the interface has, which teardown looks for.
        att.mac = Some(validate::format_mac(&made));
        // `prepare` made the shim of a DNS-enabled network.
        if let Some(shim) = prepared.dns_link {
            add_routes(host, &self.net, shim, &[&*att])?;
        }
        Ok(())
    }

    fn unwire_inside(&self, ns: &File, att: &Attachment) -> Result<()> {
        remove_sub_interface(ns, att, Veths::Delete).map(|_| ())
    }

    fn uses_firewall(&self) -> bool {
        false
    }

    /// A macvlan sub-interface lives and dies with its container's
    /// namespace; on the host only the shim and its routes, if deleted.
    fn restore(
        &self,
        _ctx: &Locked,
        host: &mut Netlink,
        running: &[&Attachment],
    ) -> Result<(usize, usize)> {
        if !self.net.dns {
            return Ok((0, 0));
        }
        // A deleted parent took the containers' interfaces (and the shim)
        // with it: nothing to route to. (`restore_all` leaves out the
        // attachments whose interface is gone with a parent of before.)
        let parent = match parent_link(&self.net, host) {
            Ok(p) => p,
            Err(Error::NotFound(why)) => {
                tracing::warn!(
                    network = %self.net.name,
                    containers = running.len(),
                    "{why}: its shim and its containers' routes are not put back (see `ocinet ps`)"
                );
                return Ok((0, 0));
            }
            Err(e) => return Err(e),
        };
        let made = host.link_by_name(&shim_name(&self.net.name))?.is_none();
        let shim = ensure_shim(host, &self.net, &parent)?;
        add_routes(host, &self.net, shim, running)?;
        Ok((usize::from(made), 0))
    }
}

/// The parent: it must exist and be a device the kernel takes as a macvlan
/// lower (see `unfit_parent`).
pub fn parent_link(net: &Network, host: &mut Netlink) -> Result<Link> {
    let parent = net.parent().unwrap_or_default();
    let link = host.link_by_name(parent)?.ok_or_else(|| {
        Error::NotFound(format!(
            "network {}: parent interface {parent} does not exist on the host",
            net.name
        ))
    })?;
    if let Some(why) = unfit_parent(&link, host)? {
        return Err(Error::invalid("--parent", parent, why));
    }
    Ok(link)
}

/// Why `link` cannot be a macvlan parent, if it cannot. Judged from what
/// the kernel says of the device, not its name: `macvlan_port_create`
/// refuses a device that is not ARPHRD_ETHER or is IFF_LOOPBACK (EINVAL),
/// and one whose frames another device already takes (a bridge or bond
/// port: EBUSY). ocinet's own devices are refused even where the kernel
/// would take them: a macvlan of an ocinet bridge bypasses its firewall,
/// and a shim is itself a macvlan of the real parent.
pub fn unfit_parent(link: &Link, host: &mut Netlink) -> Result<Option<String>> {
    let kind = link.kind.as_deref().unwrap_or("physical");
    if link.loopback {
        return Ok(Some(
            "is a loopback interface: its frames never leave the host, and the kernel takes no macvlan on it; give an Ethernet interface".into(),
        ));
    }
    if !link.ethernet {
        return Ok(Some(format!(
            "is a {kind} interface, not an Ethernet device: the kernel takes a macvlan only on Ethernet"
        )));
    }
    if is_our_bridge(link) {
        return Ok(Some(
            "is a bridge of an ocinet network: give macvlan a host interface".into(),
        ));
    }
    if is_shim(link) {
        return Ok(Some(
            "is the DNS shim ocinet made for a macvlan network: give that network's parent itself"
                .into(),
        ));
    }
    let Some(controller) = link.controller else {
        return Ok(None);
    };
    let controller = host.links()?.into_iter().find(|l| l.index == controller);
    Ok(match controller {
        Some(c) if is_our_bridge(&c) => Some(format!(
            "is the host end of a container's veth (a port of ocinet bridge {}): give macvlan a host interface",
            c.name
        )),
        Some(c) if matches!(c.kind.as_deref(), Some("bridge" | "bond" | "team")) => Some(format!(
            "is a port of {} {}: that device takes its frames, so the kernel refuses a macvlan on it; give {} itself",
            c.kind.as_deref().unwrap_or_default(),
            c.name,
            c.name
        )),
        _ => None,
    })
}

fn wire(
    host: &mut Netlink,
    net: &Network,
    att: &Attachment,
    parent: &Link,
    ns: &File,
) -> Result<Vec<u8>> {
    let name = att.interface.as_str();
    let mac = att.mac_bytes()?.unwrap_or_default();
    // A sub-interface cannot be larger than its parent (EINVAL): a parent
    // made smaller since the network was created caps it.
    let mtu = net.mtu.min(parent.mtu);
    host.create_macvlan(
        name,
        parent.index,
        net.macvlan().map(|m| m.mode).unwrap_or_default(),
        &mac,
        mtu,
        ns,
    )
    .map_err(|e| match e {
        Error::Netlink { source, .. } if source.raw_os_error() == Some(nix::libc::EEXIST) => {
            Error::Conflict(format!("the container already has an interface {name}"))
        }
        e => e,
    })?;
    Ok(inside::configure_attachment(ns, name, att)?.mac)
}

/// Whether `link` is a shim ocinet made: a macvlan with the MAC ocinet
/// derives from its name (as for bridges, the kernel keeps the proof).
pub fn is_shim(link: &Link) -> bool {
    is_our_shim(link)
}

/// The network's shim up with its DNS address; made if missing. Returns its
/// index.
fn ensure_shim(host: &mut Netlink, net: &Network, parent: &Link) -> Result<u32> {
    let name = shim_name(&net.name);
    let _span = tracing::debug_span!("ensure_shim", shim = %name).entered();
    if net.dns_address().is_none() && net.dns_address6().is_none() {
        return Err(Error::invalid(
            "dns-address",
            "none",
            "needed for name resolution",
        ));
    }
    let link = match host.link_by_name(&name)? {
        Some(l) => l,
        None => {
            let here =
                File::open("/proc/self/ns/net").map_err(|e| Error::io("/proc/self/ns/net", e))?;
            host.create_macvlan(
                &name,
                parent.index,
                ocinet_common::model::MacvlanMode::Bridge,
                &device_mac(&name),
                net.mtu.min(parent.mtu),
                &here,
            )?;
            host.link_by_name(&name)?.ok_or_else(|| {
                Error::NotFound(format!("shim {name} vanished right after creation"))
            })?
        }
    };
    if !is_shim(&link) {
        return Err(Error::Conflict(format!(
            "network {}: interface {name} (index {}) is not the shim ocinet makes; ocinet leaves it alone: remove it, or pass --disable-dns",
            net.name, link.index
        )));
    }
    if !link.up {
        host.set_up(link.index, &format!("set {name} up"))?;
    }
    if let Some(dns) = net.dns_address() {
        host.add_address(link.index, dns, 32)?;
    }
    if let Some(dns6) = net.dns_address6() {
        // A macvlan made here has IPv6 off, as ocinet's links have.
        ocinet_common::sysctl::enable_ipv6_on(&name)?;
        host.add_address6(link.index, dns6, 128)?;
    }
    Ok(link.index)
}

/// The host's routes to `atts`' addresses through the shim, from the
/// resolver's address of each family: the resolver's answers go out on
/// the segment, not the host's default route.
fn add_routes(host: &mut Netlink, net: &Network, shim: u32, atts: &[&Attachment]) -> Result<()> {
    for a in atts {
        if let (Some(ip), Some(dns)) = (a.ipv4(), net.dns_address()) {
            host.add_host_route(ip.into(), shim, dns.into())?;
        }
        if let (Some(ip), Some(dns6)) = (a.ipv6(), net.dns_address6()) {
            host.add_host_route(ip.into(), shim, dns6.into())?;
        }
    }
    Ok(())
}

/// Remove the routes `wire` added on the host for `atts` (gone with the
/// shim if that went first).
pub(crate) fn remove_routes(host: &mut Netlink, atts: &[&Attachment]) -> Result<()> {
    for a in atts {
        if a.addresses.is_empty() {
            continue;
        }
        match host.link_by_name(&shim_name(&a.network))? {
            Some(l) if is_shim(&l) => {
                for ip in a.addresses.iter().map(|n| n.addr()) {
                    host.delete_host_route(ip, l.index)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Delete a network's shim, if it is ocinet's (`network rm`).
pub fn remove_shim(host: &mut Netlink, network: &str) -> Result<()> {
    let name = shim_name(network);
    match host.link_by_name(&name)? {
        Some(l) if is_shim(&l) => host.delete_link(&name).map(|_| ()),
        Some(l) => {
            tracing::warn!(interface = %l.name, "left alone: an interface of the shim's name that ocinet did not create");
            Ok(())
        }
        None => Ok(()),
    }
}

/// Delete the attachment's macvlan interface from the namespace `ns`, if
/// it is still the one ocinet made there (a macvlan with the recorded MAC);
/// when `how` leaves it to the namespace's end, only delete its addresses.
pub fn remove_sub_interface(ns: &File, att: &Attachment, how: Veths) -> Result<bool> {
    let (name, Some(mac)) = (&att.interface, &att.mac) else {
        return Ok(false);
    };
    let mut inner = Netlink::new_in(ns)?;
    let Some(link) = inner.link_by_name(name)? else {
        return Ok(false);
    };
    let ours = link.kind.as_deref() == Some("macvlan")
        && validate::format_mac(&link.mac).eq_ignore_ascii_case(mac);
    if !ours {
        tracing::warn!(interface = %name, "left alone: not the macvlan interface ocinet made");
        return Ok(false);
    }
    if how == Veths::WithNamespace {
        // Its addresses off the segment now, before the leases are given
        // back; the kernel deletes the interface with the namespace.
        // (Not taken down: a macvlan's stop waits for an RCU grace period,
        // 13 ms here.)
        for net in &att.addresses {
            inner.delete_address(link.index, net.addr(), net.prefix_len())?;
        }
        return Ok(true);
    }
    inner.delete_link(name)
}

/// Remove `atts`' macvlan interfaces from the container's namespace, and
/// the host's routes to them. One
/// lives in that namespace and goes with it, unless something else keeps
/// the namespace alive (the pin, the container itself when a setup died
/// before pinning, a pod's namespace, or a running container being
/// disconnected): then its address must not stay on the segment.
pub(crate) fn remove(ep: &Endpoint, atts: &[&Attachment], how: Veths, errors: &mut Vec<Error>) {
    let macvlans: Vec<&Attachment> = atts
        .iter()
        .copied()
        .filter(|a| a.parent.is_some())
        .collect();
    if macvlans.is_empty() {
        return;
    }
    // The host's routes to them through a DNS shim, whether or not the
    // namespace is still there.
    if let Err(e) = Netlink::new().and_then(|mut host| remove_routes(&mut host, &macvlans)) {
        errors.push(e);
    }
    match netns::of_endpoint(ep) {
        Some(ns) => {
            for a in macvlans {
                match remove_sub_interface(&ns, a, how) {
                    Ok(removed) => tracing::debug!(removed, "macvlan interface"),
                    Err(e) => errors.push(e),
                }
            }
        }
        None => tracing::debug!("the container's namespace is gone, and its macvlan with it"),
    }
}

/// `gc`'s part: each running container's macvlan attachment whose
/// interface went with a deleted parent is reported, and the host route to
/// its address through the network's shim deleted (gone with the shim if
/// the parent took it; left if the parent came back and something made
/// the shim again). The record and its lease stay: the container is
/// running and keeps its address for when its user recovers it (docs/operations.md:
/// the parent made again, then `network disconnect` and `connect`, or the
/// container restarted). Returns the (container, network) of each lost
/// attachment.
pub fn gc_gone<'a>(
    eps: impl Iterator<Item = &'a Endpoint>,
    out: &mut String,
    errors: &mut Vec<Error>,
) -> Vec<(String, String)> {
    let eps: Vec<Endpoint> = eps.cloned().collect();
    let health = match ocinet_common::health::of_macvlans(&eps) {
        Ok(h) => h,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    let mut gone: Vec<(&Endpoint, &Attachment, Health)> = eps
        .iter()
        .flat_map(|e| e.attachments.iter().map(move |a| (e, a)))
        .filter_map(
            |(e, a)| match health.get(&(e.id.clone(), a.network.clone())) {
                Some(h) if *h != Health::Ok => Some((e, a, *h)),
                _ => None,
            },
        )
        .collect();
    gone.sort_by(|x, y| (&x.0.id, &x.1.network).cmp(&(&y.0.id, &y.1.network)));
    if gone.is_empty() {
        return Vec::new();
    }
    let lost = gone
        .iter()
        .map(|(e, a, _)| (e.id.clone(), a.network.clone()))
        .collect();
    let atts: Vec<&Attachment> = gone.iter().map(|(_, a, _)| *a).collect();
    if let Err(e) = Netlink::new().and_then(|mut host| remove_routes(&mut host, &atts)) {
        errors.push(e);
    }
    for (e, a, h) in gone {
        *out += &format!(
            "{}: container {} lost {} on network {} (parent {}); its address stays leased: make the parent again, then `ocinet network disconnect {} {}` and `ocinet network connect {} {}`, or restart the container\n",
            h.as_str(),
            e.id,
            a.interface,
            a.network,
            a.parent.as_deref().unwrap_or_default(),
            a.network,
            e.id,
            a.network,
            e.id,
        );
    }
    lost
}
