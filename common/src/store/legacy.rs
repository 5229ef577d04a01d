//! The state layout of ocinet before per-entry files: one JSON file of
//! leases per network and one `ports.json` for every port claim. A host
//! upgraded with containers running still has them; the hook converts them
//! on its next run (under the lock) so no lease or claim is forgotten and
//! handed out twice.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ipam::Ipam;
use crate::model::PortSpec;
use crate::store::lock::StateLock;
use crate::store::{fsutil, Need, StateDir};
use crate::{validate, Error, Result};

/// `<state>/ipam/<network>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leases {
    /// Address -> container id.
    pub leases: BTreeMap<Ipv4Addr, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub name: String,
    pub ports: Vec<PortSpec>,
}

/// `<state>/ports.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortIndex {
    pub claims: Vec<Claim>,
}

impl StateDir {
    pub(crate) fn legacy_leases_path(&self, network: &str) -> PathBuf {
        self.ipam_dir().join(format!("{network}.json"))
    }

    pub(crate) fn legacy_ports_path(&self) -> PathBuf {
        self.root().join("ports.json")
    }

    /// Convert every file of the old layout: what was converted, and the
    /// files that could not be (left in place; the pool or the port claims
    /// they hold refuse new entries until they are fixed, see
    /// [`unconverted`]). A file is removed only once all of it is in the new
    /// layout, so a hook killed midway converts it again next time (taking
    /// an entry that is already there is a no-op).
    pub fn migrate_legacy(&self, _held: &StateLock) -> (Vec<PathBuf>, Vec<Error>) {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let ipam = self.ipam_dir();
        let files = match self
            .dir(&ipam, Need::Existing)
            .and_then(|_| fsutil::json_files(&ipam))
        {
            Ok(f) => f,
            Err(e) => return (done, vec![e]),
        };
        for (network, path) in files {
            // A directory named `<x>.json` is the pool of a network called
            // that, not an old file.
            if validate::name("network name", &network).is_err() || !is_old_file(&path) {
                continue;
            }
            match self.convert_leases(&network, &path) {
                Ok(()) => done.push(path),
                Err(e) => failed.push(e),
            }
        }
        let path = self.legacy_ports_path();
        if is_old_file(&path) {
            match self.convert_claims(&path) {
                Ok(()) => done.push(path),
                Err(e) => failed.push(e),
            }
        }
        (done, failed)
    }

    fn convert_leases(&self, network: &str, path: &Path) -> Result<()> {
        if let Some(old) = fsutil::read_json::<Leases>(path)? {
            let pool = self.pool(network)?;
            for (ip, id) in &old.leases {
                if validate::container_id("container id", id).is_err() {
                    tracing::warn!(%ip, "lease with an invalid holder not converted");
                    continue;
                }
                if let Some(other) = pool.take((*ip).into(), id)? {
                    tracing::warn!(%ip, holder = %other, old_holder = %id, "lease already held: kept");
                }
            }
            if let Some(last) = old.last {
                pool.remember_last(last.into())?;
            }
        }
        fsutil::remove_if_exists(path)
    }

    fn convert_claims(&self, path: &Path) -> Result<()> {
        if let Some(old) = fsutil::read_json::<PortIndex>(path)? {
            let claims = self.port_claims();
            for c in &old.claims {
                if validate::container_id("container id", &c.id).is_err() {
                    tracing::warn!("port claim with an invalid holder not converted");
                    continue;
                }
                if let Err(e) = claims.take_all(&c.id, None, &c.ports) {
                    tracing::warn!(id = %c.id, "port claim not converted: {e}");
                }
            }
        }
        fsutil::remove_if_exists(path)
    }
}

/// Whether `path` is a file of the old layout (a regular file, not
/// followed if a symlink).
pub(crate) fn is_old_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Refuse new entries while an old-layout file that holds some of them is
/// still there: it could not be converted, and what it holds must not be
/// handed out again.
pub(crate) fn unconverted(path: &Path) -> Result<()> {
    if is_old_file(path) {
        return Err(Error::CorruptState {
            path: path.to_path_buf(),
            reason: "is in the previous state layout and could not be converted (the hook's \
                     log says why); fix or remove it"
                .into(),
        });
    }
    Ok(())
}

/// The leases of an old-layout file, for readers that must not convert it
/// (the exporter holds no lock).
pub(crate) fn read_leases(path: &Path) -> Result<Option<Leases>> {
    if !is_old_file(path) {
        return Ok(None);
    }
    fsutil::read_json(path)
}
