//! This host's membership (`ocinet cluster join`): `cluster.json` in the
//! config directory, 0600 (it names the client key).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ocinet_common::store::fsutil;
use ocinet_common::{validate, Error, Result};
use serde::{Deserialize, Serialize};

/// Seconds a host's lease lives without its agent: after this its blocks
/// and names go, and the other hosts stop routing to it.
pub const DEFAULT_TTL: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The etcd endpoints (`http://IP:2379` or `https://..`).
    pub store: Vec<String>,
    /// This host's address on the underlay: the other hosts' VXLAN
    /// traffic to it goes there.
    pub advertise: Ipv4Addr,
    /// This host's name in the cluster.
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The lease's time to live, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    DEFAULT_TTL
}

impl ClusterConfig {
    pub fn path(config_dir: &Path) -> PathBuf {
        config_dir.join("cluster.json")
    }

    /// This host's membership, if it joined.
    pub fn load(config_dir: &Path) -> Result<Option<ClusterConfig>> {
        let path = Self::path(config_dir);
        let Some(c) = fsutil::read_json::<ClusterConfig>(&path)? else {
            return Ok(None);
        };
        c.validate()
            .map_err(|e| e.context(format!("{}", path.display())))?;
        Ok(Some(c))
    }

    /// This host's membership, or the error every overlay operation gives
    /// on a host that did not join.
    pub fn required(config_dir: &Path) -> Result<ClusterConfig> {
        Self::load(config_dir)?.ok_or_else(|| {
            Error::NotFound(
                "this host is not a cluster member: run `ocinet cluster join --store URL --advertise-addr IP` first".into(),
            )
        })
    }

    pub fn save(&self, config_dir: &Path) -> Result<()> {
        fsutil::ensure_private_dir(config_dir)?;
        fsutil::write_json(
            &Self::path(config_dir),
            self,
            fsutil::Durability::Persistent,
        )
    }

    pub fn remove(config_dir: &Path) -> Result<()> {
        fsutil::remove_if_exists(&Self::path(config_dir))
    }

    /// Every field, as `join` refuses it: store URLs, the node's name,
    /// the TLS files given all together or not at all.
    pub fn validate(&self) -> Result<()> {
        if self.store.is_empty() {
            return Err(Error::invalid(
                "store",
                "",
                "give at least one etcd endpoint, e.g. http://10.0.0.1:2379",
            ));
        }
        // TLS files are all or nothing, checked before the URLs: a URL's
        // scheme is judged against a complete set.
        let tls = [
            ("--store-cacert", &self.cacert),
            ("--store-cert", &self.cert),
            ("--store-key", &self.key),
        ];
        let missing: Vec<&str> = tls
            .iter()
            .filter(|(_, f)| f.is_none())
            .map(|(flag, _)| *flag)
            .collect();
        if let Some((flag, Some(p))) = tls.iter().find(|(_, f)| f.is_some()) {
            if !missing.is_empty() {
                return Err(Error::invalid(
                    flag.trim_start_matches("--"),
                    p.display(),
                    format!(
                        "TLS to the store needs --store-cacert, --store-cert and --store-key together: {} missing",
                        missing.join(" and ")
                    ),
                ));
            }
        }
        for url in &self.store {
            check_url(url, missing.is_empty())?;
        }
        validate::name("node", &self.node)?;
        if self.node.len() > 63 {
            return Err(Error::invalid(
                "node",
                &self.node,
                "must be at most 63 characters",
            ));
        }
        let a = self.advertise;
        if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
            return Err(Error::invalid(
                "advertise-addr",
                a,
                "must be this host's unicast address on the network the other hosts reach it on",
            ));
        }
        if !(5..=3600).contains(&self.ttl) {
            return Err(Error::invalid("ttl", self.ttl, "must be 5 to 3600 seconds"));
        }
        Ok(())
    }
}

/// `http://HOST:PORT` (or https with TLS files): what etcd's client takes,
/// nothing else (no path, no user, no query).
fn check_url(url: &str, tls: bool) -> Result<()> {
    let bad = |why: &str| Error::invalid("store", url, why.to_string());
    let rest = if let Some(r) = url.strip_prefix("http://") {
        if tls {
            return Err(bad("is http://, but TLS files were given: use https://"));
        }
        r
    } else if let Some(r) = url.strip_prefix("https://") {
        if !tls {
            return Err(bad(
                "is https://: give --store-cacert, --store-cert and --store-key",
            ));
        }
        r
    } else {
        return Err(bad("must be http://HOST:PORT or https://HOST:PORT"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("must name a port, e.g. :2379"))?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if !port_ok {
        return Err(bad("must name a port 1-65535, e.g. :2379"));
    }
    if !host_ok {
        return Err(bad("must name a host: an IP address or a DNS name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ClusterConfig {
        ClusterConfig {
            store: vec![url.into()],
            advertise: Ipv4Addr::new(10, 99, 0, 1),
            node: "h1".into(),
            cacert: None,
            cert: None,
            key: None,
            ttl: DEFAULT_TTL,
        }
    }

    #[test]
    fn store_urls_are_checked() {
        assert!(cfg("http://10.99.0.254:2379").validate().is_ok());
        assert!(cfg("http://etcd.example:2379/").validate().is_ok());
        for bad in [
            "10.0.0.1:2379",
            "http://10.0.0.1",
            "http://10.0.0.1:0",
            "http://10.0.0.1:99999",
            "ftp://10.0.0.1:2379",
            "https://10.0.0.1:2379",
            "http://a b:2379",
            "http://:2379",
        ] {
            let e = cfg(bad).validate().unwrap_err().to_string();
            assert!(e.contains("invalid store") && e.contains(bad), "{bad}: {e}");
        }
        let mut c = cfg("http://10.0.0.1:2379");
        c.advertise = Ipv4Addr::LOCALHOST;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("advertise-addr"));
        c = cfg("https://10.0.0.1:2379");
        c.cacert = Some("/ca.pem".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("store-cacert") && e.contains("--store-cert and --store-key missing"),
            "{e}"
        );
        c = cfg("https://10.0.0.1:2379");
        c.cert = Some("/c.pem".into());
        c.key = Some("/k.pem".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("store-cert") && e.contains("--store-cacert missing"),
            "{e}"
        );
    }
}
