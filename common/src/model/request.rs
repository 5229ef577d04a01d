//! What a front end (the OCI hook today, a CNI plugin next) asks the core
//! for: a container and the networks it joins, validated, with the name
//! of the field each value came from so that errors can name it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::{Mode, PortSpec};

/// One network the container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRequest {
    pub network: String,
    /// Inside name; `None`: `eth<position>`, or the first free `ethN` if
    /// another attachment was given that name.
    pub interface: Option<String>,
    /// Where the name came from (annotation, CNI_IFNAME), for errors.
    pub interface_field: String,
    /// Static addresses: one per family, an IPv6 one only on a network
    /// with an IPv6 subnet (the core refuses others, naming `ip_field`).
    pub addresses: Vec<IpAddr>,
    /// Where the addresses came from (annotation or flag), for errors: the
    /// IPv4 one, and the IPv6 one (`io.ocinet.ip6`, `--ip6`).
    pub ip_field: String,
    pub ip6_field: String,
    pub mac: Option<[u8; 6]>,
    pub mac_field: String,
    pub aliases: Vec<String>,
    /// Where the aliases came from (annotation, flag, CNI capability), for
    /// errors.
    pub aliases_field: String,
    /// Narrower ranges to lease from (CNI's `ipRanges`), tried in order
    /// per family: each inside the network's subnet of its family.
    pub ranges: Vec<AddressRange>,
    /// Where they came from, for errors.
    pub ranges_field: String,
}

/// A range of addresses to lease from: `first..=last` of `subnet` (CNI's
/// `rangeStart`/`rangeEnd`, the subnet's hosts by default), and the
/// gateway the runtime expects, if it named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRange {
    pub subnet: ipnet::IpNet,
    pub first: IpAddr,
    pub last: IpAddr,
    pub gateway: Option<IpAddr>,
}

impl AttachmentRequest {
    pub fn new(network: &str) -> Self {
        AttachmentRequest {
            network: network.to_string(),
            interface: None,
            interface_field: "interface".into(),
            addresses: Vec::new(),
            ip_field: "ip".into(),
            ip6_field: "ip6".into(),
            mac: None,
            mac_field: "mac".into(),
            aliases: Vec::new(),
            aliases_field: "aliases".into(),
            ranges: Vec::new(),
            ranges_field: "ranges".into(),
        }
    }
}

/// A container's networking, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub name: String,
    /// One per network of `mode`, in order.
    pub attachments: Vec<AttachmentRequest>,
    /// Published ports: DNATed to the attachment that carries the default
    /// route (the first on a network that is not internal).
    pub ports: Vec<PortSpec>,
    /// Where the ports came from, for errors.
    pub ports_field: String,
    /// Name resolution for the container.
    pub dns: DnsRequest,
}

/// What a container asks of name resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DnsRequest {
    /// Its DNS-enabled networks' resolvers in a generated resolv.conf.
    #[default]
    Networks,
    /// As `Networks`, and these servers (either family, in the order
    /// given) tried first for other names.
    Servers(Vec<IpAddr>),
    /// Its own resolv.conf, left alone (`io.ocinet.dns=off`).
    Off,
}

/// A container to set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    /// Its init process, when the front end knows it.
    pub pid: Option<i32>,
    /// Its network namespace; `None`: it has none of its own.
    pub netns: Option<PathBuf>,
    /// `netns` was made by the runtime for this container alone (not a
    /// path it was given to join): it ends when the container does.
    pub netns_fresh: bool,
    /// Where the namespace's path came from (config.json, CNI_NETNS), for
    /// errors.
    pub netns_field: String,
    /// Its root file system as the runtime mounted it (before pivot_root,
    /// at a hook): where the generated resolv.conf goes.
    pub rootfs: Option<PathBuf>,
    pub settings: Settings,
    pub origin: super::Origin,
}

/// A network to create, as a front end read it (`network create`'s
/// flags, a CNI configuration's inline definition): what was given, with
/// what was left out left `None`, so that the network's driver decides
/// the defaults (`ocinet_core::networks::create`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkRequest {
    pub name: String,
    pub driver: super::Driver,
    /// `None`: the driver's default (a free private /24 for a bridge;
    /// refused for macvlan, whose subnet is the parent's segment).
    pub subnet: Option<ipnet::Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<ipnet::Ipv4Net>,
    /// The IPv6 subnet of a dual-stack network; with `ipv6` and no
    /// subnet, a free /64 of `network::ULA_POOL6`.
    pub subnet6: Option<ipnet::Ipv6Net>,
    pub gateway6: Option<std::net::Ipv6Addr>,
    pub ip_range6: Option<ipnet::Ipv6Net>,
    /// `--ipv6`: dual stack (implied by an IPv6 subnet).
    pub ipv6: bool,
    /// No IPv4 on the network (`--ipv4=false`, or only IPv6 subnets
    /// given): IPv6-only.
    pub ipv6_only: bool,
    pub bridge: Option<String>,
    /// `None`: 1500 for a bridge, the parent's MTU for macvlan.
    pub mtu: Option<u32>,
    pub internal: bool,
    pub gateway_mode: super::GatewayMode,
    /// IPv6's, when given apart from IPv4's (`--gateway-mode-ipv6`).
    pub gateway_mode6: Option<super::GatewayMode>,
    /// `NAME=IP` entries, as Docker's `--aux-address` takes them.
    pub aux_addresses: Vec<String>,
    /// `0.0.0.0` is the same as none.
    pub host_binding_ip: Option<Ipv4Addr>,
    pub parent: Option<String>,
    pub macvlan_mode: Option<super::MacvlanMode>,
    /// Name resolution is on unless this says so (and, on macvlan, unless
    /// the mode cannot have it and no DNS option asked for it).
    pub disable_dns: bool,
    pub dns_upstreams: Vec<IpAddr>,
    pub dns_rate_limit: Option<u32>,
    pub dns_address: Option<Ipv4Addr>,
    pub dns_address6: Option<std::net::Ipv6Addr>,
    pub no_masquerade: Vec<ipnet::Ipv4Net>,
    /// An overlay network's VXLAN network identifier (`--vni`).
    pub vni: Option<u32>,
}

impl NetworkRequest {
    /// The request with `--subnet`, `--gateway` and `--ip-range` sorted by
    /// family (each at most once per family, a gateway or range only with
    /// a subnet of its family, or with `--ipv6` for the IPv6 gateway and
    /// range of the /64 taken for it), and `--ipv4`/`--ipv6`:
    /// `--ipv4=false`, or only IPv6 subnets, make an IPv6-only network.
    pub fn with_families(
        mut self,
        subnets: &[ipnet::IpNet],
        gateways: &[IpAddr],
        ranges: &[ipnet::IpNet],
        ipv4: bool,
        ipv6: bool,
    ) -> crate::Result<Self> {
        use crate::Error;
        use ipnet::IpNet;
        fn once<T: Copy + std::fmt::Display>(
            field: &str,
            slot: &mut Option<T>,
            value: T,
            family: &str,
        ) -> crate::Result<()> {
            match slot.replace(value) {
                Some(first) => Err(Error::invalid(
                    field,
                    value,
                    format!("one {family} {field} per network ({first} given already)"),
                )),
                None => Ok(()),
            }
        }
        for s in subnets {
            match s {
                IpNet::V4(n) => once("subnet", &mut self.subnet, *n, "IPv4")?,
                IpNet::V6(n) => once("subnet", &mut self.subnet6, *n, "IPv6")?,
            }
        }
        for g in gateways {
            match g {
                IpAddr::V4(a) => once("gateway", &mut self.gateway, *a, "IPv4")?,
                IpAddr::V6(a) => once("gateway", &mut self.gateway6, *a, "IPv6")?,
            }
        }
        for r in ranges {
            match r {
                IpNet::V4(n) => once("ip-range", &mut self.ip_range, *n, "IPv4")?,
                IpNet::V6(n) => once("ip-range", &mut self.ip_range6, *n, "IPv6")?,
            }
        }
        self.ipv6 = ipv6 || self.subnet6.is_some();
        // Only IPv6 subnets given, or --ipv4=false: IPv6-only (Docker 28's
        // `--ipv4=false --ipv6`).
        self.ipv6_only = !ipv4 || (self.subnet.is_none() && self.subnet6.is_some());
        if self.ipv6_only {
            let v4 = self
                .subnet
                .map(|s| ("subnet", s.to_string()))
                .or(self.gateway.map(|g| ("gateway", g.to_string())))
                .or(self.ip_range.map(|r| ("ip-range", r.to_string())));
            if let Some((field, value)) = v4 {
                return Err(Error::invalid(
                    field,
                    value,
                    "is IPv4, and --ipv4=false asks for no IPv4",
                ));
            }
            if !self.ipv6 {
                return Err(Error::invalid(
                    "ipv4",
                    "false",
                    "leaves the network no address family: give --ipv6 or an IPv6 --subnet",
                ));
            }
        }
        if !self.ipv6 {
            let stray = self
                .gateway6
                .map(|g| ("gateway", g.to_string()))
                .or(self.ip_range6.map(|r| ("ip-range", r.to_string())));
            if let Some((field, value)) = stray {
                return Err(Error::invalid(
                    field,
                    value,
                    "is IPv6, and the network has no IPv6 subnet (give one, or --ipv6)",
                ));
            }
        }
        Ok(self)
    }

    /// The request with its gateway modes: `--gateway-mode` for every
    /// family the network has, the per-family flags over it (after
    /// `with_families`, which says whether it has IPv6). IPv6's is kept
    /// apart only when it differs from IPv4's, so that a network without
    /// IPv6 refuses only an IPv6 mode the user gave by its own flag.
    pub fn with_gateway_modes(
        mut self,
        both: Option<super::GatewayMode>,
        ipv4: Option<super::GatewayMode>,
        ipv6: Option<super::GatewayMode>,
    ) -> Self {
        self.gateway_mode = ipv4.or(both).unwrap_or_default();
        let mode6 = ipv6.or(both.filter(|_| self.ipv6));
        self.gateway_mode6 = mode6.filter(|m| *m != self.gateway_mode);
        self
    }

    /// `--dns-address`, once per family.
    pub fn with_dns_addresses(mut self, addresses: &[IpAddr]) -> crate::Result<Self> {
        for a in addresses {
            let first = match a {
                IpAddr::V4(ip) => self.dns_address.replace(*ip).map(IpAddr::V4),
                IpAddr::V6(ip) => self.dns_address6.replace(*ip).map(IpAddr::V6),
            };
            if let Some(first) = first {
                return Err(crate::Error::invalid(
                    "dns-address",
                    a,
                    format!("one per address family ({first} given already)"),
                ));
            }
        }
        Ok(self)
    }

    /// The driver options the request gives, as given (`from_flat` sorts
    /// them for its driver).
    pub fn flat_options(&self) -> super::network::FlatOptions {
        super::network::FlatOptions {
            bridge: self.bridge.clone(),
            internal: self.internal,
            gateway_mode: self.gateway_mode,
            gateway_mode6: self.gateway_mode6,
            host_binding_ip: self.host_binding_ip,
            no_masquerade: self.no_masquerade.clone(),
            parent: self.parent.clone(),
            macvlan_mode: self.macvlan_mode,
            dns_address: self.dns_address,
            dns_address6: self.dns_address6,
            vni: self.vni,
        }
    }
}
