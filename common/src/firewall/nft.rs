//! The nftables backend. The skeleton (tables, sets, chains, rules) is
//! declared by one `nft -j -f -` process per rebuild, with documents checked
//! against the `nftables` crate's schema types; the per-container elements
//! go straight over netlink (`elements.rs`), one batch per hook call.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::elements::{self, Op, Verb};
use super::ruleset::{self, TABLES};
use super::{Change, Firewall, Pending};
use crate::model::{FirewallElement, Network};
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
        if let Some(mut stdin) = child.stdin.take() {
            if let Err(e) = stdin.write_all(&input) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Firewall(format!("{what}: writing to nft: {e}")));
            }
        }
        let what = what.to_string();
        Ok(Pending::new(move || finish(child, &what)))
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

fn finish(child: std::process::Child, what: &str) -> Result<()> {
    let _span = tracing::debug_span!("nft_wait", what).entered();
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Firewall(format!("{what}: {e}")))?;
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
        let network_elements = |nets: &[Network]| -> Vec<(&'static str, Value)> {
            nets.iter().flat_map(ruleset::network_elements).collect()
        };
        let present = network_elements(&change.networks_present);
        let removed = network_elements(&change.networks_removed);
        let marker = ruleset::marker_key();
        let add = |set, key, value| Op {
            verb: Verb::Add,
            set,
            key,
            value,
        };
        // Deletions succeed whether or not the element is still there
        // (someone may have removed it): add, then delete, in the same
        // transaction. Kernels before 6.3 have no DESTROYSETELEM.
        let delete = |set, key, value| {
            [
                add(set, key, value),
                Op {
                    verb: Verb::Delete,
                    ..add(set, key, value)
                },
            ]
        };
        // Touching the marker set fails the batch (ENOENT) unless this
        // version's skeleton is in place.
        let mut ops = vec![add(ruleset::SCHEMA_MARKER, &marker, None)];
        ops.extend(present.iter().map(|(set, key)| add(set, key, None)));
        for e in &change.elements_deleted {
            ops.extend(delete(&e.set, &e.key, e.value.as_ref()));
        }
        ops.extend(
            change
                .elements_added
                .iter()
                .map(|e| add(&e.set, &e.key, e.value.as_ref())),
        );
        for (set, key) in &removed {
            ops.extend(delete(set, key, None));
        }
        elements::prepare(&ops)
    }
}

impl Firewall for Nft {
    fn start_apply(&self, change: &Change) -> Result<Pending> {
        // The transaction runs beside the caller's other kernel work (a
        // veth deletion waits ~20 ms for RCU).
        let transaction = self.transaction(change)?;
        let worker = std::thread::Builder::new()
            .name("nf_tables".into())
            .spawn(move || transaction.commit())
            .map_err(|e| Error::Firewall(format!("starting the nf_tables transaction: {e}")))?;
        Ok(Pending::new(move || {
            worker
                .join()
                .unwrap_or_else(|_| Err(Error::Firewall("nf_tables transaction panicked".into())))
        }))
    }

    /// On the calling thread: nothing to overlap with.
    fn apply(&self, change: &Change) -> Result<()> {
        self.transaction(change)?.commit()
    }

    fn may_have_dnated(&self, ip: Ipv4Addr) -> Result<bool> {
        if !elements::contains(ruleset::SCHEMA_MARKER, &ruleset::marker_key())? {
            return Ok(true);
        }
        elements::contains(ruleset::SET_DNAT_SEEN, &ruleset::dnat_seen_element(ip).key)
    }

    fn forget_dnated(&self, ip: Ipv4Addr) -> Result<()> {
        let change = Change {
            elements_deleted: vec![ruleset::dnat_seen_element(ip)],
            ..Default::default()
        };
        match self.apply(&change) {
            // Nothing left to forget.
            Err(Error::FirewallMissing) => Ok(()),
            r => r,
        }
    }

    fn rebuild(&self, networks: &[Network], elements: &[FirewallElement]) -> Result<()> {
        // All in the same transaction as the rebuild.
        let mut cmds = delete_tables();
        cmds.extend(ruleset::skeleton());
        // The marker's element says "this version's table is in place" to
        // lookups (may_have_dnated) as well as to batches.
        cmds.push(ruleset::element(
            "add",
            ruleset::SCHEMA_MARKER,
            &ruleset::marker_key(),
            None,
        ));
        cmds.extend(elements_of(networks, "add"));
        cmds.extend(
            elements
                .iter()
                .map(|e| ruleset::element("add", &e.set, &e.key, e.value.as_ref())),
        );
        self.run(cmds, "rebuild")
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
