//! The firewall: one nftables table that ocinet owns, with a fixed set of
//! rules. Networks and containers only ever add or delete *elements* of its
//! sets and maps, so the rule count does not grow with the container count,
//! and every hook call is one atomic transaction.

pub mod elements;
mod nft;
pub mod ruleset;

use std::net::IpAddr;

use crate::model::{Attachment, Network};
use crate::Result;

pub use nft::Nft;

/// One atomic change to the firewall, in backend-neutral terms: networks
/// (membership, masquerade, isolation) and attachments (a bridge port's
/// MAC and address for anti-spoofing, published ports DNATed to the
/// attachment's address). A backend derives its own objects from these.
#[derive(Debug, Default, Clone)]
pub struct Change {
    /// Networks whose rules must be in place.
    pub networks_present: Vec<Network>,
    /// Networks whose rules must go.
    pub networks_removed: Vec<Network>,
    pub attachments_added: Vec<Attachment>,
    pub attachments_removed: Vec<Attachment>,
}

/// What a rebuilt firewall must hold besides the networks.
#[derive(Debug, Default, Clone)]
pub struct Contents<'a> {
    /// Every running attachment, the oldest container's first: of two that
    /// an earlier version let share a MAC, the first keeps it.
    pub attachments: Vec<&'a Attachment>,
    /// Addresses a connection may have been DNATed to (their teardown
    /// must still clear conntrack).
    pub dnated: Vec<IpAddr>,
}

/// A transaction under way; `wait` for its outcome.
pub struct Pending(Box<dyn FnOnce() -> Result<()> + Send>);

impl Pending {
    pub fn new(f: impl FnOnce() -> Result<()> + Send + 'static) -> Self {
        Pending(Box::new(f))
    }

    pub fn wait(self) -> Result<()> {
        (self.0)()
    }
}

/// A firewall backend (one file per backend, as netavark does).
pub trait Firewall {
    /// Start applying `change` in one transaction, assuming the table is in
    /// place; its `wait` gives `Error::FirewallMissing` when it is not
    /// (rebuild, then). A backend may finish before it returns (nft does).
    fn start_apply(&self, change: &Change) -> Result<Pending>;
    fn apply(&self, change: &Change) -> Result<()> {
        self.start_apply(change)?.wait()
    }
    /// Whether a connection may have been DNATed to `ip` since the record
    /// of it was last forgotten; true whenever the table cannot tell (it
    /// is missing, or of another version).
    fn may_have_dnated(&self, ip: IpAddr) -> Result<bool>;
    /// Forget that record, once `ip`'s conntrack entries are gone.
    fn forget_dnated(&self, ip: IpAddr) -> Result<()>;
    /// Throw the table away and rebuild it from the given state.
    fn rebuild(&self, networks: &[Network], contents: &Contents) -> Result<()>;
    /// Number of rules in ocinet's table (for tests and benchmarks).
    fn rule_count(&self) -> Result<usize>;
    /// Remove ocinet's table entirely.
    fn remove(&self) -> Result<()>;
}
