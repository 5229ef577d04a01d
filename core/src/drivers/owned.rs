//! The host devices ocinet makes for networks (bridges, macvlan DNS
//! shims), told apart from everyone else's by the MAC ocinet derives from
//! their name: the kernel keeps it with the device, so it cannot outlive
//! the device or be wrong about one someone else made again under the same
//! name. Shared by every driver (a macvlan parent must not be an ocinet
//! bridge, nor a port of one) and by the MAC check of a new attachment.

use ocinet_common::netlink::link::Link;
use ocinet_common::validate;

/// The stable MAC ocinet gives a device it makes on the host, from its
/// name. For a bridge it also keeps the MAC from changing as ports come
/// and go (a bridge otherwise takes the lowest MAC of its ports, breaking
/// neighbours' caches).
pub(crate) fn device_mac(name: &str) -> [u8; 6] {
    let h = validate::fnv1a64(name.as_bytes()).to_be_bytes();
    [0x02, 0x6e, h[0], h[1], h[2], h[3]]
}

/// Whether `link` is a bridge ocinet made (bridges made by earlier
/// versions carry the same MAC).
pub fn is_our_bridge(link: &Link) -> bool {
    link.kind.as_deref() == Some("bridge") && link.mac == device_mac(&link.name)
}

/// Whether `link` is a macvlan network's DNS shim ocinet made.
pub fn is_our_shim(link: &Link) -> bool {
    link.kind.as_deref() == Some("macvlan") && link.mac == device_mac(&link.name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bridge_macs_are_unicast() {
        assert_eq!(super::device_mac("ocinet0")[0] & 1, 0);
    }
}
