//! The network's bridge: made if missing (with a stable MAC, the MTU, the
//! gateway address and its sysctls), and told apart from interfaces
//! ocinet did not make.

use super::bridge_of;
use ocinet_common::model::Network;
use ocinet_common::netlink::link::Link;
use ocinet_common::netlink::Netlink;
use ocinet_common::{sysctl, validate, Error, Result};

use crate::drivers::owned::device_mac as bridge_mac;
pub use crate::drivers::owned::is_our_bridge as is_ours;

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
    let _span = tracing::debug_span!("ensure_bridge", bridge = %bridge_of(net)).entered();
    let mut created = false;
    let link = match nl.link_by_name(bridge_of(net))? {
        Some(l) => l,
        None => {
            created = nl.create_bridge(bridge_of(net), net.mtu, &bridge_mac(bridge_of(net)))?;
            nl.link_by_name(bridge_of(net))?.ok_or_else(|| {
                Error::NotFound(format!(
                    "bridge {} vanished right after creation",
                    bridge_of(net)
                ))
            })?
        }
    };
    if !is_ours(&link) {
        return Err(foreign(net, &link));
    }
    if !link.up {
        nl.set_up(link.index, &format!("set {} up", bridge_of(net)))?;
    }
    if let Some(v4) = net.v4() {
        nl.add_address(link.index, v4.gateway, v4.subnet.prefix_len())?;
    }
    if let Some(v6) = net.v6() {
        sysctl::enable_ipv6_on(bridge_of(net))?;
        nl.add_address6(link.index, v6.gateway, v6.subnet.prefix_len())?;
        if !net.internal {
            sysctl::enable_ipv6_forwarding()?;
        }
    }
    if !net.internal && net.has_ipv4() {
        sysctl::enable_ipv4_forwarding()?;
        // 127.0.0.1:PORT is DNATed to a container: let loopback-sourced
        // packets be routed out of the bridge (they are masqueraded there).
        sysctl::write(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", bridge_of(net)),
            "1",
        )?;
    }
    Ok((link.index, created))
}
