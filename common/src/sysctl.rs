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
