//! The network's bridge: made if missing (with a stable MAC, the MTU, the
//! gateway address and its sysctls), and told apart from interfaces
//! ocinet did not make.

use ocinet_common::model::Network;
use ocinet_common::netlink::link::Link;
use ocinet_common::netlink::Netlink;
use ocinet_common::{sysctl, validate, Error, Result};

/// A stable bridge MAC: otherwise a bridge takes the lowest MAC of its ports
/// and changes it as containers come and go, breaking neighbours' caches.
/// It is also how ocinet knows its own bridges (`is_ours`).
pub(crate) fn bridge_mac(bridge: &str) -> [u8; 6] {
    let h = validate::fnv1a64(bridge.as_bytes()).to_be_bytes();
    [0x02, 0x6e, h[0], h[1], h[2], h[3]]
}

/// Whether `link` is a bridge ocinet made. The record is the MAC it gave
/// the bridge when it created it: the kernel keeps it with the interface,
/// so it cannot outlive the bridge or be wrong about one that someone else
/// made again under the same name (a record in the state directory could
/// be both), and bridges made by earlier versions carry it too.
pub fn is_ours(link: &Link) -> bool {
    link.kind.as_deref() == Some("bridge") && link.mac == bridge_mac(&link.name)
}

/// Refuse an interface of the bridge's name that ocinet did not make:
/// never configure or delete someone else's interface.
pub(crate) fn foreign(net: &Network, link: &Link) -> Error {
    let what = match link.kind.as_deref() {
        Some("bridge") => format!(
            "is a bridge ocinet did not create (its MAC {} is not the {} ocinet gives it)",
            validate::format_mac(&link.mac),
            validate::format_mac(&bridge_mac(&link.name))
        ),
        Some(kind) => format!("is a {kind} interface, not a bridge"),
        None => "is not a bridge".into(),
    };
    Error::Conflict(format!(
        "network {}: interface {} (index {}) {what}; ocinet leaves it alone: remove it, or use a network with another bridge",
        net.name, link.name, link.index
    ))
}

/// The bridge up, with its gateway address, a stable MAC, the network's MTU
/// and its sysctls; created if missing. Returns its index and whether it
/// was created.
pub fn ensure_bridge(nl: &mut Netlink, net: &Network) -> Result<(u32, bool)> {
    let _span = tracing::debug_span!("ensure_bridge", bridge = %net.bridge).entered();
    let mut created = false;
    let link = match nl.link_by_name(&net.bridge)? {
        Some(l) => l,
        None => {
            created = nl.create_bridge(&net.bridge, net.mtu, &bridge_mac(&net.bridge))?;
            nl.link_by_name(&net.bridge)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "bridge {} vanished right after creation",
                    net.bridge
                ))
            })?
        }
    };
    if !is_ours(&link) {
        return Err(foreign(net, &link));
    }
    if !link.up {
        nl.set_up(link.index, &format!("set {} up", net.bridge))?;
    }
    nl.add_address(link.index, net.gateway(), net.subnet().prefix_len())?;
    if !net.internal {
        sysctl::enable_ipv4_forwarding()?;
        // 127.0.0.1:PORT is DNATed to a container: let loopback-sourced
        // packets be routed out of the bridge (they are masqueraded there).
        sysctl::write(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
            "1",
        )?;
    }
    Ok((link.index, created))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bridge_macs_are_unicast() {
        assert_eq!(super::bridge_mac("ocinet0")[0] & 1, 0);
    }
}
