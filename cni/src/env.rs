//! What the runtime puts in the environment (SPEC.md, "Parameters"), each
//! value checked where it enters, naming the variable when it is wrong.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ocinet_common::validate;
use rscni_types::error::Error as CniError;
use rscni_types::types::Cmd;

/// The invocation, as the environment gives it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Cmd,
    /// Empty for VERSION, STATUS and GC.
    pub container_id: String,
    /// Empty when not given (DEL may come without: the runtime lost it).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
}

/// `CNI_ARGS`: `K=V;K=V`, the keys ocinet uses kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `IP`: one address, or one per family separated by a comma (as the
    /// reference host-local reads it; podman 4.3 sends `--ip6` there).
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<std::net::Ipv6Addr>,
    pub mac: Option<String>,
    /// `K8S_POD_NAME` (podman sends the container's name there too): the
    /// name the container answers to in DNS.
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

impl Invocation {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
        let command: Cmd = get("CNI_COMMAND").unwrap_or_default().parse()?;
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let needs = |names: &[&str]| -> Result<(), CniError> {
            let missing: Vec<&str> = names.iter().copied().filter(|n| var(n).is_none()).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(CniError::missing_env(&missing))
            }
        };
        match command {
            Cmd::Add | Cmd::Check => needs(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?,
            Cmd::Del => needs(&["CNI_CONTAINERID", "CNI_IFNAME"])?,
            Cmd::Gc | Cmd::Status | Cmd::Version => {}
        }
        let container_id = var("CNI_CONTAINERID").unwrap_or_default();
        let ifname = var("CNI_IFNAME").unwrap_or_default();
        if matches!(command, Cmd::Add | Cmd::Check | Cmd::Del) {
            validate::container_id("CNI_CONTAINERID", &container_id)
                .map_err(|e| CniError::InvalidEnvValue(e.to_string()))?;
            validate::ifname("CNI_IFNAME", &ifname)
                .map_err(|e| CniError::InvalidEnvValue(e.to_string()))?;
        }
        // libcni asks VERSION with CNI_NETNS=dummy: only the verbs that
        // use it check it.
        let netns = var("CNI_NETNS")
            .filter(|_| matches!(command, Cmd::Add | Cmd::Check | Cmd::Del))
            .map(PathBuf::from);
        if let Some(p) = &netns {
            if !p.is_absolute() {
                return Err(CniError::InvalidEnvValue(format!(
                    "invalid CNI_NETNS {:?}: must be an absolute path",
                    p.display()
                )));
            }
        }
        let args = CniArgs::parse(&var("CNI_ARGS").unwrap_or_default())?;
        Ok(Invocation {
            command,
            container_id,
            netns,
            ifname,
            args,
        })
    }
}

impl CniArgs {
    /// Unknown keys are refused unless `IgnoreUnknown` is set, as the
    /// reference plugins do (podman and containerd set it).
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let mut pairs = BTreeMap::new();
        for part in text.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(CniError::InvalidEnvValue(format!(
                    "invalid CNI_ARGS {part:?}: not KEY=VALUE"
                )));
            };
            if v.contains('=') {
                return Err(CniError::InvalidEnvValue(format!(
                    "invalid CNI_ARGS {part:?}: not KEY=VALUE"
                )));
            }
            pairs.insert(k.to_string(), v.to_string());
        }
        let ignore_unknown = pairs
            .get("IgnoreUnknown")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
        let mut out = CniArgs::default();
        for (k, v) in pairs {
            match k.as_str() {
                "IgnoreUnknown" => {}
                "IP" => {
                    for a in v.split(',') {
                        let bad = |why: &str| {
                            CniError::InvalidEnvValue(format!("invalid CNI_ARGS IP {v:?}: {why}"))
                        };
                        match a.trim().parse::<std::net::IpAddr>() {
                            Ok(std::net::IpAddr::V4(ip)) if out.ip.is_none() => out.ip = Some(ip),
                            Ok(std::net::IpAddr::V6(ip)) if out.ip6.is_none() => out.ip6 = Some(ip),
                            Ok(_) => return Err(bad("one address per family")),
                            Err(_) => return Err(bad(&format!("{a:?} is not an IP address"))),
                        }
                    }
                }
                "MAC" => out.mac = Some(v),
                "K8S_POD_NAME" => out.pod_name = Some(v),
                "K8S_POD_NAMESPACE" => out.pod_namespace = Some(v),
                "K8S_POD_INFRA_CONTAINER_ID" | "K8S_POD_UID" => {}
                _ if ignore_unknown => {}
                _ => {
                    return Err(CniError::UnsupportedNetworkConfiguration(format!(
                        "unknown CNI_ARGS key {k:?} (set IgnoreUnknown=1 to pass it)"
                    )))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_parsed_and_unknown_keys_refused() {
        let a = CniArgs::parse("IgnoreUnknown=1;IP=10.1.0.5;K8S_POD_NAME=web;X=y").unwrap();
        assert_eq!(a.ip, Some(Ipv4Addr::new(10, 1, 0, 5)));
        assert_eq!(a.pod_name.as_deref(), Some("web"));
        assert!(CniArgs::parse("X=y").is_err());
        assert!(CniArgs::parse("IP=nope").is_err());
        let a = CniArgs::parse("IP=10.1.0.5,fd00::5").unwrap();
        assert_eq!(a.ip6, Some("fd00::5".parse().unwrap()));
        assert_eq!(CniArgs::parse("IP=fd00::5").unwrap().ip, None);
        assert!(CniArgs::parse("IP=fd00::5,fd00::6").is_err());
        assert!(CniArgs::parse("IP=10.1.0.5,").is_err());
        assert!(CniArgs::parse("novalue").is_err());
    }

    #[test]
    fn each_verb_needs_its_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(Invocation::from_env(env(&[("CNI_COMMAND", "VERSION")])).is_ok());
        let e = Invocation::from_env(env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]))
            .unwrap_err();
        assert!(e.details().contains("CNI_CONTAINERID"), "{e:?}");
        assert!(Invocation::from_env(env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0")
        ]))
        .is_ok());
        let e = Invocation::from_env(env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "way-too-long-interface"),
        ]))
        .unwrap_err();
        assert!(e.details().contains("CNI_IFNAME"), "{e:?}");
        // Names the kernel keeps or refuses: code 4, naming the value.
        for bad in [
            "all",
            "default",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "sixteen-chars-xx",
        ] {
            let e = Invocation::from_env(|k: &str| match k {
                "CNI_COMMAND" => Some("ADD".into()),
                "CNI_CONTAINERID" => Some("c1".into()),
                "CNI_NETNS" => Some("/run/netns/x".into()),
                "CNI_IFNAME" => Some(bad.into()),
                _ => None,
            })
            .unwrap_err();
            assert_eq!(u32::from(&e), 4, "{bad:?}: {e:?}");
            assert!(
                e.details().contains("CNI_IFNAME") && e.details().contains(&format!("{bad:?}")),
                "{bad:?}: {e:?}"
            );
        }
    }
}
