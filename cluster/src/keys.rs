//! The store's key layout (see the crate's documentation). Every name in
//! a key was validated before it got there; a key read back is parsed,
//! and one that does not parse is skipped and logged by the reader.

use ipnet::Ipv4Net;

pub const ROOT: &str = "/ocinet/v1/";

pub fn member(node: &str) -> String {
    format!("{ROOT}members/{node}")
}
pub fn members() -> String {
    format!("{ROOT}members/")
}
pub fn node(node: &str) -> String {
    format!("{ROOT}nodes/{node}")
}
pub fn nodes() -> String {
    format!("{ROOT}nodes/")
}
pub fn network(name: &str) -> String {
    format!("{ROOT}networks/{name}")
}
pub fn networks() -> String {
    format!("{ROOT}networks/")
}
pub fn vni(vni: u32) -> String {
    format!("{ROOT}vnis/{vni}")
}
pub fn vnis() -> String {
    format!("{ROOT}vnis/")
}
/// Blocks are keyed `a.b.c.d-len` (no '/' inside a key's last part).
pub fn block(network: &str, block: Ipv4Net) -> String {
    format!(
        "{ROOT}blocks/{network}/{}-{}",
        block.network(),
        block.prefix_len()
    )
}
pub fn blocks(network: &str) -> String {
    format!("{ROOT}blocks/{network}/")
}
pub fn all_blocks() -> String {
    format!("{ROOT}blocks/")
}
/// The host that last held a block (not on a lease: it outlives the
/// holder's lease, so that a host cut off past its lease, which may
/// still run containers there, is not given away by a host that never
/// saw it holding the block). Written with the block, removed with it
/// (one transaction) when the holder gives the block back, when the
/// holder leaves, or with the network (`network rm`).
pub fn held(network: &str, block: Ipv4Net) -> String {
    format!(
        "{ROOT}held/{network}/{}-{}",
        block.network(),
        block.prefix_len()
    )
}
pub fn helds(network: &str) -> String {
    format!("{ROOT}held/{network}/")
}
pub fn all_held() -> String {
    format!("{ROOT}held/")
}

/// `held/<network>/<cidr>` back into its parts.
pub fn parse_held(key: &str) -> Option<(String, Ipv4Net)> {
    let rest = key.strip_prefix(&all_held())?;
    parse_block(&format!("{}{rest}", all_blocks()))
}

pub fn container(network: &str, node: &str, id: &str) -> String {
    format!("{ROOT}containers/{network}/{node}/{id}")
}
pub fn containers(network: &str) -> String {
    format!("{ROOT}containers/{network}/")
}
pub fn all_containers() -> String {
    format!("{ROOT}containers/")
}

/// `blocks/<network>/<cidr>` back into its parts.
pub fn parse_block(key: &str) -> Option<(String, Ipv4Net)> {
    let rest = key.strip_prefix(&all_blocks())?;
    let (net, cidr) = rest.split_once('/')?;
    let (ip, len) = cidr.split_once('-')?;
    let block = Ipv4Net::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
    (block.trunc() == block && !net.is_empty()).then(|| (net.to_string(), block))
}

/// `containers/<network>/<node>/<id>` back into its parts.
pub fn parse_container(key: &str) -> Option<(String, String, String)> {
    let rest = key.strip_prefix(&all_containers())?;
    let mut parts = rest.split('/');
    let (net, node, id) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !net.is_empty() && !node.is_empty() && !id.is_empty())
        .then(|| (net.to_string(), node.to_string(), id.to_string()))
}

/// The last part of a key under `prefix`.
pub fn name_under<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let b: Ipv4Net = "10.77.3.0/24".parse().unwrap();
        assert_eq!(parse_block(&block("web", b)), Some(("web".into(), b)));
        assert_eq!(parse_block("/ocinet/v1/blocks/web/10.77.3.1-24"), None);
        assert_eq!(parse_held(&held("web", b)), Some(("web".into(), b)));
        assert_eq!(parse_block("/ocinet/v1/blocks/web/zz"), None);
        assert_eq!(
            parse_container(&container("web", "h1", "abc")),
            Some(("web".into(), "h1".into(), "abc".into()))
        );
        assert_eq!(parse_container("/ocinet/v1/containers/web/h1/a/b"), None);
        assert_eq!(name_under(&node("h1"), &nodes()), Some("h1"));
    }
}
