use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A veth on a network's bridge.
    Bridge(String),
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
            Mode::Bridge(n) => n.clone(),
            Mode::None => "none".into(),
            Mode::Host => "host".into(),
            Mode::Container(id) => format!("container:{id}"),
        }
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
                None => Mode::Bridge(s),
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

impl ProcessId {
    pub fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may contain spaces and ')': skip past
        // the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let start_time = rest.split_whitespace().nth(19)?.parse().ok()?;
        Some(ProcessId { pid, start_time })
    }

    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|p| p.start_time == self.start_time)
    }
}

/// An element of one of the firewall's sets or maps that an endpoint added
/// and owns: teardown deletes exactly these.
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

/// Everything a container's setup did, saved before it did it, so that
/// teardown (and gc after a crash) can undo exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_veth: Option<String>,
    /// macvlan: the host interface `interface` is a sub-interface of (it
    /// lives in the container's namespace, so there is no host end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Inside name of the container interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The `ip netns` entry made for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_link: Option<PathBuf>,
    /// Published ports, as requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<super::PortSpec>,
    /// Firewall elements this endpoint added and teardown must delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall: Vec<FirewallElement>,
    /// Unix time of setup.
    pub created: u64,
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
            ip: None,
            prefix_len: None,
            gateway: None,
            mac: None,
            bridge: None,
            host_veth: None,
            parent: None,
            interface: None,
            netns_link: None,
            ports: Vec::new(),
            firewall: Vec::new(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub fn network(&self) -> Option<&str> {
        match &self.mode {
            Mode::Bridge(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the container this endpoint serves is gone (its process, or
    /// for an unfinished setup its hook, no longer runs).
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
/// namespace (an id reused by a new container). Their copied address was
/// freed with the target and may be another container's by now, so it
/// must not be shown as theirs.
pub fn detached_sharers(all: &[Endpoint]) -> HashSet<&str> {
    let by_id: HashMap<&str, &Endpoint> = all.iter().map(|e| (e.id.as_str(), e)).collect();
    all.iter()
        .filter(|e| match &e.mode {
            Mode::Container(target) => !by_id.get(target.as_str()).is_some_and(|t| {
                t.phase == Phase::Ready && t.netns_id.is_some() && t.netns_id == e.netns_id
            }),
            _ => false,
        })
        .map(|e| e.id.as_str())
        .collect()
}

impl Endpoint {
    /// This record without what it copied from the target it no longer
    /// shares (see `detached_sharers`).
    pub fn detached(&self) -> Endpoint {
        Endpoint {
            ip: None,
            prefix_len: None,
            gateway: None,
            mac: None,
            interface: None,
            ..self.clone()
        }
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
            Mode::Bridge("web".into()),
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
            ip: Some(Ipv4Addr::new(10, 0, 0, 2)),
            ..Endpoint::new(id, id, mode)
        };
        let share = |t: &str| Mode::Container(t.into());
        let all = vec![
            ep("t", Mode::Bridge("b".into()), Phase::Ready, 7),
            ep("attached", share("t"), Phase::Ready, 7),
            ep("other-ns", share("t"), Phase::Ready, 8),
            ep("gone", share("nobody"), Phase::Ready, 7),
            ep("u", Mode::Bridge("b".into()), Phase::Setup, 9),
            ep("unfinished", share("u"), Phase::Ready, 9),
        ];
        let mut d: Vec<_> = detached_sharers(&all).into_iter().collect();
        d.sort();
        assert_eq!(d, ["gone", "other-ns", "unfinished"]);
        assert_eq!(all[3].detached().ip, None);
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
