//! The checks of a network definition that belong to its driver: the
//! options only that driver's networks take, and what they need.
//! `Network::validate` runs them after the checks every network has, so
//! a definition is judged the same when it is created and whenever it is
//! read. A new driver adds its function here and its arm in `validate`.

use super::network::{GatewayMode, MacvlanMode, Network};
use crate::{validate, Error, Result};

impl Network {
    /// A bridge network: a valid bridge name, no macvlan options, nothing
    /// about the way in on an internal network.
    pub(super) fn validate_bridge(&self) -> Result<()> {
        validate::ifname("bridge", &self.bridge)?;
        // Nothing gets in or out of an internal network: options
        // about the way in would do nothing.
        if self.internal {
            if let Some(ip) = self.host_binding_ip {
                return Err(Error::invalid(
                    "host-binding-ip",
                    ip,
                    "does nothing on an --internal network: nothing is published from it",
                ));
            }
            for (field, mode) in [
                // IPv4's is named as it always was.
                ("gateway-mode", Some(self.gateway_mode)),
                ("gateway-mode-ipv6", self.gateway_mode6),
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
        if let (Some(m), None) = (self.gateway_mode6, self.v6()) {
            return Err(Error::invalid(
                "gateway-mode-ipv6",
                m.as_str(),
                "does nothing on a network without an IPv6 subnet",
            ));
        }
        if let Some(p) = &self.parent {
            return Err(Error::invalid(
                "parent",
                p,
                "only applies to --driver macvlan",
            ));
        }
        if let Some(m) = self.macvlan_mode {
            return Err(Error::invalid(
                "mode",
                m.as_str(),
                "only applies to --driver macvlan",
            ));
        }
        if let Some(ip) = self.dns_address {
            return Err(Error::invalid(
                "dns-address",
                ip,
                "only applies to macvlan networks with name resolution (a bridge network's resolver is on its gateway)",
            ));
        }
        Ok(())
    }

    /// A macvlan network: a valid parent, none of a bridge's options, and
    /// with name resolution, mode bridge and the resolver's address on
    /// the segment.
    pub(super) fn validate_macvlan(&self) -> Result<()> {
        let parent = self.parent.as_deref().ok_or_else(|| {
            Error::invalid("parent", "none", "--driver macvlan needs --parent IFNAME")
        })?;
        validate::ifname("parent", parent)?;
        let bridge_only = [
            (
                "bridge",
                (!self.bridge.is_empty()).then(|| self.bridge.clone()),
            ),
            ("internal", self.internal.then(|| "true".to_string())),
            (
                "gateway-mode",
                (self.gateway_mode != GatewayMode::Nat)
                    .then(|| self.gateway_mode.as_str().to_string()),
            ),
            (
                "gateway-mode-ipv6",
                self.gateway_mode6.map(|m| m.as_str().to_string()),
            ),
            (
                "host-binding-ip",
                self.host_binding_ip.map(|ip| ip.to_string()),
            ),
        ];
        if let Some((flag, Some(value))) = bridge_only.iter().find(|(_, v)| v.is_some()) {
            return Err(Error::invalid(
                *flag,
                value,
                "only applies to bridge networks: a macvlan network has no bridge, no NAT and no published ports",
            ));
        }
        if self.dns && !self.has_ipv4() {
            return Err(Error::invalid(
                "dns",
                "on",
                "name resolution on an IPv6-only macvlan network is not supported yet (its resolver is reached at an IPv4 address on the segment): pass --disable-dns",
            ));
        }
        if self.dns {
            let mode = self.macvlan_mode.unwrap_or_default();
            if mode != MacvlanMode::Bridge {
                return Err(Error::invalid(
                    "mode",
                    mode.as_str(),
                    "name resolution on a macvlan network needs mode bridge (the resolver reaches the containers through a bridge-mode sub-interface of the parent): pass --disable-dns",
                ));
            }
            let ip = self.dns_address.ok_or_else(|| {
                Error::invalid("dns-address", "none", "a macvlan network with name resolution needs the resolver's address on the segment")
            })?;
            // Name resolution here needs IPv4 (checked above).
            let v4 = self
                .v4()
                .ok_or_else(|| Error::invalid("dns", "on", "needs an IPv4 subnet"))?;
            let why = if !v4.subnet.contains(&ip)
                || ip == v4.subnet.network()
                || ip == v4.subnet.broadcast()
            {
                Some(format!("must be a host address in {}", v4.subnet))
            } else if ip == v4.gateway {
                Some("is the gateway address (the segment's router)".into())
            } else if let Some((name, _)) = self
                .aux_addresses
                .iter()
                .find(|(_, a)| **a == std::net::IpAddr::V4(ip))
            {
                Some(format!("is the network's auxiliary address {name}"))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::invalid("dns-address", ip, why));
            }
        } else if let Some(ip) = self.dns_address {
            return Err(Error::invalid(
                "dns-address",
                ip,
                "only applies to macvlan networks with name resolution (a bridge network's resolver is on its gateway)",
            ));
        }
        Ok(())
    }
}
