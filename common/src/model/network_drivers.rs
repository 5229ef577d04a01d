//! Each driver's own part of a network definition: its options, typed per
//! driver so that an option only one driver has cannot sit on another's
//! network, and their checks. A definition arrives flat (a front end's
//! request, or the saved file, which keeps the layout earlier releases
//! read): `DriverOptions::from_flat` sorts it, refusing what the driver
//! does not take, so a definition is judged the same when it is created
//! and whenever it is read. A new driver adds its options type here, its
//! arm in `DriverOptions` and in `from_flat`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;

use super::network::{Driver, GatewayMode, MacvlanMode, Network};
use crate::{validate, Error, Result};

/// What one driver's networks have that others do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverOptions {
    Bridge(BridgeOptions),
    Macvlan(MacvlanOptions),
    Overlay(OverlayOptions),
}

/// The UDP port VXLAN travels on between hosts (IANA's).
pub const VXLAN_PORT: u16 = 4789;

/// An overlay network's options: its local bridge on each host, and the
/// VXLAN network identifier its traffic between hosts carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayOptions {
    pub bridge: BridgeOptions,
    pub vni: u32,
}

impl OverlayOptions {
    /// The VXLAN device of the network on each host, named by its VNI so
    /// that the name is the same everywhere and at most 15 bytes.
    pub fn device(&self) -> String {
        format!("ocv{}", self.vni)
    }
}

/// A bridge network's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOptions {
    /// The Linux bridge's name.
    pub bridge: String,
    /// IPv4's gateway mode (Docker's `gateway_mode_ipv4`): masquerade,
    /// and whether hosts that route the subnet via this host reach its
    /// containers directly. Networks saved before this field are `nat`.
    pub gateway_mode: GatewayMode,
    /// IPv6's (`gateway_mode_ipv6`), when set apart from IPv4's; `None`:
    /// the same as `gateway_mode`.
    pub gateway_mode6: Option<GatewayMode>,
    /// The host address ports are published on when the mapping names none
    /// (Docker's `com.docker.network.bridge.host_binding_ipv4`); every
    /// local address when unset.
    pub host_binding_ip: Option<Ipv4Addr>,
    /// Destinations not masqueraded, whose sources also reach the
    /// containers directly (`--no-masquerade`: a cluster's pod CIDR, whose
    /// nodes route each other's pod subnets).
    pub no_masquerade: Vec<Ipv4Net>,
}

impl BridgeOptions {
    /// A bridge named `bridge`, with every other option at its default.
    pub fn named(bridge: impl Into<String>) -> Self {
        BridgeOptions {
            bridge: bridge.into(),
            gateway_mode: GatewayMode::Nat,
            gateway_mode6: None,
            host_binding_ip: None,
            no_masquerade: Vec::new(),
        }
    }

    /// IPv6's gateway mode.
    pub fn gateway_mode_v6(&self) -> GatewayMode {
        self.gateway_mode6.unwrap_or(self.gateway_mode)
    }
}

/// A macvlan network's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanOptions {
    /// The host interface the containers' sub-interfaces hang off.
    pub parent: String,
    /// How sub-interfaces of one parent reach each other. Networks saved
    /// without it are mode bridge.
    pub mode: MacvlanMode,
    /// With name resolution: the resolver's address on the parent's
    /// segment (the gateway there is someone else's router), on a
    /// bridge-mode sub-interface of the parent in the host namespace.
    /// IPAM never hands it out.
    pub dns_address: Option<Ipv4Addr>,
    /// The same over IPv6, on a network with an IPv6 subnet (networks
    /// saved before it answer over IPv4 only).
    pub dns_address6: Option<Ipv6Addr>,
}

/// A definition's driver options as a request or a saved file gives them:
/// every driver's fields side by side, each `None` (or empty) when not
/// given.
#[derive(Debug, Clone, Default)]
pub struct FlatOptions {
    pub bridge: Option<String>,
    pub internal: bool,
    pub gateway_mode: GatewayMode,
    pub gateway_mode6: Option<GatewayMode>,
    pub host_binding_ip: Option<Ipv4Addr>,
    pub no_masquerade: Vec<Ipv4Net>,
    pub parent: Option<String>,
    pub macvlan_mode: Option<MacvlanMode>,
    pub dns_address: Option<Ipv4Addr>,
    pub dns_address6: Option<Ipv6Addr>,
    pub vni: Option<u32>,
}

impl DriverOptions {
    /// `driver`'s options out of `flat`, refusing, by the flag's name, any
    /// option of another driver. `bridge` is the bridge name to take when
    /// `flat` names none (the network name's).
    pub fn from_flat(
        driver: Driver,
        flat: FlatOptions,
        bridge: impl FnOnce() -> String,
    ) -> Result<Self> {
        match driver {
            Driver::Bridge => {
                if let Some(v) = flat.vni {
                    return Err(Error::invalid("vni", v, "only applies to --driver overlay"));
                }
                let macvlan_only = [
                    ("parent", flat.parent.clone()),
                    ("mode", flat.macvlan_mode.map(|m| m.as_str().to_string())),
                ];
                if let Some((flag, Some(value))) = macvlan_only.iter().find(|(_, v)| v.is_some()) {
                    return Err(Error::invalid(
                        *flag,
                        value,
                        "only applies to --driver macvlan",
                    ));
                }
                let dns_address = flat.dns_address.map(IpAddr::V4);
                if let Some(ip) = dns_address.or(flat.dns_address6.map(IpAddr::V6)) {
                    return Err(Error::invalid(
                        "dns-address",
                        ip,
                        "only applies to macvlan networks with name resolution (a bridge network's resolver is on its gateway)",
                    ));
                }
                Ok(DriverOptions::Bridge(BridgeOptions {
                    bridge: flat.bridge.unwrap_or_else(bridge),
                    gateway_mode: flat.gateway_mode,
                    gateway_mode6: flat.gateway_mode6,
                    host_binding_ip: flat.host_binding_ip.filter(|ip| !ip.is_unspecified()),
                    no_masquerade: flat.no_masquerade,
                }))
            }
            Driver::Overlay => {
                let vni = flat.vni.ok_or_else(|| {
                    Error::invalid(
                        "vni",
                        "none",
                        "an overlay network needs a VXLAN network identifier",
                    )
                })?;
                let bridge = match DriverOptions::from_flat(
                    Driver::Bridge,
                    FlatOptions { vni: None, ..flat },
                    bridge,
                )? {
                    DriverOptions::Bridge(b) => b,
                    other => {
                        return Err(Error::invalid(
                            "driver",
                            other.driver().as_str(),
                            "is not a bridge",
                        ))
                    }
                };
                Ok(DriverOptions::Overlay(OverlayOptions { bridge, vni }))
            }
            Driver::Macvlan => {
                if let Some(v) = flat.vni {
                    return Err(Error::invalid("vni", v, "only applies to --driver overlay"));
                }
                if let Some(b) = flat.bridge.filter(|b| !b.is_empty()) {
                    return Err(Error::invalid(
                        "bridge",
                        b,
                        "only applies to bridge networks: a macvlan network has no bridge",
                    ));
                }
                let bridge_only = [
                    ("internal", flat.internal.then(|| "true".to_string())),
                    (
                        "gateway-mode",
                        (flat.gateway_mode != GatewayMode::Nat)
                            .then(|| flat.gateway_mode.as_str().to_string()),
                    ),
                    (
                        "gateway-mode-ipv6",
                        flat.gateway_mode6.map(|m| m.as_str().to_string()),
                    ),
                    (
                        "host-binding-ip",
                        flat.host_binding_ip.map(|ip| ip.to_string()),
                    ),
                ];
                if let Some((flag, Some(value))) = bridge_only.iter().find(|(_, v)| v.is_some()) {
                    return Err(Error::invalid(
                        *flag,
                        value,
                        "only applies to bridge networks: a macvlan network has no bridge, no NAT and no published ports",
                    ));
                }
                if let Some(c) = flat.no_masquerade.first() {
                    return Err(Error::invalid(
                        "no-masquerade",
                        c,
                        "only applies to bridge networks (a macvlan network has no NAT)",
                    ));
                }
                let parent = flat.parent.ok_or_else(|| {
                    Error::invalid("parent", "none", "--driver macvlan needs --parent IFNAME")
                })?;
                Ok(DriverOptions::Macvlan(MacvlanOptions {
                    parent,
                    mode: flat.macvlan_mode.unwrap_or_default(),
                    dns_address: flat.dns_address,
                    dns_address6: flat.dns_address6,
                }))
            }
        }
    }

    /// The options laid out flat again (the saved file's layout).
    pub fn to_flat(&self) -> FlatOptions {
        match self {
            DriverOptions::Bridge(b) => FlatOptions {
                bridge: Some(b.bridge.clone()),
                gateway_mode: b.gateway_mode,
                gateway_mode6: b.gateway_mode6,
                host_binding_ip: b.host_binding_ip,
                no_masquerade: b.no_masquerade.clone(),
                ..FlatOptions::default()
            },
            DriverOptions::Overlay(o) => FlatOptions {
                vni: Some(o.vni),
                ..DriverOptions::Bridge(o.bridge.clone()).to_flat()
            },
            DriverOptions::Macvlan(m) => FlatOptions {
                parent: Some(m.parent.clone()),
                macvlan_mode: Some(m.mode),
                dns_address: m.dns_address,
                dns_address6: m.dns_address6,
                ..FlatOptions::default()
            },
        }
    }

    pub fn driver(&self) -> Driver {
        match self {
            DriverOptions::Bridge(_) => Driver::Bridge,
            DriverOptions::Macvlan(_) => Driver::Macvlan,
            DriverOptions::Overlay(_) => Driver::Overlay,
        }
    }
}

impl Network {
    /// The checks of the driver's options against the rest of the
    /// definition, after the checks every network has.
    pub(super) fn validate_driver(&self) -> Result<()> {
        match &self.options {
            DriverOptions::Bridge(b) => self.validate_bridge(b),
            DriverOptions::Macvlan(m) => self.validate_macvlan(m),
            DriverOptions::Overlay(o) => self.validate_overlay(o),
        }
    }

    /// An overlay network: a bridge network (on each host) with a VNI
    /// VXLAN can carry, IPv4, and containers reached directly across
    /// hosts (so no routed gateway mode, which is about hosts outside).
    fn validate_overlay(&self, o: &OverlayOptions) -> Result<()> {
        self.validate_bridge(&o.bridge)?;
        if o.vni == 0 || o.vni > 0x00ff_ffff {
            return Err(Error::invalid(
                "vni",
                o.vni,
                "must be 1 to 16777215 (24 bits)",
            ));
        }
        let Some(v4) = self.v4() else {
            return Err(Error::invalid(
                "subnet",
                self.subnets.first().map(|s| s.subnet.to_string()).unwrap_or_default(),
                "an overlay network needs an IPv4 subnet (blocks are leased per host by their IPv4 range; give an IPv6 one beside it for dual stack)",
            ));
        };
        // Dual stack: each host's IPv4 block has the IPv6 block of the
        // same index, so the IPv6 subnet is cut as many times; a /96 or
        // larger leaves every block room.
        if let Some(v6) = self.v6() {
            if v6.subnet.prefix_len() > 96 {
                return Err(Error::invalid(
                    "subnet",
                    v6.subnet,
                    "an overlay network's IPv6 subnet must be /96 or larger: it is cut into one block per host, as the IPv4 one",
                ));
            }
            if v6.ip_range.is_some() {
                return Err(Error::invalid(
                    "ip-range",
                    v6.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    "does not apply to overlay networks: each host leases blocks of the whole subnet",
                ));
            }
        }
        if v4.subnet.prefix_len() > 28 {
            return Err(Error::invalid(
                "subnet",
                v4.subnet,
                "an overlay subnet must be /28 or larger: each host leases a block of it",
            ));
        }
        if v4.ip_range.is_some() {
            return Err(Error::invalid(
                "ip-range",
                v4.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                "does not apply to overlay networks: each host leases blocks of the whole subnet",
            ));
        }
        if o.bridge.gateway_mode != GatewayMode::Nat || o.bridge.gateway_mode6.is_some() {
            return Err(Error::invalid(
                "gateway-mode",
                o.bridge.gateway_mode.as_str(),
                "does not apply to overlay networks (containers reach each other across hosts directly, and the world through masquerade)",
            ));
        }
        Ok(())
    }

    /// A bridge network: a valid bridge name, nothing about the way in on
    /// an internal network, an IPv6 mode only with IPv6, and
    /// `--no-masquerade` ranges that are IPv4 networks, each once.
    fn validate_bridge(&self, b: &BridgeOptions) -> Result<()> {
        validate::ifname("bridge", &b.bridge)?;
        // Nothing gets in or out of an internal network: options
        // about the way in would do nothing.
        if self.internal {
            if let Some(ip) = b.host_binding_ip {
                return Err(Error::invalid(
                    "host-binding-ip",
                    ip,
                    "does nothing on an --internal network: nothing is published from it",
                ));
            }
            for (field, mode) in [
                // IPv4's is named as it always was.
                ("gateway-mode", Some(b.gateway_mode)),
                ("gateway-mode-ipv6", b.gateway_mode6),
            ] {
                if let Some(m) = mode.filter(|m| *m != GatewayMode::Nat) {
                    return Err(Error::invalid(
                        field,
                        m.as_str(),
                        "does nothing on an --internal network: nothing is routed in or out",
                    ));
                }
            }
        }
        if let (Some(m), None) = (b.gateway_mode6, self.v6()) {
            return Err(Error::invalid(
                "gateway-mode-ipv6",
                m.as_str(),
                "does nothing on a network without an IPv6 subnet",
            ));
        }
        for (i, c) in b.no_masquerade.iter().enumerate() {
            let overlaps = b.no_masquerade[..i]
                .iter()
                .find(|o| o.contains(&c.network()) || c.contains(&o.network()));
            let why = if let Some(o) = overlaps {
                // The kernel's set of ranges refuses overlapping ones.
                format!("overlaps {o}: give each range once")
            } else if !self.has_ipv4() {
                "is IPv4, and the network has no IPv4 subnet".into()
            } else if self.internal {
                "does nothing on an --internal network: nothing leaves it".into()
            } else if c.trunc() != *c {
                "must be a network address (host bits zero)".into()
            } else {
                continue;
            };
            return Err(Error::invalid("no-masquerade", c, why));
        }
        Ok(())
    }

    /// A macvlan network: a valid parent, not internal, and with name
    /// resolution, IPv4, mode bridge and the resolver's address on the
    /// segment.
    fn validate_macvlan(&self, m: &MacvlanOptions) -> Result<()> {
        validate::ifname("parent", &m.parent)?;
        if self.internal {
            return Err(Error::invalid(
                "internal",
                "true",
                "only applies to bridge networks: a macvlan network has no bridge, no NAT and no published ports",
            ));
        }
        let given = m
            .dns_address
            .map(IpAddr::V4)
            .or(m.dns_address6.map(IpAddr::V6));
        if !self.dns {
            return match given {
                Some(ip) => Err(Error::invalid(
                    "dns-address",
                    ip,
                    "only applies to macvlan networks with name resolution (a bridge network's resolver is on its gateway)",
                )),
                None => Ok(()),
            };
        }
        if m.mode != MacvlanMode::Bridge {
            return Err(Error::invalid(
                "mode",
                m.mode.as_str(),
                "name resolution on a macvlan network needs mode bridge (the resolver reaches the containers through a bridge-mode sub-interface of the parent): pass --disable-dns",
            ));
        }
        // Per family the network has: the resolver's address there, a
        // host address of the subnet nothing else has. IPv4's is needed
        // on a network with IPv4; IPv6's on an IPv6-only one (a dual-stack
        // network saved before it answers over IPv4 only).
        let why = match (self.v4(), m.dns_address) {
            (Some(_), None) => {
                return Err(Error::invalid("dns-address", "none", "a macvlan network with name resolution needs the resolver's address on the segment"))
            }
            (None, Some(ip)) => Some((IpAddr::V4(ip), "is IPv4, and the network has no IPv4 subnet".to_string())),
            (Some(v4), Some(ip)) => {
                if !v4.subnet.contains(&ip)
                    || ip == v4.subnet.network()
                    || ip == v4.subnet.broadcast()
                {
                    Some((ip.into(), format!("must be a host address in {}", v4.subnet)))
                } else if ip == v4.gateway {
                    Some((ip.into(), "is the gateway address (the segment's router)".into()))
                } else {
                    None
                }
            }
            (None, None) => None,
        };
        let why = why.or(match (self.v6(), m.dns_address6) {
            (Some(_), None) if !self.has_ipv4() => {
                return Err(Error::invalid("dns-address", "none", "an IPv6-only macvlan network with name resolution needs the resolver's IPv6 address on the segment"))
            }
            (None, Some(ip)) => Some((IpAddr::V6(ip), "is IPv6, and the network has no IPv6 subnet".to_string())),
            (Some(v6), Some(ip)) => {
                if !v6.subnet.contains(&ip) || ip == v6.subnet.network() {
                    Some((ip.into(), format!("must be a host address in {}", v6.subnet)))
                } else if ip == v6.gateway {
                    Some((ip.into(), "is the gateway address (the segment's router)".into()))
                } else {
                    None
                }
            }
            _ => None,
        });
        let why = why.or_else(|| {
            let mine = [
                m.dns_address.map(IpAddr::V4),
                m.dns_address6.map(IpAddr::V6),
            ];
            self.aux_addresses
                .iter()
                .find(|(_, a)| mine.contains(&Some(**a)))
                .map(|(name, a)| (*a, format!("is the network's auxiliary address {name}")))
        });
        match why {
            Some((ip, why)) => Err(Error::invalid("dns-address", ip, why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat() -> FlatOptions {
        FlatOptions::default()
    }

    #[test]
    fn each_driver_takes_its_own_options_and_names_another_drivers() {
        let b = DriverOptions::from_flat(Driver::Bridge, flat(), || "br-x".into()).unwrap();
        assert_eq!(b, DriverOptions::Bridge(BridgeOptions::named("br-x")));
        let m = DriverOptions::from_flat(
            Driver::Macvlan,
            FlatOptions {
                parent: Some("eth1".into()),
                ..flat()
            },
            String::new,
        )
        .unwrap();
        assert_eq!(m.driver(), Driver::Macvlan);
        // What the saved file gets back reads as the same options.
        assert_eq!(
            DriverOptions::from_flat(Driver::Macvlan, m.to_flat(), String::new).unwrap(),
            m
        );
        for (driver, f, field) in [
            (
                Driver::Bridge,
                FlatOptions {
                    parent: Some("eth1".into()),
                    ..flat()
                },
                "parent",
            ),
            (
                Driver::Bridge,
                FlatOptions {
                    macvlan_mode: Some(MacvlanMode::Vepa),
                    ..flat()
                },
                "mode",
            ),
            (
                Driver::Bridge,
                FlatOptions {
                    dns_address: Some(Ipv4Addr::new(10, 0, 0, 9)),
                    ..flat()
                },
                "dns-address",
            ),
            (
                Driver::Macvlan,
                FlatOptions {
                    parent: Some("eth1".into()),
                    host_binding_ip: Some(Ipv4Addr::new(10, 0, 0, 9)),
                    ..flat()
                },
                "host-binding-ip",
            ),
            (
                Driver::Macvlan,
                FlatOptions {
                    parent: Some("eth1".into()),
                    gateway_mode: GatewayMode::Routed,
                    ..flat()
                },
                "gateway-mode",
            ),
            (
                Driver::Macvlan,
                FlatOptions {
                    parent: Some("eth1".into()),
                    no_masquerade: vec!["10.1.0.0/16".parse().unwrap()],
                    ..flat()
                },
                "no-masquerade",
            ),
            (
                Driver::Macvlan,
                FlatOptions {
                    bridge: Some("br0".into()),
                    ..flat()
                },
                "bridge",
            ),
            (Driver::Macvlan, flat(), "parent"),
        ] {
            let e = DriverOptions::from_flat(driver, f, String::new)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("invalid {field} ")), "{field}: {e}");
        }
    }

    #[test]
    fn a_saved_definition_with_another_drivers_option_is_refused_on_reading() {
        let text = r#"{"name":"mv","subnet":"10.1.0.0/24","gateway":"10.1.0.1","bridge":"","mtu":1500,"driver":"macvlan","parent":"eth1","host_binding_ip":"10.1.0.9"}"#;
        let e = serde_json::from_str::<Network>(text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("host-binding-ip") && e.contains("10.1.0.9"),
            "{e}"
        );
        // Without it, it reads, and is written back as it was.
        let good = text.replace(r#","host_binding_ip":"10.1.0.9""#, "");
        let n: Network = serde_json::from_str(&good).unwrap();
        assert_eq!(n.parent(), Some("eth1"));
        assert_eq!(n.bridge_name(), None);
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["bridge"], "");
        assert_eq!(v["parent"], "eth1");
    }
}
