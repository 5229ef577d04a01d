//! The nftables backend: drives `nft -j -f -` through the `nftables` crate,
//! one process and one transaction per call.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::ruleset::{self, FAMILY, TABLE};
use super::{Change, Firewall};
use crate::model::{FirewallElement, Network};
use crate::{Error, Result};

pub struct Nft {
    program: PathBuf,
}

/// podman runs poststop hooks with an empty environment (no PATH), so look
/// in the usual places rather than rely on a search path.
const NFT_CANDIDATES: &[&str] = &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/usr/local/sbin/nft", "/bin/nft"];

impl Nft {
    pub fn new() -> Result<Self> {
        NFT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .map(|program| Nft { program })
            .ok_or_else(|| Error::Firewall(format!("nft not found (looked in {})", NFT_CANDIDATES.join(", "))))
    }

    fn run(&self, commands: Vec<Value>, what: &str) -> Result<()> {
        let _span = tracing::debug_span!("nft", what, commands = commands.len()).entered();
        let doc = json!({"nftables": commands});
        // Check the document against the nftables JSON schema before nft
        // sees it.
        let parsed: nftables::schema::Nftables = serde_json::from_value(doc)
            .map_err(|e| Error::Firewall(format!("{what}: invalid nftables JSON: {e}")))?;
        let program = self.program.to_string_lossy();
        nftables::helper::apply_ruleset_with_args(&parsed, Some(program.as_ref()), std::iter::empty::<&str>())
            .map_err(|e| Error::Firewall(format!("{what}: {e}")))
    }

    fn list_table(&self) -> Result<Option<nftables::schema::Nftables<'static>>> {
        let program = self.program.to_string_lossy();
        let args = ["list", "table", FAMILY, TABLE];
        match nftables::helper::get_current_ruleset_with_args(Some(program.as_ref()), args) {
            Ok(r) => Ok(Some(r)),
            Err(nftables::helper::NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file") => Ok(None),
            Err(e) => Err(Error::Firewall(format!("list table: {e}"))),
        }
    }
}

fn elements_of(change_networks: &[Network], verb: &str) -> Vec<Value> {
    change_networks
        .iter()
        .flat_map(ruleset::network_elements)
        .map(|(set, elem)| ruleset::element(verb, set, &elem, None))
        .collect()
}

/// Delete elements whether or not they are still there (someone may have
/// flushed the ruleset): add, then delete, in the same transaction. nft
/// 1.0.6 has no `destroy`.
fn delete_elements<'a>(elements: impl Iterator<Item = (&'a str, &'a Value, Option<&'a Value>)>) -> Vec<Value> {
    elements
        .flat_map(|(set, key, value)| {
            [ruleset::element("add", set, key, value), ruleset::element("delete", set, key, None)]
        })
        .collect()
}

impl Firewall for Nft {
    fn apply(&self, change: &Change) -> Result<()> {
        let mut cmds = ruleset::skeleton();
        cmds.extend(elements_of(&change.networks_present, "add"));
        cmds.extend(delete_elements(change.elements_deleted.iter().map(|e| (e.set.as_str(), &e.key, e.value.as_ref()))));
        cmds.extend(change.elements_added.iter().map(|e| ruleset::element("add", &e.set, &e.key, e.value.as_ref())));
        let removed: Vec<(&str, Value)> = change.networks_removed.iter().flat_map(ruleset::network_elements).collect();
        cmds.extend(delete_elements(removed.iter().map(|(set, key)| (*set, key, None))));
        self.run(cmds, "apply")
    }

    fn rebuild(&self, networks: &[Network], elements: &[FirewallElement]) -> Result<()> {
        // "add" then "delete" makes the delete succeed whether or not the
        // table existed; all in the same transaction as the rebuild.
        let mut cmds = vec![
            json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
            json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}),
        ];
        cmds.extend(ruleset::skeleton());
        cmds.extend(elements_of(networks, "add"));
        cmds.extend(elements.iter().map(|e| ruleset::element("add", &e.set, &e.key, e.value.as_ref())));
        self.run(cmds, "rebuild")
    }

    fn rule_count(&self) -> Result<usize> {
        Ok(self
            .list_table()?
            .map(|r| {
                r.objects
                    .iter()
                    .filter(|o| matches!(o, nftables::schema::NfObject::ListObject(nftables::schema::NfListObject::Rule(_))))
                    .count()
            })
            .unwrap_or(0))
    }

    fn remove(&self) -> Result<()> {
        self.run(
            vec![
                json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
                json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}),
            ],
            "remove table",
        )
    }
}
