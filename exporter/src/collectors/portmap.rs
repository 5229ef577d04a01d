//! Connections currently DNATed to each published port: one streamed
//! conntrack dump per scrape, counted into a map sized by the number of
//! published ports, never by the number of connections.

use std::collections::HashMap;
use std::net::IpAddr;

use ocinet_common::conntrack;
use ocinet_common::model::Protocol;
use prometheus::{IntGaugeVec, Opts, Registry};

use super::{register, CollectResult, Collector, Snapshot};

pub struct Portmap;

impl Collector for Portmap {
    fn name(&self) -> &'static str {
        "portmap"
    }

    fn collect(&self, snap: &Snapshot, reg: &Registry) -> CollectResult {
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
            ],
        )
        .expect("valid metric");
        register(reg, &g)?;
        // (container address, protocol, host port, container port) ->
        // (host address or None for all, labels); several host addresses may
        // publish the same host port to the same container port.
        type Key = (IpAddr, Protocol, u16, u16);
        // (host address or None for all addresses, the series' labels)
        type Labelled = (Option<IpAddr>, [String; 7]);
        let mut index: HashMap<Key, Vec<Labelled>> = HashMap::new();
        for ep in snap.endpoints.iter() {
            let Some(att) = ep.publishing() else { continue };
            let Some(ip) = att.ipv4().map(IpAddr::from) else {
                continue;
            };
            for m in att.ports.iter().flat_map(|p| p.mappings()) {
                let labels = [
                    ep.name.clone(),
                    att.network.clone(),
                    att.interface.clone(),
                    m.protocol.name().to_string(),
                    m.host_ip
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    m.host_port.to_string(),
                    m.container_port.to_string(),
                ];
                g.with_label_values(&labels.each_ref().map(String::as_str))
                    .set(0);
                index
                    .entry((ip, m.protocol, m.host_port, m.container_port))
                    .or_default()
                    // 0.0.0.0 is "all addresses" (of the IPv4 table this reads).
                    .push((m.host_ip.filter(|h| !h.is_unspecified()), labels));
            }
        }
        if index.is_empty() {
            return Ok(());
        }
        let mut counts: HashMap<(Key, usize), i64> = HashMap::new();
        let mut t = conntrack::open().map_err(|e| e.to_string())?;
        conntrack::for_each_entry(&mut t, |e| {
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
                *counts.entry((key, pos)).or_default() += 1;
            }
        })
        .map_err(|e| e.to_string())?;
        for ((key, pos), n) in counts {
            if let Some((_, labels)) = index.get(&key).and_then(|c| c.get(pos)) {
                g.with_label_values(&labels.each_ref().map(String::as_str))
                    .set(n);
            }
        }
        Ok(())
    }
}
