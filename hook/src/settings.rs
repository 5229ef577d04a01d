//! Per-container settings: hook args give defaults, `io.ocinet.*`
//! annotations override them, and every value is validated here, before
//! anything touches the kernel.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ocinet_common::model::network::DEFAULT_NETWORK;
use ocinet_common::model::ports::parse_list;
use ocinet_common::model::Mode;
use ocinet_common::{validate, Error, Result};

use crate::cli::ContainerDefaults;

pub const ANN_NETWORK: &str = "io.ocinet.network";
pub const ANN_IP: &str = "io.ocinet.ip";
/// The static IPv6 address on the first network (a dual-stack one).
pub const ANN_IP6: &str = "io.ocinet.ip6";
pub const ANN_MAC: &str = "io.ocinet.mac";
pub const ANN_NAME: &str = "io.ocinet.name";
pub const ANN_PORTS: &str = "io.ocinet.ports";
pub const ANN_ALIASES: &str = "io.ocinet.aliases";
pub const ANN_DNS: &str = "io.ocinet.dns";
/// `io.ocinet.ip.<network>`: the static address on that network.
const ANN_IP_ON: &str = "io.ocinet.ip.";
/// `io.ocinet.ip6.<network>`: the static IPv6 address on that network.
const ANN_IP6_ON: &str = "io.ocinet.ip6.";
/// `io.ocinet.interface.<network>`: the inside name of the interface on
/// that network (instead of the next `ethN`).
const ANN_IF_ON: &str = "io.ocinet.interface.";
const ANN_PREFIX: &str = "io.ocinet.";
const KNOWN: &[&str] = &[
    ANN_NETWORK,
    ANN_IP,
    ANN_IP6,
    ANN_MAC,
    ANN_NAME,
    ANN_PORTS,
    ANN_ALIASES,
    ANN_DNS,
];

pub use ocinet_common::model::request::{AttachmentRequest, DnsRequest, Settings};

pub fn resolve(
    id: &str,
    annotations: &HashMap<String, String>,
    defaults: &ContainerDefaults,
) -> Result<Settings> {
    // A misspelt key would otherwise be silently ignored.
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(ANN_PREFIX))
        .collect();
    keys.sort();
    if let Some(k) = keys.into_iter().find(|k| {
        !KNOWN.contains(&k.as_str())
            && !k.starts_with(ANN_IP_ON)
            && !k.starts_with(ANN_IP6_ON)
            && !k.starts_with(ANN_IF_ON)
    }) {
        return Err(Error::invalid(
            "annotation",
            k,
            format!(
                "unknown; known are {}, {ANN_IP_ON}<network>, {ANN_IP6_ON}<network>, {ANN_IF_ON}<network>",
                KNOWN.join(", ")
            ),
        ));
    }
    // Annotation keys are case-sensitive; a key in another case would be
    // ignored without a word. Not an error: such a key may be meant for a
    // tool other than ocinet.
    let mut other_case: Vec<&String> = annotations
        .keys()
        .filter(|k| {
            !k.starts_with(ANN_PREFIX)
                && k.get(..ANN_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(ANN_PREFIX))
        })
        .collect();
    other_case.sort();
    for k in other_case {
        tracing::warn!(
            "ignoring annotation {k:?}: ocinet's keys are lower case ({})",
            k.to_ascii_lowercase()
        );
    }
    // Annotation beats hook arg; each value is reported under the name the
    // user set it by.
    let pick = |ann: &'static str,
                arg: &'static str,
                default: &Option<String>|
     -> Option<(&'static str, String)> {
        annotations
            .get(ann)
            .map(|v| (ann, v.clone()))
            .or_else(|| default.clone().map(|v| (arg, v)))
    };

    let mode = match pick(ANN_NETWORK, "--network", &defaults.network) {
        None => Mode::network(DEFAULT_NETWORK),
        Some((field, v)) => parse_mode(field, &v)?,
    };
    let ip_field = pick(ANN_IP, "--ip", &defaults.ip).map_or(ANN_IP, |(f, _)| f);
    let mac_field = pick(ANN_MAC, "--mac", &defaults.mac).map_or(ANN_MAC, |(f, _)| f);
    let ip = pick(ANN_IP, "--ip", &defaults.ip)
        .map(|(field, v)| {
            v.parse::<Ipv4Addr>()
                .map_err(|_| Error::invalid(field, &v, "not an IPv4 address"))
        })
        .transpose()?;
    let ip6 = annotations
        .get(ANN_IP6)
        .map(|v| {
            v.parse::<Ipv6Addr>()
                .map_err(|_| Error::invalid(ANN_IP6, v, "not an IPv6 address"))
        })
        .transpose()?;
    let mac = pick(ANN_MAC, "--mac", &defaults.mac)
        .map(|(field, v)| validate::mac(field, &v))
        .transpose()?;
    let name = match pick(ANN_NAME, "--name", &defaults.name) {
        Some((field, v)) => {
            validate::container_name(field, &v)?;
            v
        }
        None => id.to_string(),
    };
    // The annotation replaces the hook's --publish list as a whole.
    let (ports_field, ports_list) = match annotations.get(ANN_PORTS) {
        Some(v) => (ANN_PORTS, Some(v.clone())),
        None if !defaults.publish.is_empty() => ("--publish", Some(defaults.publish.join(","))),
        None => (ANN_PORTS, None),
    };
    let ports = match ports_list {
        Some(l) if !l.trim().is_empty() => parse_list(ports_field, &l)?,
        _ => Vec::new(),
    };
    let networks = match &mode {
        Mode::Networks(n) => n.clone(),
        _ => Vec::new(),
    };
    if networks.is_empty() {
        if let Some(p) = ports.first() {
            return Err(Error::invalid(
                ports_field,
                p,
                format!(
                    "ports can only be published on bridge networks, not {}",
                    mode.label()
                ),
            ));
        }
        if let Some(ip) = ip {
            return Err(Error::invalid(
                ip_field,
                ip,
                format!("only applies to bridge networks, not {}", mode.label()),
            ));
        }
        if let Some(ip6) = ip6 {
            return Err(Error::invalid(
                ANN_IP6,
                ip6,
                format!("only applies to bridge networks, not {}", mode.label()),
            ));
        }
        if mac.is_some() {
            return Err(Error::invalid(
                mac_field,
                validate::format_mac(&mac.unwrap_or_default()),
                format!("only applies to bridge networks, not {}", mode.label()),
            ));
        }
    }
    // Per-network addresses and interface names, each for a network of
    // the list.
    let mut ip_on: HashMap<&str, (String, Ipv4Addr)> = HashMap::new();
    for (net, k, v) in per_network(annotations, ANN_IP_ON, &networks, &mode)? {
        let addr = v
            .parse::<Ipv4Addr>()
            .map_err(|_| Error::invalid(k, v, "not an IPv4 address"))?;
        ip_on.insert(net, (k.clone(), addr));
    }
    let mut ip6_on: HashMap<&str, (String, Ipv6Addr)> = HashMap::new();
    for (net, k, v) in per_network(annotations, ANN_IP6_ON, &networks, &mode)? {
        let addr = v
            .parse::<Ipv6Addr>()
            .map_err(|_| Error::invalid(k, v, "not an IPv6 address"))?;
        ip6_on.insert(net, (k.clone(), addr));
    }
    let mut if_on: HashMap<&str, (String, String)> = HashMap::new();
    for (net, k, v) in per_network(annotations, ANN_IF_ON, &networks, &mode)? {
        validate::ifname(k, v)?;
        if let Some((other, _)) = if_on.values().find(|(_, name)| name == v) {
            return Err(Error::invalid(k, v, format!("is given by {other} too")));
        }
        if_on.insert(net, (k.clone(), v.clone()));
    }
    let attachments = networks
        .iter()
        .enumerate()
        .map(|(i, net)| {
            let (ip_field, ip) = match (ip_on.remove(net.as_str()), i) {
                (Some((k, a)), 0) if ip.is_some_and(|ip| ip != a) => {
                    return Err(Error::invalid(
                        k,
                        a,
                        format!(
                            "contradicts {ip_field}={} for the same network",
                            ip.unwrap_or(a)
                        ),
                    ))
                }
                (Some((k, a)), _) => (k, Some(a)),
                (None, 0) => (ip_field.to_string(), ip),
                (None, _) => (format!("{ANN_IP_ON}{net}"), None),
            };
            let (ip6_field, ip6) = match (ip6_on.remove(net.as_str()), i) {
                (Some((k, a)), 0) if ip6.is_some_and(|ip6| ip6 != a) => {
                    return Err(Error::invalid(
                        k,
                        a,
                        format!(
                            "contradicts {ANN_IP6}={} for the same network",
                            ip6.unwrap_or(a)
                        ),
                    ))
                }
                (Some((k, a)), _) => (k, Some(a)),
                (None, 0) => (ANN_IP6.to_string(), ip6),
                (None, _) => (format!("{ANN_IP6_ON}{net}"), None),
            };
            let (interface_field, interface) = match if_on.remove(net.as_str()) {
                Some((k, name)) => (k, Some(name)),
                None => ("interface".to_string(), None),
            };
            Ok(AttachmentRequest {
                network: net.clone(),
                interface,
                interface_field,
                addresses: ip
                    .map(std::net::IpAddr::V4)
                    .into_iter()
                    .chain(ip6.map(std::net::IpAddr::V6))
                    .collect(),
                ip_field,
                ip6_field,
                mac: if i == 0 { mac } else { None },
                mac_field: mac_field.to_string(),
                aliases: Vec::new(),
                aliases_field: ANN_ALIASES.to_string(),
                ..AttachmentRequest::new(net)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let aliases = match annotations.get(ANN_ALIASES) {
        Some(v) => parse_aliases(v, &name)?,
        None => Vec::new(),
    };
    let dns = match annotations.get(ANN_DNS).map(|v| v.trim()) {
        None | Some("") => DnsRequest::Networks,
        Some("off") => DnsRequest::Off,
        Some(v) => DnsRequest::Servers(parse_servers(v)?),
    };
    if networks.is_empty() {
        if let Some(a) = aliases.first() {
            return Err(Error::invalid(
                ANN_ALIASES,
                a,
                format!(
                    "only applies to containers on networks, not {}",
                    mode.label()
                ),
            ));
        }
    }
    let attachments = attachments
        .into_iter()
        .map(|a| AttachmentRequest {
            aliases: aliases.clone(),
            ..a
        })
        .collect();
    Ok(Settings {
        mode,
        name,
        attachments,
        ports,
        ports_field: ports_field.to_string(),
        dns,
    })
}

/// `io.ocinet.aliases`: other names of the container on each of its
/// networks (`validate::aliases`: DNS names, each once, not its own name,
/// at most `validate::MAX_ALIASES`).
fn parse_aliases(v: &str, name: &str) -> Result<Vec<String>> {
    let out: Vec<String> = v.split(',').map(|a| a.trim().to_string()).collect();
    validate::aliases(ANN_ALIASES, &out, Some(name))?;
    Ok(out)
}

/// The annotations `<prefix><network>`, sorted, each naming a network of
/// the container's list: (network, key, value).
fn per_network<'a>(
    annotations: &'a HashMap<String, String>,
    prefix: &str,
    networks: &[String],
    mode: &Mode,
) -> Result<Vec<(&'a str, &'a String, &'a String)>> {
    let mut found: Vec<(&String, &String)> = annotations
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(k, v)| {
            let net = &k[prefix.len()..];
            if !networks.iter().any(|n| n == net) {
                return Err(Error::invalid(
                    "annotation",
                    k,
                    format!(
                        "names network {net:?}, which the container is not on ({ANN_NETWORK}={})",
                        mode.label()
                    ),
                ));
            }
            Ok((net, k, v))
        })
        .collect()
}

/// `io.ocinet.dns`: servers of either family, a comma list of at most
/// three (as resolv.conf takes), tried in the order given.
fn parse_servers(v: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for s in v.split(',').map(str::trim) {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| Error::invalid(ANN_DNS, s, "not an IPv4 or IPv6 address, nor off"))?;
        if let Some(why) = validate::container_dns_server(ip) {
            return Err(Error::invalid(ANN_DNS, ip, why));
        }
        out.push(ip);
    }
    if out.len() > 3 {
        return Err(Error::invalid(ANN_DNS, v, "at most three servers"));
    }
    Ok(out)
}

fn parse_mode(field: &str, v: &str) -> Result<Mode> {
    Ok(match v {
        "none" => Mode::None,
        "host" => Mode::Host,
        _ => match v.strip_prefix("container:") {
            Some(target) => {
                validate::container_id(field, target)?;
                Mode::Container(target.to_string())
            }
            None => {
                let mut networks: Vec<String> = Vec::new();
                for n in v.split(',') {
                    validate::name(field, n)?;
                    if networks.iter().any(|m| m == n) {
                        return Err(Error::invalid(field, v, format!("names network {n} twice")));
                    }
                    networks.push(n.to_string());
                }
                Mode::Networks(networks)
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_in_another_case_are_ignored() {
        let s = resolve(
            "c1",
            &ann(&[("IO.OCINET.NETWORK", "none"), ("Io.Ocinet.Ip", "x")]),
            &ContainerDefaults::default(),
        )
        .unwrap();
        assert_eq!(s.mode, Mode::network("ocinet"));
        assert!(s.attachments[0].addresses.is_empty());
    }

    #[test]
    fn defaults_and_overrides() {
        let d = ContainerDefaults {
            network: Some("web".into()),
            ..Default::default()
        };
        let s = resolve("c1", &ann(&[]), &d).unwrap();
        assert_eq!(s.mode, Mode::network("web"));
        assert_eq!(s.name, "c1");
        let s = resolve(
            "c1",
            &ann(&[
                (ANN_NETWORK, "db"),
                (ANN_NAME, "pg-1"),
                (ANN_IP, "10.1.0.5"),
                (ANN_MAC, "02:00:00:00:00:01"),
            ]),
            &d,
        )
        .unwrap();
        assert_eq!(s.mode, Mode::network("db"));
        assert_eq!(s.name, "pg-1");
        assert_eq!(
            s.attachments[0].addresses,
            [std::net::IpAddr::V4(Ipv4Addr::new(10, 1, 0, 5))]
        );
        assert_eq!(s.attachments[0].mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            resolve("c1", &ann(&[]), &ContainerDefaults::default())
                .unwrap()
                .mode,
            Mode::network("ocinet")
        );
        assert_eq!(
            resolve("c1", &ann(&[(ANN_NETWORK, "container:abc")]), &d)
                .unwrap()
                .mode,
            Mode::Container("abc".into())
        );
        assert_eq!(
            resolve("c1", &ann(&[(ANN_NETWORK, "none")]), &d)
                .unwrap()
                .mode,
            Mode::None
        );
        assert_eq!(
            resolve("c1", &ann(&[(ANN_NETWORK, "host")]), &d)
                .unwrap()
                .mode,
            Mode::Host
        );
    }

    #[test]
    fn a_network_list_is_one_attachment_each() {
        let d = ContainerDefaults::default();
        let s = resolve(
            "c1",
            &ann(&[
                (ANN_NETWORK, "front,back,db"),
                (ANN_IP, "10.1.0.5"),
                ("io.ocinet.ip.db", "10.3.0.7"),
                (ANN_MAC, "02:00:00:00:00:01"),
            ]),
            &d,
        )
        .unwrap();
        assert_eq!(
            s.mode,
            Mode::Networks(vec!["front".into(), "back".into(), "db".into()])
        );
        let got: Vec<_> = s
            .attachments
            .iter()
            .map(|a| {
                (
                    a.network.as_str(),
                    a.addresses.first().map(|i| i.to_string()),
                    a.mac.is_some(),
                    a.ip_field.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("front", Some("10.1.0.5".to_string()), true, "io.ocinet.ip"),
                ("back", None, false, "io.ocinet.ip.back"),
                ("db", Some("10.3.0.7".to_string()), false, "io.ocinet.ip.db"),
            ]
        );
        // io.ocinet.ip.<first> agrees with io.ocinet.ip, or is refused.
        assert!(resolve(
            "c1",
            &ann(&[
                (ANN_NETWORK, "a,b"),
                (ANN_IP, "10.1.0.5"),
                ("io.ocinet.ip.a", "10.1.0.5")
            ]),
            &d
        )
        .is_ok());
        let e = resolve(
            "c1",
            &ann(&[
                (ANN_NETWORK, "a,b"),
                (ANN_IP, "10.1.0.5"),
                ("io.ocinet.ip.a", "10.1.0.6"),
            ]),
            &d,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid io.ocinet.ip.a \"10.1.0.6\": contradicts"),
            "{e}"
        );
    }

    #[test]
    fn interface_names_per_network() {
        let d = ContainerDefaults::default();
        let s = resolve(
            "c1",
            &ann(&[(ANN_NETWORK, "a,b,c"), ("io.ocinet.interface.b", "backnet")]),
            &d,
        )
        .unwrap();
        let got: Vec<(Option<&str>, &str)> = s
            .attachments
            .iter()
            .map(|a| (a.interface.as_deref(), a.interface_field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (None, "interface"),
                (Some("backnet"), "io.ocinet.interface.b"),
                (None, "interface")
            ]
        );
    }

    #[test]
    fn a_name_from_the_id_is_not_checked_and_underscores_stay_valid() {
        let d = ContainerDefaults::default();
        assert_eq!(resolve("a..b", &ann(&[]), &d).unwrap().name, "a..b");
        let s = resolve(
            "c1",
            &ann(&[(ANN_NAME, "web_1"), (ANN_ALIASES, "db, cache")]),
            &d,
        )
        .unwrap();
        assert_eq!(s.name, "web_1");
        assert_eq!(s.attachments[0].aliases, ["db", "cache"]);
        assert_eq!(s.attachments[0].aliases_field, ANN_ALIASES);
    }

    #[test]
    fn bad_values_name_the_annotation_and_value() {
        let d = ContainerDefaults::default();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ANN_NETWORK, "bad/name")], "io.ocinet.network"),
            (&[(ANN_NETWORK, "../etc")], "io.ocinet.network"),
            (&[(ANN_NETWORK, "container:")], "io.ocinet.network"),
            (&[(ANN_NETWORK, "container:a/b")], "io.ocinet.network"),
            (&[(ANN_IP, "10.1.0.300")], "io.ocinet.ip"),
            (&[(ANN_IP, "fe80::1")], "io.ocinet.ip"),
            (&[(ANN_MAC, "01:00:5e:00:00:01")], "io.ocinet.mac"),
            (&[(ANN_MAC, "nope")], "io.ocinet.mac"),
            (&[(ANN_NAME, "bad\nname")], "io.ocinet.name"),
            (&[(ANN_NAME, &"x".repeat(64))], "io.ocinet.name \"xxx"),
            (&[(ANN_NAME, "nm.")], "io.ocinet.name \"nm.\""),
            (&[(ANN_NAME, "a..b")], "io.ocinet.name \"a..b\""),
            (&[(ANN_NAME, "localhost")], "io.ocinet.name \"localhost\""),
            (&[(ANN_ALIASES, "x.")], "io.ocinet.aliases \"x.\""),
            (&[(ANN_ALIASES, "db,a..b")], "io.ocinet.aliases \"a..b\""),
            (
                &[(ANN_ALIASES, "localhost")],
                "io.ocinet.aliases \"localhost\"",
            ),
            (
                &[(ANN_ALIASES, "c1")],
                "io.ocinet.aliases \"c1\": is the container's own name",
            ),
            (&[("io.ocinet.netwrok", "web")], "annotation"),
            (&[(ANN_NETWORK, "a,a")], "io.ocinet.network"),
            (&[(ANN_NETWORK, "a,")], "io.ocinet.network"),
            (&[(ANN_NETWORK, "a,container:b")], "io.ocinet.network"),
            (
                &[(ANN_NETWORK, "a"), ("io.ocinet.ip.b", "10.0.0.1")],
                "annotation",
            ),
            (
                &[(ANN_NETWORK, "a,b"), ("io.ocinet.ip.b", "x")],
                "io.ocinet.ip.b",
            ),
            (
                &[(ANN_NETWORK, "none"), ("io.ocinet.ip.none", "10.0.0.1")],
                "annotation",
            ),
            (
                &[(ANN_NETWORK, "a"), ("io.ocinet.interface.b", "net1")],
                "annotation",
            ),
            (
                &[(ANN_NETWORK, "a"), ("io.ocinet.interface.a", "bad/name")],
                "io.ocinet.interface.a",
            ),
            (
                &[
                    (ANN_NETWORK, "a"),
                    ("io.ocinet.interface.a", &"x".repeat(16)),
                ],
                "io.ocinet.interface.a",
            ),
            (
                &[
                    (ANN_NETWORK, "a,b"),
                    ("io.ocinet.interface.a", "net1"),
                    ("io.ocinet.interface.b", "net1"),
                ],
                "io.ocinet.interface.b",
            ),
            (
                &[(ANN_NETWORK, "none"), (ANN_IP, "10.1.0.5")],
                "io.ocinet.ip",
            ),
            (&[(ANN_PORTS, "0:80")], "io.ocinet.ports"),
            (&[(ANN_PORTS, "8080:80,8080:81")], "io.ocinet.ports"),
            (
                &[(ANN_NETWORK, "host"), (ANN_PORTS, "8080:80")],
                "io.ocinet.ports",
            ),
        ];
        for (pairs, field) in cases {
            let e = resolve("c1", &ann(pairs), &d).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid {field}")), "{pairs:?}: {e}");
        }
        let e = resolve(
            "c1",
            &ann(&[]),
            &ContainerDefaults {
                ip: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("invalid --ip \"x\""), "{e}");
        let d = ContainerDefaults {
            publish: vec!["8080:80".into(), "53:53/udp".into()],
            ..Default::default()
        };
        assert_eq!(resolve("c1", &ann(&[]), &d).unwrap().ports.len(), 2);
        assert_eq!(
            resolve("c1", &ann(&[(ANN_PORTS, "9090:90")]), &d)
                .unwrap()
                .ports
                .len(),
            1
        );
        let e = resolve(
            "c1",
            &ann(&[]),
            &ContainerDefaults {
                publish: vec!["x".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("invalid --publish"), "{e}");
    }
}
