//! One JSON file per endpoint under `<state>/endpoints/`: `<id>.setup`
//! while its setup runs, renamed to `<id>.json` when it is done. The name is
//! the phase: a record under its setup name is in setup whatever it says
//! (it is written saying `ready`, so that the rename alone makes it true).
//! Marking a setup done by rewriting the record instead cost a second file,
//! and on a disk-backed /run (ext4 here) every new inode is a scan past
//! recently deleted ones that grows with the number of setups.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::IoContext;
use crate::firewall::ruleset;
use crate::model::{Endpoint, Phase};
use crate::store::lock::StateLock;
use crate::store::{fsutil, Need, StateDir};
use crate::{validate, Error, Result};

const SETUP: &str = "setup";
/// Present once every record is in this version's layout (attachments).
const LAYOUT_MARK: &str = ".layout-attachments";

impl StateDir {
    pub fn endpoint_path(&self, id: &str) -> Result<PathBuf> {
        // The id is validated where it enters, but it becomes a path here, so
        // check again rather than trust every caller.
        validate::container_id("container id", id)?;
        Ok(self.endpoints_dir().join(format!("{id}.json")))
    }

    fn setup_path(&self, id: &str) -> Result<PathBuf> {
        validate::container_id("container id", id)?;
        Ok(self.endpoints_dir().join(format!("{id}.{SETUP}")))
    }

    pub fn load_endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        if !self.dir(&self.endpoints_dir(), Need::Existing)? {
            return Ok(None);
        }
        if let Some(ep) = fsutil::read_json(&self.endpoint_path(id)?)? {
            return Ok(Some(ep));
        }
        Ok(fsutil::read_json::<Endpoint>(&self.setup_path(id)?)?.map(in_setup))
    }

    /// Write the record of a finished endpoint (or of one whose setup
    /// failed and is being undone).
    pub fn save_endpoint(&self, ep: &Endpoint) -> Result<()> {
        self.dir(&self.endpoints_dir(), Need::Create)?;
        fsutil::write_json(
            &self.endpoint_path(&ep.id)?,
            ep,
            fsutil::Durability::Runtime,
        )
    }

    /// Write the record of a setup under way, before its first kernel
    /// change: gc and the next hook find it and undo what it names.
    pub fn save_setup(&self, ep: &Endpoint) -> Result<()> {
        self.dir(&self.endpoints_dir(), Need::Create)?;
        let ready = Endpoint {
            phase: Phase::Ready,
            ..ep.clone()
        };
        fsutil::write_json(
            &self.setup_path(&ep.id)?,
            &ready,
            fsutil::Durability::Runtime,
        )
    }

    /// The setup recorded by `save_setup` is done.
    pub fn finish_setup(&self, id: &str) -> Result<()> {
        let (from, to) = (self.setup_path(id)?, self.endpoint_path(id)?);
        self.dir(&self.endpoints_dir(), Need::Existing)?;
        std::fs::rename(&from, &to).at(&to)
    }

    pub fn remove_endpoint(&self, id: &str) -> Result<()> {
        if !self.dir(&self.endpoints_dir(), Need::Existing)? {
            return Ok(());
        }
        fsutil::remove_if_exists(&self.setup_path(id)?)?;
        fsutil::remove_if_exists(&self.endpoint_path(id)?)
    }

    /// Every record file as (id, path), finished ones before setups of the
    /// same id (only a hook killed between writing one and removing the
    /// other leaves both).
    pub fn endpoint_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut setups = Vec::new();
        let dir = self.endpoints_dir();
        if !self.dir(&dir, Need::Existing)? {
            return Ok(Vec::new());
        }
        for entry in fsutil::dir_entries(&dir)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if let Some(id) = name.strip_suffix(".json") {
                files.insert(id.to_string(), entry.path());
            } else if let Some(id) = name.strip_suffix(&format!(".{SETUP}")) {
                setups.push((id.to_string(), entry.path()));
            }
        }
        for (id, path) in setups {
            files.entry(id).or_insert(path);
        }
        Ok(files.into_iter().collect())
    }

    /// Every record as (id from its file name, what reading it gave),
    /// sorted by id; an unlistable directory is an error.
    pub fn read_endpoints(&self) -> Result<Vec<(String, Result<Endpoint>)>> {
        let mut out = Vec::new();
        for (id, path) in self.endpoint_files()? {
            let setup = path.extension().is_some_and(|x| x == SETUP);
            let read = match fsutil::read_json::<Endpoint>(&path) {
                Ok(Some(ep)) if setup => Ok(Some(in_setup(ep))),
                // Renamed to its finished name since the directory was
                // listed (readers of the list hold no lock).
                Ok(None) if setup => self
                    .endpoint_path(&id)
                    .and_then(|p| fsutil::read_json::<Endpoint>(&p)),
                other => other,
            };
            match read {
                Ok(Some(ep)) => out.push((id, Ok(ep))),
                Ok(None) => {}
                Err(e) => out.push((id, Err(e))),
            }
        }
        Ok(out)
    }

    /// Every endpoint, sorted by id. Unreadable or corrupt files are returned
    /// as errors beside the good ones, so one bad file never hides the rest.
    pub fn list_endpoints(&self) -> (Vec<Endpoint>, Vec<Error>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        match self.read_endpoints() {
            Ok(all) => {
                for (_, read) in all {
                    match read {
                        Ok(ep) => good.push(ep),
                        Err(e) => bad.push(e),
                    }
                }
            }
            Err(e) => bad.push(e),
        }
        good.sort_by(|a, b| a.id.cmp(&b.id));
        (good, bad)
    }
}

impl StateDir {
    /// Rewrite every record of 0.1.0's layout (one network's fields flat
    /// on the record) in this version's, once: a host upgraded with
    /// containers running. Reading converts too (`EndpointWire`), so a
    /// record that fails here still works; it is reported and tried again
    /// next time. Returns the ids converted.
    pub fn convert_records(&self, _held: &StateLock) -> (Vec<String>, Vec<Error>) {
        let dir = self.endpoints_dir();
        let mark = dir.join(LAYOUT_MARK);
        match std::fs::symlink_metadata(&mark) {
            Ok(_) => return (Vec::new(), Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return (Vec::new(), vec![Error::io(&mark, e)]),
        }
        let files = match self.endpoint_files() {
            Ok(f) => f,
            Err(e) => return (Vec::new(), vec![e]),
        };
        if !dir.exists() {
            return (Vec::new(), Vec::new());
        }
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for (id, path) in files {
            match convert_one(&path) {
                Ok(true) => done.push(id),
                Ok(false) => {}
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() {
            if let Err(e) = fsutil::write_json(&mark, &"2", fsutil::Durability::Runtime) {
                failed.push(e);
            }
        }
        (done, failed)
    }
}

/// Whether the record at `path` was in the old layout (and is rewritten).
fn convert_one(path: &std::path::Path) -> Result<bool> {
    let Some(raw) = fsutil::read_json::<serde_json::Value>(path)? else {
        return Ok(false);
    };
    let old = [
        "ip",
        "host_veth",
        "parent",
        "interface",
        "firewall",
        "ports",
    ]
    .iter()
    .any(|k| raw.get(k).is_some());
    if !old {
        return Ok(false);
    }
    let mut ep: Endpoint = serde_json::from_value(raw).map_err(|e| Error::CorruptState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // This version derives an attachment's elements from what it records.
    // A record whose listed elements are not what would be derived (made
    // under an older ruleset) keeps its list: its teardown then deletes
    // exactly what it listed.
    let listed_is_derived = ep.attachments.iter().all(|a| {
        let key = |v: Vec<crate::model::FirewallElement>| {
            let mut k: Vec<String> = v
                .iter()
                .map(|e| serde_json::to_string(e).unwrap_or_default())
                .collect();
            k.sort();
            k.dedup();
            k
        };
        let derived = crate::model::Attachment {
            legacy_firewall: Vec::new(),
            ..a.clone()
        };
        a.legacy_firewall.is_empty()
            || key(ruleset::elements_of_attachment(a))
                == key(ruleset::elements_of_attachment(&derived))
    });
    if listed_is_derived {
        for a in &mut ep.attachments {
            a.legacy_firewall.clear();
        }
    } else {
        tracing::warn!(file = %path.display(), "keeps the firewall elements it lists: they are of an older ruleset");
    }
    fsutil::write_json(path, &ep, fsutil::Durability::Runtime)?;
    Ok(true)
}

fn in_setup(ep: Endpoint) -> Endpoint {
    Endpoint {
        phase: Phase::Setup,
        ..ep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;

    #[test]
    fn a_setup_record_is_in_setup_until_renamed() {
        let root = std::env::temp_dir().join(format!("ocinet-endpoints-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let st = StateDir::new(&root);
        let ep = Endpoint::new("c1", "web", Mode::None);
        st.save_setup(&ep).unwrap();
        let phase = |id: &str| st.load_endpoint(id).unwrap().map(|e| e.phase);
        assert_eq!(phase("c1"), Some(Phase::Setup));
        assert_eq!(st.list_endpoints().0[0].phase, Phase::Setup);
        st.finish_setup("c1").unwrap();
        assert_eq!(phase("c1"), Some(Phase::Ready));
        // Both files (a hook killed between writing one and removing the
        // other): the finished one counts, once.
        st.save_setup(&ep).unwrap();
        let (eps, bad) = st.list_endpoints();
        assert!(bad.is_empty());
        assert_eq!(
            eps.iter().map(|e| e.phase).collect::<Vec<_>>(),
            [Phase::Ready]
        );
        st.remove_endpoint("c1").unwrap();
        assert_eq!(phase("c1"), None);
        assert!(st.endpoint_files().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }
}
#[cfg(test)]
mod round_trip {
    /// A long number in a record (an old record's nftables JSON) reads back
    /// as itself after a save (the fuzzer found one that did not).
    #[test]
    fn long_numbers_survive_a_save() {
        let text = "[333333333333333333333333333333333333338080, 8080, 1e300]";
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let again: serde_json::Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(v, again);
    }
}
