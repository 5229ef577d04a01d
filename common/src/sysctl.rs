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

pub fn write(path: &str, value: &str) -> Result<()> {
    let _span = tracing::debug_span!("sysctl", path, value).entered();
    let current = std::fs::read_to_string(path).at(path)?;
    if current.trim() == value {
        return Ok(());
    }
    std::fs::write(path, value).at(path)
}

pub fn enable_ipv4_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// No IPv6 at all on `ifname` (a host-side veth, a bridge port with no L3
/// role). Beyond the link-local address that `addrgenmode none` avoids, an
/// IPv6-enabled interface with carrier gets an `ff00::/8` multicast route,
/// so the host's IPv6 FIB grows by one route per container, and every link
/// state change walks that whole FIB (`rt6_sync_down_dev`): `perf` showed
/// it growing from 0.03 to 0.36 ms per setup over 1,000 containers. A
/// kernel without IPv6 (no `/proc/sys/net/ipv6`) has nothing to turn off.
pub fn disable_ipv6(ifname: &str) -> Result<()> {
    crate::validate::ifname("interface", ifname)?;
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        return Ok(());
    }
    write(
        &format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    )
}
