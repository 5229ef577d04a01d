//! The firewall: one nftables table that ocinet owns, with a fixed set of
//! rules. Networks and containers only ever add or delete *elements* of its
//! sets and maps, so the rule count does not grow with the container count,
//! and every hook call is one atomic transaction.

mod nft;
pub mod ruleset;

use crate::model::{FirewallElement, Network};
use crate::Result;

pub use nft::Nft;

/// One atomic change to the firewall.
#[derive(Debug, Default, Clone)]
pub struct Change {
    /// Networks whose elements (bridge, subnet, ...) must be present.
    pub networks_present: Vec<Network>,
    /// Networks whose elements must go.
    pub networks_removed: Vec<Network>,
    pub elements_added: Vec<FirewallElement>,
    pub elements_deleted: Vec<FirewallElement>,
}

/// A firewall backend (one file per backend, as netavark does).
pub trait Firewall {
    /// Ensure the table and its fixed rules exist and apply `change`, all in
    /// one transaction.
    fn apply(&self, change: &Change) -> Result<()>;
    /// Throw the table away and rebuild it from the given state.
    fn rebuild(&self, networks: &[Network], elements: &[FirewallElement]) -> Result<()>;
    /// Number of rules in ocinet's table (for tests and benchmarks).
    fn rule_count(&self) -> Result<usize>;
    /// Remove ocinet's table entirely.
    fn remove(&self) -> Result<()>;
}
