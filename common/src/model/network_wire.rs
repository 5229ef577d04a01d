//! A network definition as saved: its subnets as a list (`subnets`, the
//! layout that will carry IPv6), and 0.1.0's single IPv4 subnet beside
//! it, written too so that a downgrade still reads the network. Either
//! alone is read; both must agree.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use super::network::{
    Driver, DriverOptions, FlatOptions, GatewayMode, MacvlanMode, Network, Subnet,
};

#[derive(Serialize, Deserialize)]
pub struct NetworkWire {
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    subnets: Vec<Subnet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subnet: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip_range: Option<Ipv4Net>,
    bridge: String,
    mtu: u32,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    gateway_mode: GatewayMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway_mode6: Option<GatewayMode>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    aux_addresses: BTreeMap<String, IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_binding_ip: Option<Ipv4Addr>,
    #[serde(default)]
    driver: Driver,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    macvlan_mode: Option<MacvlanMode>,
    #[serde(default)]
    dns: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dns_upstreams: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns_rate_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns_address6: Option<std::net::Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    no_masquerade: Vec<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vni: Option<u32>,
}

impl From<Network> for NetworkWire {
    fn from(n: Network) -> Self {
        let v4 = n.v4();
        let driver = n.driver();
        let flat = n.options.to_flat();
        NetworkWire {
            subnet: v4.map(|v| v.subnet),
            gateway: v4.map(|v| v.gateway),
            ip_range: v4.and_then(|v| v.ip_range),
            subnets: n.subnets,
            name: n.name,
            // A macvlan network's is saved empty, as it always was.
            bridge: flat.bridge.unwrap_or_default(),
            mtu: n.mtu,
            internal: n.internal,
            gateway_mode: flat.gateway_mode,
            gateway_mode6: flat.gateway_mode6,
            aux_addresses: n.aux_addresses,
            host_binding_ip: flat.host_binding_ip,
            driver,
            parent: flat.parent,
            macvlan_mode: flat.macvlan_mode,
            dns: n.dns,
            dns_upstreams: n.dns_upstreams,
            dns_rate_limit: n.dns_rate_limit,
            dns_address: flat.dns_address,
            dns_address6: flat.dns_address6,
            no_masquerade: flat.no_masquerade,
            vni: flat.vni,
        }
    }
}

impl TryFrom<NetworkWire> for Network {
    type Error = String;

    fn try_from(w: NetworkWire) -> Result<Self, String> {
        let (subnet, gateway, ip_range) = match (w.subnets.as_slice(), w.subnet) {
            ([], None) => return Err("no subnet".into()),
            ([], Some(s)) => (s, w.gateway.ok_or("subnet without a gateway")?, w.ip_range),
            ([v6], None) if v6.subnet.addr().is_ipv6() => {
                // IPv6-only: no flat IPv4 fields (the previous release
                // refuses the definition, as it must: it has no IPv6).
                let w1 = NetworkWire {
                    subnets: Vec::new(),
                    subnet: Some(Ipv4Net::default()),
                    gateway: Some(Ipv4Addr::UNSPECIFIED),
                    ..w
                };
                let mut n = Network::try_from(w1)?;
                n.subnets = vec![v6.clone()];
                return Ok(n);
            }
            ([one], flat) => {
                let v4 = |n: IpNet| match n {
                    IpNet::V4(n) => Ok(n),
                    IpNet::V6(n) => Err(format!(
                        "subnets ({n}, IPv6 only) and subnet (IPv4) disagree"
                    )),
                };
                let s = v4(one.subnet)?;
                let gateway = match one.gateway {
                    Some(IpAddr::V4(g)) => g,
                    Some(IpAddr::V6(g)) => return Err(format!("gateway {g} of an IPv4 subnet")),
                    None => return Err(format!("subnet {s} without a gateway")),
                };
                let ip_range = one.ip_range.map(v4).transpose()?;
                if flat.is_some_and(|f| f != s)
                    || w.gateway.is_some_and(|g| g != gateway)
                    || (flat.is_some() && w.ip_range != ip_range)
                {
                    return Err(format!(
                        "subnets ({s}) and subnet ({}) disagree",
                        flat.map(|f| f.to_string()).unwrap_or_default()
                    ));
                }
                (s, gateway, ip_range)
            }
            ([one, v6], flat) if one.subnet.addr().is_ipv4() && v6.subnet.addr().is_ipv6() => {
                // Dual stack: the IPv4 subnet as for one, the IPv6 one as
                // saved (`Network::validate` checks it on loading).
                let w1 = NetworkWire {
                    subnets: vec![one.clone()],
                    subnet: flat,
                    ..w
                };
                let mut n = Network::try_from(w1)?;
                n.subnets.push(v6.clone());
                return Ok(n);
            }
            (more, _) => {
                return Err(format!(
                    "{} subnets: a network has one IPv4 subnet first and at most one IPv6 subnet",
                    more.len()
                ))
            }
        };
        let flat = FlatOptions {
            bridge: Some(w.bridge),
            internal: w.internal,
            gateway_mode: w.gateway_mode,
            gateway_mode6: w.gateway_mode6,
            host_binding_ip: w.host_binding_ip,
            no_masquerade: w.no_masquerade,
            parent: w.parent,
            macvlan_mode: w.macvlan_mode,
            dns_address: w.dns_address,
            dns_address6: w.dns_address6,
            vni: w.vni,
        };
        let options =
            DriverOptions::from_flat(w.driver, flat, String::new).map_err(|e| e.to_string())?;
        Ok(Network {
            name: w.name,
            subnets: vec![Subnet::ipv4(subnet, gateway, ip_range)],
            mtu: w.mtu,
            internal: w.internal,
            aux_addresses: w.aux_addresses,
            dns: w.dns,
            dns_upstreams: w.dns_upstreams,
            dns_rate_limit: w.dns_rate_limit,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_with_both_layouts_and_read_from_either() {
        let n = Network::default_network();
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["subnet"], "10.87.0.0/16");
        assert_eq!(
            v["subnets"],
            serde_json::json!([{"subnet": "10.87.0.0/16", "gateway": "10.87.0.1"}])
        );
        assert_eq!(serde_json::from_value::<Network>(v.clone()).unwrap(), n);
        let mut flat = v.clone();
        flat.as_object_mut().unwrap().remove("subnets");
        assert_eq!(serde_json::from_value::<Network>(flat).unwrap(), n);
        let mut list = v.clone();
        for k in ["subnet", "gateway"] {
            list.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(serde_json::from_value::<Network>(list).unwrap(), n);
        for (edit, why) in [
            (serde_json::json!({"subnet": "10.1.0.0/24"}), "disagree"),
            (
                serde_json::json!({"subnets": [{"subnet": "fd00::/64", "gateway": "fd00::1"}]}),
                "IPv6",
            ),
            (
                serde_json::json!({"subnets": [], "subnet": null}),
                "no subnet",
            ),
        ] {
            let mut bad = v.clone();
            for (k, x) in edit.as_object().unwrap() {
                bad[k] = x.clone();
            }
            let e = serde_json::from_value::<Network>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn a_dual_stack_network_keeps_both_subnets_and_the_flat_ipv4_one() {
        let n = Network::default_network().with_ipv6("fd00:1::/64".parse().unwrap(), None, None);
        n.validate().unwrap();
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["subnet"], "10.87.0.0/16");
        assert_eq!(v["subnets"][1]["subnet"], "fd00:1::/64");
        assert_eq!(v["subnets"][1]["gateway"], "fd00:1::1");
        assert_eq!(serde_json::from_value::<Network>(v).unwrap(), n);
    }

    #[test]
    fn an_ipv6_only_network_has_no_flat_ipv4_fields() {
        let n = Network::without_subnets("six", None, None, false).with_ipv6(
            "fd00:6::/64".parse().unwrap(),
            None,
            None,
        );
        n.validate().unwrap();
        assert!(!n.has_ipv4());
        let v = serde_json::to_value(&n).unwrap();
        assert!(
            v.get("subnet").is_none() && v.get("gateway").is_none(),
            "{v}"
        );
        assert_eq!(v["subnets"][0]["subnet"], "fd00:6::/64");
        assert_eq!(serde_json::from_value::<Network>(v).unwrap(), n);
    }

    #[test]
    fn aux_addresses_read_and_write_the_text_they_always_had() {
        // Saved when the field was IPv4 only.
        let text = r#"{"name":"n","subnet":"10.1.0.0/24","gateway":"10.1.0.1","bridge":"br-n","mtu":1500,"internal":false,"gateway_mode":"nat","aux_addresses":{"router":"10.1.0.2"},"driver":"bridge","dns":false}"#;
        let n: Network = serde_json::from_str(text).unwrap();
        assert_eq!(
            n.aux_addresses.get("router"),
            Some(&IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2)))
        );
        let again = serde_json::to_value(&n).unwrap();
        assert_eq!(
            again["aux_addresses"],
            serde_json::json!({"router": "10.1.0.2"})
        );
        let mut v6 = again.clone();
        v6["aux_addresses"]["r6"] = "fd00::2".into();
        // Read, and refused by the checks every loaded definition gets.
        let e = serde_json::from_value::<Network>(v6)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("r6=fd00::2") && e.contains("IPv6"), "{e}");
    }
}
