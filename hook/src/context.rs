use ocinet_common::firewall::{Change, Firewall, Nft, Pending};
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use ocinet_common::Result;

/// The endpoint a firewall change is made for, which a rebuild treats
/// apart from the other records.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Nobody,
    /// Being set up: nothing can have reached it yet.
    Arriving(&'a str),
    /// Being torn down: its elements stay out of a rebuild.
    Leaving(&'a str),
}

/// Where things live, shared by every subcommand.
pub struct Context {
    pub state: StateDir,
    pub config: ConfigDir,
}

impl Context {
    /// The state lock; the state is in this version's layout once it is
    /// held (a host upgraded with containers running keeps their leases
    /// and port claims).
    pub fn lock(&self) -> Result<StateLock> {
        let lock = StateLock::acquire(&self.state.lock_file())?;
        // A file that cannot be converted stops only what it holds: its
        // network's allocations, or new port claims. Teardown, gc and the
        // other networks go on.
        let (done, failed) = self.state.migrate_legacy();
        for path in done {
            tracing::info!(file = %path.display(), "converted to per-entry leases and claims");
        }
        for e in failed {
            tracing::error!("state of the previous layout not converted: {e}");
        }
        Ok(lock)
    }

    pub fn firewall(&self) -> Result<Nft> {
        Nft::new()
    }

    /// Apply a change; if ocinet's table is gone (a flushed ruleset) or was
    /// made by another version, rebuild it from the saved state instead, so
    /// the next hook call restores service for every running container.
    /// Callers hold the lock.
    pub fn apply_firewall(&self, change: &Change, subject: Subject) -> Result<()> {
        let pending = self.firewall()?.start_apply(change)?;
        self.finish_firewall(pending, change, subject)
    }

    /// Wait for a transaction started with `start_apply`, rebuilding from
    /// state if the table turned out to be missing.
    pub fn finish_firewall(
        &self,
        pending: Pending,
        change: &Change,
        subject: Subject,
    ) -> Result<()> {
        match pending.wait() {
            Err(ocinet_common::Error::FirewallMissing) => {
                tracing::warn!(
                    "ocinet's nftables table is missing or outdated: rebuilding it from state"
                );
                self.rebuild_firewall(&self.firewall()?, subject, &change.networks_removed)
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
        subject: Subject,
        removed: &[ocinet_common::model::Network],
    ) -> Result<(usize, usize)> {
        let (mut networks, bad) = self.config.list();
        for e in bad {
            tracing::warn!("rebuild: skipping {e}");
        }
        networks.retain(|n| !removed.iter().any(|r| r.name == n.name));
        let (mut eps, bad) = self.state.list_endpoints();
        for e in bad {
            tracing::warn!("rebuild: skipping {e}");
        }
        // Oldest first: of two records an earlier version let share a MAC,
        // the container that had it first keeps it (`one_port_per_mac`).
        eps.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let (arriving, leaving) = match subject {
            Subject::Arriving(id) => (Some(id), None),
            Subject::Leaving(id) => (None, Some(id)),
            Subject::Nobody => (None, None),
        };
        let mut elements: Vec<_> = eps
            .iter()
            .filter(|e| Some(e.id.as_str()) != leaving)
            .flat_map(ocinet_common::firewall::ruleset::elements_of_record)
            .collect();
        one_port_per_mac(&mut elements);
        // The packet path's records of DNATed connections went with the old
        // table: assume every publishing container had some, the leaving
        // one included, so their teardown still clears conntrack.
        elements.extend(
            eps.iter()
                .filter(|e| !e.ports.is_empty())
                .filter(|e| Some(e.id.as_str()) != arriving)
                .filter_map(|e| e.ip)
                .map(ocinet_common::firewall::ruleset::dnat_seen_element),
        );
        fw.rebuild(&networks, &elements)?;
        Ok((networks.len(), elements.len()))
    }
}

/// A rebuild must not fail as a whole, nor pair one MAC with two ports,
/// if records made by an earlier version ever gave two containers of one
/// bridge the same MAC: the first record (the oldest) keeps it, and the
/// second port loses its permission to send with it, so that container
/// is cut off until it is restarted with another MAC (logged).
fn one_port_per_mac(elements: &mut Vec<ocinet_common::model::FirewallElement>) {
    use ocinet_common::firewall::ruleset;
    let mut owners: std::collections::HashMap<String, serde_json::Value> = Default::default();
    let mut refused: Vec<serde_json::Value> = Vec::new();
    elements.retain(|e| {
        if e.set != ruleset::MAP_MAC_OWNER {
            return true;
        }
        let port = e.value.clone().unwrap_or_default();
        match owners.get(&e.key.to_string()) {
            None => {
                owners.insert(e.key.to_string(), port);
                true
            }
            Some(owner) if *owner == port => false,
            Some(owner) => {
                tracing::warn!(mac = %e.key, port = %port, owner = %owner, "two ports were given one MAC: only the first may use it");
                if let Some(mac) = e.key["concat"].get(1) {
                    refused.push(serde_json::json!({"concat": [port, mac]}));
                }
                false
            }
        }
    });
    elements.retain(|e| !(e.set == ruleset::SET_PORT_MAC && refused.contains(&e.key)));
}
