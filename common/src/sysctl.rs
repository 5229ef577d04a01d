//! Per-namespace sysctls. /proc/sys/net follows the network namespace of the
//! opening thread, so these act on whatever namespace the hook runs in.

use crate::error::IoContext;
use crate::{Error, Result};

/// A numeric sysctl, read in the calling thread's namespace.
pub fn read_u64(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).at(path)?;
    let text = text.trim();
    text.parse()
        .map_err(|e| Error::invalid(path, text, format!("not a number: {e}")))
}

/// Read first, written only if it differs: a setting that is right already
/// needs no write access (a hook run where /proc/sys is read-only, as
/// Docker mounts it in a container, still sets up when nothing changes).
pub fn write(path: &str, value: &str) -> Result<()> {
    let _span = tracing::debug_span!("sysctl", path, value).entered();
    let current = std::fs::read_to_string(path).at(path)?;
    if current.trim() == value {
        return Ok(());
    }
    std::fs::write(path, value).at(path)
}

/// Written without reading first: a setting of an interface just made,
/// whose value is the kernel's default (an open and a read fewer per
/// container).
fn write_fresh(path: &str, value: &str) -> Result<()> {
    let _span = tracing::debug_span!("sysctl", path, value).entered();
    std::fs::write(path, value).at(path)
}

pub fn enable_ipv4_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// IPv6 forwarding on every interface, for a dual-stack network that is
/// not internal. Like Docker and netavark with IPv6, this is host-wide:
/// an interface with `accept_ra=1` stops taking router advertisements
/// once the host forwards (set `accept_ra=2` on an uplink configured by
/// SLAAC; docs/networks.md says so).
pub fn enable_ipv6_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}

/// IPv6 on `ifname` (a bridge of a dual-stack network): a host booted
/// with `net.ipv6.conf.default.disable_ipv6=1` makes new interfaces
/// without it.
pub fn enable_ipv6_on(ifname: &str) -> Result<()> {
    write(
        &format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "0",
    )
}

/// No IPv6 at all on `ifname` (a bridge port: the host end of a
/// container's veth), set while it is still down. A port forwards frames
/// and needs no address of its own; with IPv6 on, even without a
/// link-local address (addrgenmode none), each one that comes up puts an
/// `ff00::/8` route of its own in the namespace's IPv6 table, and every
/// carrier change of any interface walks that table under the RTNL lock:
/// with 10,000 containers a setup's netlink requests took 4x as long
/// (BENCHMARKS.md, section 3b). A kernel booted without IPv6 has no such
/// file: nothing to turn off.
pub fn disable_ipv6_on_port(ifname: &str) -> Result<()> {
    check_ifname(ifname)?;
    match write_fresh(
        &format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    ) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Proxy ARP on `ifname` (an overlay network's bridge): a container ARPing
/// for a container on another host, on-link in the same subnet, gets the
/// bridge's MAC and its frames are routed by the host through the VXLAN
/// device. Per interface, in the calling thread's namespace.
pub fn set_proxy_arp(ifname: &str, on: bool) -> Result<()> {
    check_ifname(ifname)?;
    write(
        &format!("/proc/sys/net/ipv4/conf/{ifname}/proxy_arp"),
        if on { "1" } else { "0" },
    )
}

/// The name becomes a path component: refuse one that names another
/// directory, or `all`/`default`, which would act on every interface.
fn check_ifname(ifname: &str) -> Result<()> {
    if ifname.is_empty() || ifname.contains('/') || matches!(ifname, "." | ".." | "all" | "default")
    {
        return Err(Error::invalid(
            "interface name",
            ifname,
            "not usable as a sysctl path component",
        ));
    }
    Ok(())
}
