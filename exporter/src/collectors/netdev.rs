//! Per-container veth counters, from the container's point of view (what
//! the container received is what its host-side veth transmitted), as
//! cAdvisor reports them. macvlan containers have no host end: their own
//! interface is read in their namespace.

use std::collections::HashMap;

use ocinet_common::model::{shown_attachments, Mode};
use ocinet_common::netlink::{Netlink, Stats64};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use super::{register, CollectResult, Collector, Snapshot, WithoutEmpty};

pub struct Netdev;

const LABELS: &[&str] = &["container_id", "container", "network", "interface"];

struct Counter {
    vec: IntCounterVec,
    /// Reads the value from the *host* veth's counters.
    read: fn(&ocinet_common::netlink::Stats64) -> u64,
}

fn counter(name: &str, help: &str, read: fn(&ocinet_common::netlink::Stats64) -> u64) -> Counter {
    Counter {
        vec: IntCounterVec::new(Opts::new(name, help), LABELS).expect("valid metric"),
        read,
    }
}

impl Collector for Netdev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&self, snap: &Snapshot, reg: &Registry) -> CollectResult {
        let p = "ocinet_container_network_";
        let counters = [
            counter(
                &format!("{p}receive_bytes_total"),
                "Bytes the container received.",
                |s| s.tx_bytes,
            ),
            counter(
                &format!("{p}receive_packets_total"),
                "Packets the container received.",
                |s| s.tx_packets,
            ),
            counter(
                &format!("{p}receive_errors_total"),
                "Receive errors of the container's interface.",
                |s| s.tx_errors,
            ),
            counter(
                &format!("{p}receive_packets_dropped_total"),
                "Packets dropped on the way into the container.",
                |s| s.tx_dropped,
            ),
            counter(
                &format!("{p}transmit_bytes_total"),
                "Bytes the container transmitted.",
                |s| s.rx_bytes,
            ),
            counter(
                &format!("{p}transmit_packets_total"),
                "Packets the container transmitted.",
                |s| s.rx_packets,
            ),
            counter(
                &format!("{p}transmit_errors_total"),
                "Transmit errors of the container's interface.",
                |s| s.rx_errors,
            ),
            counter(
                &format!("{p}transmit_packets_dropped_total"),
                "Packets the container sent that were dropped.",
                |s| s.rx_dropped,
            ),
        ];
        let info = GaugeVec::new(
            Opts::new(
                format!("{p}info"),
                "Container network endpoints; the host veth name lives here only.",
            ),
            &[
                "container_id",
                "container",
                "network",
                "interface",
                "host_interface",
                "ip",
                "ip6",
                "mac",
            ],
        )
        .expect("valid metric");
        let info = WithoutEmpty {
            vec: info,
            label: "ip6",
        };
        for c in &counters {
            register(reg, &c.vec)?;
        }
        register(reg, &info)?;

        let links = Netlink::new()
            .and_then(|mut nl| nl.links())
            .map_err(|e| e.to_string())?;
        let by_name: HashMap<&str, &ocinet_common::netlink::link::Link> =
            links.iter().map(|l| (l.name.as_str(), l)).collect();
        // A sharer is shown with its target's interfaces while it shares
        // their namespace (their counters are the target's series).
        for ep in snap.endpoints.iter() {
            let sharer = matches!(ep.mode, Mode::Container(_));
            let shown = shown_attachments(ep, &snap.endpoints);
            if sharer && shown.is_empty() {
                // Detached: its target's interfaces went with the target.
                info.vec
                    .with_label_values(&[&ep.id, &ep.name, &ep.mode.label(), "", "", "", "", ""])
                    .set(1.0);
            }
            for att in shown {
                let network = if sharer {
                    ep.mode.label()
                } else {
                    att.network.clone()
                };
                let ip = att.ipv4().map(|i| i.to_string()).unwrap_or_default();
                let ip6 = att.ipv6().map(|i| i.to_string()).unwrap_or_default();
                let mac = att.mac.clone().unwrap_or_default();
                let veth = att.host_veth.as_deref().unwrap_or("");
                let iface = att.interface.as_str();
                info.vec
                    .with_label_values(&[&ep.id, &ep.name, &network, iface, veth, &ip, &ip6, &mac])
                    .set(1.0);
                if sharer {
                    continue;
                }
                // A veth (or namespace) that vanished between reading state
                // and the dump is a container going away, not an error.
                let stats = match &att.parent {
                    None => by_name.get(veth).and_then(|l| l.stats),
                    Some(_) => inside_stats(ep, iface).map(as_host_end),
                };
                let Some(stats) = stats else {
                    continue;
                };
                for c in &counters {
                    c.vec
                        .with_label_values(&[&ep.id, &ep.name, &network, iface])
                        .inc_by((c.read)(&stats));
                }
            }
        }
        Ok(())
    }
}

/// A macvlan container has no host end: its own interface's counters, read
/// in its namespace (one namespace switch per such container and scrape).
fn inside_stats(ep: &ocinet_common::model::Endpoint, iface: &str) -> Option<Stats64> {
    let ns = ocinet_common::netns::of_endpoint(ep)?;
    let mut nl = Netlink::new_in(&ns).ok()?;
    nl.link_by_name(iface).ok()??.stats
}

/// Counters of the container's own interface as its host end would count
/// them (what one receives the other transmitted), so one set of readers
/// serves both.
fn as_host_end(mut s: Stats64) -> Stats64 {
    std::mem::swap(&mut s.rx_bytes, &mut s.tx_bytes);
    std::mem::swap(&mut s.rx_packets, &mut s.tx_packets);
    std::mem::swap(&mut s.rx_errors, &mut s.tx_errors);
    std::mem::swap(&mut s.rx_dropped, &mut s.tx_dropped);
    s
}
