//! Reading a container record in either layout: this version's (a list of
//! attachments), or 0.1.0's, which had one network's fields flat on the
//! record. A record of 0.1.0 becomes one attachment `eth0` (or the
//! interface it names) on its network, keeping the elements it listed;
//! the next save writes it in this version's layout.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::Deserialize;

use super::{Attachment, Endpoint, FirewallElement, Mode, Phase, PortSpec, ProcessId};

#[derive(Deserialize)]
pub struct EndpointWire {
    id: String,
    name: String,
    mode: Mode,
    phase: Phase,
    #[serde(default)]
    container: Option<ProcessId>,
    #[serde(default)]
    netns_id: Option<(u64, u64)>,
    #[serde(default)]
    hook: Option<ProcessId>,
    #[serde(default)]
    netns_link: Option<PathBuf>,
    #[serde(default)]
    netns_fresh: bool,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    dns_servers: Vec<std::net::Ipv4Addr>,
    /// Written beside `dns_servers` when the list has an IPv6 server (see
    /// `DnsServers`).
    #[serde(default)]
    dns_servers_all: Option<Vec<IpAddr>>,
    #[serde(default)]
    resolv_conf: Option<PathBuf>,
    #[serde(default)]
    origin: super::endpoint::Origin,
    created: u64,
    // 0.1.0's flat fields.
    #[serde(default)]
    ip: Option<Ipv4Addr>,
    #[serde(default)]
    prefix_len: Option<u8>,
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    host_veth: Option<String>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    ports: Vec<PortSpec>,
    #[serde(default)]
    firewall: Vec<FirewallElement>,
}

impl From<EndpointWire> for Endpoint {
    fn from(w: EndpointWire) -> Self {
        let mut attachments = w.attachments;
        let flat = w.ip.is_some()
            || w.host_veth.is_some()
            || w.parent.is_some()
            || !w.ports.is_empty()
            || !w.firewall.is_empty();
        // A sharer of 0.1.0 kept a copy of its target's address, MAC and
        // interface: shown from the target now, and never its to undo.
        if let (true, true, Mode::Networks(nets)) = (attachments.is_empty(), flat, &w.mode) {
            if let Some(network) = nets.first() {
                let addresses =
                    w.ip.and_then(|ip| ipnet::Ipv4Net::new(ip, w.prefix_len.unwrap_or(32)).ok())
                        .map(|n| vec![n.into()])
                        .unwrap_or_default();
                attachments.push(Attachment {
                    addresses,
                    gateway: w.gateway.map(IpAddr::V4),
                    mac: w.mac,
                    bridge: w.bridge,
                    host_veth: w.host_veth,
                    parent: w.parent,
                    ports: w.ports,
                    legacy_firewall: w.firewall,
                    ..Attachment::new(network, w.interface.as_deref().unwrap_or("eth0"))
                });
            }
        }
        Endpoint {
            id: w.id,
            name: w.name,
            mode: w.mode,
            phase: w.phase,
            container: w.container,
            netns_id: w.netns_id,
            hook: w.hook,
            netns_link: w.netns_link,
            netns_fresh: w.netns_fresh,
            attachments,
            dns_servers: super::endpoint::DnsServers(
                w.dns_servers_all
                    .unwrap_or_else(|| w.dns_servers.into_iter().map(IpAddr::V4).collect()),
            ),
            resolv_conf: w.resolv_conf,
            origin: w.origin,
            created: w.created,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record written by ocinet 0.1.0 (integration/fixtures).
    const V010: &str = include_str!("../../../integration/fixtures/endpoint-v0.1.0.json");

    #[test]
    fn a_record_of_0_1_0_is_one_attachment() {
        let ep: Endpoint = serde_json::from_str(V010).unwrap();
        assert_eq!(ep.mode, Mode::network("ocinet"));
        let [a] = ep.attachments.as_slice() else {
            panic!("{:?}", ep.attachments)
        };
        assert_eq!(a.network, "ocinet");
        assert_eq!(a.interface, "eth0");
        assert_eq!(a.ipv4(), Some(Ipv4Addr::new(10, 87, 0, 2)));
        assert_eq!(a.ipv4_net().map(|n| n.prefix_len()), Some(16));
        assert_eq!(a.gateway, Some(IpAddr::V4(Ipv4Addr::new(10, 87, 0, 1))));
        assert_eq!(a.host_veth.as_deref(), Some("oca58f12db6d5d"));
        assert_eq!(a.ports.len(), 2);
        assert_eq!(a.legacy_firewall.len(), 8);
        // Written back in this version's layout, and read the same.
        let text = serde_json::to_string(&ep).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            v.get("ip").is_none() && v.get("firewall").is_none(),
            "{text}"
        );
        assert_eq!(
            v["attachments"][0]["firewall"].as_array().map(Vec::len),
            Some(8)
        );
        let again: Endpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(again, ep);
    }

    /// What a release before IPv6 DNS servers reads of a record: its
    /// `dns_servers` is IPv4 addresses, and keys it does not know are
    /// ignored.
    #[derive(Deserialize)]
    struct Before {
        #[serde(default)]
        dns_servers: Vec<Ipv4Addr>,
    }

    #[test]
    fn dns_servers_of_both_families_stay_readable_by_the_release_before() {
        let mut ep = Endpoint::new("c1", "c1", Mode::network("n"));
        // An IPv4-only list is written as it always was.
        ep.dns_servers = super::super::endpoint::DnsServers(vec![
            "10.0.0.53".parse().unwrap(),
            "10.0.0.54".parse().unwrap(),
        ]);
        let v = serde_json::to_value(&ep).unwrap();
        assert_eq!(
            v["dns_servers"],
            serde_json::json!(["10.0.0.53", "10.0.0.54"])
        );
        assert!(v.get("dns_servers_all").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<Endpoint>(v).unwrap(), ep);
        // None at all: no key.
        ep.dns_servers = Default::default();
        let v = serde_json::to_value(&ep).unwrap();
        assert!(
            v.get("dns_servers").is_none() && v.get("dns_servers_all").is_none(),
            "{v}"
        );
        // A mixed list keeps its order; the release before reads its IPv4
        // servers and the record stays readable to it.
        ep.dns_servers = super::super::endpoint::DnsServers(vec![
            "2001:db8::53".parse().unwrap(),
            "10.0.0.53".parse().unwrap(),
            "fd00::53".parse().unwrap(),
        ]);
        let text = serde_json::to_string(&ep).unwrap();
        let again: Endpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(again, ep);
        let before: Before = serde_json::from_str(&text).unwrap();
        assert_eq!(before.dns_servers, [Ipv4Addr::new(10, 0, 0, 53)]);
        // IPv6 servers only: the release before sees none.
        ep.dns_servers = super::super::endpoint::DnsServers(vec!["fd00::53".parse().unwrap()]);
        let text = serde_json::to_string(&ep).unwrap();
        assert!(!text.contains("\"dns_servers\""), "{text}");
        assert!(serde_json::from_str::<Before>(&text)
            .unwrap()
            .dns_servers
            .is_empty());
        assert_eq!(serde_json::from_str::<Endpoint>(&text).unwrap(), ep);
    }

    #[test]
    fn a_sharer_of_0_1_0_drops_its_copy() {
        let mut v: serde_json::Value = serde_json::from_str(V010).unwrap();
        v["mode"] = "container:abc".into();
        v.as_object_mut().unwrap().remove("firewall");
        v.as_object_mut().unwrap().remove("ports");
        v.as_object_mut().unwrap().remove("host_veth");
        let ep: Endpoint = serde_json::from_value(v).unwrap();
        assert!(ep.attachments.is_empty());
    }
}
