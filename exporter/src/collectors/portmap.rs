//! Connections currently DNATed to each published port: one streamed
//! conntrack dump per address family per scrape (only of a family some
//! published port has), counted into a map sized by the number of
//! published ports, never by the number of connections.

use std::collections::HashMap;
use std::net::IpAddr;

use ocinet_common::conntrack::{self, Family};
use ocinet_common::model::{ports, Protocol};
use prometheus::{IntGaugeVec, Opts};

use super::{register, CollectResult, Collector, Out, Snapshot, WithoutEmpty};

pub struct Portmap;

/// Where a family's index and counts are kept.
fn slot(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl Collector for Portmap {
    fn name(&self) -> &'static str {
        "portmap"
    }

    fn collect(&self, snap: &Snapshot, out: &mut Out) -> CollectResult {
        let reg = &out.reg;
        let g = IntGaugeVec::new(
            Opts::new(
                "ocinet_port_mapping_connections",
                "Conntrack entries currently DNATed to a published port.",
            ),
            // The network and interface of the attachment the ports are
            // published from, as the per-interface series name it.
            &[
                "container",
                "network",
                "interface",
                "protocol",
                "host_ip",
                "host_port",
                "container_port",
                "family",
            ],
        )
        .expect("valid metric");
        // An IPv4 series keeps exactly the labels it always had; an IPv6
        // one says `family="ipv6"` (a port published on `[::]` has one of
        // each, under the same `host_ip`).
        let g = WithoutEmpty {
            vec: g,
            label: "family",
        };
        register(reg, &g)?;
        // (container address, protocol, host port, container port) ->
        // (host address or None for all, labels); several host addresses may
        // publish the same host port to the same container port.
        type Key = (IpAddr, Protocol, u16, u16);
        // (host address or None for all addresses, the series' labels)
        type Labelled = (Option<IpAddr>, [String; 8]);
        // One index, and one conntrack dump, per family.
        let mut index: [HashMap<Key, Vec<Labelled>>; 2] = Default::default();
        for ep in snap.endpoints.iter() {
            let Some(att) = ep.publishing() else { continue };
            let by_family = [
                (Family::V4, att.ipv4().map(IpAddr::from)),
                (Family::V6, att.ipv6().map(IpAddr::from)),
            ];
            for (family, ip) in by_family {
                let Some(ip) = ip else { continue };
                for m in att.ports.iter().flat_map(|p| p.mappings()) {
                    let (answers, all, family_label) = match family {
                        Family::V4 => (ports::answers_ipv4(m.host_ip), "0.0.0.0", ""),
                        Family::V6 => (ports::answers_ipv6(m.host_ip), "::", "ipv6"),
                    };
                    if !answers {
                        continue;
                    }
                    let labels = [
                        ep.name.clone(),
                        att.network.clone(),
                        att.interface.clone(),
                        m.protocol.name().to_string(),
                        m.host_ip
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| all.into()),
                        m.host_port.to_string(),
                        m.container_port.to_string(),
                        family_label.to_string(),
                    ];
                    g.vec
                        .with_label_values(&labels.each_ref().map(String::as_str))
                        .set(0);
                    index[slot(family)]
                        .entry((ip, m.protocol, m.host_port, m.container_port))
                        .or_default()
                        // 0.0.0.0 and :: are "all addresses" (of the
                        // family's table this reads).
                        .push((m.host_ip.filter(|h| !h.is_unspecified()), labels));
                }
            }
        }
        if index.iter().all(HashMap::is_empty) {
            return Ok(());
        }
        let mut counts: HashMap<(usize, Key, usize), i64> = HashMap::new();
        let mut t = conntrack::open().map_err(|e| e.to_string())?;
        for family in [Family::V4, Family::V6] {
            let index = &index[slot(family)];
            if index.is_empty() {
                continue;
            }
            conntrack::for_each_entry_in(&mut t, family, |e| {
                let (Some(ip), Some(proto), Some(hport), Some(cport), Some(dst)) = (
                    e.reply_src,
                    e.protocol,
                    e.orig_dport,
                    e.reply_sport,
                    e.orig_dst,
                ) else {
                    return;
                };
                // Addressed to the container itself: not through a published port.
                if dst == ip {
                    return;
                }
                let key = (ip, proto, hport, cport);
                let Some(candidates) = index.get(&key) else {
                    return;
                };
                // A binding to this exact host address wins over "all addresses".
                let pos = candidates
                    .iter()
                    .position(|(h, _)| *h == Some(dst))
                    .or_else(|| candidates.iter().position(|(h, _)| h.is_none()));
                if let Some(pos) = pos {
                    *counts.entry((slot(family), key, pos)).or_default() += 1;
                }
            })
            .map_err(|e| e.to_string())?;
        }
        for ((family, key, pos), n) in counts {
            if let Some((_, labels)) = index[family].get(&key).and_then(|c| c.get(pos)) {
                g.vec
                    .with_label_values(&labels.each_ref().map(String::as_str))
                    .set(n);
            }
        }
        Ok(())
    }
}
