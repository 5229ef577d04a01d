//! The kernel side of an overlay network's data plane: the VXLAN device,
//! its forwarding database (which remote host holds which MAC), permanent
//! neighbours (a remote block's gateway address -> that host's MAC) and
//! on-link routes to remote blocks through the device. Every entry is
//! written with replace semantics, so reconciling with etcd is "write
//! what should be, delete what should not", with no read-modify races.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVxlan, RouteMessageBuilder};

use super::socket::is_errno;
use super::Netlink;
use crate::{Error, Result};

/// What ocinet needs to know of a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    pub index: u32,
    pub vni: u32,
    /// The underlay source address; `None` for a device made without one.
    pub local: Option<Ipv4Addr>,
    /// UDP destination port (4789 for ocinet's devices).
    pub port: u16,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mac: Vec<u8>,
}

/// aa:bb:cc:dd:ee:ff, for messages and spans.
fn mac_str(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An entry that is not there: ENOENT (FDB, neighbours), ESRCH (routes),
/// ENODEV (the device itself is gone, and its entries with it).
fn is_absent(e: &Error) -> bool {
    is_errno(e, nix::libc::ENOENT)
        || is_errno(e, nix::libc::ESRCH)
        || is_errno(e, nix::libc::ENODEV)
}

/// A 6-byte MAC from an attribute, if it is one.
fn mac6(bytes: &[u8]) -> Option<[u8; 6]> {
    bytes.try_into().ok()
}

/// An FDB entry of a VXLAN device (AF_BRIDGE, NTF_SELF: the device's own
/// table, not a bridge's): frames to `mac` go in UDP to `dst`.
fn fdb_message(index: u32, mac: [u8; 6], dst: Ipv4Addr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    m
}

/// A permanent neighbour entry of `ip` on device `index`, of `ip`'s family.
fn neigh_message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    let (family, addr) = match ip {
        IpAddr::V4(v4) => (AddressFamily::Inet, NeighbourAddress::Inet(v4)),
        IpAddr::V6(v6) => (AddressFamily::Inet6, NeighbourAddress::Inet6(v6)),
    };
    m.header.family = family;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.attributes.push(NeighbourAttribute::Destination(addr));
    m
}

/// A neighbour-table dump of `family` limited to device `index`. The
/// device goes in NDA_IFINDEX, not in the header: a strict dump request
/// must have a zero header index. Strict checking is on (see `dump_neigh`)
/// so the kernel filters; callers filter again for older kernels.
fn neigh_dump_request(family: AddressFamily, index: u32) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family;
    m.attributes.push(NeighbourAttribute::IfIndex(index));
    m
}

/// A main-table route to `dest` via `via` out of `oif`, on-link; both of
/// one family.
fn onlink_route(dest: IpNet, via: IpAddr, oif: u32) -> Result<RouteMessage> {
    Ok(match (dest, via) {
        (IpNet::V4(d), IpAddr::V4(v)) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(d.network(), d.prefix_len())
            .gateway(v)
            .output_interface(oif)
            .onlink()
            .build(),
        (IpNet::V6(d), IpAddr::V6(v)) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(d.network(), d.prefix_len())
            .gateway(v)
            .output_interface(oif)
            .onlink()
            .build(),
        _ => {
            return Err(Error::invalid(
                "route",
                format!("{dest} via {via}"),
                "the destination and the gateway are of two families",
            ))
        }
    })
}

impl Netlink {
    /// Create the VXLAN device `name` (VNI `vni`, underlay source `local`,
    /// UDP port `port`), down, with learning off and no remote or group:
    /// every destination comes from FDB entries ocinet writes, so nothing
    /// is flooded to the underlay and no MAC is learnt from it.
    /// `Ok(false)` if a VXLAN device of that name and VNI was already
    /// there (its other settings are left as they are: see `vxlan_info`);
    /// an error naming it if the name is taken by another kind of device
    /// or by a VXLAN device of another VNI.
    pub fn create_vxlan(
        &mut self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
        mac: [u8; 6],
    ) -> Result<bool> {
        let _span = tracing::debug_span!("vxlan_create", name, vni, %local, port, mtu).entered();
        let msg = LinkVxlan::new(name, vni)
            .local(local)
            .port(port)
            .learning(false)
            .mtu(mtu)
            .address(mac.to_vec())
            .build();
        match self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create vxlan {name} (VNI {vni}, local {local}, port {port})"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::EEXIST) => match self.vxlan_info(name)? {
                Some(info) if info.vni == vni => Ok(false),
                Some(info) => Err(Error::Conflict(format!(
                    "interface {name} exists as a vxlan device with VNI {}, not {vni}",
                    info.vni
                ))),
                None => Err(Error::Conflict(format!(
                    "interface {name} was reported to exist but is gone"
                ))),
            },
            Err(e) => Err(e),
        }
    }

    /// The VXLAN device `name`; `None` if there is no interface of that
    /// name, an error naming it if it is another kind of interface.
    pub fn vxlan_info(&mut self, name: &str) -> Result<Option<VxlanInfo>> {
        let _span = tracing::debug_span!("vxlan_get", name).entered();
        let msg = LinkUnspec::new_with_name(name).build();
        let replies = match self.get(
            RouteNetlinkMessage::GetLink(msg),
            false,
            &format!("get link {name}"),
        ) {
            Ok(r) => r,
            Err(e) if is_errno(&e, nix::libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(m) = replies.into_iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(m) => Some(m),
            _ => None,
        }) else {
            return Ok(None);
        };
        let mut info = VxlanInfo {
            index: m.header.index,
            vni: 0,
            local: None,
            port: 0,
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            mac: Vec::new(),
        };
        let mut kind = None;
        let mut vni = None;
        for a in &m.attributes {
            match a {
                LinkAttribute::Mtu(v) => info.mtu = *v,
                LinkAttribute::Address(a) => info.mac = a.clone(),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => kind = Some(k.clone()),
                            LinkInfo::Data(InfoData::Vxlan(data)) => {
                                for d in data {
                                    match d {
                                        InfoVxlan::Id(v) => vni = Some(*v),
                                        InfoVxlan::Local(ip) => info.local = Some(*ip),
                                        InfoVxlan::Port(p) => info.port = *p,
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        match (kind, vni) {
            (Some(InfoKind::Vxlan), Some(v)) => {
                info.vni = v;
                Ok(Some(info))
            }
            (Some(InfoKind::Vxlan), None) => Err(Error::Conflict(format!(
                "vxlan device {name} has no VNI (a metadata-only device)"
            ))),
            (Some(k), _) => Err(Error::Conflict(format!(
                "interface {name} exists as a {k} device, not vxlan"
            ))),
            (None, _) => Err(Error::Conflict(format!(
                "interface {name} exists and is not a vxlan device"
            ))),
        }
    }

    /// Frames to `mac` on VXLAN device `index` go to the underlay address
    /// `dst`: a permanent entry, replacing any destination the MAC had
    /// (a host that changed address), so repeating it is fine.
    pub fn fdb_add(&mut self, index: u32, mac: [u8; 6], dst: Ipv4Addr) -> Result<()> {
        let mac_s = mac_str(&mac);
        let _span = tracing::debug_span!("fdb_add", index, mac = %mac_s, %dst).entered();
        self.ack(
            RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, dst)),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add fdb entry {mac_s} dst {dst} on link {index}"),
        )
    }

    /// Remove the FDB entry `mac` -> `dst` of device `index`; `Ok(false)`
    /// if it was not there (or the device is gone).
    ///
    /// The kernel answers ENOENT only when the MAC has no entry at all: a
    /// delete naming another destination than the MAC's is acknowledged
    /// without deleting anything (seen on 6.18). So the entry is looked up
    /// first, which also keeps a stale `dst` from being taken as done.
    pub fn fdb_del(&mut self, index: u32, mac: [u8; 6], dst: Ipv4Addr) -> Result<bool> {
        let mac_s = mac_str(&mac);
        let _span = tracing::debug_span!("fdb_del", index, mac = %mac_s, %dst).entered();
        if !self.fdb_list(index)?.contains(&(mac, dst)) {
            return Ok(false);
        }
        match self.ack(
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, dst)),
            0,
            &format!("delete fdb entry {mac_s} dst {dst} on link {index}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The FDB entries of device `index` that have an IPv4 destination
    /// (not the device's own or multicast addresses), in the kernel's order.
    pub fn fdb_list(&mut self, index: u32) -> Result<Vec<([u8; 6], Ipv4Addr)>> {
        let _span = tracing::debug_span!("fdb_list", index).entered();
        let replies = self.dump_neigh(
            neigh_dump_request(AddressFamily::Bridge, index),
            &format!("dump fdb of link {index}"),
        )?;
        let mut out = Vec::new();
        for m in replies {
            if m.header.ifindex != index {
                continue;
            }
            let mut mac = None;
            let mut dst = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(l) => mac = mac6(l),
                    // AF_BRIDGE entries carry the VXLAN remote as raw
                    // bytes: 4 of them for IPv4.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        dst = <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
                    _ => {}
                }
            }
            if let (Some(mac), Some(dst)) = (mac, dst) {
                out.push((mac, dst));
            }
        }
        Ok(out)
    }

    /// `ip` on device `index` is at `mac`, permanently (no ARP or
    /// neighbour discovery on the overlay device: the answer is known
    /// from etcd). Replaces any entry `ip` had. For IPv6 the device must
    /// have IPv6 enabled (no IPv6 neighbour table on a device without).
    pub fn set_neighbour(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
        let mac_s = mac_str(&mac);
        let _span = tracing::debug_span!("neigh_set", index, %ip, mac = %mac_s).entered();
        let mut msg = neigh_message(index, ip);
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("set neighbour {ip} lladdr {mac_s} on link {index}"),
        )
    }

    /// Remove the neighbour entry of `ip` on device `index`; `Ok(false)`
    /// if there was none (or the device is gone).
    pub fn delete_neighbour(&mut self, index: u32, ip: IpAddr) -> Result<bool> {
        let _span = tracing::debug_span!("neigh_del", index, %ip).entered();
        match self.ack(
            RouteNetlinkMessage::DelNeighbour(neigh_message(index, ip)),
            0,
            &format!("delete neighbour {ip} on link {index}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The permanent neighbours of device `index` of one family (learnt
    /// ones, which ocinet did not write, are left out).
    pub fn permanent_neighbours(&mut self, index: u32, v6: bool) -> Result<Vec<(IpAddr, [u8; 6])>> {
        let _span = tracing::debug_span!("neigh_list", index, v6).entered();
        let family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let replies = self.dump_neigh(
            neigh_dump_request(family, index),
            &format!("dump neighbours of link {index}"),
        )?;
        let mut out = Vec::new();
        for m in replies {
            if m.header.ifindex != index || m.header.state != NeighbourState::Permanent {
                continue;
            }
            let mut ip = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(i)) if !v6 => {
                        ip = Some(IpAddr::V4(*i))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(i)) if v6 => {
                        ip = Some(IpAddr::V6(*i))
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => mac = mac6(l),
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                out.push((ip, mac));
            }
        }
        Ok(out)
    }

    /// A route in the main table to `dest` via `via` out of `oif`, on-link
    /// (RTNH_F_ONLINK): the kernel takes `via` as reachable on `oif` and
    /// resolves it there through the neighbour table. Replaces a route to
    /// `dest` that was there. `oif` must be up (and have IPv6 enabled for
    /// an IPv6 route).
    pub fn add_onlink_route(&mut self, dest: IpNet, via: IpAddr, oif: u32) -> Result<()> {
        let _span = tracing::debug_span!("route_onlink_add", %dest, %via, oif).entered();
        self.ack(
            RouteNetlinkMessage::NewRoute(onlink_route(dest, via, oif)?),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add route {dest} via {via} on link {oif} onlink"),
        )
    }

    /// Remove what `add_onlink_route` made; `Ok(false)` if it was not there.
    pub fn delete_onlink_route(&mut self, dest: IpNet, via: IpAddr, oif: u32) -> Result<bool> {
        let _span = tracing::debug_span!("route_onlink_del", %dest, %via, oif).entered();
        match self.ack(
            RouteNetlinkMessage::DelRoute(onlink_route(dest, via, oif)?),
            0,
            &format!("delete route {dest} via {via} on link {oif}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The on-link routes of one family in the main table out of `oif`
    /// that have a gateway: (destination, gateway).
    pub fn onlink_routes(&mut self, oif: u32, v6: bool) -> Result<Vec<(IpNet, IpAddr)>> {
        let _span = tracing::debug_span!("routes_onlink_via", oif, v6).entered();
        self.strict_dumps()?;
        let main = RouteHeader::RT_TABLE_MAIN;
        let mut req = RouteMessage::default();
        req.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        req.header.table = main;
        req.attributes.push(RouteAttribute::Oif(oif));
        let replies = match self.get(
            RouteNetlinkMessage::GetRoute(req),
            true,
            &format!("dump routes on link {oif}"),
        ) {
            // A kernel booted with ipv6.disable=1 has no IPv6 routes.
            Err(e) if v6 && is_errno(&e, nix::libc::EAFNOSUPPORT) => return Ok(Vec::new()),
            r => r?,
        };
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewRoute(m) = r else {
                continue;
            };
            if m.header.table != main || !m.header.flags.contains(RouteFlags::Onlink) {
                continue;
            }
            let mut dst = None;
            let mut gw = None;
            let mut out_if = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) if !v6 => {
                        dst = Some(IpAddr::V4(*ip))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) if v6 => {
                        dst = Some(IpAddr::V6(*ip))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) if !v6 => {
                        gw = Some(IpAddr::V4(*ip))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(ip)) if v6 => {
                        gw = Some(IpAddr::V6(*ip))
                    }
                    RouteAttribute::Oif(i) => out_if = Some(*i),
                    _ => {}
                }
            }
            // Again here: a kernel without strict checking dumps them all.
            if out_if != Some(oif) {
                continue;
            }
            let unspecified = if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            let dst = dst.unwrap_or(unspecified);
            if let (Some(gw), Ok(net)) = (gw, IpNet::new(dst, m.header.destination_prefix_length)) {
                out.push((net, gw));
            }
        }
        Ok(out)
    }

    // Typed forms, one family each.

    pub fn neigh_set4(&mut self, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
        self.set_neighbour(index, ip.into(), mac)
    }

    pub fn neigh_del4(&mut self, index: u32, ip: Ipv4Addr) -> Result<bool> {
        self.delete_neighbour(index, ip.into())
    }

    pub fn neigh_list4(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, [u8; 6])>> {
        Ok(self
            .permanent_neighbours(index, false)?
            .into_iter()
            .filter_map(|(ip, mac)| match ip {
                IpAddr::V4(v4) => Some((v4, mac)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    pub fn neigh_set6(&mut self, index: u32, ip: Ipv6Addr, mac: [u8; 6]) -> Result<()> {
        self.set_neighbour(index, ip.into(), mac)
    }

    pub fn neigh_del6(&mut self, index: u32, ip: Ipv6Addr) -> Result<bool> {
        self.delete_neighbour(index, ip.into())
    }

    pub fn neigh_list6(&mut self, index: u32) -> Result<Vec<(Ipv6Addr, [u8; 6])>> {
        Ok(self
            .permanent_neighbours(index, true)?
            .into_iter()
            .filter_map(|(ip, mac)| match ip {
                IpAddr::V6(v6) => Some((v6, mac)),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    pub fn route_onlink_add(&mut self, dest: Ipv4Net, via: Ipv4Addr, oif: u32) -> Result<()> {
        self.add_onlink_route(dest.into(), via.into(), oif)
    }

    pub fn route_onlink_del(&mut self, dest: Ipv4Net, via: Ipv4Addr, oif: u32) -> Result<bool> {
        self.delete_onlink_route(dest.into(), via.into(), oif)
    }

    pub fn routes_onlink_via(&mut self, oif: u32) -> Result<Vec<(Ipv4Net, Ipv4Addr)>> {
        Ok(self
            .onlink_routes(oif, false)?
            .into_iter()
            .filter_map(|r| match r {
                (IpNet::V4(d), IpAddr::V4(g)) => Some((d, g)),
                _ => None,
            })
            .collect())
    }

    pub fn route6_onlink_add(&mut self, dest: Ipv6Net, via: Ipv6Addr, oif: u32) -> Result<()> {
        self.add_onlink_route(dest.into(), via.into(), oif)
    }

    pub fn route6_onlink_del(&mut self, dest: Ipv6Net, via: Ipv6Addr, oif: u32) -> Result<bool> {
        self.delete_onlink_route(dest.into(), via.into(), oif)
    }

    pub fn routes6_onlink_via(&mut self, oif: u32) -> Result<Vec<(Ipv6Net, Ipv6Addr)>> {
        Ok(self
            .onlink_routes(oif, true)?
            .into_iter()
            .filter_map(|r| match r {
                (IpNet::V6(d), IpAddr::V6(g)) => Some((d, g)),
                _ => None,
            })
            .collect())
    }

    /// A neighbour/FDB dump with strict checking on, so the kernel applies
    /// the NDA_IFINDEX filter. Without it, the kernel would read an
    /// AF_BRIDGE request longer than a bare header as the older
    /// ifinfomsg form and misparse the filter.
    fn dump_neigh(&mut self, req: NeighbourMessage, op: &str) -> Result<Vec<NeighbourMessage>> {
        self.strict_dumps()?;
        Ok(self
            .get(RouteNetlinkMessage::GetNeighbour(req), true, op)?
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(m) => Some(m),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const MAC1: [u8; 6] = [0x0a, 0x58, 10, 98, 0, 2];
    const MAC2: [u8; 6] = [0x0a, 0x58, 10, 98, 0, 3];

    /// Run `args` in the network namespace of the calling thread.
    fn in_ns(args: &[&str]) -> String {
        let ns = format!(
            "--net=/proc/{}/task/{}/ns/net",
            std::process::id(),
            nix::unistd::gettid()
        );
        let out = Command::new("nsenter")
            .arg(&ns)
            .args(args)
            .output()
            .expect("run nsenter");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test prefix")
    }

    /// The whole test, on a thread alone in a fresh network namespace:
    /// the namespace and everything in it go away with the thread, even
    /// when an assertion fails.
    fn in_fresh_netns(f: impl FnOnce() + Send + 'static) {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (network namespaces)");
            return;
        }
        let t = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
            f()
        });
        if let Err(p) = t.join() {
            std::panic::resume_unwind(p);
        }
    }

    /// lo up, and a veth pair with 10.98.0.1/24 (the underlay address).
    fn underlay(nl: &mut Netlink) -> Ipv4Addr {
        let lo = nl.link_by_name("lo").unwrap().expect("lo");
        nl.set_up(lo.index, "lo up").unwrap();
        let veth = rtnetlink::LinkVeth::new("ul0", "ul1").up().build();
        nl.ack(
            RouteNetlinkMessage::NewLink(veth),
            NLM_F_CREATE | NLM_F_EXCL,
            "create veth",
        )
        .unwrap();
        let ul = nl.link_by_name("ul0").unwrap().expect("ul0");
        let local = Ipv4Addr::new(10, 98, 0, 1);
        nl.add_address(ul.index, local, 24).unwrap();
        local
    }

    #[test]
    fn vxlan_device_create_and_info() {
        in_fresh_netns(|| {
            let mut nl = Netlink::new().unwrap();
            let local = underlay(&mut nl);
            let mac = [0x0a, 0x58, 10, 98, 0, 1];
            assert_eq!(nl.vxlan_info("ocv42").unwrap(), None);
            assert!(nl
                .create_vxlan("ocv42", 42, local, 4789, 1450, mac)
                .unwrap());
            // Again, same VNI: there already, fine.
            assert!(!nl
                .create_vxlan("ocv42", 42, local, 4789, 1450, mac)
                .unwrap());
            let info = nl.vxlan_info("ocv42").unwrap().expect("ocv42");
            assert_eq!(
                info,
                VxlanInfo {
                    index: info.index,
                    vni: 42,
                    local: Some(local),
                    port: 4789,
                    mtu: 1450,
                    up: false,
                    mac: mac.to_vec(),
                }
            );
            let e = nl
                .create_vxlan("ocv42", 43, local, 4789, 1450, mac)
                .unwrap_err()
                .to_string();
            assert!(e.contains("ocv42") && e.contains("VNI 42"), "{e}");
            let e = nl
                .create_vxlan("ul0", 42, local, 4789, 1450, mac)
                .unwrap_err()
                .to_string();
            assert!(e.contains("ul0") && e.contains("veth"), "{e}");
            assert!(nl.vxlan_info("ul0").is_err());

            let shown = in_ns(&["ip", "-d", "link", "show", "ocv42"]);
            for want in [
                "mtu 1450",
                "link/ether 0a:58:0a:62:00:01",
                "vxlan id 42",
                "local 10.98.0.1",
                "dstport 4789",
                "nolearning",
            ] {
                assert!(shown.contains(want), "no {want:?} in {shown}");
            }
            let vx = shown
                .lines()
                .find(|l| l.contains("vxlan id"))
                .unwrap_or_default();
            assert!(!vx.contains("remote") && !vx.contains("group"), "{shown}");
            assert!(!shown.contains(",UP"), "created up: {shown}");

            nl.set_up(info.index, "ocv42 up").unwrap();
            assert!(nl.vxlan_info("ocv42").unwrap().expect("ocv42").up);
            assert!(nl.delete_link("ocv42").unwrap());
            assert_eq!(nl.vxlan_info("ocv42").unwrap(), None);
        });
    }

    #[test]
    fn vxlan_fdb_neighbours_and_routes() {
        in_fresh_netns(|| {
            let mut nl = Netlink::new().unwrap();
            let local = underlay(&mut nl);
            nl.create_vxlan("ocv7", 7, local, 4789, 1450, [0x0a, 0x58, 10, 98, 0, 1])
                .unwrap();
            let dev = nl.vxlan_info("ocv7").unwrap().expect("ocv7").index;
            nl.set_up(dev, "ocv7 up").unwrap();
            nl.add_address(dev, Ipv4Addr::new(10, 77, 0, 0), 32)
                .unwrap();
            let (r1, r2, r3) = (
                Ipv4Addr::new(10, 98, 0, 2),
                Ipv4Addr::new(10, 98, 0, 3),
                Ipv4Addr::new(10, 98, 0, 4),
            );

            // FDB
            assert_eq!(nl.fdb_list(dev).unwrap(), vec![]);
            nl.fdb_add(dev, MAC1, r1).unwrap();
            nl.fdb_add(dev, MAC1, r1).unwrap();
            nl.fdb_add(dev, MAC2, r2).unwrap();
            let mut fdb = nl.fdb_list(dev).unwrap();
            fdb.sort();
            assert_eq!(fdb, vec![(MAC1, r1), (MAC2, r2)]);
            // The same MAC at a new address: replaced, not appended.
            nl.fdb_add(dev, MAC1, r3).unwrap();
            let mut fdb = nl.fdb_list(dev).unwrap();
            fdb.sort();
            assert_eq!(fdb, vec![(MAC1, r3), (MAC2, r2)]);
            let shown = in_ns(&["bridge", "fdb", "show", "dev", "ocv7"]);
            assert!(
                shown.contains("0a:58:0a:62:00:02 dst 10.98.0.4 self permanent"),
                "{shown}"
            );
            assert!(
                shown.contains("0a:58:0a:62:00:03 dst 10.98.0.3 self permanent"),
                "{shown}"
            );
            assert!(!shown.contains("10.98.0.2"), "{shown}");
            assert!(!nl.fdb_del(dev, MAC1, r1).unwrap());
            assert!(nl.fdb_del(dev, MAC1, r3).unwrap());
            assert!(!nl.fdb_del(dev, MAC1, r3).unwrap());
            assert_eq!(nl.fdb_list(dev).unwrap(), vec![(MAC2, r2)]);

            // Neighbours
            let b1 = Ipv4Addr::new(10, 77, 1, 0);
            let b2 = Ipv4Addr::new(10, 77, 2, 0);
            assert_eq!(nl.neigh_list4(dev).unwrap(), vec![]);
            nl.neigh_set4(dev, b1, MAC2).unwrap();
            nl.neigh_set4(dev, b1, MAC1).unwrap();
            nl.neigh_set4(dev, b2, MAC2).unwrap();
            let mut neigh = nl.neigh_list4(dev).unwrap();
            neigh.sort();
            assert_eq!(neigh, vec![(b1, MAC1), (b2, MAC2)]);
            let shown = in_ns(&["ip", "neigh", "show", "dev", "ocv7"]);
            assert!(
                shown.contains("10.77.1.0 lladdr 0a:58:0a:62:00:02 PERMANENT"),
                "{shown}"
            );
            assert!(nl.neigh_del4(dev, b1).unwrap());
            assert!(!nl.neigh_del4(dev, b1).unwrap());
            assert_eq!(nl.neigh_list4(dev).unwrap(), vec![(b2, MAC2)]);

            // Routes
            let (n1, n2) = (net("10.77.1.0/24"), net("10.77.2.0/24"));
            assert_eq!(nl.routes_onlink_via(dev).unwrap(), vec![]);
            nl.route_onlink_add(n1, b1, dev).unwrap();
            nl.route_onlink_add(n1, b1, dev).unwrap();
            nl.route_onlink_add(n2, b2, dev).unwrap();
            let mut routes = nl.routes_onlink_via(dev).unwrap();
            routes.sort();
            assert_eq!(routes, vec![(n1, b1), (n2, b2)]);
            let shown = in_ns(&["ip", "route", "show", "dev", "ocv7"]);
            assert!(
                shown
                    .lines()
                    .any(|l| l.starts_with("10.77.1.0/24 via 10.77.1.0 ") && l.contains(" onlink")),
                "{shown}"
            );
            // The underlay's own routes are not on-link routes of ocv7.
            let ul = nl.link_by_name("ul0").unwrap().expect("ul0").index;
            assert_eq!(nl.routes_onlink_via(ul).unwrap(), vec![]);
            // Nor are the veth's own (multicast, no dst) FDB entries, nor
            // its learnt or permanent neighbours.
            assert_eq!(nl.fdb_list(ul).unwrap(), vec![]);
            assert_eq!(nl.neigh_list4(ul).unwrap(), vec![]);
            assert!(nl.route_onlink_del(n1, b1, dev).unwrap());
            assert!(!nl.route_onlink_del(n1, b1, dev).unwrap());
            assert_eq!(nl.routes_onlink_via(dev).unwrap(), vec![(n2, b2)]);

            // proxy_arp on a bridge-like interface, in this namespace only.
            crate::sysctl::set_proxy_arp("ul0", true).unwrap();
            let p = "/proc/sys/net/ipv4/conf/ul0/proxy_arp";
            assert_eq!(std::fs::read_to_string(p).unwrap().trim(), "1");
            crate::sysctl::set_proxy_arp("ul0", false).unwrap();
            assert_eq!(std::fs::read_to_string(p).unwrap().trim(), "0");
            assert!(crate::sysctl::set_proxy_arp("../all", true).is_err());

            // Deleting the device takes its entries with it.
            assert!(nl.delete_link("ocv7").unwrap());
            assert!(!nl.fdb_del(dev, MAC2, r2).unwrap());
            assert!(!nl.neigh_del4(dev, b2).unwrap());
            assert_eq!(nl.fdb_list(dev).unwrap(), vec![]);
            assert_eq!(nl.neigh_list4(dev).unwrap(), vec![]);
            assert_eq!(nl.routes_onlink_via(dev).unwrap(), vec![]);
        });
    }

    fn net6(s: &str) -> Ipv6Net {
        s.parse().expect("test prefix")
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().expect("test address")
    }

    /// IPv6 on `dev` in this namespace: a fresh namespace may inherit
    /// disable_ipv6=1, and then the device has no IPv6 neighbour table or
    /// routes.
    fn enable_ipv6(dev: &str) {
        let p = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
        std::fs::write(&p, "0").unwrap_or_else(|e| panic!("write {p}: {e}"));
    }

    #[test]
    fn vxlan_neighbours_and_routes6() {
        in_fresh_netns(|| {
            let mut nl = Netlink::new().unwrap();
            let local = underlay(&mut nl);
            nl.create_vxlan("ocv8", 8, local, 4789, 1450, [0x0a, 0x58, 10, 98, 0, 1])
                .unwrap();
            let dev = nl.vxlan_info("ocv8").unwrap().expect("ocv8").index;
            enable_ipv6("ocv8");
            nl.set_up(dev, "ocv8 up").unwrap();
            let (b1, b2) = (ip6("fd00:77:0:1::"), ip6("fd00:77:0:2::"));

            // Neighbours
            assert_eq!(nl.neigh_list6(dev).unwrap(), vec![]);
            nl.neigh_set6(dev, b1, MAC2).unwrap();
            nl.neigh_set6(dev, b1, MAC1).unwrap();
            nl.neigh_set6(dev, b2, MAC2).unwrap();
            let mut neigh = nl.neigh_list6(dev).unwrap();
            neigh.sort();
            assert_eq!(neigh, vec![(b1, MAC1), (b2, MAC2)]);
            let shown = in_ns(&["ip", "-6", "neigh", "show", "dev", "ocv8"]);
            assert!(
                shown.contains("fd00:77:0:1:: lladdr 0a:58:0a:62:00:02 PERMANENT"),
                "{shown}"
            );
            // The IPv4 list does not see them, nor the IPv6 list IPv4 ones.
            assert_eq!(nl.neigh_list4(dev).unwrap(), vec![]);
            nl.neigh_set4(dev, Ipv4Addr::new(10, 77, 1, 0), MAC1)
                .unwrap();
            assert_eq!(nl.neigh_list6(dev).unwrap().len(), 2);
            assert!(nl.neigh_del6(dev, b1).unwrap());
            assert!(!nl.neigh_del6(dev, b1).unwrap());
            assert_eq!(nl.neigh_list6(dev).unwrap(), vec![(b2, MAC2)]);

            // Routes
            let (n1, n2) = (net6("fd00:77:0:1::/64"), net6("fd00:77:0:2::/64"));
            assert_eq!(nl.routes6_onlink_via(dev).unwrap(), vec![]);
            nl.route6_onlink_add(n1, b2, dev).unwrap();
            // Replaced: a new gateway for the same prefix, not a second route.
            nl.route6_onlink_add(n1, b1, dev).unwrap();
            nl.route6_onlink_add(n1, b1, dev).unwrap();
            nl.route6_onlink_add(n2, b2, dev).unwrap();
            let mut routes = nl.routes6_onlink_via(dev).unwrap();
            routes.sort();
            assert_eq!(routes, vec![(n1, b1), (n2, b2)]);
            let shown = in_ns(&["ip", "-6", "route", "show", "dev", "ocv8"]);
            assert!(
                shown
                    .lines()
                    .any(|l| l.starts_with("fd00:77:0:1::/64 via fd00:77:0:1:: ")
                        && l.contains(" onlink")),
                "{shown}"
            );
            assert_eq!(
                shown
                    .lines()
                    .filter(|l| l.starts_with("fd00:77:0:1::/64"))
                    .count(),
                1,
                "{shown}"
            );
            // The IPv4 list does not see them; the link-local routes of the
            // device (no gateway, not on-link) are not listed.
            assert_eq!(nl.routes_onlink_via(dev).unwrap(), vec![]);
            let ul = nl.link_by_name("ul0").unwrap().expect("ul0").index;
            assert_eq!(nl.routes6_onlink_via(ul).unwrap(), vec![]);
            assert_eq!(nl.neigh_list6(ul).unwrap(), vec![]);
            assert!(!nl.route6_onlink_del(n1, b2, dev).unwrap());
            assert!(nl.route6_onlink_del(n1, b1, dev).unwrap());
            assert!(!nl.route6_onlink_del(n1, b1, dev).unwrap());
            assert_eq!(nl.routes6_onlink_via(dev).unwrap(), vec![(n2, b2)]);

            // Deleting the device takes its entries with it.
            assert!(nl.delete_link("ocv8").unwrap());
            assert!(!nl.neigh_del6(dev, b2).unwrap());
            assert_eq!(nl.neigh_list6(dev).unwrap(), vec![]);
            assert_eq!(nl.routes6_onlink_via(dev).unwrap(), vec![]);
        });
    }

    #[test]
    fn vxlan_default_route6_onlink() {
        in_fresh_netns(|| {
            let mut nl = Netlink::new().unwrap();
            enable_ipv6("default");
            underlay(&mut nl);
            enable_ipv6("ul0");
            let ul = nl.link_by_name("ul0").unwrap().expect("ul0").index;
            // The gateway is in no prefix of ul0: without onlink the
            // kernel would refuse it.
            let gw = ip6("fd00:77::1");
            nl.add_default_route6_onlink(gw, ul).unwrap();
            nl.add_default_route6_onlink(gw, ul).unwrap();
            let shown = in_ns(&["ip", "-6", "route", "show", "default"]);
            let line = shown
                .lines()
                .find(|l| l.starts_with("default via fd00:77::1 dev ul0 "))
                .unwrap_or_else(|| panic!("no default route in {shown}"));
            assert!(line.contains(" onlink"), "{shown}");
            assert_eq!(shown.lines().count(), 1, "{shown}");
        });
    }
}
