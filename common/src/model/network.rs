use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub use super::network_drivers::{
    BridgeOptions, DriverOptions, FlatOptions, MacvlanOptions, OverlayOptions, VXLAN_PORT,
};
use crate::{validate, Error, Result};

pub const DEFAULT_NETWORK: &str = "ocinet";
pub const DEFAULT_BRIDGE: &str = "ocinet0";
/// Clear of Docker's 172.17.0.0/16, Podman's 10.88.0.0/16 and the 10.89.x
/// range `podman network create` hands out.
pub const DEFAULT_SUBNET: &str = "10.87.0.0/16";
pub const DEFAULT_MTU: u32 = 1500;
/// The largest MTU ocinet writes or reads: the kernel's bound for a
/// bridge, veth or macvlan (ETH_MAX_MTU); a loopback parent's 65536 is
/// beyond it.
pub const MAX_MTU: u32 = 65535;
pub const MIN_MTU: u32 = 68;

/// Names a network may not take because annotations give them a meaning.
const RESERVED: &[&str] = &["none", "host", "bridge", "default"];

/// A network's definition. Its subnets are a list of `Subnet`s, saved
/// with 0.1.0's single IPv4 `subnet`/`gateway`/`ip_range` beside them, so
/// that the previous release still reads an IPv4 network this one saved
/// (see `network_wire.rs`). A network has one IPv4 subnet, first, and
/// may have one IPv6 subnet after it (dual stack; checked by `validate`
/// and on loading): `v4()` gives the IPv4 one, `v6()` the IPv6 one. What
/// only its driver has is in `options`, typed per driver (saved flat, as
/// before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "super::network_wire::NetworkWire",
    into = "super::network_wire::NetworkWire"
)]
pub struct Network {
    pub name: String,
    pub subnets: Vec<Subnet>,
    pub mtu: u32,
    /// No masquerade, no default route and no forwarding in or out.
    pub internal: bool,
    /// Addresses of the subnets that IPAM never hands out, by name (Docker's
    /// `--aux-address`): a router, a DNS server, a host on the segment.
    /// Of either family, each inside the network's subnet of its family.
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// Containers resolve each other's names through ocinet's resolver on
    /// the gateway address. On for networks made by `network create`
    /// (unless `--disable-dns`); off for the default network and for
    /// networks saved before it existed.
    pub dns: bool,
    /// Where the resolver forwards other names (`--dns-upstream`), of
    /// either family; the host's /etc/resolv.conf when empty.
    pub dns_upstreams: Vec<IpAddr>,
    /// Queries per second the resolver takes from one container of this
    /// network (twice that in a burst); `Some(0)`: no limit. `None`: the
    /// default, `DEFAULT_DNS_RATE`.
    pub dns_rate_limit: Option<u32>,
    /// Its driver, and what only that driver's networks have.
    pub options: DriverOptions,
}

/// Queries per second one container may send its resolver by default:
/// far above what a service resolving its peers needs, low enough that a
/// container flooding it leaves the resolver time for the others.
pub const DEFAULT_DNS_RATE: u32 = 2000;

/// A network driver (`network create --driver`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A Linux bridge with the gateway address, a veth per container,
    /// masquerade, published ports (Docker's bridge driver).
    #[default]
    Bridge,
    /// A macvlan sub-interface of a host interface per container, on the
    /// parent's segment with an address of its own: no NAT, no bridge, no
    /// published ports (Docker's macvlan driver).
    Macvlan,
    /// One subnet across the members of a cluster (`ocinet cluster
    /// join`): on each host a bridge network whose addresses come from
    /// the host's blocks of the subnet, routed to the other hosts' blocks
    /// over VXLAN in the kernel, coordinated through etcd (Docker's
    /// overlay driver, without Swarm).
    Overlay,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
            Driver::Overlay => "overlay",
        }
    }

    /// Docker's scope: an overlay network is the cluster's, every other
    /// one this host's.
    pub fn scope(self) -> &'static str {
        match self {
            Driver::Overlay => "global",
            _ => "local",
        }
    }
}

impl std::str::FromStr for Driver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bridge" => Ok(Driver::Bridge),
            "macvlan" => Ok(Driver::Macvlan),
            "overlay" => Ok(Driver::Overlay),
            _ => Err(Error::invalid(
                "driver",
                s,
                "must be bridge, macvlan or overlay",
            )),
        }
    }
}

/// The kernel's macvlan modes (`ip link add ... type macvlan mode M`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Sub-interfaces of one parent reach each other directly.
    #[default]
    Bridge,
    /// They do not reach each other at all.
    Private,
    /// Through the switch the parent is plugged into (it must hairpin).
    Vepa,
    /// One sub-interface takes the parent over.
    Passthru,
}

impl MacvlanMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

impl std::str::FromStr for MacvlanMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bridge" => Ok(MacvlanMode::Bridge),
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "passthru" => Ok(MacvlanMode::Passthru),
            _ => Err(Error::invalid(
                "mode",
                s,
                "must be bridge, private, vepa or passthru",
            )),
        }
    }
}

/// Docker's `gateway_mode_ipv4` / `gateway_mode_ipv6`: how a family's
/// traffic leaves the network and what reaches it from outside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayMode {
    /// Masqueraded out; new connections from outside the network reach
    /// its containers only through a published port (Docker 28 and
    /// later).
    #[default]
    Nat,
    /// Masqueraded out; anyone who can route to the subnet reaches every
    /// port (Docker before 28).
    NatUnprotected,
    /// Not masqueraded: the containers' addresses are routable, and from
    /// outside only their published container ports answer, at the
    /// containers' own addresses (Docker's routed mode).
    Routed,
}

impl GatewayMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayMode::Nat => "nat",
            GatewayMode::NatUnprotected => "nat-unprotected",
            GatewayMode::Routed => "routed",
        }
    }

    /// Whether traffic of this mode leaves masqueraded.
    pub fn masquerades(self) -> bool {
        self != GatewayMode::Routed
    }

    /// Whether new connections from outside are kept out (but for
    /// published ports).
    pub fn protects(self) -> bool {
        self != GatewayMode::NatUnprotected
    }
}

impl std::str::FromStr for GatewayMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nat" => Ok(GatewayMode::Nat),
            "nat-unprotected" => Ok(GatewayMode::NatUnprotected),
            "routed" => Ok(GatewayMode::Routed),
            _ => Err(Error::invalid(
                "gateway-mode",
                s,
                "must be nat, nat-unprotected or routed",
            )),
        }
    }
}

/// Ranges no container network can use: the kernel refuses or misroutes
/// addresses there (or, link-local, they belong to every link at once).
const UNUSABLE: &[(&str, &str)] = &[
    ("0.0.0.0/8", "is \"this network\" (0.0.0.0/8)"),
    ("127.0.0.0/8", "is loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "is link-local (169.254.0.0/16)"),
    ("224.0.0.0/4", "is multicast (224.0.0.0/4)"),
    (
        "240.0.0.0/4",
        "is reserved (240.0.0.0/4, with the broadcast address)",
    ),
];

/// One subnet of a network, of either family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: ipnet::IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::IpAddr>,
    /// Addresses are handed out from here (defaults to the subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<ipnet::IpNet>,
}

impl Subnet {
    pub fn ipv4(subnet: Ipv4Net, gateway: Ipv4Addr, ip_range: Option<Ipv4Net>) -> Self {
        Subnet {
            subnet: subnet.into(),
            gateway: Some(gateway.into()),
            ip_range: ip_range.map(Into::into),
        }
    }

    pub fn ipv6(subnet: Ipv6Net, gateway: Ipv6Addr, ip_range: Option<Ipv6Net>) -> Self {
        Subnet {
            subnet: subnet.into(),
            gateway: Some(gateway.into()),
            ip_range: ip_range.map(Into::into),
        }
    }

    /// The IPv6 subnet with an IPv6 gateway, if this is one.
    fn as_ipv6(&self) -> Option<V6> {
        let ipnet::IpNet::V6(subnet) = self.subnet else {
            return None;
        };
        let Some(std::net::IpAddr::V6(gateway)) = self.gateway else {
            return None;
        };
        let range = match self.ip_range {
            None => None,
            Some(ipnet::IpNet::V6(r)) => Some(r),
            Some(ipnet::IpNet::V4(_)) => return None,
        };
        Some(V6 {
            subnet,
            gateway,
            ip_range: range,
        })
    }

    /// (subnet, gateway, range) of an IPv4 subnet with an IPv4 gateway.
    fn as_ipv4(&self) -> Option<(Ipv4Net, Ipv4Addr, Option<Ipv4Net>)> {
        let ipnet::IpNet::V4(subnet) = self.subnet else {
            return None;
        };
        let Some(std::net::IpAddr::V4(gateway)) = self.gateway else {
            return None;
        };
        let range = match self.ip_range {
            None => None,
            Some(ipnet::IpNet::V4(r)) => Some(r),
            Some(ipnet::IpNet::V6(_)) => return None,
        };
        Some((subnet, gateway, range))
    }
}

/// A network's IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4 {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
}

impl V4 {
    /// Where addresses are handed out from.
    pub fn range(&self) -> Ipv4Net {
        self.ip_range.unwrap_or(self.subnet)
    }

    /// The checks of an IPv4 subnet, its gateway and its range.
    fn validate(&self) -> Result<()> {
        if self.subnet.prefix_len() > 30 {
            return Err(Error::invalid(
                "subnet",
                self.subnet,
                "must be /30 or larger",
            ));
        }
        if self.subnet.prefix_len() < 8 {
            return Err(Error::invalid(
                "subnet",
                self.subnet,
                "must be /8 or smaller",
            ));
        }
        let gw = self.gateway;
        if !self.subnet.contains(&gw)
            || gw == self.subnet.network()
            || gw == self.subnet.broadcast()
        {
            return Err(Error::invalid(
                "gateway",
                gw,
                format!("must be a host address in {}", self.subnet),
            ));
        }
        if let Some(r) = self.ip_range {
            if r.trunc() != r || !self.subnet.contains(&r) {
                return Err(Error::invalid(
                    "ip-range",
                    r,
                    format!("must be a network inside {}", self.subnet),
                ));
            }
        }
        Ok(())
    }
}

/// A network's IPv6 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6 {
    pub subnet: Ipv6Net,
    /// The bridge's address (a bridge network), the segment's router
    /// (macvlan).
    pub gateway: Ipv6Addr,
    pub ip_range: Option<Ipv6Net>,
}

impl V6 {
    /// Where addresses are handed out from.
    pub fn range(&self) -> Ipv6Net {
        self.ip_range.unwrap_or(self.subnet)
    }
}

/// The smallest IPv6 subnet a network may have: 256 addresses, as
/// Docker's lower bound for an IPv6 pool is about (and so that the
/// leasing search, which never walks a /64, has room to search).
pub const MAX_PREFIX6: u8 = 120;
/// Where `--ipv6` without `--subnet` takes a /64 from: a ULA /48 of
/// ocinet's own ("oci" in ASCII after fd87), one /64 per network.
pub const ULA_POOL6: &str = "fd87:6f63:6900::/48";

impl Network {
    /// The IPv6 subnet of a dual-stack network.
    pub fn v6(&self) -> Option<V6> {
        self.subnets.iter().find_map(Subnet::as_ipv6)
    }

    /// Its driver.
    pub fn driver(&self) -> Driver {
        self.options.driver()
    }

    /// A bridge network's options, and an overlay network's local
    /// bridge's (on each host an overlay network is a bridge network
    /// routed to the other hosts).
    pub fn bridge(&self) -> Option<&BridgeOptions> {
        match &self.options {
            DriverOptions::Bridge(b) => Some(b),
            DriverOptions::Overlay(o) => Some(&o.bridge),
            _ => None,
        }
    }

    /// An overlay network's options.
    pub fn overlay(&self) -> Option<&OverlayOptions> {
        match &self.options {
            DriverOptions::Overlay(o) => Some(o),
            _ => None,
        }
    }

    /// A macvlan network's options.
    pub fn macvlan(&self) -> Option<&MacvlanOptions> {
        match &self.options {
            DriverOptions::Macvlan(m) => Some(m),
            _ => None,
        }
    }

    /// A bridge network's bridge.
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge().map(|b| b.bridge.as_str())
    }

    /// A macvlan network's parent.
    pub fn parent(&self) -> Option<&str> {
        self.macvlan().map(|m| m.parent.as_str())
    }

    /// A macvlan network's resolver address on its segment.
    pub fn dns_address(&self) -> Option<Ipv4Addr> {
        self.macvlan().and_then(|m| m.dns_address)
    }

    /// A macvlan network's resolver address on its segment over IPv6.
    pub fn dns_address6(&self) -> Option<Ipv6Addr> {
        self.macvlan().and_then(|m| m.dns_address6)
    }

    /// IPv4's gateway mode: a bridge network's; a network without NAT
    /// (macvlan) is on its segment, which no mode here describes: `nat`,
    /// whose protection has nothing to protect there.
    pub fn gateway_mode_v4(&self) -> GatewayMode {
        self.bridge().map_or(GatewayMode::Nat, |b| b.gateway_mode)
    }

    /// IPv6's gateway mode (as `gateway_mode_v4` for a network without
    /// NAT).
    pub fn gateway_mode_v6(&self) -> GatewayMode {
        self.bridge()
            .map_or(GatewayMode::Nat, BridgeOptions::gateway_mode_v6)
    }

    pub fn subnet6(&self) -> Option<Ipv6Net> {
        self.v6().map(|v| v.subnet)
    }

    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.v6().map(|v| v.gateway)
    }

    /// The same network with an IPv6 subnet (replacing any), its gateway
    /// the subnet's first address unless given.
    pub fn with_ipv6(
        mut self,
        subnet: Ipv6Net,
        gateway: Option<Ipv6Addr>,
        ip_range: Option<Ipv6Net>,
    ) -> Self {
        let subnet = subnet.trunc();
        self.subnets.retain(|s| s.subnet.addr().is_ipv4());
        self.subnets.push(Subnet::ipv6(
            subnet,
            gateway.unwrap_or_else(|| first_host6(&subnet)),
            ip_range,
        ));
        self
    }

    /// The IPv4 subnet, unless the network is IPv6-only.
    pub fn v4(&self) -> Option<V4> {
        self.subnets
            .iter()
            .find_map(Subnet::as_ipv4)
            .map(|(subnet, gateway, ip_range)| V4 {
                subnet,
                gateway,
                ip_range,
            })
    }

    /// Whether the network has an IPv4 subnet.
    pub fn has_ipv4(&self) -> bool {
        self.v4().is_some()
    }

    /// The same network with `subnet` (and its first address as gateway)
    /// as its IPv4 subnet.
    pub fn with_subnet(&self, subnet: Ipv4Net) -> Self {
        Network {
            subnets: vec![Subnet::ipv4(subnet, first_host(&subnet), None)],
            ..self.clone()
        }
    }

    pub fn default_network() -> Self {
        let subnet: Ipv4Net = DEFAULT_SUBNET.parse().expect("constant subnet parses");
        Network {
            name: DEFAULT_NETWORK.into(),
            subnets: vec![Subnet::ipv4(subnet, first_host(&subnet), None)],
            mtu: DEFAULT_MTU,
            internal: false,
            aux_addresses: BTreeMap::new(),
            dns: false,
            dns_upstreams: Vec::new(),
            dns_rate_limit: None,
            options: DriverOptions::Bridge(BridgeOptions::named(DEFAULT_BRIDGE)),
        }
    }

    /// Build and validate a network from user input.
    pub fn new(
        name: &str,
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        ip_range: Option<Ipv4Net>,
        bridge: Option<&str>,
        mtu: Option<u32>,
        internal: bool,
    ) -> Result<Self> {
        let subnet = subnet.trunc();
        let net = Network {
            subnets: vec![Subnet::ipv4(
                subnet,
                gateway.unwrap_or_else(|| first_host(&subnet)),
                ip_range,
            )],
            ..Network::without_subnets(name, bridge, mtu, internal)
        };
        net.validate()?;
        // Only for new networks: one an earlier version saved in such a
        // range must still load (to be removed, or for its containers).
        for (range, why) in UNUSABLE {
            let range: Ipv4Net = range
                .parse()
                .map_err(|_| Error::invalid("range", range, "constant"))?;
            if range.contains(&subnet.network()) || subnet.contains(&range.network()) {
                return Err(Error::invalid(
                    "subnet",
                    subnet,
                    format!("{why}: containers cannot use it"),
                ));
            }
        }
        Ok(net)
    }

    /// A network without subnets yet, for `with_ipv6` (an IPv6-only
    /// network); `validate` refuses it until it has one.
    pub fn without_subnets(
        name: &str,
        bridge: Option<&str>,
        mtu: Option<u32>,
        internal: bool,
    ) -> Self {
        Network {
            name: name.into(),
            subnets: Vec::new(),
            mtu: mtu.unwrap_or(DEFAULT_MTU),
            internal,
            aux_addresses: BTreeMap::new(),
            dns: false,
            dns_upstreams: Vec::new(),
            dns_rate_limit: None,
            options: DriverOptions::Bridge(BridgeOptions::named(
                bridge
                    .map(str::to_string)
                    .unwrap_or_else(|| bridge_name_for(name)),
            )),
        }
    }

    pub fn validate(&self) -> Result<()> {
        validate::name("network name", &self.name)?;
        match self.subnets.as_slice() {
            [] => return Err(Error::invalid("subnet", "none", "a network needs a subnet")),
            [v6] if v6.as_ipv6().is_some() => self.validate_v6(v6)?,
            [v4] | [v4, _] if v4.as_ipv4().is_none() => return Err(Error::invalid(
                "subnet",
                v4.subnet,
                "must be an IPv4 subnet with an IPv4 gateway, or an IPv6 one with an IPv6 gateway",
            )),
            [_] => {}
            [_, v6] => self.validate_v6(v6)?,
            all => {
                return Err(Error::invalid(
                    "subnets",
                    all.len(),
                    "a network has at most one IPv4 subnet (first) and one IPv6 subnet",
                ))
            }
        }
        if RESERVED.contains(&self.name.as_str()) || self.name.starts_with("container") {
            return Err(Error::invalid("network name", &self.name, "is reserved"));
        }
        self.validate_driver()?;
        if let (Some(r), false) = (self.dns_rate_limit, self.dns) {
            return Err(Error::invalid(
                "dns-rate-limit",
                r,
                "does nothing without name resolution",
            ));
        }
        for u in &self.dns_upstreams {
            let why = if !self.dns {
                Some("does nothing with --disable-dns".to_string())
            } else if !crate::validate::is_unicast_ip(*u) {
                Some("is not a unicast address".to_string())
            } else if matches!(u, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
                // It is reached only through the interface its zone names,
                // which an address here cannot carry.
                Some("is link-local: name a global or unique local address".to_string())
            } else if Some(*u) == self.resolver_address().map(IpAddr::V4)
                || Some(*u) == self.resolver_address6().map(IpAddr::V6)
            {
                Some("is the network's own resolver".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::invalid("dns-upstream", u, why));
            }
        }
        if let Some(v4) = self.v4() {
            v4.validate()?;
        }
        for (name, ip) in &self.aux_addresses {
            validate::name("aux-address name", name)?;
            let why = match *ip {
                IpAddr::V4(ip) => match self.v4() {
                    None => Some("is IPv4, and the network has no IPv4 subnet".into()),
                    Some(v4) if !v4.subnet.contains(&ip) => {
                        Some(format!("is outside the subnet {}", v4.subnet))
                    }
                    Some(v4) if ip == v4.gateway => Some("is the gateway address".into()),
                    Some(v4) if ip == v4.subnet.network() || ip == v4.subnet.broadcast() => {
                        Some("is the subnet's network or broadcast address".into())
                    }
                    Some(_) => None,
                },
                IpAddr::V6(ip) => match self.v6() {
                    None => Some("is IPv6, and the network has no IPv6 subnet".into()),
                    Some(v6) if !v6.subnet.contains(&ip) => {
                        Some(format!("is outside the subnet {}", v6.subnet))
                    }
                    Some(v6) if ip == v6.gateway => Some("is the gateway address".into()),
                    Some(v6) if ip == v6.subnet.network() => {
                        Some("is the subnet's network address".into())
                    }
                    Some(_) => None,
                },
            };
            if let Some(why) = why {
                return Err(Error::invalid("aux-address", format!("{name}={ip}"), why));
            }
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(Error::invalid(
                "mtu",
                self.mtu,
                format!("must be {MIN_MTU} to {MAX_MTU}"),
            ));
        }
        Ok(())
    }

    /// The checks of an IPv6 subnet, its gateway and its range.
    fn validate_v6(&self, s: &Subnet) -> Result<()> {
        let Some(v6) = s.as_ipv6() else {
            return Err(Error::invalid(
                "subnet",
                s.subnet,
                "the second subnet must be IPv6, with an IPv6 gateway (one subnet per family)",
            ));
        };
        let net = v6.subnet;
        if net.prefix_len() > MAX_PREFIX6 {
            return Err(Error::invalid(
                "subnet",
                net,
                format!("must be /{MAX_PREFIX6} or larger"),
            ));
        }
        if net.trunc() != net {
            return Err(Error::invalid(
                "subnet",
                net,
                "must be a network address (host bits zero)",
            ));
        }
        if let Some(why) = unusable6(&net) {
            return Err(Error::invalid(
                "subnet",
                net,
                format!("{why}: containers cannot use it"),
            ));
        }
        if !net.contains(&v6.gateway) || v6.gateway == net.network() {
            return Err(Error::invalid(
                "gateway",
                v6.gateway,
                format!("must be a host address in {net}"),
            ));
        }
        if let Some(r) = v6.ip_range {
            if r.trunc() != r || !net.contains(&r) || r.prefix_len() > MAX_PREFIX6 {
                return Err(Error::invalid(
                    "ip-range",
                    r,
                    format!("must be a network inside {net}, /{MAX_PREFIX6} or larger"),
                ));
            }
        }
        Ok(())
    }

    /// Whether IPv6 `ip` may be leased: inside the IPv6 subnet and not its
    /// subnet-router anycast (network) address, the gateway or an
    /// auxiliary address.
    pub fn assignable6(&self, ip: Ipv6Addr) -> std::result::Result<(), String> {
        let Some(v6) = self.v6() else {
            return Err(format!("network {} has no IPv6 subnet", self.name));
        };
        if !v6.subnet.contains(&ip) {
            return Err(format!("is outside the subnet {}", v6.subnet));
        }
        if ip == v6.subnet.network() {
            return Err("is the subnet's network (subnet-router anycast) address".into());
        }
        if ip == v6.gateway {
            return Err("is the gateway address".into());
        }
        if let Some((name, _)) = self
            .aux_addresses
            .iter()
            .find(|(_, a)| **a == IpAddr::V6(ip))
        {
            return Err(format!("is the network's auxiliary address {name}"));
        }
        if self.dns_address6() == Some(ip) {
            return Err("is the network's resolver address".into());
        }
        Ok(())
    }

    /// `assignable` or `assignable6`, by `ip`'s family.
    pub fn assignable_ip(&self, ip: IpAddr) -> std::result::Result<(), String> {
        match ip {
            IpAddr::V4(v4) => self.assignable(v4),
            IpAddr::V6(v6) => self.assignable6(v6),
        }
    }

    /// Whether `ip` may be leased: inside the subnet and not its network,
    /// broadcast or gateway address.
    pub fn assignable(&self, ip: Ipv4Addr) -> std::result::Result<(), String> {
        let Some(v4) = self.v4() else {
            return Err(format!("network {} has no IPv4 subnet", self.name));
        };
        if !v4.subnet.contains(&ip) {
            return Err(format!("is outside the subnet {}", v4.subnet));
        }
        if ip == v4.subnet.network() {
            return Err("is the network address".into());
        }
        if ip == v4.subnet.broadcast() {
            return Err("is the broadcast address".into());
        }
        if ip == v4.gateway {
            return Err("is the gateway address".into());
        }
        if let Some((name, _)) = self
            .aux_addresses
            .iter()
            .find(|(_, a)| **a == IpAddr::V4(ip))
        {
            return Err(format!("is the network's auxiliary address {name}"));
        }
        if self.dns_address() == Some(ip) {
            return Err("is the network's resolver address".into());
        }
        Ok(())
    }

    /// Where its containers' resolver listens over IPv4: the gateway of a
    /// bridge network, the `dns_address` of a macvlan one. None for an
    /// IPv6-only network: it has no IPv4 address to listen on (never the
    /// zero address, which would be every address of the host).
    pub fn resolver_address(&self) -> Option<Ipv4Addr> {
        match &self.options {
            DriverOptions::Bridge(_) | DriverOptions::Overlay(_) => self.v4().map(|v4| v4.gateway),
            DriverOptions::Macvlan(m) => m.dns_address,
        }
    }

    /// Where its containers' resolver listens over IPv6: a bridge
    /// network's IPv6 gateway (the bridge's address), a macvlan network's
    /// `dns_address6` on its segment. None for an IPv4-only network (and a
    /// dual-stack macvlan one saved before it had an IPv6 resolver
    /// address).
    pub fn resolver_address6(&self) -> Option<Ipv6Addr> {
        match &self.options {
            DriverOptions::Bridge(_) | DriverOptions::Overlay(_) => self.gateway6(),
            DriverOptions::Macvlan(m) => m.dns_address6,
        }
    }

    /// Every address its containers' resolver listens on: the IPv4 one
    /// first, then the IPv6 one.
    pub fn resolver_addresses(&self) -> Vec<IpAddr> {
        self.resolver_address()
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.resolver_address6().map(IpAddr::V6))
            .collect()
    }

    /// The IPv6 address a macvlan network's resolver takes when none is
    /// given: the highest of its IPv6 range that nothing else has (found
    /// within a few steps down: only the gateway and auxiliary addresses
    /// can be in the way).
    pub fn default_dns_address6(&self) -> Option<Ipv6Addr> {
        let r = self.v6()?.range();
        let hi = u128::from(r.broadcast());
        (0..=(self.aux_addresses.len() as u128 + 2))
            .filter_map(|i| hi.checked_sub(i))
            .map(Ipv6Addr::from)
            .find(|ip| r.contains(ip) && self.assignable6(*ip).is_ok())
    }

    /// The address a macvlan network's resolver takes when none is given:
    /// the highest of its range that nothing else has.
    pub fn default_dns_address(&self) -> Option<Ipv4Addr> {
        let r = self.v4()?.range();
        let (lo, hi) = (u32::from(r.network()), u32::from(r.broadcast()));
        (lo + 1..hi)
            .rev()
            .map(Ipv4Addr::from)
            .find(|ip| self.assignable(*ip).is_ok())
    }
}

fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn first_host6(net: &Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()) + 1)
}

/// Why no container network can use IPv6 `net`, if so.
fn unusable6(net: &Ipv6Net) -> Option<&'static str> {
    const RANGES: &[(&str, &str)] = &[
        ("::ffff:0:0/96", "is IPv4-mapped (::ffff:0:0/96)"),
        (
            "::/8",
            "is reserved (::/8, with the unspecified, loopback and IPv4-compatible addresses)",
        ),
        ("fe80::/10", "is link-local (fe80::/10)"),
        ("fec0::/10", "is site-local, deprecated (fec0::/10)"),
        ("ff00::/8", "is multicast (ff00::/8)"),
    ];
    RANGES.iter().find_map(|(range, why)| {
        let range: Ipv6Net = range.parse().ok()?;
        (range.contains(&net.network()) || net.contains(&range.network())).then_some(*why)
    })
}

/// The host-side name of a macvlan network's DNS shim, stable per network
/// name (the resolver finds it by this name too).
pub fn shim_name(network: &str) -> String {
    format!(
        "ocd-{:011x}",
        validate::fnv1a64(network.as_bytes()) & 0x7ff_ffff_ffff
    )
}

/// `br-` plus a stable hash of the name, like Docker's `br-<id>`, always
/// within IFNAMSIZ.
pub fn bridge_name_for(name: &str) -> String {
    format!(
        "br-{:012x}",
        validate::fnv1a64(name.as_bytes()) & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_is_valid() {
        let n = Network::default_network();
        n.validate().unwrap();
        let v4 = n.v4().unwrap();
        assert_eq!(v4.gateway, Ipv4Addr::new(10, 87, 0, 1));
        let docker: Ipv4Net = "172.17.0.0/16".parse().unwrap();
        let podman: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        assert!(!v4.subnet.contains(&docker.network()) && !docker.contains(&v4.subnet.network()));
        assert!(!v4.subnet.contains(&podman.network()) && !podman.contains(&v4.subnet.network()));
    }

    #[test]
    fn rejects_bad_networks() {
        let s: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        let cases: Vec<(Result<Network>, &str)> = vec![
            (
                Network::new("none", s, None, None, None, None, false),
                "network name",
            ),
            (
                Network::new("a/b", s, None, None, None, None, false),
                "network name",
            ),
            (
                Network::new(
                    "n",
                    s,
                    Some("10.2.0.1".parse().unwrap()),
                    None,
                    None,
                    None,
                    false,
                ),
                "gateway",
            ),
            (
                Network::new(
                    "n",
                    s,
                    Some("10.1.0.255".parse().unwrap()),
                    None,
                    None,
                    None,
                    false,
                ),
                "gateway",
            ),
            (
                Network::new(
                    "n",
                    s,
                    None,
                    Some("10.9.0.0/28".parse().unwrap()),
                    None,
                    None,
                    false,
                ),
                "ip-range",
            ),
            (
                Network::new(
                    "n",
                    s,
                    None,
                    None,
                    Some("much-too-long-bridge"),
                    None,
                    false,
                ),
                "bridge",
            ),
            (
                Network::new("n", s, None, None, None, Some(10), false),
                "mtu",
            ),
            (
                Network::new(
                    "n",
                    "10.1.0.0/31".parse().unwrap(),
                    None,
                    None,
                    None,
                    None,
                    false,
                ),
                "subnet",
            ),
        ];
        for (r, field) in cases {
            let e = r.unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid {field}")), "{e}");
        }
        for bad in [
            "224.1.0.0/16",
            "239.255.0.0/24",
            "127.5.0.0/16",
            "0.0.0.0/8",
            "255.0.0.0/8",
            "169.254.0.0/16",
        ] {
            let e = Network::new("n", bad.parse().unwrap(), None, None, None, None, false)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("invalid subnet") && e.contains("cannot use"),
                "{bad}: {e}"
            );
        }
        // ... but one an earlier version saved there still loads.
        let saved: Network = serde_json::from_str(
            r#"{"name":"old","subnet":"224.1.0.0/16","gateway":"224.1.0.1","bridge":"br-old","mtu":1500}"#,
        )
        .unwrap();
        saved.validate().unwrap();
    }

    #[test]
    fn no_masquerade_cidrs_are_networks_of_nat_bridges() {
        let s: Ipv4Net = "10.100.1.0/24".parse().unwrap();
        let mut n = Network::new("pods", s, None, None, None, None, false).unwrap();
        let set = |n: &mut Network, cidrs: &[&str]| {
            if let DriverOptions::Bridge(b) = &mut n.options {
                b.no_masquerade = cidrs.iter().map(|c| c.parse().unwrap()).collect();
            }
        };
        set(&mut n, &["10.100.0.0/16"]);
        n.validate().unwrap();
        set(&mut n, &["10.100.0.1/16"]);
        assert!(n.validate().unwrap_err().to_string().contains("host bits"));
        set(&mut n, &["10.100.0.0/16", "10.100.4.0/24"]);
        assert!(n.validate().unwrap_err().to_string().contains("overlaps"));
        set(&mut n, &["10.100.0.0/16"]);
        n.internal = true;
        assert!(n.validate().unwrap_err().to_string().contains("--internal"));
    }

    #[test]
    fn a_macvlan_resolver_address_is_free_and_never_leased() {
        let s: Ipv4Net = "192.168.5.0/24".parse().unwrap();
        let mut n = Network {
            options: DriverOptions::Macvlan(MacvlanOptions {
                parent: "eth1".into(),
                mode: MacvlanMode::Bridge,
                dns_address: None,
                dns_address6: None,
            }),
            dns: true,
            ..Network::new(
                "mv",
                s,
                Some("192.168.5.254".parse().unwrap()),
                None,
                None,
                None,
                false,
            )
            .unwrap()
        };
        n.aux_addresses
            .insert("router2".into(), "192.168.5.253".parse().unwrap());
        // Not the gateway (.254), not an aux address (.253).
        let ip = n.default_dns_address().unwrap();
        assert_eq!(ip, Ipv4Addr::new(192, 168, 5, 252));
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dns-address"));
        let opts = |n: &mut Network| match &mut n.options {
            DriverOptions::Macvlan(m) => m.clone(),
            _ => unreachable!(),
        };
        let with = |n: &mut Network, m: MacvlanOptions| n.options = DriverOptions::Macvlan(m);
        let m = opts(&mut n);
        with(
            &mut n,
            MacvlanOptions {
                dns_address: Some(ip),
                ..m
            },
        );
        n.validate().unwrap();
        assert_eq!(n.resolver_address(), Some(ip));
        assert!(n.assignable(ip).is_err());
        let m = opts(&mut n);
        with(
            &mut n,
            MacvlanOptions {
                mode: MacvlanMode::Private,
                ..m
            },
        );
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("needs mode bridge"));
        let m = opts(&mut n);
        let gw = n.v4().map(|v4| v4.gateway);
        with(
            &mut n,
            MacvlanOptions {
                mode: MacvlanMode::Bridge,
                dns_address: gw,
                ..m
            },
        );
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("is the gateway"));
        n.dns = false;
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("only applies"));
    }

    #[test]
    fn aux_addresses_are_never_assigned_and_must_be_hosts_of_the_subnet() {
        let mut n = Network::new(
            "n",
            "10.1.0.0/24".parse().unwrap(),
            None,
            None,
            None,
            None,
            false,
        )
        .unwrap();
        n.aux_addresses
            .insert("router".into(), "10.1.0.2".parse().unwrap());
        n.validate().unwrap();
        let e = n.assignable("10.1.0.2".parse().unwrap()).unwrap_err();
        assert!(e.contains("auxiliary address router"), "{e}");
        for (name, ip, why) in [
            ("far", "10.2.0.2", "outside the subnet"),
            ("gw", "10.1.0.1", "gateway"),
            ("bc", "10.1.0.255", "broadcast"),
            ("a/b", "10.1.0.9", "name \"a/b\""),
        ] {
            let mut m = n.clone();
            m.aux_addresses.insert(name.into(), ip.parse().unwrap());
            let e = m.validate().unwrap_err().to_string();
            assert!(
                e.starts_with("invalid aux-address") && e.contains(why),
                "{e}"
            );
        }
    }

    #[test]
    fn truncates_subnet_and_names_bridge() {
        let n = Network::new(
            "web",
            "10.1.0.7/24".parse().unwrap(),
            None,
            None,
            None,
            None,
            false,
        )
        .unwrap();
        let v4 = n.v4().unwrap();
        assert_eq!(v4.subnet.to_string(), "10.1.0.0/24");
        assert_eq!(v4.gateway, Ipv4Addr::new(10, 1, 0, 1));
        let br = n.bridge_name().unwrap();
        assert!(br.starts_with("br-") && br.len() == 15);
        assert!(n.assignable(v4.gateway).is_err());
        assert!(n.assignable("10.1.0.255".parse().unwrap()).is_err());
        assert!(n.assignable("10.1.0.0".parse().unwrap()).is_err());
        assert!(n.assignable("10.1.1.2".parse().unwrap()).is_err());
        assert!(n.assignable("10.1.0.2".parse().unwrap()).is_ok());
    }
}

/// Why `candidate` cannot coexist with the existing networks and the host's
/// routes (destination, device), a subnet of either family overlapping one
/// of the same family. Routes on the candidate's own bridge, or a macvlan
/// parent's segment, are the network itself, not a conflict.
pub fn find_conflict(
    candidate: &Network,
    existing: &[Network],
    routes: &[(IpNet, String)],
) -> Option<String> {
    // Until the default network is made (at the first container that
    // names no network), its subnet and bridge are held for it: taken by
    // another network, every such container would fail.
    let default = Network::default_network();
    let reserved = (!existing.iter().any(|n| n.name == DEFAULT_NETWORK)).then_some(&default);
    let mine = || candidate.subnets.iter().map(|s| s.subnet);
    for n in existing
        .iter()
        .chain(reserved)
        .filter(|n| n.name != candidate.name)
    {
        let whose = if Some(n) == reserved {
            format!("the default network {} (reserved for it)", n.name)
        } else {
            format!("network {}", n.name)
        };
        for theirs in n.subnets.iter().map(|s| s.subnet) {
            if let Some(m) = mine().find(|m| overlaps(m, &theirs)) {
                return Some(format!("subnet {m} overlaps {whose} ({theirs})"));
            }
        }
        if let Some(b) = candidate
            .bridge_name()
            .filter(|b| n.bridge_name() == Some(b))
        {
            return Some(format!("bridge {b} is already used by {whose}"));
        }
    }
    let own = |dev: &String| match &candidate.options {
        DriverOptions::Bridge(b) => dev == &b.bridge,
        DriverOptions::Overlay(o) => dev == &o.bridge.bridge || dev == &o.device(),
        DriverOptions::Macvlan(m) => dev == &m.parent,
    };
    routes
        .iter()
        .filter(|(dst, dev)| dst.prefix_len() != 0 && !own(dev))
        .find_map(|(dst, dev)| {
            mine()
                .find(|m| overlaps(m, dst))
                .map(|m| format!("subnet {m} overlaps the host route {dst} on {dev}"))
        })
}

/// Whether two networks share an address (never across families).
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first /64 of `ULA_POOL6` no network in `existing` overlaps and no
/// host route (`routes`) covers: `--ipv6` without an IPv6 subnet.
pub fn free_ula64(existing: &[Network], routes: &[(IpNet, String)]) -> Option<Ipv6Net> {
    let pool: Ipv6Net = ULA_POOL6.parse().ok()?;
    pool.subnets(64).ok()?.take(65536).find(|c| {
        let c = IpNet::V6(*c);
        !existing
            .iter()
            .flat_map(|n| n.subnets.iter())
            .any(|s| overlaps(&s.subnet, &c))
            && !routes
                .iter()
                .any(|(r, _)| r.prefix_len() != 0 && overlaps(r, &c))
    })
}

#[cfg(test)]
mod conflict_tests {
    use super::*;

    fn n(name: &str, cidr: &str, br: &str) -> Network {
        Network::new(
            name,
            cidr.parse().unwrap(),
            None,
            None,
            Some(br),
            None,
            false,
        )
        .unwrap()
    }

    #[test]
    fn conflicts() {
        let existing = vec![n("a", "10.1.0.0/16", "bra")];
        let routes = vec![
            ("0.0.0.0/0".parse().unwrap(), "eth0".to_string()),
            ("192.0.2.0/24".parse().unwrap(), "eth0".to_string()),
            ("10.9.0.0/24".parse().unwrap(), "brc".to_string()),
        ];
        let c = find_conflict(&n("b", "10.1.2.0/24", "brb"), &existing, &routes).unwrap();
        assert!(c.contains("overlaps network a (10.1.0.0/16)"), "{c}");
        let c = find_conflict(&n("b", "10.0.0.0/8", "brb"), &existing, &routes).unwrap();
        assert!(c.contains("network a"), "{c}");
        let c = find_conflict(&n("b", "192.0.2.128/25", "brb"), &existing, &routes).unwrap();
        assert!(c.contains("host route 192.0.2.0/24 on eth0"), "{c}");
        let c = find_conflict(&n("b", "10.2.0.0/24", "bra"), &existing, &routes).unwrap();
        assert!(c.contains("bridge bra"), "{c}");
        assert!(find_conflict(&n("b", "10.2.0.0/24", "brb"), &existing, &routes).is_none());
        // Its own bridge's route is no conflict.
        assert!(find_conflict(&n("c", "10.9.0.0/24", "brc"), &existing, &routes).is_none());
        // Re-checking an existing network against itself is no conflict.
        assert!(find_conflict(&existing[0], &existing, &routes).is_none());
        // The default network's subnet and bridge are held for it until it
        // exists, and then are simply its own.
        let c = find_conflict(&n("d", "10.87.5.0/24", "brd"), &existing, &routes).unwrap();
        assert!(c.contains("default network ocinet (reserved"), "{c}");
        let c = find_conflict(&n("d", "10.3.0.0/24", "ocinet0"), &existing, &routes).unwrap();
        assert!(
            c.contains("bridge ocinet0") && c.contains("reserved"),
            "{c}"
        );
        let mut with_default = existing.clone();
        with_default.push(Network::default_network());
        let c = find_conflict(&n("d", "10.87.5.0/24", "brd"), &with_default, &routes).unwrap();
        assert!(c.contains("overlaps network ocinet"), "{c}");
        assert!(find_conflict(&Network::default_network(), &existing, &routes).is_none());
    }

    #[test]
    fn conflicts_per_family() {
        let v6 = |s: &str| -> Ipv6Net { s.parse().unwrap() };
        let a = n("a", "10.1.0.0/24", "bra").with_ipv6(v6("fd00:1::/64"), None, None);
        let routes = vec![
            ("::/0".parse().unwrap(), "eth0".to_string()),
            ("fd00:9::/48".parse().unwrap(), "eth0".to_string()),
            ("fd00:7::/64".parse().unwrap(), "brc".to_string()),
        ];
        let existing = vec![a];
        let b = |v4: &str, s6: &str, br: &str| n("b", v4, br).with_ipv6(v6(s6), None, None);
        let c = find_conflict(&b("10.2.0.0/24", "fd00:1::/56", "brb"), &existing, &routes).unwrap();
        assert!(
            c.contains("subnet fd00:1::/56 overlaps network a (fd00:1::/64)"),
            "{c}"
        );
        let c = find_conflict(
            &b("10.2.0.0/24", "fd00:9:0:1::/64", "brb"),
            &existing,
            &routes,
        )
        .unwrap();
        assert!(c.contains("host route fd00:9::/48 on eth0"), "{c}");
        // The IPv6 default route, and its own bridge's route, are none.
        assert!(
            find_conflict(&b("10.2.0.0/24", "fd00:7::/64", "brc"), &existing, &routes).is_none()
        );
        // An IPv6 subnet never overlaps an IPv4 one.
        let only6 = Network::without_subnets("c", Some("brd"), None, false).with_ipv6(
            v6("fd00:2::/64"),
            None,
            None,
        );
        assert!(find_conflict(&only6, &existing, &routes).is_none());
        assert_eq!(
            free_ula64(
                &existing,
                &[("fd87:6f63:6900::/63".parse().unwrap(), "x".into())]
            ),
            Some(v6("fd87:6f63:6900:2::/64"))
        );
    }
}
