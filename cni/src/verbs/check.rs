//! CHECK: what the record says this attachment is, against the kernel: the
//! interface in the namespace (its MAC unless a later plugin of the chain
//! changed it, as the spec allows: then the previous result's), its
//! address, its default route, its firewall elements, and on a bridge the
//! host end. Every
//! difference is reported, not only the first.

use ocinet_common::netlink::Netlink;
use ocinet_common::{netns, validate};
use ocinet_core::context::Context;
use rscni_types::error::Error as CniError;

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
    let ns = netns::open_netns(&path).map_err(to_cni)?;
    let mut inside = Netlink::new_in(&ns).map_err(to_cni)?;
    let mut wrong = Vec::new();
    match inside.link_by_name(&att.interface).map_err(to_cni)? {
        None => wrong.push(format!("interface {} is missing", att.interface)),
        Some(link) => {
            let mac = validate::format_mac(&link.mac);
            // A later plugin (tuning) may have set another MAC: the
            // previous result says which.
            let expected: Vec<String> = att
                .mac
                .iter()
                .cloned()
                .chain(
                    conf.net
                        .prev_result
                        .iter()
                        .flat_map(|r| r.interfaces.iter())
                        .filter(|i| i.name == att.interface && i.sandbox.is_some())
                        .map(|i| i.mac.clone()),
                )
                .collect();
            if !expected.is_empty() && !expected.iter().any(|m| m.eq_ignore_ascii_case(&mac)) {
                wrong.push(format!(
                    "interface {} has MAC {mac}, not {}",
                    att.interface,
                    expected.join(" or ")
                ));
            }
            if !link.up {
                wrong.push(format!("interface {} is down", att.interface));
            }
            if let Some(want) = att.ipv4_net() {
                let has = inside
                    .ipv4_addresses()
                    .map_err(to_cni)?
                    .iter()
                    .any(|(i, ip, p)| {
                        *i == link.index && *ip == want.addr() && *p == want.prefix_len()
                    });
                if !has {
                    wrong.push(format!("interface {} lacks address {want}", att.interface));
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
        }
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
        if host.link_by_name(veth).map_err(to_cni)?.is_none() {
            wrong.push(format!("host end {veth} of the veth is missing"));
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
