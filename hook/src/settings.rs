//! Per-container settings: hook args give defaults, `io.ocinet.*`
//! annotations override them, and every value is validated here, before
//! anything touches the kernel.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ocinet_common::model::network::DEFAULT_NETWORK;
use ocinet_common::model::ports::parse_list;
use ocinet_common::model::{Mode, PortSpec};
use ocinet_common::{validate, Error, Result};

use crate::cli::ContainerDefaults;

pub const ANN_NETWORK: &str = "io.ocinet.network";
pub const ANN_IP: &str = "io.ocinet.ip";
pub const ANN_MAC: &str = "io.ocinet.mac";
pub const ANN_NAME: &str = "io.ocinet.name";
pub const ANN_PORTS: &str = "io.ocinet.ports";
const ANN_PREFIX: &str = "io.ocinet.";
const KNOWN: &[&str] = &[ANN_NETWORK, ANN_IP, ANN_MAC, ANN_NAME, ANN_PORTS];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    /// Where the MAC came from (annotation or `--mac`), for errors.
    pub mac_field: &'static str,
    pub name: String,
    pub ports: Vec<PortSpec>,
    /// Where the ports came from (annotation or `--publish`), for errors.
    pub ports_field: &'static str,
}

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
    if let Some(k) = keys.into_iter().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Error::invalid(
            "annotation",
            k,
            format!("unknown; known are {}", KNOWN.join(", ")),
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
        None => Mode::Bridge(DEFAULT_NETWORK.into()),
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
    let mac = pick(ANN_MAC, "--mac", &defaults.mac)
        .map(|(field, v)| validate::mac(field, &v))
        .transpose()?;
    let name = match pick(ANN_NAME, "--name", &defaults.name) {
        Some((field, v)) => {
            validate::name(field, &v)?;
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
    if !matches!(mode, Mode::Bridge(_)) {
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
        if mac.is_some() {
            return Err(Error::invalid(
                mac_field,
                validate::format_mac(&mac.unwrap_or_default()),
                format!("only applies to bridge networks, not {}", mode.label()),
            ));
        }
    }
    Ok(Settings {
        mode,
        ip,
        mac,
        mac_field,
        name,
        ports,
        ports_field,
    })
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
                validate::name(field, v)?;
                Mode::Bridge(v.to_string())
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
        assert_eq!(s.mode, Mode::Bridge("ocinet".into()));
        assert_eq!(s.ip, None);
    }

    #[test]
    fn defaults_and_overrides() {
        let d = ContainerDefaults {
            network: Some("web".into()),
            ..Default::default()
        };
        let s = resolve("c1", &ann(&[]), &d).unwrap();
        assert_eq!(s.mode, Mode::Bridge("web".into()));
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
        assert_eq!(s.mode, Mode::Bridge("db".into()));
        assert_eq!(s.name, "pg-1");
        assert_eq!(s.ip, Some(Ipv4Addr::new(10, 1, 0, 5)));
        assert_eq!(s.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            resolve("c1", &ann(&[]), &ContainerDefaults::default())
                .unwrap()
                .mode,
            Mode::Bridge("ocinet".into())
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
            (&[(ANN_NAME, &"x".repeat(64))], "io.ocinet.name"),
            (&[("io.ocinet.netwrok", "web")], "annotation"),
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
