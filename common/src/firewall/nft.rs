//! The nftables backend. The skeleton (tables, sets, chains, rules) is
//! declared by one `nft -j -f -` process per rebuild, with documents checked
//! against the `nftables` crate's schema types; the per-container elements
//! go straight over netlink (`elements.rs`), one batch per hook call.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::elements::{self, Op, Verb};
use super::ruleset::{self, TABLES};
use super::{Change, Firewall, Pending};
use crate::model::{FirewallElement, Network};

use super::Contents;
use crate::{Error, Result};

pub struct Nft {
    program: PathBuf,
}

/// podman runs poststop hooks with an empty environment (no PATH), so look
/// in the usual places rather than rely on a search path.
const NFT_CANDIDATES: &[&str] = &[
    "/usr/sbin/nft",
    "/sbin/nft",
    "/usr/bin/nft",
    "/usr/local/sbin/nft",
    "/bin/nft",
];

impl Nft {
    pub fn new() -> Result<Self> {
        NFT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .map(|program| Nft { program })
            .ok_or_else(|| {
                Error::Firewall(format!(
                    "nft not found (looked in {})",
                    NFT_CANDIDATES.join(", ")
                ))
            })
    }

    fn run(&self, commands: Vec<Value>, what: &str) -> Result<()> {
        self.start(commands, what)?.wait()
    }

    /// Start one `nft -j -f -` transaction; the caller does other kernel
    /// work (a veth deletion waits ~20 ms for RCU, and so does an element
    /// deletion in nft's commit) and then waits for it.
    fn start(&self, commands: Vec<Value>, what: &str) -> Result<Pending> {
        let _span = tracing::debug_span!("nft_start", what, commands = commands.len()).entered();
        let doc = json!({"nftables": commands});
        // Check the document against the nftables JSON schema before nft
        // sees it.
        let parsed: nftables::schema::Nftables = serde_json::from_value(doc)
            .map_err(|e| Error::Firewall(format!("{what}: invalid nftables JSON: {e}")))?;
        let input =
            serde_json::to_vec(&parsed).map_err(|e| Error::Firewall(format!("{what}: {e}")))?;
        // Spawned here rather than through nftables::helper, which lets nft's
        // stderr through instead of returning it: the error text is needed
        // to tell a missing table from a real failure.
        let mut cmd = Command::new(&self.program);
        // A hook killed mid-call takes its nft with it: an orphaned nft
        // could otherwise commit elements after gc has cleaned up.
        // SAFETY: prctl is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .args(["-j", "-f", "-"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Firewall(format!("{what}: {}: {e}", self.program.display())))?;
        // Written beside the wait, so a stalled nft (a large document does
        // not fit the pipe) is bounded by NFT_TIMEOUT like the rest.
        let writer = child
            .stdin
            .take()
            .map(|mut stdin| std::thread::spawn(move || stdin.write_all(&input)));
        let what = what.to_string();
        Ok(Pending::new(move || {
            let result = finish(child, &what);
            // nft has exited (or was killed): the writer is done or gets EPIPE.
            let written = writer.map(|w| w.join());
            match (result, written) {
                (Ok(()), Some(Ok(Err(e)))) => {
                    Err(Error::Firewall(format!("{what}: writing to nft: {e}")))
                }
                (r, _) => r,
            }
        }))
    }

    fn list_table(
        &self,
        family: &str,
        table: &str,
    ) -> Result<Option<nftables::schema::Nftables<'static>>> {
        let program = self.program.to_string_lossy();
        let args = ["list", "table", family, table];
        match nftables::helper::get_current_ruleset_with_args(Some(program.as_ref()), args) {
            Ok(r) => Ok(Some(r)),
            Err(nftables::helper::NftablesError::NftFailed { stderr, .. })
                if stderr.contains("No such file") =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::Firewall(format!("list table: {e}"))),
        }
    }
}

/// The longest an `nft` process may run. Rebuilding the table for 1,000
/// containers takes well under a second here; the bound keeps a stuck nft
/// from holding the state lock past a runtime's hook timeout.
pub const NFT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn finish(mut child: std::process::Child, what: &str) -> Result<()> {
    let _span = tracing::debug_span!("nft_wait", what).entered();
    let failed = |e: std::io::Error| Error::Firewall(format!("{what}: {e}"));
    // Drained beside the wait, so a chatty nft cannot block on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut text);
            text
        })
    });
    let deadline = std::time::Instant::now() + NFT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(failed)? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Firewall(format!(
                "{what}: nft did not finish within {} s and was killed",
                NFT_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.and_then(|t| t.join().ok()).unwrap_or_default(),
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such file or directory") {
        return Err(Error::FirewallMissing);
    }
    let msg: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(Error::Firewall(format!(
        "{what}: nft failed ({}): {}",
        out.status,
        msg.join(" / ")
    )))
}

fn elements_of(change_networks: &[Network], verb: &str) -> Vec<Value> {
    change_networks
        .iter()
        .flat_map(ruleset::network_elements)
        .map(|(set, elem)| ruleset::element(verb, set, &elem, None))
        .collect()
}

fn op<'a>(verb: Verb, set: &'a str, key: &'a Value, value: Option<&'a Value>) -> Op<'a> {
    Op {
        verb,
        set,
        key,
        value,
    }
}

/// Deletions succeed whether or not the element is still there (someone
/// may have removed it): add, then delete, in the same transaction
/// (kernels before 6.3 have no DESTROYSETELEM). All the adds go before all
/// the deletes, so that each set's elements are one run (one message, see
/// `elements::prepare`); an element listed twice is deleted once, or its
/// second deletion would fail.
fn ensure_absent<'a>(ops: &mut Vec<Op<'a>>, gone: Vec<(&'a str, &'a Value, Option<&'a Value>)>) {
    let mut seen = std::collections::HashSet::new();
    let gone: Vec<_> = gone
        .into_iter()
        .filter(|(set, key, _)| seen.insert((*set, key.to_string())))
        .collect();
    ops.extend(by_set(gone.iter().map(|(s, k, v)| op(Verb::Add, s, k, *v))));
    ops.extend(by_set(
        gone.iter().map(|(s, k, v)| op(Verb::Delete, s, k, *v)),
    ));
}

/// `ops` grouped by set, each set's in their given order: the sets of one
/// phase of a transaction are independent of each other.
fn by_set<'a>(ops: impl Iterator<Item = Op<'a>>) -> Vec<Op<'a>> {
    let mut ops: Vec<Op> = ops.collect();
    ops.sort_by_key(|op| op.set);
    ops
}

/// "add" then "delete" makes the delete succeed whether or not a table
/// existed.
fn delete_tables() -> Vec<Value> {
    TABLES
        .iter()
        .flat_map(|(family, name)| {
            [
                json!({"add": {"table": {"family": family, "name": name}}}),
                json!({"delete": {"table": {"family": family, "name": name}}}),
            ]
        })
        .collect()
}

impl Nft {
    /// `change` as one encoded element transaction (bad elements refused
    /// here). Elements only, over netlink (elements.rs): declaring the
    /// skeleton costs ~15 ms of nft time per call, and even an element-only
    /// `nft` process ~3.5 ms, against well under 1 ms for one netlink
    /// batch. A missing table or set fails the whole transaction with
    /// ENOENT (FirewallMissing), and the caller rebuilds from state.
    fn transaction(&self, change: &Change) -> Result<elements::Transaction> {
        let of = |atts: &[crate::model::Attachment]| -> Vec<FirewallElement> {
            atts.iter()
                .flat_map(ruleset::elements_of_attachment)
                .collect()
        };
        self.element_transaction(
            &change.networks_present,
            &of(&change.attachments_added),
            &of(&change.attachments_removed),
            &change.networks_removed,
        )
    }

    fn element_transaction(
        &self,
        networks_present: &[Network],
        added: &[FirewallElement],
        deleted: &[FirewallElement],
        networks_removed: &[Network],
    ) -> Result<elements::Transaction> {
        let network_elements = |nets: &[Network]| -> Vec<(&'static str, Value)> {
            nets.iter().flat_map(ruleset::network_elements).collect()
        };
        let present = network_elements(networks_present);
        let removed = network_elements(networks_removed);
        let marker = ruleset::marker_key();
        // Touching the marker set fails the batch (ENOENT) unless this
        // version's skeleton is in place; whether it is complete (the
        // marker's element, added last by a rebuild with the rules nft
        // cannot write, `prepare_rebuild_tail`) is looked up before the
        // batch (`checked_commit`). Not by deleting and re-adding the
        // element in the batch: an element deletion costs the process an
        // RCU grace period (a setup measured 8 ms slower with it).
        let mut ops = vec![op(Verb::Add, ruleset::SCHEMA_MARKER, &marker, None)];
        ops.extend(by_set(
            present
                .iter()
                .map(|(set, key)| op(Verb::Add, set, key, None)),
        ));
        ensure_absent(
            &mut ops,
            deleted
                .iter()
                .map(|e| (e.set.as_str(), &e.key, e.value.as_ref()))
                .collect(),
        );
        ops.extend(by_set(
            added
                .iter()
                .map(|e| op(Verb::Add, &e.set, &e.key, e.value.as_ref())),
        ));
        ensure_absent(
            &mut ops,
            removed.iter().map(|(set, key)| (*set, key, None)).collect(),
        );
        elements::prepare(&ops)
    }
}

/// Commit `t` if this version's table is in place and complete (the
/// marker's element is there, one lookup under the state lock, which
/// every rebuild also holds); `FirewallMissing` otherwise, and the caller
/// rebuilds.
fn checked_commit(t: elements::Transaction) -> Result<()> {
    if !elements::contains(ruleset::SCHEMA_MARKER, &ruleset::marker_key())? {
        return Err(Error::FirewallMissing);
    }
    t.commit()
}

impl Firewall for Nft {
    fn start_apply(&self, change: &Change) -> Result<Pending> {
        // Committed before it returns, on the calling thread. A thread of
        // its own, to overlap the commit with the caller's link work, cost
        // more than it saved once that work stopped waiting for RCU
        // (measured side by side: 0.2-0.3 ms more CPU per setup and per
        // teardown, no wall time saved); a missing table still surfaces at
        // `wait`, where the caller rebuilds.
        let done = checked_commit(self.transaction(change)?);
        Ok(Pending::new(move || done))
    }

    /// On the calling thread: nothing to overlap with.
    fn apply(&self, change: &Change) -> Result<()> {
        checked_commit(self.transaction(change)?)
    }

    fn may_have_dnated(&self, ip: IpAddr) -> Result<bool> {
        if !elements::contains(ruleset::SCHEMA_MARKER, &ruleset::marker_key())? {
            return Ok(true);
        }
        let seen = ruleset::dnat_seen_element(ip);
        elements::contains(&seen.set, &seen.key)
    }

    fn forget_dnated(&self, ip: IpAddr) -> Result<()> {
        let seen = [ruleset::dnat_seen_element(ip)];
        match self
            .element_transaction(&[], &[], &seen, &[])
            .and_then(|t| t.commit())
        {
            // Nothing left to forget.
            Err(Error::FirewallMissing) => Ok(()),
            r => r,
        }
    }

    fn rebuild(&self, networks: &[Network], contents: &Contents) -> Result<()> {
        let mut elements: Vec<FirewallElement> = contents
            .attachments
            .iter()
            .flat_map(|a| ruleset::elements_of_attachment(a))
            .collect();
        one_port_per_mac(&mut elements);
        elements.extend(
            contents
                .dnated
                .iter()
                .map(|ip| ruleset::dnat_seen_element(*ip)),
        );
        // All in the same transaction as the rebuild.
        let mut cmds = delete_tables();
        cmds.extend(ruleset::skeleton());
        cmds.extend(elements_of(networks, "add"));
        cmds.extend(
            elements
                .iter()
                .map(|e| ruleset::element("add", &e.set, &e.key, e.value.as_ref())),
        );
        self.run(cmds, "rebuild")?;
        // The marker's element says "this version's table is in place, and
        // complete" to lookups (may_have_dnated) as well as to batches;
        // it comes with the rules nft cannot write.
        elements::prepare_rebuild_tail(&ruleset::marker_key())?.commit()
    }

    fn rule_count(&self) -> Result<usize> {
        let mut count = 0;
        for (family, table) in TABLES {
            if let Some(r) = self.list_table(family, table)? {
                count += r
                    .objects
                    .iter()
                    .filter(|o| {
                        matches!(
                            o,
                            nftables::schema::NfObject::ListObject(
                                nftables::schema::NfListObject::Rule(_)
                            )
                        )
                    })
                    .count();
            }
        }
        Ok(count)
    }

    fn remove(&self) -> Result<()> {
        self.run(delete_tables(), "remove tables")
    }
}

/// A rebuild must not fail as a whole, nor pair one MAC with two ports,
/// if records made by an earlier version ever gave two containers of one
/// bridge the same MAC: the first record (the oldest) keeps it, and the
/// second port loses its permission to send with it, so that container
/// is cut off until it is restarted with another MAC (logged).
fn one_port_per_mac(elements: &mut Vec<FirewallElement>) {
    let mut owners: std::collections::HashMap<String, Value> = Default::default();
    let mut refused: Vec<Value> = Vec::new();
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
                    refused.push(json!({"concat": [port, mac]}));
                }
                false
            }
        }
    });
    elements.retain(|e| !(e.set == ruleset::SET_PORT_MAC && refused.contains(&e.key)));
}
