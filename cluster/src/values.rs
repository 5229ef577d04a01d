//! What the store holds, versioned and validated when read: a value
//! another host wrote is not trusted. A value of an unknown version, one
//! that does not parse, or one that contradicts its key (a block value
//! for another network, a node name that is not the key's) is refused
//! with the reason, and the caller logs and skips it.

use std::net::{IpAddr, Ipv4Addr};

use ocinet_common::model::{Driver, Network};
use ocinet_common::{validate, Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The layout of every value this release writes and reads.
pub const VERSION: u32 = 1;

/// A value too large is refused before parsing (etcd's default request
/// limit is 1.5 MiB; ours are a few hundred bytes).
const MAX_VALUE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub version: u32,
    pub node: String,
    pub advertise: Ipv4Addr,
    /// Unix seconds it joined.
    pub joined: u64,
    /// Unix seconds since its lease is gone, as another host saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub version: u32,
    pub node: String,
    pub advertise: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkValue {
    pub version: u32,
    /// The definition in the layout of the config directory's files.
    pub network: Network,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vni {
    pub version: u32,
    pub network: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub version: u32,
    pub node: String,
    pub advertise: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub version: u32,
    pub node: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub addresses: Vec<IpAddr>,
}

/// Parse `data` (the value of `key`) as a `T`, refusing another version.
pub fn parse<T: DeserializeOwned>(key: &str, data: &[u8]) -> Result<T> {
    let bad = |why: String| Error::invalid("cluster store value", key, why);
    if data.len() > MAX_VALUE {
        return Err(bad(format!(
            "is {} bytes, more than {MAX_VALUE}",
            data.len()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| bad(format!("is not JSON: {e}")))?;
    match v.get("version").and_then(|v| v.as_u64()) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => {
            return Err(bad(format!(
                "has version {n}; this release reads version {VERSION}"
            )))
        }
        None => return Err(bad("has no version".into())),
    }
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain data of our own types: serializing cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn check_node(key: &str, node: &str) -> Result<()> {
    validate::name("node", node).map_err(|e| e.context(format!("cluster store value {key}")))
}

fn check_advertise(key: &str, a: Ipv4Addr) -> Result<()> {
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
        return Err(Error::invalid(
            "cluster store value",
            key,
            format!("advertise address {a} is not a unicast address"),
        ));
    }
    Ok(())
}

impl Member {
    pub fn read(key: &str, node: &str, data: &[u8]) -> Result<Member> {
        let m: Member = parse(key, data)?;
        check_node(key, &m.node)?;
        check_advertise(key, m.advertise)?;
        if m.node != node {
            return Err(Error::invalid(
                "cluster store value",
                key,
                format!("names node {:?}", m.node),
            ));
        }
        Ok(m)
    }
}

impl Node {
    pub fn read(key: &str, node: &str, data: &[u8]) -> Result<Node> {
        let n: Node = parse(key, data)?;
        check_node(key, &n.node)?;
        check_advertise(key, n.advertise)?;
        if n.node != node {
            return Err(Error::invalid(
                "cluster store value",
                key,
                format!("names node {:?}", n.node),
            ));
        }
        Ok(n)
    }
}

impl NetworkValue {
    /// A definition, checked as a local one is (`Network`'s reading
    /// validates it), of the overlay driver and named as its key.
    pub fn read(key: &str, name: &str, data: &[u8]) -> Result<Network> {
        let v: NetworkValue = parse(key, data)?;
        let n = v.network;
        if n.name != name {
            return Err(Error::invalid(
                "cluster store value",
                key,
                format!("defines network {:?}", n.name),
            ));
        }
        if n.driver() != Driver::Overlay {
            return Err(Error::invalid(
                "cluster store value",
                key,
                format!("is a {} network, not overlay", n.driver().as_str()),
            ));
        }
        Ok(n)
    }
}

impl Block {
    pub fn read(key: &str, data: &[u8]) -> Result<Block> {
        let b: Block = parse(key, data)?;
        check_node(key, &b.node)?;
        check_advertise(key, b.advertise)?;
        Ok(b)
    }
}

impl Container {
    /// A container's entry on an IPv4-only network (`read_in`).
    pub fn read(
        key: &str,
        node: &str,
        id: &str,
        subnet: ipnet::Ipv4Net,
        data: &[u8],
    ) -> Result<Container> {
        Self::read_in(key, node, id, subnet, None, data)
    }

    /// A container's entry, its addresses inside `subnet` (and `subnet6`
    /// on a dual-stack network), one per family, and its names ones a
    /// resolver can answer.
    pub fn read_in(
        key: &str,
        node: &str,
        id: &str,
        subnet: ipnet::Ipv4Net,
        subnet6: Option<ipnet::Ipv6Net>,
        data: &[u8],
    ) -> Result<Container> {
        let c: Container = parse(key, data)?;
        let bad = |why: String| Error::invalid("cluster store value", key, why);
        if c.node != node || c.id != id {
            return Err(bad(format!(
                "names node {:?} and container {:?}",
                c.node, c.id
            )));
        }
        validate::container_id("id", &c.id).map_err(|e| e.context(key.to_string()))?;
        for n in c.name.iter().chain(&c.aliases) {
            validate::name("name", n).map_err(|e| e.context(key.to_string()))?;
        }
        if c.aliases.len() > 64 || c.addresses.is_empty() || c.addresses.len() > 2 {
            return Err(bad("has too many aliases or no address".into()));
        }
        let v4s = c.addresses.iter().filter(|a| a.is_ipv4()).count();
        if v4s > 1 || c.addresses.len() - v4s > 1 {
            return Err(bad("has more than one address of a family".into()));
        }
        for a in &c.addresses {
            match a {
                IpAddr::V4(v4) if subnet.contains(v4) => {}
                IpAddr::V6(v6) if subnet6.is_some_and(|s| s.contains(v6)) => {}
                _ => {
                    return Err(bad(format!(
                        "address {a} is not in the network's subnets ({subnet}{})",
                        subnet6.map(|s| format!(", {s}")).unwrap_or_default()
                    )))
                }
            }
        }
        Ok(c)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_refused_with_the_reason() {
        let key = "/ocinet/v1/blocks/web/10.0.0.0-24";
        let good = br#"{"version":1,"node":"h2","advertise":"10.99.0.2"}"#;
        assert_eq!(Block::read(key, good).unwrap().node, "h2");
        for (data, why) in [
            (
                &br#"{"version":2,"node":"h2","advertise":"10.99.0.2"}"#[..],
                "version 2",
            ),
            (br#"{"node":"h2","advertise":"10.99.0.2"}"#, "no version"),
            (
                br#"{"version":1,"node":"../x","advertise":"10.99.0.2"}"#,
                "node",
            ),
            (
                br#"{"version":1,"node":"h2","advertise":"127.0.0.1"}"#,
                "unicast",
            ),
            (
                br#"{"version":1,"node":"h2","advertise":"10.99.0.2","x":1}"#,
                "unknown field",
            ),
            (b"\xff\xfe", "not JSON"),
        ] {
            let e = Block::read(key, data).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(key), "{why}: {e}");
        }
        let big = vec![b' '; MAX_VALUE + 1];
        assert!(Block::read(key, &big)
            .unwrap_err()
            .to_string()
            .contains("bytes"));
    }

    #[test]
    fn a_container_entry_must_stay_in_its_network() {
        let key = "/ocinet/v1/containers/web/h2/abc";
        let subnet = "10.77.0.0/16".parse().unwrap();
        let ok = br#"{"version":1,"node":"h2","id":"abc","name":"db","aliases":["x"],"addresses":["10.77.1.2"]}"#;
        assert!(Container::read(key, "h2", "abc", subnet, ok).is_ok());
        let outside = br#"{"version":1,"node":"h2","id":"abc","addresses":["10.1.1.2"]}"#;
        assert!(Container::read(key, "h2", "abc", subnet, outside).is_err());
        let other = br#"{"version":1,"node":"h3","id":"abc","addresses":["10.77.1.2"]}"#;
        assert!(Container::read(key, "h2", "abc", subnet, other).is_err());
    }
}
