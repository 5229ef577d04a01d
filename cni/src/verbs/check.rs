//! CHECK: ocinet's record of this attachment against the kernel: the
//! namespace (CNI_NETNS must be the one the container was set up in), the
//! interface in it, up, with the MAC ocinet gave it (the anti-spoofing
//! guard passes that MAC only, so another one cuts the container off,
//! whoever set it), its address, its default route, its firewall
//! elements, and on a bridge the host end. The record, not the
//! `prevResult`, is what the kernel is held to: a `prevResult` that
//! disagrees with the record about this interface (another MAC, address
//! or sandbox) is itself reported. Every difference is reported, not only
//! the first.

use std::path::Path;

use ocinet_common::model::Attachment;
use ocinet_common::netlink::Netlink;
use ocinet_common::{netns, validate};
use ocinet_core::context::Context;
use rscni_types::error::Error as CniError;
use rscni_types::types::CNIResult;

use super::attachment_index;
use crate::conf::Conf;
use crate::env::Invocation;
use crate::errors::to_cni;

pub fn run(ctx: &Context, inv: &Invocation, conf: &Conf) -> Result<(), CniError> {
    let ep = ctx
        .state
        .load_endpoint(&inv.container_id)
        .map_err(to_cni)?
        .ok_or_else(|| {
            CniError::NotExist(format!(
                "container {} has no ocinet record",
                inv.container_id
            ))
        })?;
    let att = attachment_index(&ep, conf, &inv.ifname)
        .map(|i| &ep.attachments[i])
        .ok_or_else(|| {
            CniError::NotExist(format!(
                "container {} has no interface {} on network {}",
                ep.id, inv.ifname, conf.network
            ))
        })?;
    let path = inv
        .netns
        .clone()
        .ok_or_else(|| CniError::missing_env(&["CNI_NETNS"]))?;
    let mut wrong = Vec::new();
    let given = netns::open_netns(&path).map_err(to_cni)?;
    let given_id = netns::id_of_fd(&given).map_err(to_cni)?;
    // The kernel is looked at in the namespace the record names; CNI_NETNS
    // naming another one is a difference of its own.
    let ns = if ep.netns_id == Some(given_id) {
        Some(given)
    } else {
        wrong.push(format!(
            "CNI_NETNS {} is not the network namespace container {} was set up in",
            path.display(),
            ep.id
        ));
        netns::of_endpoint(&ep)
    };
    if let Some(prev) = &conf.net.prev_result {
        wrong.extend(prev_disagrees(prev, att, &path, ep.netns_id));
    }
    match ns {
        None => wrong.push(format!(
            "the network namespace of container {} cannot be found (neither its pin nor CNI_NETNS holds it)",
            ep.id
        )),
        Some(ns) => kernel_disagrees(&ns, att, &mut wrong)?,
    }
    // Its firewall elements (the anti-spoofing identity, membership):
    // every set element the record derives. (Map elements, the published
    // ports, are not looked up: a lookup takes a plain key.)
    for el in ocinet_common::firewall::ruleset::elements_of_attachment(att)
        .iter()
        .filter(|e| e.value.is_none())
    {
        match ocinet_common::firewall::elements::contains(&el.set, &el.key) {
            Ok(true) => {}
            Ok(false) => wrong.push(format!(
                "firewall element {} of set {} is missing",
                el.key, el.set
            )),
            Err(e) => wrong.push(format!(
                "firewall element {} of set {}: {e}",
                el.key, el.set
            )),
        }
    }
    if let Some(veth) = &att.host_veth {
        let mut host = Netlink::new().map_err(to_cni)?;
        match host.link_by_name(veth).map_err(to_cni)? {
            None => wrong.push(format!("host end {veth} of the veth is missing")),
            // Down, or out of its bridge, it cuts the container off as
            // surely as a missing one.
            Some(l) => {
                if !l.up {
                    wrong.push(format!("host end {veth} of the veth is down"));
                }
                if let Some(bridge) = &att.bridge {
                    let port_of = match host.link_by_name(bridge).map_err(to_cni)? {
                        Some(b) => l.controller == Some(b.index),
                        None => false,
                    };
                    if !port_of {
                        wrong.push(format!(
                            "host end {veth} of the veth is not a port of {bridge}"
                        ));
                    }
                }
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(CniError::Custom(
            crate::errors::FAILED,
            "the attachment is not as recorded".into(),
            wrong.join("; "),
        ))
    }
}

/// The container's side in its namespace `ns`, against the record.
fn kernel_disagrees(
    ns: &std::fs::File,
    att: &Attachment,
    wrong: &mut Vec<String>,
) -> Result<(), CniError> {
    let mut inside = Netlink::new_in(ns).map_err(to_cni)?;
    let Some(link) = inside.link_by_name(&att.interface).map_err(to_cni)? else {
        wrong.push(format!("interface {} is missing", att.interface));
        return Ok(());
    };
    let mac = validate::format_mac(&link.mac);
    if let Some(want) = &att.mac {
        if !want.eq_ignore_ascii_case(&mac) {
            wrong.push(format!(
                "interface {} has MAC {mac}, not {want} (ocinet's anti-spoofing passes {want} only)",
                att.interface
            ));
        }
    }
    if !link.up {
        wrong.push(format!("interface {} is down", att.interface));
    }
    if let Some(want) = att.ipv4_net() {
        let has = inside
            .ipv4_addresses()
            .map_err(to_cni)?
            .iter()
            .any(|(i, ip, p)| *i == link.index && *ip == want.addr() && *p == want.prefix_len());
        if !has {
            wrong.push(format!("interface {} lacks address {want}", att.interface));
        }
    }
    if let Some(want) = att.ipv6_net() {
        let has = inside
            .ipv6_addresses()
            .map_err(to_cni)?
            .iter()
            .any(|(i, ip, p)| *i == link.index && *ip == want.addr() && *p == want.prefix_len());
        if !has {
            wrong.push(format!("interface {} lacks address {want}", att.interface));
        }
    }
    if let Some(gw) = att.gateway6 {
        let has = inside
            .ipv6_routes()
            .map_err(to_cni)?
            .iter()
            .any(|r| r.destination.prefix_len() == 0 && r.oif == Some(link.index));
        if !has {
            wrong.push(format!(
                "no IPv6 default route via {gw} through {}",
                att.interface
            ));
        }
    }
    if att.gateway.is_some() {
        let has = inside
            .ipv4_routes()
            .map_err(to_cni)?
            .iter()
            .any(|r| r.destination.prefix_len() == 0 && r.oif == Some(link.index));
        if !has {
            wrong.push(format!("no default route through {}", att.interface));
        }
    }
    Ok(())
}

/// What `prev` (the runtime's cached result) says of the attachment's
/// interface and the record does not: another MAC, another sandbox,
/// another address. Other interfaces (a later plugin's, such as
/// bandwidth's ifb) are not ocinet's to judge.
fn prev_disagrees(
    prev: &CNIResult,
    att: &Attachment,
    netns_path: &Path,
    recorded: Option<(u64, u64)>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let ours: Vec<usize> = prev
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            i.name == att.interface && i.sandbox.as_deref().is_some_and(|s| !s.is_empty())
        })
        .map(|(n, _)| n)
        .collect();
    if ours.is_empty() {
        wrong.push(format!(
            "prevResult names no interface {} in a sandbox",
            att.interface
        ));
    }
    for &n in &ours {
        let i = &prev.interfaces[n];
        if let Some(want) = &att.mac {
            if !i.mac.is_empty() && !i.mac.eq_ignore_ascii_case(want) {
                wrong.push(format!(
                    "prevResult gives interface {} MAC {}, ocinet gave it {want}",
                    i.name, i.mac
                ));
            }
        }
        let sandbox = i.sandbox.as_deref().unwrap_or_default();
        // The same path as CNI_NETNS, or another path to the recorded
        // namespace (a runtime may name one namespace two ways).
        // A stat, not an open: prevResult is the caller's word, and
        // opening what it names (a FIFO) could block the plugin for good.
        let same = Path::new(sandbox) == netns_path
            || (recorded.is_some() && netns::id_of(Path::new(sandbox)).ok() == recorded);
        if !same {
            wrong.push(format!(
                "prevResult gives interface {} sandbox {sandbox:?}, not CNI_NETNS {:?}",
                i.name,
                netns_path.display()
            ));
        }
        for ip in prev.ips.iter().filter(|ip| ip.interface == Some(n as u32)) {
            // Held to the recorded address of its own family.
            let want = match ip.address {
                ipnet::IpNet::V4(_) => att.ipv4_net().map(ipnet::IpNet::V4),
                ipnet::IpNet::V6(_) => att.ipv6_net().map(ipnet::IpNet::V6),
            };
            if want != Some(ip.address) {
                wrong.push(format!(
                    "prevResult gives interface {} address {}, ocinet recorded {}",
                    i.name,
                    ip.address,
                    want.map(|w| w.to_string()).unwrap_or_else(|| "none".into())
                ));
            }
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Attachment {
        serde_json::from_value(serde_json::json!({
            "network": "pods", "interface": "eth0",
            "addresses": ["10.90.0.2/24"], "mac": "02:00:0a:5a:00:02",
            "bridge": "ocibr0", "host_veth": "ocivabc"
        }))
        .unwrap()
    }

    fn prev(mac: &str, sandbox: &str, address: &str) -> CNIResult {
        serde_json::from_value(serde_json::json!({
            "interfaces": [
                {"name": "ocibr0", "mac": "02:00:00:00:00:01"},
                {"name": "ocivabc", "mac": "02:00:00:00:00:02"},
                {"name": "eth0", "mac": mac, "sandbox": sandbox},
                {"name": "bwp1234", "mac": "02:00:00:00:00:03"}
            ],
            "ips": [{"address": address, "gateway": "10.90.0.1", "interface": 2}]
        }))
        .unwrap()
    }

    const NS: &str = "/run/netns/pod";

    #[test]
    fn a_prev_result_that_agrees_with_the_record_passes() {
        let p = prev("02:00:0A:5A:00:02", NS, "10.90.0.2/24");
        assert!(prev_disagrees(&p, &recorded(), Path::new(NS), None).is_empty());
    }

    #[test]
    fn a_prev_result_that_disagrees_with_the_record_is_reported() {
        let other_mac = prev("02:00:0a:5a:00:99", NS, "10.90.0.2/24");
        let w = prev_disagrees(&other_mac, &recorded(), Path::new(NS), None).join("; ");
        assert!(
            w.contains("MAC 02:00:0a:5a:00:99") && w.contains("02:00:0a:5a:00:02"),
            "{w}"
        );
        let other_sandbox = prev("02:00:0a:5a:00:02", "/run/netns/elsewhere", "10.90.0.2/24");
        let w = prev_disagrees(&other_sandbox, &recorded(), Path::new(NS), Some((1, 2))).join("; ");
        assert!(w.contains("sandbox \"/run/netns/elsewhere\""), "{w}");
        let other_address = prev("02:00:0a:5a:00:02", NS, "10.90.0.77/24");
        let w = prev_disagrees(&other_address, &recorded(), Path::new(NS), None).join("; ");
        assert!(
            w.contains("address 10.90.0.77/24") && w.contains("10.90.0.2/24"),
            "{w}"
        );
        let none: CNIResult =
            serde_json::from_value(serde_json::json!({"interfaces": []})).unwrap();
        let w = prev_disagrees(&none, &recorded(), Path::new(NS), None).join("; ");
        assert!(w.contains("names no interface eth0"), "{w}");
    }

    #[test]
    fn a_prev_result_is_held_to_the_address_of_each_family() {
        let mut att = recorded();
        att.addresses.push("fd90::2/64".parse().unwrap());
        let mut p = prev("02:00:0a:5a:00:02", NS, "10.90.0.2/24");
        p.ips.push(
            serde_json::from_value(
                serde_json::json!({"address": "fd90::2/64", "gateway": "fd90::1", "interface": 2}),
            )
            .unwrap(),
        );
        assert!(prev_disagrees(&p, &att, Path::new(NS), None).is_empty());
        p.ips[1].address = "fd90::77/64".parse().unwrap();
        let w = prev_disagrees(&p, &att, Path::new(NS), None).join("; ");
        assert!(
            w.contains("address fd90::77/64, ocinet recorded fd90::2/64"),
            "{w}"
        );
        // An IPv6 address ocinet did not give (an IPv4-only record).
        let w = prev_disagrees(&p, &recorded(), Path::new(NS), None).join("; ");
        assert!(w.contains("ocinet recorded none"), "{w}");
    }
}
