//! Which `[::1]` listeners ocinet's records ask for: the proxy's whole
//! desired state, derived again after every change (a proxy started after
//! a crash finds every port from the records alone).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ocinet_common::model::{ports, Endpoint, Protocol};
use serde::{Deserialize, Serialize};

/// One socket on `[::1]:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub protocol: Protocol,
    pub port: u16,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[::1]:{}/{}", self.port, self.protocol)
    }
}

/// What one listener forwards to, for which container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub key: Key,
    pub upstream: SocketAddr,
    /// The container (its id).
    pub owner: String,
    /// Written `[::1]`: its setup fails when the port cannot be had. A bare
    /// or `[::]` port's `::1` side is extra: logged when it cannot.
    pub explicit: bool,
}

/// An address a container may have: what a record says is checked before
/// the proxy connects anywhere (a record is a file; the proxy is root).
fn container_address(ip: IpAddr) -> bool {
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast())
        && match ip {
            IpAddr::V4(v4) => !v4.is_broadcast(),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
        }
}

/// The listeners container `ep` asks for: on its publishing attachment,
/// every TCP and UDP mapping that answers on `[::1]` (see
/// `ports::loopback6`), to its IPv6 address, else (`[::1]` on an
/// IPv4-only container) its IPv4 one.
pub fn of_endpoint(ep: &Endpoint) -> Vec<Listener> {
    let Some(a) = ep.publishing() else {
        return Vec::new();
    };
    let v6 = a
        .ipv6()
        .map(IpAddr::from)
        .filter(|ip| container_address(*ip));
    let v4 = a
        .ipv4()
        .map(IpAddr::from)
        .filter(|ip| container_address(*ip));
    let mut out = Vec::new();
    for m in a.ports.iter().flat_map(|s| s.mappings()) {
        let Some(explicit) = ports::loopback6(m.host_ip, m.protocol, v6.is_some()) else {
            continue;
        };
        let Some(ip) = v6.or(v4) else { continue };
        if m.host_port == 0 || m.container_port == 0 {
            continue;
        }
        out.push(Listener {
            key: Key {
                protocol: m.protocol,
                port: m.host_port,
            },
            upstream: SocketAddr::new(ip, m.container_port),
            owner: ep.id.clone(),
            explicit,
        });
    }
    out
}

/// Every listener the live records ask for, one per key. The port claims
/// make two containers' keys disjoint; should two records still ask for
/// one (a record edited by hand), the newest container's wins, logged.
pub fn of_records<'a>(eps: impl IntoIterator<Item = &'a Endpoint>) -> BTreeMap<Key, Listener> {
    let mut out: BTreeMap<Key, (u64, Listener)> = BTreeMap::new();
    for ep in eps {
        for l in of_endpoint(ep) {
            match out.get(&l.key) {
                Some((created, other)) if other.owner != l.owner => {
                    tracing::warn!(key = %l.key, a = %other.owner, b = %l.owner, "two containers ask for one [::1] port: the newer is served");
                    if *created > ep.created {
                        continue;
                    }
                }
                _ => {}
            }
            out.insert(l.key, (ep.created, l));
        }
    }
    out.into_iter().map(|(k, (_, l))| (k, l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocinet_common::model::{ports::parse_list, Attachment, Mode};

    fn ep(id: &str, addrs: &[&str], ports: &str) -> Endpoint {
        let mut e = Endpoint::new(id, id, Mode::network("n"));
        let mut a = Attachment::new("n", "eth0");
        a.addresses = addrs.iter().map(|s| s.parse().unwrap()).collect();
        a.ports = parse_list("p", ports).unwrap();
        e.attachments.push(a);
        e
    }

    #[test]
    fn which_mappings_answer_on_loopback() {
        let dual = ep(
            "a",
            &["10.0.0.2/24", "fd00::2/64"],
            "8080:80,[::]:8081:81/udp,[::1]:8082:82,0.0.0.0:8083:83,127.0.0.1:8084:84,9000-9001:90-91/sctp",
        );
        let l = of_endpoint(&dual);
        let got: Vec<(String, String, bool)> = l
            .iter()
            .map(|l| (l.key.to_string(), l.upstream.to_string(), l.explicit))
            .collect();
        assert_eq!(
            got,
            [
                ("[::1]:8080/tcp".into(), "[fd00::2]:80".into(), false),
                ("[::1]:8081/udp".into(), "[fd00::2]:81".into(), false),
                ("[::1]:8082/tcp".into(), "[fd00::2]:82".into(), true),
            ]
        );
        // IPv4-only: bare stays IPv4; [::1] goes to the IPv4 address.
        let v4 = ep("b", &["10.0.0.3/24"], "8080:80,[::1]:7000-7001:70-71/udp");
        let got: Vec<(String, String)> = of_endpoint(&v4)
            .iter()
            .map(|l| (l.key.to_string(), l.upstream.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("[::1]:7000/udp".into(), "10.0.0.3:70".into()),
                ("[::1]:7001/udp".into(), "10.0.0.3:71".into())
            ]
        );
    }

    #[test]
    fn a_record_naming_a_loopback_container_address_is_not_followed() {
        let bad = ep("c", &["127.0.0.5/8", "::1/128"], "[::1]:8080:80");
        assert!(of_endpoint(&bad).is_empty());
    }

    #[test]
    fn one_listener_per_key_the_newest_wins() {
        let mut old = ep("old", &["10.0.0.2/24"], "[::1]:8080:80");
        old.created = 1;
        let mut new = ep("new", &["10.0.0.3/24"], "[::1]:8080:80");
        new.created = 2;
        let all = of_records([&new, &old]);
        assert_eq!(all.len(), 1);
        assert_eq!(all.values().next().unwrap().owner, "new");
    }
}
