//! One network interface of a container: what its driver made on one
//! network, recorded as typed values (the firewall backend derives its
//! elements from them, see `firewall::ruleset::elements_of_attachment`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{FirewallElement, PortSpec, ProcessId};

/// A connect or disconnect under way. If its hook dies, gc (or the next
/// connect or disconnect of the container) undoes the attachment: a
/// half-made connect is rolled back, a half-done disconnect finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changing {
    pub by: ProcessId,
    pub verb: ChangeVerb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeVerb {
    Connect,
    Disconnect,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    /// Its name inside the container (`eth0`, `eth1`, ...).
    pub interface: String,
    /// Addresses with their prefix length: the IPv4 one, and on a
    /// dual-stack network the IPv6 one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpNet>,
    /// The default route's next hop, on the one attachment that carries
    /// the container's default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The IPv6 default route's next hop, on the attachment that carries
    /// the default routes, when its network is dual stack. (Beside
    /// `gateway` rather than in a list, so a record stays readable by
    /// the previous release.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// bridge driver: the bridge and the host end of the veth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_veth: Option<String>,
    /// macvlan: the host interface `interface` is a sub-interface of (it
    /// lives in the container's namespace, so there is no host end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Other names the container answers to on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Published ports, as requested: only ever on the attachment that
    /// carries the default route, which they are DNATed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changing: Option<Changing>,
    /// Its network's IPv4 / IPv6 gateway mode is `routed`: its published
    /// container ports answer from outside at its own addresses (recorded,
    /// so teardown derives those elements whatever became of the network).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routed_ipv4: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routed_ipv6: bool,
    /// The nftables elements a record of version 0.1.0 listed, kept so
    /// that its teardown deletes exactly those. Empty for an attachment
    /// made now, and once a converted record's list was found to be what
    /// is derived (`StateDir::convert_records`).
    #[serde(default, rename = "firewall", skip_serializing_if = "Vec::is_empty")]
    pub legacy_firewall: Vec<FirewallElement>,
}

impl Attachment {
    pub fn new(network: &str, interface: &str) -> Self {
        Attachment {
            network: network.to_string(),
            interface: interface.to_string(),
            addresses: Vec::new(),
            gateway: None,
            gateway6: None,
            mac: None,
            bridge: None,
            host_veth: None,
            parent: None,
            aliases: Vec::new(),
            ports: Vec::new(),
            changing: None,
            routed_ipv4: false,
            routed_ipv6: false,
            legacy_firewall: Vec::new(),
        }
    }

    /// The IPv6 address, on a dual-stack network.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6_net().map(|n| n.addr())
    }

    pub fn ipv6_net(&self) -> Option<ipnet::Ipv6Net> {
        self.addresses.iter().find_map(|a| match a {
            IpNet::V6(n) => Some(*n),
            IpNet::V4(_) => None,
        })
    }

    /// The IPv4 address.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4_net().map(|n| n.addr())
    }

    pub fn ipv4_net(&self) -> Option<ipnet::Ipv4Net> {
        self.addresses.iter().find_map(|a| match a {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
    }

    /// The IPv4 next hop of the default route, on the attachment that
    /// carries it.
    pub fn gateway_v4(&self) -> Option<Ipv4Addr> {
        match self.gateway? {
            IpAddr::V4(g) => Some(g),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether this attachment carries the container's default route (of
    /// either family).
    pub fn carries_default_route(&self) -> bool {
        self.gateway.is_some() || self.gateway6.is_some()
    }

    /// The recorded MAC as bytes.
    pub fn mac_bytes(&self) -> crate::Result<Option<[u8; 6]>> {
        self.mac
            .as_deref()
            .map(|m| crate::validate::mac("mac", m))
            .transpose()
    }

    pub fn holds(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.addr() == ip)
    }

    /// Whether a connect or disconnect of this attachment was left
    /// unfinished by a hook that is gone.
    pub fn change_abandoned(&self) -> bool {
        self.changing.is_some_and(|c| !c.by.is_alive())
    }
}
