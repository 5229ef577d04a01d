//! The network configuration on stdin: CNI's own keys (through
//! rscni-types' `NetConf`) and ocinet's, each checked and named when
//! wrong.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "pods", "type": "ocinet",
//!  "network": "pods", "subnet": "10.90.0.0/24",   // or ["10.90.0.0/24", "fd90::/64"]
//!  "stateDir": "/run/ocinet", "configDir": "/etc/ocinet",
//!  "capabilities": {"portMappings": true, "ips": true, "mac": true, "aliases": true}}
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ocinet_common::model::{PortSpec, Protocol};
use rscni_types::error::Error as CniError;
use rscni_types::types::NetConf;
use serde_json::Value;

/// ocinet's defaults, the hook's.
pub const DEFAULT_STATE_DIR: &str = "/run/ocinet";
pub const DEFAULT_CONFIG_DIR: &str = "/etc/ocinet";

/// A network's definition given inline: made on the first ADD, and must
/// agree with a definition of the same name that exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inline {
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// A dual-stack network's IPv6 subnet and gateway: `subnet` and
    /// `gateway` take one value per family, as a list (as the CLI's
    /// repeated `--subnet` and `--gateway` do).
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    /// `ipv6: true` without an IPv6 subnet: a free /64 (`--ipv6`).
    pub ipv6: Option<bool>,
    pub bridge: Option<String>,
    pub mtu: Option<u32>,
    pub internal: Option<bool>,
    pub disable_dns: Option<bool>,
    pub dns_upstreams: Option<Vec<std::net::IpAddr>>,
    pub no_masquerade: Option<Vec<Ipv4Net>>,
}

impl Inline {
    pub fn is_empty(&self) -> bool {
        *self == Inline::default()
    }
}

/// What the runtime asks for this container (`runtimeConfig`, from the
/// capabilities the entry declares).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub ports: Vec<PortSpec>,
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address of `runtimeConfig.ips`, on a dual-stack network.
    pub ip6: Option<Ipv6Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    /// The `dns` capability: servers the resolver tries first for the
    /// container's other names (as `io.ocinet.dns`), and the search
    /// domains and options its result names.
    pub dns_servers: Vec<IpAddr>,
    pub dns_searches: Vec<String>,
    pub dns_options: Vec<String>,
    /// `dns.servers` left out, and why: logged by the verb (the log is
    /// set up only once the configuration names the state directory).
    pub dns_left_out: Vec<(std::net::IpAddr, &'static str)>,
    /// The `ipRanges` capability: where to lease from, per family.
    pub ranges: Vec<ocinet_common::model::AddressRange>,
}

#[derive(Debug, Clone)]
pub struct Conf {
    pub net: NetConf,
    /// The ocinet network attached to (`network`, else the conflist's
    /// `name`).
    pub network: String,
    pub state_dir: PathBuf,
    pub config_dir: PathBuf,
    pub inline: Inline,
    pub wanted: Wanted,
    /// GC: the attachments still valid (`cni.dev/valid-attachments`, or
    /// the spec text's `cni.dev/attachments`).
    pub valid: Option<Vec<(String, String)>>,
}

fn invalid(key: &str, value: &Value, why: &str) -> CniError {
    CniError::InvalidNetworkConfig(format!("invalid {key} {value}: {why}"))
}

fn string(custom: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match custom.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(key, v, "must be a string")),
    }
}

fn list<T: std::str::FromStr>(
    custom: &serde_json::Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<Vec<T>>, CniError> {
    match custom.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| invalid(key, v, &format!("not {what}")))
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Some),
        Some(v) => Err(invalid(key, v, "must be a list")),
    }
}

/// `key` as one value or a list of values, at most one per family (the
/// CLI's repeated `--subnet`/`--gateway`), sorted into (IPv4, IPv6).
fn per_family<T, V4, V6>(
    custom: &serde_json::Map<String, Value>,
    key: &str,
    what: &str,
    split: impl Fn(T) -> Result<V4, V6>,
) -> Result<(Option<V4>, Option<V6>), CniError>
where
    T: std::str::FromStr,
{
    let items: Vec<Value> = match custom.get(key) {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Array(items)) => items.clone(),
        Some(v) => vec![v.clone()],
    };
    let (mut v4, mut v6) = (None, None);
    for v in &items {
        let parsed: T = v
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(key, v, &format!("not {what}")))?;
        let family = match split(parsed) {
            Ok(a) => v4.replace(a).map(|_| "IPv4"),
            Err(a) => v6.replace(a).map(|_| "IPv6"),
        };
        if let Some(family) = family {
            return Err(invalid(key, v, &format!("one {family} {key} per network")));
        }
    }
    Ok((v4, v6))
}

fn flag(custom: &serde_json::Map<String, Value>, key: &str) -> Result<Option<bool>, CniError> {
    match custom.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(key, v, "must be true or false")),
    }
}

fn dir(
    custom: &serde_json::Map<String, Value>,
    key: &str,
    default: &str,
) -> Result<PathBuf, CniError> {
    let p = PathBuf::from(string(custom, key)?.unwrap_or_else(|| default.to_string()));
    if !p.is_absolute() {
        return Err(invalid(
            key,
            &Value::String(p.display().to_string()),
            "must be an absolute path",
        ));
    }
    Ok(p)
}

impl Conf {
    pub fn parse(stdin: &[u8]) -> Result<Conf, CniError> {
        let net: NetConf = serde_json::from_slice(stdin)
            .map_err(|e| CniError::FailedToDecode(format!("the network configuration: {e}")))?;
        // The spec requires it (libcni refuses a list without one); a
        // runtime that sent none is not one ocinet can name a network for.
        if net.name.is_empty() {
            return Err(CniError::InvalidNetworkConfig(
                "invalid name \"\": the network configuration must have a name (the CNI spec requires it)".into(),
            ));
        }
        let custom: serde_json::Map<String, Value> = net.custom.clone().into_iter().collect();
        let network = string(&custom, "network")?.unwrap_or_else(|| net.name.clone());
        ocinet_common::validate::name("network", &network)
            .map_err(|e| CniError::InvalidNetworkConfig(e.to_string()))?;
        let mtu = match custom.get("mtu") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| invalid("mtu", v, "not a number"))?,
            ),
        };
        let (subnet, subnet6) = per_family(&custom, "subnet", "a CIDR", |n: IpNet| match n {
            IpNet::V4(n) => Ok(n),
            IpNet::V6(n) => Err(n),
        })?;
        let (gateway, gateway6) =
            per_family(&custom, "gateway", "an IP address", |a: IpAddr| match a {
                IpAddr::V4(a) => Ok(a),
                IpAddr::V6(a) => Err(a),
            })?;
        let inline = Inline {
            subnet,
            gateway,
            subnet6,
            gateway6,
            ipv6: flag(&custom, "ipv6")?,
            bridge: string(&custom, "bridge")?,
            mtu,
            internal: flag(&custom, "internal")?,
            disable_dns: flag(&custom, "disableDns")?,
            dns_upstreams: list(&custom, "dnsUpstreams", "an IP address")?,
            no_masquerade: list(&custom, "noMasquerade", "an IPv4 CIDR")?,
        };
        let wanted = match &net.runtime_config {
            Some(rc) => wanted(rc, &network)?,
            None => Wanted::default(),
        };
        let valid = match (&net.valid_attachments, custom.get("cni.dev/attachments")) {
            (Some(v), _) => Some(
                v.iter()
                    .map(|a| (a.container_id.clone(), a.ifname.clone()))
                    .collect(),
            ),
            (None, Some(v)) => {
                let items: Vec<rscni_types::types::GcAttachment> =
                    serde_json::from_value(v.clone())
                        .map_err(|e| invalid("cni.dev/attachments", v, &e.to_string()))?;
                Some(
                    items
                        .into_iter()
                        .map(|a| (a.container_id, a.ifname))
                        .collect(),
                )
            }
            (None, None) => None,
        };
        Ok(Conf {
            state_dir: dir(&custom, "stateDir", DEFAULT_STATE_DIR)?,
            config_dir: dir(&custom, "configDir", DEFAULT_CONFIG_DIR)?,
            net,
            network,
            inline,
            wanted,
            valid,
        })
    }
}

/// An IPv6 `hostIP`, read as the hook reads `[ADDR]:H:C`: through the one
/// parser of port specs, so that both front ends take and refuse the same
/// addresses (`[::]` is every address of both families, `[::1]` is what
/// that parser says it is, an IPv4-mapped one is refused).
fn host_ip6(
    field: &str,
    value: &Value,
    written: &str,
    ip: Ipv6Addr,
    host_port: u16,
    container_port: u16,
    protocol: Protocol,
) -> Result<Option<IpAddr>, CniError> {
    // Formatted from the parsed address, never from the runtime's text:
    // nothing of it can reach the entry's other parts.
    let entry = format!("[{ip}]:{host_port}:{container_port}/{}", protocol.name());
    match ocinet_common::model::ports::parse_entry(&format!("{field}.hostIP"), &entry) {
        Ok(spec) => Ok(spec.host_ip),
        Err(ocinet_common::Error::Invalid { reason, .. }) => {
            Err(invalid(&format!("{field}.hostIP"), value, &reason))
        }
        Err(e) => Err(CniError::InvalidNetworkConfig(format!(
            "invalid {field}.hostIP {written:?}: {e}"
        ))),
    }
}

/// One range of `ipRanges` (`{"subnet", "rangeStart"?, "rangeEnd"?,
/// "gateway"?}`): the subnet's hosts by default, the start and end inside
/// it, in order, every address of one family.
fn address_range(field: &str, r: &Value) -> Result<ocinet_common::model::AddressRange, CniError> {
    use ipnet::IpNet;
    let text = |key: &str| -> Result<Option<(&Value, &str)>, CniError> {
        match r.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::String(s)) if !s.is_empty() => Ok(Some((v, s.as_str()))),
            Some(v) => Err(invalid(&format!("{field}.{key}"), v, "not a string")),
        }
    };
    let (sv, st) = text("subnet")?.ok_or_else(|| invalid(field, r, "has no subnet"))?;
    let subnet: IpNet = st
        .parse()
        .map_err(|_| invalid(&format!("{field}.subnet"), sv, "not a CIDR subnet"))?;
    if subnet.trunc() != subnet {
        return Err(invalid(
            &format!("{field}.subnet"),
            sv,
            "must be a network address (host bits zero)",
        ));
    }
    let (net_bits, last_bits) = match subnet {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    };
    let at = |bits: u128| match subnet {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
    };
    // The subnet's hosts: past the network address; IPv4's broadcast too.
    let host_last = if subnet.addr().is_ipv4() {
        last_bits.saturating_sub(1)
    } else {
        last_bits
    };
    let mut ends = [at(net_bits.saturating_add(1)), at(host_last)];
    let mut gateway = None;
    for (i, key) in ["rangeStart", "rangeEnd", "gateway"]
        .into_iter()
        .enumerate()
    {
        let Some((v, t)) = text(key)? else { continue };
        let ip: IpAddr = t
            .parse()
            .map_err(|_| invalid(&format!("{field}.{key}"), v, "not an address"))?;
        if !subnet.contains(&ip) {
            return Err(invalid(
                &format!("{field}.{key}"),
                v,
                &format!("is not inside {subnet}"),
            ));
        }
        match i {
            0 | 1 => ends[i] = ip,
            _ => gateway = Some(ip),
        }
    }
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    if bits(ends[0]) > bits(ends[1]) {
        return Err(invalid(field, r, "rangeStart is past rangeEnd"));
    }
    Ok(ocinet_common::model::AddressRange {
        subnet,
        first: ends[0],
        last: ends[1],
        gateway,
    })
}

fn wanted(rc: &rscni_types::types::RuntimeConf, network: &str) -> Result<Wanted, CniError> {
    let mut w = Wanted::default();
    for (i, p) in rc.port_mappings.iter().enumerate() {
        let field = format!("runtimeConfig.portMappings[{i}]");
        let port = |v: u32, what: &str| {
            u16::try_from(v).ok().filter(|p| *p != 0).ok_or_else(|| {
                CniError::InvalidNetworkConfig(format!("invalid {field}.{what} {v}: not a port"))
            })
        };
        let protocol = match p.protocol {
            None | Some(rscni_types::types::Protocol::Tcp) => Protocol::Tcp,
            Some(rscni_types::types::Protocol::Udp) => Protocol::Udp,
            Some(rscni_types::types::Protocol::Sctp) => {
                return Err(CniError::UnsupportedNetworkConfiguration(format!(
                    "invalid {field}.protocol \"sctp\": ocinet publishes tcp and udp"
                )))
            }
        };
        let host_port = port(p.host_port, "hostPort")?;
        let container_port = port(p.container_port, "containerPort")?;
        let host_ip = match p.custom.get("hostIP") {
            None | Some(Value::Null) => None,
            // "0.0.0.0" is every IPv4 address, as the hook's `0.0.0.0:H:C`
            // and the reference portmap plugin read it: not IPv6's.
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => match v.as_str().map(|s| (s, s.parse::<IpAddr>())) {
                Some((_, Ok(IpAddr::V4(ip)))) => Some(IpAddr::V4(ip)),
                Some((s, Ok(IpAddr::V6(ip)))) => {
                    host_ip6(&field, v, s, ip, host_port, container_port, protocol)?
                }
                _ => {
                    return Err(invalid(
                        &format!("{field}.hostIP"),
                        v,
                        "not an IPv4 or IPv6 address",
                    ))
                }
            },
        };
        w.ports.push(PortSpec {
            host_ip,
            host_port,
            count: 1,
            container_port,
            protocol,
        });
    }
    if let Some(v) = rc.custom.get("ips") {
        let items = v
            .as_array()
            .ok_or_else(|| invalid("runtimeConfig.ips", v, "must be a list"))?;
        for item in items {
            let s = item
                .as_str()
                .ok_or_else(|| invalid("runtimeConfig.ips", item, "not an address"))?;
            // With or without a prefix (the network's is used); one per
            // family, an IPv6 one for the network's IPv6 subnet (the core
            // refuses it on a network without one, naming the field).
            let addr = s.split('/').next().unwrap_or(s);
            match addr.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) if w.ip.is_none() => w.ip = Some(ip),
                Ok(IpAddr::V6(ip)) if w.ip6.is_none() => w.ip6 = Some(ip),
                Ok(IpAddr::V4(_)) => {
                    return Err(invalid(
                        "runtimeConfig.ips",
                        v,
                        "one IPv4 address per attachment",
                    ))
                }
                Ok(IpAddr::V6(_)) => {
                    return Err(invalid(
                        "runtimeConfig.ips",
                        v,
                        "one IPv6 address per attachment",
                    ))
                }
                Err(_) => return Err(invalid("runtimeConfig.ips", item, "not an address")),
            }
        }
    }
    // A range per family to lease from, as host-local reads it: range
    // sets (one per family), each a list of ranges tried in order. The
    // core checks each against the network (inside its subnet, its
    // gateway) when it is known.
    match rc.custom.get("ipRanges") {
        None | Some(Value::Null) => {}
        Some(Value::Array(sets)) => {
            for (i, set) in sets.iter().enumerate() {
                let Some(ranges) = set.as_array() else {
                    return Err(invalid(
                        "runtimeConfig.ipRanges",
                        set,
                        "not a list of ranges",
                    ));
                };
                for (j, r) in ranges.iter().enumerate() {
                    w.ranges.push(address_range(
                        &format!("runtimeConfig.ipRanges[{i}][{j}]"),
                        r,
                    )?);
                }
            }
        }
        Some(v) => {
            return Err(invalid(
                "runtimeConfig.ipRanges",
                v,
                "not a list of range sets",
            ))
        }
    }
    if let Some(d) = rc.custom.get("dns").filter(|d| !d.is_null()) {
        let strings = |key: &str| -> Result<Vec<String>, CniError> {
            match d.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => names(items, &format!("runtimeConfig.dns.{key}")),
                Some(v) => Err(invalid(
                    &format!("runtimeConfig.dns.{key}"),
                    v,
                    "must be a list",
                )),
            }
        };
        for s in strings("servers")? {
            match s.parse::<IpAddr>() {
                // The host's own addresses (a node's 127.0.0.53 or ::1),
                // link-local and non-unicast ones are not the container's
                // to use: left out (a runtime passes the node's resolv.conf
                // as it is), where `io.ocinet.dns` refuses them.
                Ok(ip) if ocinet_common::validate::container_dns_server(ip).is_some() => {
                    w.dns_left_out.push((ip, "not usable from a container"));
                }
                Ok(ip) => w.dns_servers.push(ip),
                Err(_) => {
                    return Err(invalid(
                        "runtimeConfig.dns.servers",
                        &Value::String(s),
                        "not an address",
                    ))
                }
            }
        }
        if w.dns_servers.len() > 3 {
            return Err(CniError::InvalidNetworkConfig(format!(
                "invalid runtimeConfig.dns.servers {:?}: at most three",
                w.dns_servers
            )));
        }
        w.dns_searches = strings("searches")?;
        w.dns_options = strings("options")?;
    }
    match rc.custom.get("mac") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) => w.mac = Some(m.clone()),
        Some(v) => return Err(invalid("runtimeConfig.mac", v, "must be a string")),
    }
    match rc.custom.get("aliases") {
        None | Some(Value::Null) => {}
        // The convention's list, or podman's map of network name to list.
        Some(Value::Array(items)) => w.aliases = names(items, "runtimeConfig.aliases")?,
        Some(Value::Object(by_net)) => {
            if let Some(v) = by_net.get(network) {
                let items = v
                    .as_array()
                    .ok_or_else(|| invalid("runtimeConfig.aliases", v, "must be a list"))?;
                w.aliases = names(items, "runtimeConfig.aliases")?;
            }
        }
        Some(v) => return Err(invalid("runtimeConfig.aliases", v, "must be a list")),
    }
    // The same rule as the hook's annotation and `network connect --alias`
    // (the runtime may list the container's own name: harmless).
    ocinet_common::validate::aliases("runtimeConfig.aliases", &w.aliases, None)
        .map_err(|e| CniError::InvalidNetworkConfig(e.to_string()))?;
    Ok(w)
}

fn names(items: &[Value], key: &str) -> Result<Vec<String>, CniError> {
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(key, v, "not a name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocinet_keys_and_capabilities_are_read() {
        let c = Conf::parse(
            br#"{"cniVersion":"1.0.0","name":"pods","type":"ocinet","subnet":"10.90.0.0/24",
                "stateDir":"/run/x","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
                "ips":["10.90.0.9/24"],"aliases":{"pods":["web"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.network, "pods");
        assert_eq!(c.state_dir, PathBuf::from("/run/x"));
        assert_eq!(c.config_dir, PathBuf::from(DEFAULT_CONFIG_DIR));
        assert_eq!(c.inline.subnet, Some("10.90.0.0/24".parse().unwrap()));
        assert_eq!(c.wanted.ports[0].host_port, 8080);
        assert_eq!(c.wanted.ip, Some(Ipv4Addr::new(10, 90, 0, 9)));
        assert_eq!(c.wanted.aliases, ["web"]);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (conf, key) in [
            (
                r#"{"name":"n","type":"ocinet","subnet":"nope"}"#,
                "invalid subnet",
            ),
            (
                r#"{"name":"n","type":"ocinet","stateDir":"rel"}"#,
                "invalid stateDir",
            ),
            (r#"{"name":"n","type":"ocinet","mtu":"x"}"#, "invalid mtu"),
            (
                r#"{"name":"n","type":"ocinet","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}"#,
                "hostPort 0",
            ),
            (r#"{"name":"n","type":"ocinet","network":"a/b"}"#, "network"),
        ] {
            let e = Conf::parse(conf.as_bytes()).unwrap_err();
            assert!(e.details().contains(key), "{conf}: {e:?}");
        }
        assert!(Conf::parse(b"{not json").is_err());
    }

    /// An IPv6 `hostIP` is read as the hook reads `[ADDR]:H:C`; `""` stays
    /// "every address", `0.0.0.0` every IPv4 one, an IPv4 one that
    /// address.
    #[test]
    fn host_ips_of_both_families() {
        let conf = |ip: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"ocinet","runtimeConfig":{{"portMappings":
                    [{{"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"{ip}"}}]}}}}"#
            )
        };
        let host_ip =
            |ip: &str| Conf::parse(conf(ip).as_bytes()).map(|c| c.wanted.ports[0].clone());
        for (written, want) in [
            ("", None),
            ("0.0.0.0", Some("0.0.0.0")),
            ("10.0.0.1", Some("10.0.0.1")),
            ("::", Some("::")),
            ("fd00::1", Some("fd00::1")),
            ("FD00:0::1", Some("fd00::1")),
        ] {
            let p = host_ip(written).unwrap();
            assert_eq!(p.host_ip, want.map(|w| w.parse().unwrap()), "{written}");
            assert_eq!((p.host_port, p.container_port), (8080, 80));
            assert_eq!(p.protocol, Protocol::Udp);
        }
        for (written, why) in [
            ("nope", "not an IPv4 or IPv6 address"),
            ("[fd00::1]", "not an IPv4 or IPv6 address"),
            ("fe80::1%eth0", "not an IPv4 or IPv6 address"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
        ] {
            let e = host_ip(written).unwrap_err();
            assert_eq!(u32::from(&e), 7, "{written}");
            assert!(
                e.details().contains(&format!(
                    "invalid runtimeConfig.portMappings[0].hostIP \"{written}\": "
                )) && e.details().contains(why),
                "{written}: {e:?}"
            );
        }
    }

    #[test]
    fn a_configuration_without_name_is_refused() {
        for conf in [
            r#"{"cniVersion":"1.0.0","type":"ocinet","network":"pods"}"#,
            r#"{"cniVersion":"1.0.0","name":"","type":"ocinet"}"#,
        ] {
            let e = Conf::parse(conf.as_bytes()).unwrap_err();
            assert_eq!(u32::from(&e), 7, "{conf}");
            assert!(e.details().contains("invalid name"), "{e:?}");
        }
    }

    #[test]
    fn dns_servers_left_out_are_kept_to_be_logged() {
        let c = Conf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"ocinet","runtimeConfig":{"dns":
                {"servers":["10.0.0.53","2001:db8::53","127.0.0.53","::1","fe80::1","::ffff:10.0.0.9"]}}}"#,
        )
        .unwrap();
        // Both families kept, in the order given.
        assert_eq!(
            c.wanted.dns_servers,
            [
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
                "2001:db8::53".parse::<IpAddr>().unwrap()
            ]
        );
        let left: Vec<String> = c
            .wanted
            .dns_left_out
            .iter()
            .map(|(ip, why)| format!("{ip} {why}"))
            .collect();
        assert_eq!(
            left,
            [
                "127.0.0.53 not usable from a container",
                "::1 not usable from a container",
                "fe80::1 not usable from a container",
                "::ffff:10.0.0.9 not usable from a container"
            ]
        );
        // At most three of either family, counted after those left out.
        let e = Conf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"ocinet","runtimeConfig":{"dns":
                {"servers":["10.0.0.53","2001:db8::53","10.0.0.54","fd00::53","::1"]}}}"#,
        )
        .unwrap_err();
        assert_eq!(u32::from(&e), 7);
        assert!(e.details().contains("at most three"), "{e:?}");
    }

    #[test]
    fn subnets_and_gateways_are_read_per_family() {
        let c = Conf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"ocinet",
                "subnet":["10.91.0.0/24","fd91::/64"],"gateway":["fd91::1","10.91.0.1"],
                "runtimeConfig":{"ips":["fd91::9/64","10.91.0.9"]}}"#,
        )
        .unwrap();
        assert_eq!(c.inline.subnet, Some("10.91.0.0/24".parse().unwrap()));
        assert_eq!(c.inline.subnet6, Some("fd91::/64".parse().unwrap()));
        assert_eq!(c.inline.gateway, Some(Ipv4Addr::new(10, 91, 0, 1)));
        assert_eq!(c.inline.gateway6, Some("fd91::1".parse().unwrap()));
        assert_eq!(c.wanted.ip, Some(Ipv4Addr::new(10, 91, 0, 9)));
        assert_eq!(c.wanted.ip6, Some("fd91::9".parse().unwrap()));
        // A single string is still one subnet of either family.
        let c = Conf::parse(br#"{"name":"n","type":"ocinet","subnet":"fd92::/64"}"#).unwrap();
        assert_eq!(
            (c.inline.subnet, c.inline.subnet6),
            (None, Some("fd92::/64".parse().unwrap()))
        );
    }

    #[test]
    fn two_values_of_one_family_are_refused_naming_the_key() {
        for (conf, text) in [
            (
                r#"{"name":"n","type":"ocinet","subnet":["fd1::/64","fd2::/64"]}"#,
                "invalid subnet \"fd2::/64\": one IPv6 subnet per network",
            ),
            (
                r#"{"name":"n","type":"ocinet","gateway":["10.0.0.1","10.0.0.2"]}"#,
                "invalid gateway \"10.0.0.2\": one IPv4 gateway per network",
            ),
            (
                r#"{"name":"n","type":"ocinet","subnet":["10.0.0.0/24","fd::/6x"]}"#,
                "invalid subnet \"fd::/6x\": not a CIDR",
            ),
            (
                r#"{"name":"n","type":"ocinet","runtimeConfig":{"ips":["fd::1","fd::2"]}}"#,
                "one IPv6 address per attachment",
            ),
        ] {
            let e = Conf::parse(conf.as_bytes()).unwrap_err();
            assert!(e.details().contains(text), "{conf}: {e:?}");
        }
        // An empty list asks for nothing.
        let c = Conf::parse(br#"{"name":"n","type":"ocinet","runtimeConfig":{"ipRanges":[]}}"#)
            .unwrap();
        assert!(c.wanted.ranges.is_empty());
    }

    /// `ipRanges` as host-local reads it: a range set per family, each
    /// range the subnet's hosts unless `rangeStart`/`rangeEnd` narrow it;
    /// every bad part refused naming it (code 7).
    #[test]
    fn ip_ranges_are_read_per_family_and_refused_naming_the_part() {
        let c = Conf::parse(
            br#"{"name":"n","type":"ocinet","runtimeConfig":{"ipRanges":[
                [{"subnet":"10.9.0.0/24","rangeStart":"10.9.0.100","rangeEnd":"10.9.0.110","gateway":"10.9.0.1"}],
                [{"subnet":"fd9::/64"}]]}}"#,
        )
        .unwrap();
        let r = &c.wanted.ranges;
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].first.to_string(), r[0].last.to_string()),
            ("10.9.0.100".into(), "10.9.0.110".into())
        );
        assert_eq!(r[0].gateway, Some("10.9.0.1".parse().unwrap()));
        assert_eq!(
            (r[1].first.to_string(), r[1].last.to_string()),
            ("fd9::1".into(), "fd9::ffff:ffff:ffff:ffff".into())
        );
        let c = Conf::parse(
            br#"{"name":"n","type":"ocinet","runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/30"}]]}}"#,
        )
        .unwrap();
        let r = &c.wanted.ranges[0];
        assert_eq!(
            (r.first.to_string(), r.last.to_string()),
            ("10.9.0.1".into(), "10.9.0.2".into())
        );
        for (ranges, text) in [
            (
                r#"[[{"subnet":"10.9.0.1/24"}]]"#,
                "ipRanges[0][0].subnet \"10.9.0.1/24\": must be a network address",
            ),
            (
                r#"[[{"subnet":"nope"}]]"#,
                "ipRanges[0][0].subnet \"nope\": not a CIDR",
            ),
            (r#"[[{"rangeStart":"10.9.0.1"}]]"#, "ipRanges[0][0]"),
            (
                r#"[[{"subnet":"10.9.0.0/24","rangeStart":"10.9.1.1"}]]"#,
                "rangeStart \"10.9.1.1\": is not inside 10.9.0.0/24",
            ),
            (
                r#"[[{"subnet":"10.9.0.0/24","rangeEnd":"fd::1"}]]"#,
                "rangeEnd \"fd::1\": is not inside",
            ),
            (
                r#"[[{"subnet":"10.9.0.0/24","rangeStart":"10.9.0.9","rangeEnd":"10.9.0.8"}]]"#,
                "rangeStart is past rangeEnd",
            ),
            (r#"[{"subnet":"10.9.0.0/24"}]"#, "not a list of ranges"),
            (r#"{"subnet":"10.9.0.0/24"}"#, "not a list of range sets"),
        ] {
            let conf = format!(
                r#"{{"name":"n","type":"ocinet","runtimeConfig":{{"ipRanges":{ranges}}}}}"#
            );
            let e = Conf::parse(conf.as_bytes()).unwrap_err();
            assert_eq!(u32::from(&e), 7, "{ranges}");
            assert!(e.details().contains(text), "{ranges}: {e:?}");
        }
    }
}
