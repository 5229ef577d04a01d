use ocinet_common::firewall::{Change, Firewall, Nft, Pending};
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use ocinet_common::Result;

/// Where things live, shared by every subcommand.
pub struct Context {
    pub state: StateDir,
    pub config: ConfigDir,
}

impl Context {
    pub fn lock(&self) -> Result<StateLock> {
        StateLock::acquire(&self.state.lock_file())
    }

    pub fn firewall(&self) -> Result<Nft> {
        Nft::new()
    }

    /// Apply a change; if ocinet's table is gone (a flushed ruleset) or was
    /// made by another version, rebuild it from the saved state instead, so
    /// the next hook call restores service for every running container.
    /// `leaving` names an endpoint being torn down, whose elements are left
    /// out of a rebuild. Callers hold the lock.
    pub fn apply_firewall(&self, change: &Change, leaving: Option<&str>) -> Result<()> {
        let pending = self.firewall()?.start_apply(change)?;
        self.finish_firewall(pending, change, leaving)
    }

    /// Wait for a transaction started with `start_apply`, rebuilding from
    /// state if the table turned out to be missing.
    pub fn finish_firewall(
        &self,
        pending: Pending,
        change: &Change,
        leaving: Option<&str>,
    ) -> Result<()> {
        match pending.wait() {
            Err(ocinet_common::Error::FirewallMissing) => {
                tracing::warn!(
                    "ocinet's nftables table is missing or outdated: rebuilding it from state"
                );
                self.rebuild_firewall(&self.firewall()?, leaving, &change.networks_removed)
                    .map(|_| ())
            }
            r => r,
        }
    }

    /// Rebuild the table from the network definitions and endpoint records;
    /// returns (networks, elements) counts.
    pub fn rebuild_firewall(
        &self,
        fw: &Nft,
        leaving: Option<&str>,
        removed: &[ocinet_common::model::Network],
    ) -> Result<(usize, usize)> {
        let (mut networks, bad) = self.config.list();
        for e in bad {
            tracing::warn!("rebuild: skipping {e}");
        }
        networks.retain(|n| !removed.iter().any(|r| r.name == n.name));
        let (eps, bad) = self.state.list_endpoints();
        for e in bad {
            tracing::warn!("rebuild: skipping {e}");
        }
        let elements: Vec<_> = eps
            .iter()
            .filter(|e| Some(e.id.as_str()) != leaving)
            .flat_map(|e| e.firewall.iter().cloned())
            .collect();
        fw.rebuild(&networks, &elements)?;
        Ok((networks.len(), elements.len()))
    }
}
