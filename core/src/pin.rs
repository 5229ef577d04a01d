//! The `ip netns` entry a container's namespace is pinned at, chosen
//! before the intent record is written and made last in a setup.

use std::path::{Path, PathBuf};

use ocinet_common::model::Endpoint;
use ocinet_common::{netns, Result};

/// A free `/run/netns` name for the container (see `netns::free_pin_path`).
pub(crate) fn netns_link_for(id: &str) -> PathBuf {
    netns::free_pin_path(id)
}

/// Pin the namespace at the path the record names (chosen before the
/// record was written).
pub(crate) fn pin(ep: &mut Endpoint, ns_path: &Path) -> Result<()> {
    let Some(link) = ep.netns_link.clone() else {
        return Ok(());
    };
    if let Err(e) = netns::pin(
        ns_path,
        &link.file_name().unwrap_or_default().to_string_lossy(),
    ) {
        // Not ours to unmount: pin failed before anything was mounted.
        ep.netns_link = None;
        return Err(e);
    }
    Ok(())
}
