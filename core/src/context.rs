use ocinet_common::firewall::{Change, Contents, Firewall, Nft, Pending};
use ocinet_common::model::ChangeVerb;
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

/// The context with the state lock held: the proof an operation that
/// reads state and then changes it (leases, port claims, records, network
/// definitions, the firewall, the resolvers) asks for, so that no front
/// end can call one without the lock. Only `Context::lock` makes one; it
/// derefs to the `Context`, and the lock goes when it is dropped.
pub struct Locked<'a> {
    ctx: &'a Context,
    lock: StateLock,
    /// Not `Send` (a guard's trick): `HELD` is the taking thread's.
    _thread: std::marker::PhantomData<std::sync::MutexGuard<'static, ()>>,
}

thread_local! {
    /// Whether this thread holds a `Locked`. flock does not nest (a second
    /// lock on a new descriptor waits for the first forever), and a
    /// `Locked` derefs to the `Context` that can lock again: taken twice,
    /// the second is refused (EDEADLK) instead of hanging the hook until
    /// the runtime's timeout.
    static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(false));
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Context;
    fn deref(&self) -> &Context {
        self.ctx
    }
}

impl Locked<'_> {
    /// The lock itself, for the resolver's control functions (`ocinet_dns`
    /// cannot know this type).
    pub fn state_lock(&self) -> &StateLock {
        &self.lock
    }
}

impl Context {
    /// The state lock; the state is in this version's layout once it is
    /// held (a host upgraded with containers running keeps their leases
    /// and port claims). Taken by the operations that are whole
    /// transactions (setup, teardown, connect, disconnect, gc, firewall
    /// reload, network create and rm); a front end takes it only to run
    /// several under one lock (a CNI ADD, DEL or GC). The steps inside
    /// take `&Locked` and never lock again (see `HELD`).
    pub fn lock(&self) -> Result<Locked<'_>> {
        if HELD.with(|h| h.get()) {
            return Err(ocinet_common::Error::io(
                self.state.lock_file(),
                std::io::Error::from(nix::errno::Errno::EDEADLK),
            ));
        }
        let lock = StateLock::acquire(&self.state.lock_file())?;
        ocinet_common::process::close_netfilter_sockets_outside(&self.state.lock_file());
        HELD.with(|h| h.set(true));
        let lock = Locked {
            ctx: self,
            lock,
            _thread: std::marker::PhantomData,
        };
        // A file that cannot be converted stops only what it holds: its
        // network's allocations, or new port claims. Teardown, gc and the
        // other networks go on.
        let (done, failed) = self.state.migrate_legacy(&lock.lock);
        for path in done {
            tracing::info!(file = %path.display(), "converted to per-entry leases and claims");
        }
        for e in failed {
            tracing::error!("state of the previous layout not converted: {e}");
        }
        let (done, failed) = self.state.convert_records(&lock.lock);
        for id in done {
            tracing::info!(id, "record converted to one with attachments");
        }
        for e in failed {
            tracing::error!("record of the previous layout not converted (read as it is): {e}");
        }
        Ok(lock)
    }

    pub fn firewall(&self) -> Result<Nft> {
        Nft::new()
    }
}

impl Locked<'_> {
    /// Apply a change; if ocinet's table is gone (a flushed ruleset) or was
    /// made by another version, rebuild it from the saved state instead, so
    /// the next hook call restores service for every running container.
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
    /// returns (networks, attachments) counts.
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
        let contents = Contents {
            // Without the leaving container's, and without the attachment
            // being disconnected now (its elements are being deleted); one
            // whose disconnect was abandoned keeps its elements until gc
            // or the next call finishes it, as its interface may be there.
            attachments: eps
                .iter()
                .filter(|e| Some(e.id.as_str()) != leaving)
                .flat_map(|e| e.attachments.iter())
                .filter(|a| {
                    !a.changing
                        .is_some_and(|c| c.verb == ChangeVerb::Disconnect && c.by.is_alive())
                })
                .collect(),
            // The packet path's records of DNATed connections went with the
            // old table: assume every publishing container had some, the
            // leaving one included, so their teardown still clears conntrack.
            dnated: eps
                .iter()
                .filter(|e| Some(e.id.as_str()) != arriving)
                .filter_map(|e| e.publishing())
                .flat_map(|a| {
                    let v4 = a.ipv4().map(std::net::IpAddr::from);
                    v4.into_iter().chain(a.ipv6().map(std::net::IpAddr::from))
                })
                .collect(),
        };
        fw.rebuild(&networks, &contents)?;
        Ok((networks.len(), contents.attachments.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_taken_twice_on_one_thread_is_refused_not_waited_for() {
        let root = std::env::temp_dir().join(format!("ocinet-locked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("state")).unwrap();
        let ctx = Context {
            state: StateDir::new(root.join("state")),
            config: ConfigDir::new(root.join("config")),
        };
        let held = ctx.lock().unwrap();
        let e = held.lock().err().unwrap().to_string();
        assert!(e.contains("deadlock"), "{e}");
        drop(held);
        // Dropped: this thread may take it again.
        drop(ctx.lock().unwrap());
        let _ = std::fs::remove_dir_all(&root);
    }
}
