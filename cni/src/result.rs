//! The ADD result, laid out as the reference `bridge` plugin lays its
//! own (what `portmap`, `bandwidth`, `tuning`, podman and containerd read):
//! the bridge, the host end of the veth, then the container's interface
//! with its sandbox; the address points at that last one. A macvlan
//! attachment has no host side: its interface comes alone.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use ocinet_common::model::{Attachment, Network};
use ocinet_common::netlink::Netlink;
use ocinet_common::validate;
use rscni_types::types::{CNIResult, CNIResultWithVersion, Dns, Interface, IpConfig, Route};
use rscni_types::version::SpecVersion;

fn interface(name: &str, mac: String, sandbox: Option<&Path>) -> Interface {
    Interface {
        name: name.to_string(),
        mac,
        mtu: None,
        sandbox: sandbox.map(|p| p.display().to_string()),
        socket_path: None,
        pci_id: None,
    }
}

/// The result of attachment `att` of network `net`, in namespace `netns`.
pub fn of(att: &Attachment, net: &Network, netns: &Path) -> CNIResult {
    let mut interfaces = Vec::new();
    // The host side's MACs as the kernel has them (a missing link gives
    // none: the result still describes the container's side).
    let mut host = Netlink::new().ok();
    let mut mac_of = |name: &str| {
        host.as_mut()
            .and_then(|h| h.link_by_name(name).ok().flatten())
            .map(|l| validate::format_mac(&l.mac))
            .unwrap_or_default()
    };
    if let (Some(bridge), Some(veth)) = (&att.bridge, &att.host_veth) {
        interfaces.push(interface(bridge, mac_of(bridge), None));
        interfaces.push(interface(veth, mac_of(veth), None));
    }
    let index = interfaces.len() as u32;
    interfaces.push(interface(
        &att.interface,
        att.mac.clone().unwrap_or_default(),
        Some(netns),
    ));
    // Both families as the reference bridge plugin lays them out for a
    // dual-stack network: the IPv4 address then the IPv6 one, each with
    // its gateway and pointing at the container's interface; default
    // routes in the same order (with their next hop, which the
    // reference plugin leaves to the address's gateway).
    let gateway6 = net.gateway6().filter(|_| !net.internal);
    let ips = att
        .ipv4_net()
        .map(|a| IpConfig {
            interface: Some(index),
            address: IpNet::V4(a),
            gateway: net
                .v4()
                .filter(|_| !net.internal)
                .map(|v4| IpAddr::V4(v4.gateway)),
        })
        .into_iter()
        .chain(att.ipv6_net().map(|a| IpConfig {
            interface: Some(index),
            address: IpNet::V6(a),
            gateway: gateway6.map(IpAddr::V6),
        }))
        .collect();
    let route = |dst: IpNet, gw: IpAddr| Route {
        dst,
        gw: Some(gw),
        mtu: None,
        advmss: None,
        priority: None,
        table: None,
        scope: None,
    };
    let routes = att
        .gateway
        .map(|gw| route(IpNet::V4(Default::default()), gw))
        .into_iter()
        .chain(
            att.gateway6
                .map(|gw| route(IpNet::V6(Default::default()), IpAddr::V6(gw))),
        )
        .collect();
    let dns = net.dns.then(|| Dns {
        // Each family's resolver address the network has (IPv4 first).
        nameservers: net
            .resolver_addresses()
            .iter()
            .map(ToString::to_string)
            .collect(),
        domain: None,
        search: None,
        options: None,
    });
    CNIResult {
        interfaces,
        ips,
        routes,
        dns,
    }
}

/// `ours` after what the plugins before it in the chain gave (their
/// interfaces first, our address indices moved past them).
pub fn after(prev: Option<&CNIResult>, mut ours: CNIResult) -> CNIResult {
    let Some(prev) = prev else { return ours };
    let shift = prev.interfaces.len() as u32;
    for ip in &mut ours.ips {
        ip.interface = ip.interface.map(|i| i + shift);
    }
    let mut out = prev.clone();
    out.interfaces.extend(ours.interfaces);
    out.ips.extend(ours.ips);
    out.routes.extend(ours.routes);
    if ours.dns.is_some() {
        out.dns = ours.dns;
    }
    out
}

/// The result as JSON in `version`'s layout.
pub fn render(version: SpecVersion, result: CNIResult) -> String {
    if version.is_legacy() {
        serde_json::to_string(&rscni_types::legacy::CNIResult::new(version, result))
    } else {
        serde_json::to_string(&CNIResultWithVersion::new(version, result))
    }
    .unwrap_or_default()
}
