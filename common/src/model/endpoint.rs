use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Attachment;

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Attached to these networks, in this order (eth0, eth1, ...), each
    /// by its network's driver. What it is attached to now is the record's
    /// `attachments` (connect and disconnect change those, not this).
    Networks(Vec<String>),
    /// Only `lo`.
    None,
    /// The host's namespace: nothing to do.
    Host,
    /// Shares the namespace of another ocinet container.
    Container(String),
}

impl Mode {
    pub fn label(&self) -> String {
        match self {
            Mode::Networks(n) => n.join(","),
            Mode::None => "none".into(),
            Mode::Host => "host".into(),
            Mode::Container(id) => format!("container:{id}"),
        }
    }

    pub fn network(name: &str) -> Mode {
        Mode::Networks(vec![name.to_string()])
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "none" => Mode::None,
            "host" => Mode::Host,
            _ => match s.strip_prefix("container:") {
                Some(id) => Mode::Container(id.to_string()),
                // Network names have no commas (`validate::name`); a record
                // of 0.1.0 names one network.
                None => Mode::Networks(s.split(',').map(str::to_string).collect()),
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Written before the first kernel change: if the hook dies now, gc
    /// finds this record and undoes whatever it names.
    Setup,
    Ready,
}

/// A process identified robustly: pids are reused, (pid, start time) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat, in clock ticks since boot.
    pub start_time: u64,
}

/// (state, start time) of process `pid` from /proc/PID/stat.
fn stat_of(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')': skip past
    // the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

impl ProcessId {
    pub fn of(pid: i32) -> Option<Self> {
        let (_, start_time) = stat_of(pid)?;
        Some(ProcessId { pid, start_time })
    }

    /// Running: there, the same process, and not a zombie (one whose
    /// parent does not reap it, such as a daemon orphaned to an init
    /// that never waits, stays in the table as `Z`).
    pub fn is_alive(&self) -> bool {
        stat_of(self.pid)
            .is_some_and(|(state, start)| start == self.start_time && state != 'Z' && state != 'X')
    }
}

/// An element of one of the firewall's sets or maps, as nftables JSON:
/// what records of 0.1.0 listed (see `Attachment::legacy_firewall`), and
/// the nftables backend's own currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallElement {
    /// The set or map the element lives in.
    pub set: String,
    /// The element (a map's key) as nftables JSON.
    pub key: serde_json::Value,
    /// A map element's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// A container's record: everything its setup (and each connect) did,
/// saved before it was done, so that teardown (and gc after a crash) can
/// undo exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "super::endpoint_wire::EndpointWire")]
pub struct Endpoint {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    pub phase: Phase,
    /// The container's init process, when the runtime gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ProcessId>,
    /// (device, inode) of the container's network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<(u64, u64)>,
    /// The hook process that is (or was) setting this endpoint up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<ProcessId>,
    /// The `ip netns` entry made for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_link: Option<PathBuf>,
    /// The runtime made the namespace for this container alone (its
    /// config named no path): once the container ended, only the pin
    /// holds it, and it goes, with every device in it, when the pin does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub netns_fresh: bool,
    /// One per network the container is on, in interface order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Servers the resolver forwards this container's other names to
    /// before the network's (`io.ocinet.dns`).
    #[serde(flatten)]
    pub dns_servers: DnsServers,
    /// The resolv.conf generated for the container and mounted over its
    /// own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<PathBuf>,
    /// Which front end made it, and so whose the record's end is.
    #[serde(default, skip_serializing_if = "Origin::is_oci")]
    pub origin: Origin,
    /// Unix time of setup.
    pub created: u64,
}

/// A container's own DNS servers, of either family, in the order given.
///
/// Written as `dns_servers`, its IPv4 ones (all a release before IPv6
/// servers reads, and everything of an IPv4-only list, whose record is
/// written as it always was), and, when it has an IPv6 one,
/// `dns_servers_all`, the whole list in order. A release before IPv6
/// servers then reads such a record (it ignores keys it does not know)
/// and forwards to the IPv4 ones, rather than failing to read the record
/// and losing the container's names (a resolver of that release may still
/// be running while the new hook writes). Read by `EndpointWire`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsServers(pub Vec<std::net::IpAddr>);

impl std::ops::Deref for DnsServers {
    type Target = Vec<std::net::IpAddr>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Serialize for DnsServers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let v4: Vec<std::net::Ipv4Addr> = self
            .0
            .iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) => Some(*v4),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        let mut m = s.serialize_map(None)?;
        if !v4.is_empty() {
            m.serialize_entry("dns_servers", &v4)?;
        }
        if self.0.iter().any(std::net::IpAddr::is_ipv6) {
            m.serialize_entry("dns_servers_all", &self.0)?;
        }
        m.end()
    }
}

/// The front end a container came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// An OCI hook: poststop ends it, or gc once its process is gone.
    #[default]
    Oci,
    /// A CNI runtime: its DEL ends it, or its GC. There is no process to
    /// watch (the runtime owns the namespace), so ocinet's own gc leaves
    /// it to them.
    Cni,
}

impl Origin {
    pub fn is_oci(&self) -> bool {
        *self == Origin::Oci
    }
}

impl Endpoint {
    /// The record of a setup about to start: nothing made yet.
    pub fn new(id: &str, name: &str, mode: Mode) -> Self {
        Endpoint {
            id: id.to_string(),
            name: name.to_string(),
            mode,
            phase: Phase::Setup,
            container: None,
            netns_id: None,
            hook: None,
            netns_link: None,
            netns_fresh: false,
            attachments: Vec::new(),
            dns_servers: DnsServers::default(),
            resolv_conf: None,
            origin: Origin::Oci,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The attachment on network `net`.
    pub fn attachment_on(&self, net: &str) -> Option<&Attachment> {
        self.attachments.iter().find(|a| a.network == net)
    }

    pub fn is_on(&self, net: &str) -> bool {
        self.attachment_on(net).is_some()
    }

    /// Every published port of the container (they are claimed per
    /// container, and carried by one attachment).
    pub fn ports(&self) -> impl Iterator<Item = &super::PortSpec> {
        self.attachments.iter().flat_map(|a| a.ports.iter())
    }

    /// The attachment the published ports are DNATed to, if any.
    pub fn publishing(&self) -> Option<&Attachment> {
        self.attachments.iter().find(|a| !a.ports.is_empty())
    }

    /// Whether the container this endpoint serves is gone (its process, or
    /// for an unfinished setup its hook, no longer runs).
    pub fn is_stale(&self) -> bool {
        self.liveness().is_stale()
    }

    /// What `is_stale` asks the system about, for a reader that keeps it
    /// without the whole record.
    pub fn liveness(&self) -> Liveness {
        Liveness {
            phase: self.phase,
            container: self.container,
            netns_id: self.netns_id,
            hook: self.hook,
        }
    }
}

/// The part of a record that says which processes stand for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub phase: Phase,
    pub container: Option<ProcessId>,
    pub netns_id: Option<(u64, u64)>,
    pub hook: Option<ProcessId>,
}

impl Liveness {
    pub fn is_stale(&self) -> bool {
        if self.phase == Phase::Setup && !self.hook.is_some_and(|h| h.is_alive()) {
            return true;
        }
        match self.container {
            // Host mode has no namespace of its own to compare.
            Some(p) => {
                !p.is_alive()
                    || (self.netns_id.is_some()
                        && netns_id_of_pid(p.pid).is_some_and(|id| Some(id) != self.netns_id))
            }
            None => false,
        }
    }
}

/// The `container:<id>` sharers among `all` whose target no longer holds
/// their namespace: its record is gone, unfinished, or names another
/// namespace (an id reused by a new container).
pub fn detached_sharers(all: &[Endpoint]) -> HashSet<&str> {
    let by_id: HashMap<&str, &Endpoint> = all.iter().map(|e| (e.id.as_str(), e)).collect();
    all.iter()
        .filter(|e| matches!(&e.mode, Mode::Container(_)) && shared_target(e, &by_id).is_none())
        .map(|e| e.id.as_str())
        .collect()
}

fn shared_target<'a>(e: &Endpoint, by_id: &HashMap<&str, &'a Endpoint>) -> Option<&'a Endpoint> {
    let Mode::Container(target) = &e.mode else {
        return None;
    };
    by_id
        .get(target.as_str())
        .copied()
        .filter(|t| t.phase == Phase::Ready && t.netns_id.is_some() && t.netns_id == e.netns_id)
}

/// The interfaces a container has, as shown by `ps`, `inspect` and the
/// exporter: its own, or for a `container:<id>` sharer its target's while
/// the target holds their namespace (a sharer records none of its own, so
/// that its teardown never touches the target's).
pub fn shown_attachments<'a>(e: &'a Endpoint, all: &'a [Endpoint]) -> &'a [Attachment] {
    match &e.mode {
        Mode::Container(_) => {
            let by_id: HashMap<&str, &Endpoint> = all.iter().map(|e| (e.id.as_str(), e)).collect();
            shared_target(e, &by_id).map_or(&[], |t| t.attachments.as_slice())
        }
        _ => &e.attachments,
    }
}

pub fn netns_id_of_pid(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((md.dev(), md.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips() {
        for m in [
            Mode::network("web"),
            Mode::Networks(vec!["front".into(), "back".into()]),
            Mode::None,
            Mode::Host,
            Mode::Container("abc".into()),
        ] {
            let s = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Mode>(&s).unwrap(), m);
        }
    }

    #[test]
    fn a_sharer_is_attached_only_while_its_target_holds_its_namespace() {
        let ep = |id: &str, mode: Mode, phase: Phase, ns: u64| Endpoint {
            phase,
            netns_id: Some((1, ns)),
            attachments: match mode {
                Mode::Networks(_) => vec![Attachment::new("b", "eth0")],
                _ => Vec::new(),
            },
            ..Endpoint::new(id, id, mode)
        };
        let share = |t: &str| Mode::Container(t.into());
        let all = vec![
            ep("t", Mode::network("b"), Phase::Ready, 7),
            ep("attached", share("t"), Phase::Ready, 7),
            ep("other-ns", share("t"), Phase::Ready, 8),
            ep("gone", share("nobody"), Phase::Ready, 7),
            ep("u", Mode::network("b"), Phase::Setup, 9),
            ep("unfinished", share("u"), Phase::Ready, 9),
        ];
        let mut d: Vec<_> = detached_sharers(&all).into_iter().collect();
        d.sort();
        assert_eq!(d, ["gone", "other-ns", "unfinished"]);
        assert!(shown_attachments(&all[3], &all).is_empty());
        assert_eq!(shown_attachments(&all[1], &all)[0].network, "b");
    }

    #[test]
    fn own_process_is_alive() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }
}
