//! Per-container veth counters, from the container's point of view (what
//! the container received is what its host-side veth transmitted), as
//! cAdvisor reports them. macvlan containers have no host end: their own
//! interface is read in their namespace.
//!
//! With a thousand containers this collector is nearly all of a scrape, so
//! it goes around the general machinery twice (issue 24):
//! - the host ends' counters come from one RTM_GETSTATS dump, which carries
//!   only an index and the counters per interface, and each veth's index
//!   from its name (SIOCGIFINDEX, one hash lookup in the kernel). A link
//!   dump describes every attribute of every link, and for each veth looks
//!   its peer's namespace up in a list as long as the number of containers:
//!   quadratic, and most of the kernel's share of a scrape.
//! - the series are written straight in the text format, in the order the
//!   prometheus crate's registry writes them (`render`; a test compares the
//!   two byte for byte), instead of building a metric object, a descriptor
//!   and label pairs for each of the nine thousand series on every scrape.

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use netlink_packet_route::stats::{StatsAttribute, StatsFilterMask, StatsMessage};
use netlink_packet_route::RouteNetlinkMessage;
use ocinet_common::model::{shown_attachments, Endpoint, Mode};
use ocinet_common::netlink::{Netlink, Stats64};

use super::{push_label_value, CollectResult, Collector, Out, Snapshot, TextFamily};

pub struct Netdev;

struct Counter {
    name: &'static str,
    help: &'static str,
    /// Reads the value from the *host* veth's counters.
    read: fn(&Stats64) -> u64,
}

const COUNTERS: [Counter; 8] = [
    Counter {
        name: "ocinet_container_network_receive_bytes_total",
        help: "Bytes the container received.",
        read: |s| s.tx_bytes,
    },
    Counter {
        name: "ocinet_container_network_receive_packets_total",
        help: "Packets the container received.",
        read: |s| s.tx_packets,
    },
    Counter {
        name: "ocinet_container_network_receive_errors_total",
        help: "Receive errors of the container's interface.",
        read: |s| s.tx_errors,
    },
    Counter {
        name: "ocinet_container_network_receive_packets_dropped_total",
        help: "Packets dropped on the way into the container.",
        read: |s| s.tx_dropped,
    },
    Counter {
        name: "ocinet_container_network_transmit_bytes_total",
        help: "Bytes the container transmitted.",
        read: |s| s.rx_bytes,
    },
    Counter {
        name: "ocinet_container_network_transmit_packets_total",
        help: "Packets the container transmitted.",
        read: |s| s.rx_packets,
    },
    Counter {
        name: "ocinet_container_network_transmit_errors_total",
        help: "Transmit errors of the container's interface.",
        read: |s| s.rx_errors,
    },
    Counter {
        name: "ocinet_container_network_transmit_packets_dropped_total",
        help: "Packets the container sent that were dropped.",
        read: |s| s.rx_dropped,
    },
];

const INFO: &str = "ocinet_container_network_info";
const INFO_HELP: &str = "Container network endpoints; the host veth name lives here only.";

/// One series of the counter families. Fields are in the order of their
/// label names, which is the order the text format writes them in and the
/// registry sorts series by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CounterRow<'a> {
    container: &'a str,
    container_id: &'a str,
    interface: &'a str,
    network: Cow<'a, str>,
    values: [u64; COUNTERS.len()],
}

/// One series of the info family, fields in label-name order. An empty
/// `ip6` is left out of the series (see `WithoutEmpty`), and the registry
/// sorts a series with fewer labels first: hence `has_ip6` leads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct InfoRow<'a> {
    has_ip6: bool,
    container: &'a str,
    container_id: &'a str,
    host_interface: &'a str,
    interface: &'a str,
    ip: String,
    ip6: String,
    mac: &'a str,
    network: Cow<'a, str>,
}

impl Collector for Netdev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&self, snap: &Snapshot, out: &mut Out) -> CollectResult {
        let mut index = IfIndex::new()?;
        let stats = host_stats()?;
        let mut counters = Vec::new();
        let mut infos = Vec::new();
        // A sharer is shown with its target's interfaces while it shares
        // their namespace (their counters are the target's series).
        for ep in snap.endpoints.iter() {
            let sharer = matches!(ep.mode, Mode::Container(_));
            let shown = shown_attachments(ep, &snap.endpoints);
            if sharer && shown.is_empty() {
                // Detached: its target's interfaces went with the target.
                infos.push(InfoRow {
                    has_ip6: false,
                    container: &ep.name,
                    container_id: &ep.id,
                    host_interface: "",
                    interface: "",
                    ip: String::new(),
                    ip6: String::new(),
                    mac: "",
                    network: Cow::Owned(ep.mode.label()),
                });
            }
            for att in shown {
                let network: Cow<str> = if sharer {
                    Cow::Owned(ep.mode.label())
                } else {
                    Cow::Borrowed(&att.network)
                };
                let ip6 = att.ipv6().map(|i| i.to_string()).unwrap_or_default();
                let veth = att.host_veth.as_deref().unwrap_or("");
                infos.push(InfoRow {
                    has_ip6: !ip6.is_empty(),
                    container: &ep.name,
                    container_id: &ep.id,
                    host_interface: veth,
                    interface: &att.interface,
                    ip: att.ipv4().map(|i| i.to_string()).unwrap_or_default(),
                    ip6,
                    mac: att.mac.as_deref().unwrap_or_default(),
                    network: network.clone(),
                });
                if sharer {
                    continue;
                }
                // A veth (or namespace) that vanished between reading state
                // and the dump is a container going away, not an error.
                let found = match &att.parent {
                    None => index.of(veth)?.and_then(|i| stats.get(&i).copied()),
                    Some(_) => inside_stats(ep, &att.interface).map(as_host_end),
                };
                let Some(s) = found else {
                    continue;
                };
                counters.push(CounterRow {
                    container: &ep.name,
                    container_id: &ep.id,
                    interface: &att.interface,
                    network,
                    values: COUNTERS.map(|c| (c.read)(&s)),
                });
            }
        }
        out.text.extend(render(counters, infos));
        Ok(())
    }
}

/// The families, sorted and written as the registry would: series ordered
/// by their label values, one series per label set (a label set seen twice
/// is one series, as `with_label_values` returns the same child: counters
/// add up, the info gauge stays 1), and no family without series.
fn render(mut counters: Vec<CounterRow>, mut infos: Vec<InfoRow>) -> Vec<TextFamily> {
    counters.sort_unstable();
    counters.dedup_by(|later, kept| {
        let same = later.container == kept.container
            && later.container_id == kept.container_id
            && later.interface == kept.interface
            && later.network == kept.network;
        if same {
            for (k, l) in kept.values.iter_mut().zip(later.values) {
                *k = k.wrapping_add(l);
            }
        }
        same
    });
    infos.sort_unstable();
    infos.dedup();

    let mut families = Vec::with_capacity(COUNTERS.len() + 1);
    if !infos.is_empty() {
        let mut f = TextFamily::new(INFO, INFO_HELP, "gauge", infos.len() * 200);
        let mut labels = String::with_capacity(200);
        for r in &infos {
            labels.clear();
            let pairs = [
                ("container", r.container),
                ("container_id", r.container_id),
                ("host_interface", r.host_interface),
                ("interface", r.interface),
                ("ip", r.ip.as_str()),
                ("ip6", r.ip6.as_str()),
                ("mac", r.mac),
                ("network", r.network.as_ref()),
            ];
            let shown = pairs.iter().filter(|(n, _)| r.has_ip6 || *n != "ip6");
            write_labels(&mut labels, shown);
            f.sample(&labels, 1.0);
        }
        families.push(f);
    }
    if !counters.is_empty() {
        // Each label set is escaped once and written into all eight.
        let mut labels = String::with_capacity(counters.len() * 90);
        let mut ends = Vec::with_capacity(counters.len());
        for r in &counters {
            let pairs = [
                ("container", r.container),
                ("container_id", r.container_id),
                ("interface", r.interface),
                ("network", r.network.as_ref()),
            ];
            write_labels(&mut labels, pairs.iter());
            ends.push(labels.len());
        }
        for (i, c) in COUNTERS.iter().enumerate() {
            let mut f = TextFamily::new(
                c.name,
                c.help,
                "counter",
                labels.len() + counters.len() * 70,
            );
            let mut start = 0;
            for (r, &end) in counters.iter().zip(&ends) {
                f.sample_u64(&labels[start..end], r.values[i]);
                start = end;
            }
            families.push(f);
        }
    }
    families
}

fn write_labels<'a>(out: &mut String, pairs: impl Iterator<Item = &'a (&'a str, &'a str)>) {
    let mut sep = '{';
    for (name, value) in pairs {
        out.push(sep);
        out.push_str(name);
        out.push_str("=\"");
        push_label_value(out, value);
        out.push('"');
        sep = ',';
    }
    out.push('}');
}

/// Counters of every interface of the exporter's namespace, by index: one
/// dump of the 64-bit link statistics only.
fn host_stats() -> Result<HashMap<u32, Stats64>, String> {
    let mut nl = Netlink::new().map_err(|e| e.to_string())?;
    let mut req = StatsMessage::default();
    req.header.filter_mask = StatsFilterMask::Link64;
    let mut stats = HashMap::new();
    nl.dump_each(
        RouteNetlinkMessage::GetStats(req),
        "dump link statistics",
        |m| {
            let RouteNetlinkMessage::NewStats(m) = m else {
                return;
            };
            for a in m.attributes {
                if let StatsAttribute::Link64(s) = a {
                    stats.insert(m.header.ifindex, s);
                }
            }
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(stats)
}

/// Interface indexes by name in the exporter's namespace, over one socket.
struct IfIndex {
    sock: OwnedFd,
}

impl IfIndex {
    fn new() -> Result<Self, String> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| format!("socket for interface lookups: {e}"))?;
        Ok(IfIndex { sock })
    }

    /// `None`: no interface of that name (gone, or never made).
    fn of(&mut self, name: &str) -> Result<Option<u32>, String> {
        use nix::libc;
        // SAFETY: ifreq is plain old data; all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // A name the kernel could not hold (too long, empty, a NUL inside)
        // names no interface.
        if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains('\0') {
            return Ok(None);
        }
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFINDEX reads the NUL-terminated name from `req` and
        // writes the index into it; `req` outlives the call.
        let r = unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
        if r == 0 {
            // SAFETY: the kernel filled the union's index member.
            let i = unsafe { req.ifr_ifru.ifru_ifindex };
            return Ok(u32::try_from(i).ok());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODEV) {
            Ok(None)
        } else {
            Err(format!("interface index of {name}: {e}"))
        }
    }
}

/// A macvlan container has no host end: its own interface's counters, read
/// in its namespace (one namespace switch per such container and scrape).
fn inside_stats(ep: &Endpoint, iface: &str) -> Option<Stats64> {
    let ns = ocinet_common::netns::of_endpoint(ep)?;
    let mut nl = Netlink::new_in(&ns).ok()?;
    nl.link_with_stats(iface).ok()??.stats
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::{register, WithoutEmpty};
    use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

    /// The exposition as this collector wrote it before it rendered the
    /// text itself: the prometheus crate's vectors in a registry.
    fn by_registry(counters: &[CounterRow], infos: &[InfoRow]) -> String {
        let reg = Registry::new();
        let labels = ["container_id", "container", "network", "interface"];
        let vecs: Vec<IntCounterVec> = COUNTERS
            .iter()
            .map(|c| {
                let v = IntCounterVec::new(Opts::new(c.name, c.help), &labels).unwrap();
                register(&reg, &v).unwrap();
                v
            })
            .collect();
        let info = WithoutEmpty {
            vec: GaugeVec::new(
                Opts::new(INFO, INFO_HELP),
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
            .unwrap(),
            label: "ip6",
        };
        register(&reg, &info).unwrap();
        for r in infos {
            info.vec
                .with_label_values(&[
                    r.container_id,
                    r.container,
                    &r.network,
                    r.interface,
                    r.host_interface,
                    &r.ip,
                    &r.ip6,
                    r.mac,
                ])
                .set(1.0);
        }
        for r in counters {
            for (v, x) in vecs.iter().zip(r.values) {
                v.with_label_values(&[r.container_id, r.container, &r.network, r.interface])
                    .inc_by(x);
            }
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&reg.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn by_hand(counters: &[CounterRow], infos: &[InfoRow]) -> String {
        let mut families = render(counters.to_vec(), infos.to_vec());
        families.sort_by(|a, b| a.name.cmp(b.name));
        families.iter().map(|f| f.text.as_str()).collect()
    }

    fn counter<'a>(id: &'a str, iface: &'a str, network: &'a str, base: u64) -> CounterRow<'a> {
        CounterRow {
            container: id,
            container_id: id,
            interface: iface,
            network: Cow::Borrowed(network),
            values: std::array::from_fn(|i| base.wrapping_mul(i as u64 + 1)),
        }
    }

    fn info<'a>(id: &'a str, iface: &'a str, ip6: &str) -> InfoRow<'a> {
        InfoRow {
            has_ip6: !ip6.is_empty(),
            container: id,
            container_id: id,
            host_interface: "oc0123",
            interface: iface,
            ip: "10.88.0.2".into(),
            ip6: ip6.into(),
            mac: "02:00:00:00:00:01",
            network: Cow::Borrowed("net"),
        }
    }

    #[test]
    fn renders_what_the_registry_rendered() {
        let counters = vec![
            counter("web", "eth1", "back", 7),
            counter("web", "eth0", "front", 0),
            // Values a float cannot hold exactly, and around 2^53.
            counter("big", "eth0", "n", (1 << 60) + 1),
            counter("edge", "eth0", "n", (1 << 53) - 3),
            // Escaped label values.
            counter("q\"uo\\te", "eth0", "new\nline", 3),
            counter("ünï", "eth0", "n", 5),
            // The same label set twice is one series: the values add up.
            counter("dup", "eth0", "n", 11),
            counter("dup", "eth0", "n", 13),
            // A sharer's network label.
            CounterRow {
                network: Cow::Owned("container:abc".into()),
                ..counter("sh", "eth0", "", 2)
            },
        ];
        let infos = vec![
            // With an IPv6 address the series has one label more and is
            // sorted after every series without one.
            info("a", "eth0", "fd00::2"),
            info("b", "eth0", ""),
            info("c", "eth0", "fd00::3"),
            info("a", "eth1", ""),
            // Detached sharer: empty labels stay, only ip6 goes.
            InfoRow {
                host_interface: "",
                interface: "",
                ip: String::new(),
                mac: "",
                network: Cow::Owned("container:gone".into()),
                ..info("d", "", "")
            },
            info("b", "eth0", ""),
            info("q\"\\\n", "eth0", ""),
        ];
        let want = by_registry(&counters, &infos);
        assert_eq!(by_hand(&counters, &infos), want);
        assert!(want.contains("ocinet_container_network_receive_bytes_total{container=\"dup\",container_id=\"dup\",interface=\"eth0\",network=\"n\"} 24\n"));
    }

    #[test]
    fn no_family_without_series() {
        assert_eq!(by_hand(&[], &[]), "");
        assert_eq!(by_registry(&[], &[]), "");
        let infos = [info("a", "eth0", "")];
        assert_eq!(by_hand(&[], &infos), by_registry(&[], &infos));
    }

    #[test]
    fn interface_lookups() {
        // Every namespace has lo; its index is 1.
        let mut index = IfIndex::new().unwrap();
        let lo = index.of("lo").unwrap();
        assert_eq!(lo, Some(1));
        assert_eq!(index.of("").unwrap(), None);
        assert_eq!(index.of("ocinet-no-such").unwrap(), None);
        assert_eq!(index.of("a-name-longer-than-ifnamsiz").unwrap(), None);
        assert_eq!(index.of("lo\0").unwrap(), None);
        assert!(host_stats().unwrap().contains_key(&1));
    }
}
