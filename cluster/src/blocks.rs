//! An overlay subnet cut into per-host blocks (flannel's layout): a host
//! leases a whole block by one transaction and hands out its addresses
//! locally, so a container's setup costs no store round trip for its
//! address once its host holds a block with room, and the other hosts
//! route one prefix per block, not one entry per container.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// The length of a block of `subnet`: /24 blocks of a /16 (256 hosts of
/// 253 containers), down to /28 blocks for small subnets: 16 blocks of a
/// /20 to a /24 (a /24 serves 16 hosts of 13 containers, not 4 hosts),
/// fewer only for a subnet smaller than a /24.
pub fn block_len(subnet: Ipv4Net) -> u8 {
    let p = subnet.prefix_len();
    (p + 4).clamp(24, 28).max(p)
}

/// The blocks of `subnet`, in order.
pub fn all(subnet: Ipv4Net) -> impl Iterator<Item = Ipv4Net> {
    let len = block_len(subnet);
    subnet.subnets(len).into_iter().flatten()
}

/// The block of `subnet` holding `ip`.
pub fn of(subnet: Ipv4Net, ip: Ipv4Addr) -> Option<Ipv4Net> {
    subnet
        .contains(&ip)
        .then(|| Ipv4Net::new(ip, block_len(subnet)).ok().map(|b| b.trunc()))
        .flatten()
}

/// The addresses of `block` a container may get: not the block's first
/// (the host's VXLAN address on the network, which the other hosts route
/// the block via), not the subnet's gateway (every host's bridge) nor its
/// network or broadcast address.
pub fn usable(subnet: Ipv4Net, gateway: Ipv4Addr, block: Ipv4Net) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let first = u32::from(block.network()) + 1;
    let mut last = u32::from(block.broadcast());
    if block.broadcast() == subnet.broadcast() {
        last -= 1;
    }
    let mut first = first;
    if first == u32::from(gateway) {
        first += 1;
    }
    if last == u32::from(gateway) {
        last -= 1;
    }
    (first <= last).then(|| (Ipv4Addr::from(first), Ipv4Addr::from(last)))
}

/// The IPv6 block that goes with IPv4 block `block` of `subnet` on a
/// dual-stack network: `subnet6` cut into as many blocks, the same index.
/// One block key holds both, so a host's IPv6 addresses need no key of
/// their own. None when `subnet6` is too small to cut so (the definition
/// refuses such a subnet).
pub fn block6(subnet: Ipv4Net, subnet6: Ipv6Net, block: Ipv4Net) -> Option<Ipv6Net> {
    let bits = block_len(subnet).checked_sub(subnet.prefix_len())?;
    let len6 = subnet6.prefix_len().checked_add(bits)?;
    if len6 > 120 || !subnet.contains(&block) {
        return None;
    }
    let index =
        (u32::from(block.network()) - u32::from(subnet.network())) >> (32 - block_len(subnet));
    let base = u128::from(subnet6.network()) + (u128::from(index) << (128 - u32::from(len6)));
    Ipv6Net::new(Ipv6Addr::from(base), len6).ok()
}

/// The addresses of IPv6 block `block6` a container may get: not its
/// first (the subnet-router anycast address of the host's bridge where
/// the block starts the subnet) nor the network's gateway.
pub fn usable6(gateway6: Ipv6Addr, block6: Ipv6Net) -> (Ipv6Addr, Ipv6Addr) {
    let mut first = u128::from(block6.network()) + 1;
    if first == u128::from(gateway6) {
        first += 1;
    }
    (Ipv6Addr::from(first), block6.broadcast())
}

/// The address other hosts route a host's IPv6 blocks via, on the VXLAN
/// device at the host's VXLAN MAC: a link-local one derived from its
/// advertise address. Not an address of the subnet: the kernel refuses
/// an on-link IPv6 gateway that a route on another device (the bridge's
/// /64) covers.
pub fn vtep6(advertise: Ipv4Addr) -> Ipv6Addr {
    let o = advertise.octets();
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        0,
        0x0a58,
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    )
}

/// The host's VXLAN address on the network: its first block's first.
pub fn vtep_address(block: Ipv4Net) -> Ipv4Addr {
    block.network()
}

/// A host's VXLAN MAC, the same on every overlay network, derived from its
/// advertise address so that no host has to publish it: locally
/// administered, unicast (0a:58, as CNI's bridge uses for its gateways).
pub fn vtep_mac(advertise: Ipv4Addr) -> [u8; 6] {
    let o = advertise.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_subnet_and_skip_reserved_addresses() {
        let s: Ipv4Net = "10.77.0.0/16".parse().unwrap();
        assert_eq!(block_len(s), 24);
        assert_eq!(all(s).count(), 256);
        assert_eq!(block_len("10.0.0.0/24".parse().unwrap()), 28);
        assert_eq!(block_len("10.0.0.0/28".parse().unwrap()), 28);
        assert_eq!(block_len("10.0.0.0/8".parse().unwrap()), 24);
        assert_eq!(block_len("10.0.0.0/22".parse().unwrap()), 26);
        assert_eq!(block_len("10.0.0.0/26".parse().unwrap()), 28);
        let g = Ipv4Addr::new(10, 77, 0, 1);
        let b0: Ipv4Net = "10.77.0.0/24".parse().unwrap();
        assert_eq!(
            usable(s, g, b0),
            Some((Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 255)))
        );
        let last: Ipv4Net = "10.77.255.0/24".parse().unwrap();
        assert_eq!(
            usable(s, g, last).unwrap().1,
            Ipv4Addr::new(10, 77, 255, 254)
        );
        assert_eq!(
            of(s, Ipv4Addr::new(10, 77, 3, 9)),
            Some("10.77.3.0/24".parse().unwrap())
        );
        assert_eq!(
            vtep_mac(Ipv4Addr::new(10, 99, 0, 1)),
            [0x0a, 0x58, 10, 99, 0, 1]
        );
        let s6: Ipv6Net = "fd77::/64".parse().unwrap();
        assert_eq!(block6(s, s6, b0), Some("fd77::/72".parse().unwrap()));
        assert_eq!(
            block6(s, s6, "10.77.3.0/24".parse().unwrap()),
            Some("fd77:0:0:0:300::/72".parse().unwrap())
        );
        assert_eq!(
            block6(s, s6, last),
            Some("fd77:0:0:0:ff00::/72".parse().unwrap())
        );
        assert_eq!(block6(s, "fd77::/120".parse().unwrap(), b0), None);
        let (f, l) = usable6("fd77::1".parse().unwrap(), "fd77::/72".parse().unwrap());
        assert_eq!(
            (f.to_string(), l.to_string()),
            ("fd77::2".into(), "fd77::ff:ffff:ffff:ffff".into())
        );
    }
}
