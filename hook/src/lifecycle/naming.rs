//! Names and addresses ocinet derives for a container: stable per
//! container id or address, so a retried or restored setup finds the same.

use std::net::Ipv4Addr;

use ocinet_common::validate;

pub const CONTAINER_IFNAME: &str = "eth0";

/// Host end of a container's veth: stable per container id, within IFNAMSIZ.
pub fn host_veth_name(id: &str) -> String {
    format!(
        "oc{:012x}",
        validate::fnv1a64(id.as_bytes()) & 0xffff_ffff_ffff
    )
}

/// Locally administered MAC derived from the address, as Docker does, so a
/// reused address keeps its MAC and neighbours' ARP caches stay right.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x6f, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_are_stable() {
        let n = host_veth_name("c1");
        assert_eq!(n.len(), 14);
        assert_eq!(n, host_veth_name("c1"));
        assert_ne!(n, host_veth_name("c2"));
        validate::ifname("veth", &n).unwrap();
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 87, 0, 2)),
            [2, 0x6f, 10, 87, 0, 2]
        );
    }
}
