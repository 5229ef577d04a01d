//! Names and addresses ocinet derives for a container: stable per
//! container id or address, so a retried or restored setup finds the same.

use std::net::Ipv4Addr;

use ocinet_common::validate;

/// The inside name of a container's `n`th interface, as Docker names them.
pub fn container_ifname(n: usize) -> String {
    format!("eth{n}")
}

/// The first `ethN` none of `taken` has.
pub fn free_ifname<'a>(taken: impl Iterator<Item = &'a str> + Clone) -> String {
    (0..)
        .map(container_ifname)
        .find(|n| !taken.clone().any(|t| t == n))
        .unwrap_or_default()
}

/// Host end of a container's veth: stable per container id and inside
/// name (unique within the container), within IFNAMSIZ. `eth0`'s is the
/// id's alone, as in 0.1.0, so a retried or restored setup of a container
/// made by it finds the same name.
pub fn host_veth_name(id: &str, interface: &str) -> String {
    let key = if interface == "eth0" {
        id.to_string()
    } else {
        format!("{id}/{interface}")
    };
    format!(
        "oc{:012x}",
        validate::fnv1a64(key.as_bytes()) & 0xffff_ffff_ffff
    )
}

/// Locally administered MAC derived from the address, as Docker does, so a
/// reused address keeps its MAC and neighbours' ARP caches stay right.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x6f, o[0], o[1], o[2], o[3]]
}

/// The MAC of an IPv6-only attachment: derived from the address's last
/// four bytes under another prefix (02:6e) than IPv4's, so the two never
/// meet. A network's addresses differ in their last four bytes unless
/// its IPv6 range is wider than a /96; a wider one may derive one MAC for
/// two addresses, which the MAC owner map refuses at setup (the kernel
/// holds each MAC to one port of a bridge) rather than letting it pass.
pub fn mac_for6(ip: std::net::Ipv6Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x6e, o[12], o[13], o[14], o[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_are_stable() {
        let n = host_veth_name("c1", "eth0");
        assert_eq!(n.len(), 14);
        assert_eq!(n, host_veth_name("c1", "eth0"));
        assert_ne!(n, host_veth_name("c2", "eth0"));
        assert_ne!(n, host_veth_name("c1", "eth1"));
        validate::ifname("veth", &host_veth_name("c1", "eth1")).unwrap();
        assert_eq!(free_ifname(["eth0", "eth2"].into_iter()), "eth1");
        assert_eq!(free_ifname([].into_iter()), "eth0");
        validate::ifname("veth", &n).unwrap();
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 87, 0, 2)),
            [2, 0x6f, 10, 87, 0, 2]
        );
    }
}
