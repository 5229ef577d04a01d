//! The neighbour-resolution timing of a container's overlay interface.
//!
//! A container's overlay address is on-link across the whole subnet, so
//! reaching a container of another host starts with an ARP that this
//! host's bridge answers by proxy, and only once this host routes the
//! other host's block. A host's first container brings a new block; the
//! other hosts route it a few milliseconds after its setup returns (their
//! agents' watch event, then programming), and an ARP sent in between
//! goes unanswered. The kernel's next try comes `retrans_time_ms` later,
//! 1 s by default, and the first packets wait in the neighbour queue for
//! it (measured: BENCHMARKS.md section 16.2, ~1 s in up to 1 round of 6
//! on a loaded machine).
//!
//! Here the container's interface retries every 100 ms instead, with ten
//! times the probes, so an address that stays unanswered is still given
//! up after the same 3 s (applications see no change for absent
//! addresses) and the late ARP costs at most ~100 ms. Probes only reach
//! this host's bridge (the VXLAN device is routed, not bridged): ten times
//! a few broadcasts on one host for an address no one has.
//!
//! The host's end, the overlay network's bridge, gets the same: the first
//! packet from another host to a new container makes this host ARP for
//! it on the bridge, and the container's bridge port forwards only once
//! the veth's carrier is seen, a few milliseconds after the setup
//! returns (the bridge itself has no carrier before its first port). An
//! ARP sent in between is lost and was retried 1 s later (measured the
//! same way). The bridge only ever resolves this host's own containers.
//!
//! Only overlay networks, where the late route was measured: a bridge
//! network's interfaces keep the kernel's defaults (its peers are on the
//! same host, with nothing to program; the bridge-port race could reach
//! them too, but has not been measured there).

use std::fs::File;

use ocinet_common::model::Attachment;
use ocinet_common::netlink::neigh::NeighbourParms;
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

/// The kernel's defaults (`retrans_time_ms` 1000, `mcast_solicit` and
/// `ucast_solicit` 3): 3 s from the first solicitation to "unreachable".
const KERNEL_RETRANS_MS: u64 = 1000;
const KERNEL_PROBES: u32 = 3;

/// How often an overlay interface retries: the most a late-programmed
/// route costs the first packets.
pub const RETRANS_MS: u64 = 100;

/// What an overlay container interface gets, for IPv4 and IPv6 alike:
/// retries every `RETRANS_MS`, as many probes as keep the kernel's 3 s
/// before giving an address up (and before a stale entry's unicast
/// probing gives up: `ucast_solicit` likewise).
pub const PARMS: NeighbourParms = NeighbourParms {
    retrans_ms: RETRANS_MS,
    mcast_probes: KERNEL_PROBES * (KERNEL_RETRANS_MS / RETRANS_MS) as u32,
    ucast_probes: KERNEL_PROBES * (KERNEL_RETRANS_MS / RETRANS_MS) as u32,
};

/// Set `PARMS` on `att`'s interface in the container's namespace `ns`:
/// ARP's, and NDP's on a dual-stack network (its IPv6 peers of other
/// hosts are off-link, reached via the gateway, but the interface keeps
/// one timing for both families).
pub(crate) fn tune(ns: &File, att: &Attachment) -> Result<()> {
    let ifname = att.interface.as_str();
    let _span = tracing::debug_span!("overlay_neighbour_parms", interface = ifname).entered();
    let mut inner = Netlink::new_in(ns)?;
    let link = inner.link_by_name(ifname)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{ifname} vanished from the container while its neighbour parameters were set"
        ))
    })?;
    let dual = att
        .addresses
        .iter()
        .any(|a| matches!(a, ipnet::IpNet::V6(_)));
    for v6 in std::iter::once(false).chain(dual.then_some(true)) {
        inner
            .set_neighbour_parms(link.index, v6, PARMS)
            .map_err(|e| e.context(format!("container interface {ifname}")))?;
    }
    Ok(())
}

/// Set `PARMS` on the overlay network's bridge `bridge` (index `index`)
/// in the host's namespace: ARP's, and NDP's when `dual` (the host
/// resolves its IPv6 containers on the bridge too).
pub(crate) fn tune_bridge(host: &mut Netlink, bridge: &str, index: u32, dual: bool) -> Result<()> {
    let _span = tracing::debug_span!("overlay_bridge_neighbour_parms", bridge, index).entered();
    for v6 in std::iter::once(false).chain(dual.then_some(true)) {
        host.set_neighbour_parms(index, v6, PARMS)
            .map_err(|e| e.context(format!("overlay bridge {bridge}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_time_before_unreachable_as_the_kernel() {
        assert_eq!(
            PARMS.retrans_ms * u64::from(PARMS.mcast_probes),
            KERNEL_RETRANS_MS * u64::from(KERNEL_PROBES)
        );
        assert_eq!(PARMS.mcast_probes, 30);
        assert_eq!(PARMS.ucast_probes, 30);
    }
}
