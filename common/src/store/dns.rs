//! The resolver's files under `<state>/dns/`: its pid and the addresses it
//! listens on (`resolver.json`),
//! its figures (`stats.json`), and the resolv.conf generated for each
//! container (`resolv/<id>.conf`, 0644: the container's processes read it
//! under any uid).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::model::ProcessId;
use crate::store::{fsutil, Need, StateDir};
use crate::{validate, Result};

/// What `resolver.json` says of the running resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverState {
    #[serde(flatten)]
    pub process: ProcessId,
    /// The addresses its UDP and TCP port 53 listeners are bound to; `None`
    /// in a file of a resolver that did not say (an earlier version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening: Option<Vec<IpAddr>>,
    /// Run by a service manager (`--persistent`): `gc` leaves it alone
    /// with no container to serve, where it ends one a hook started.
    /// `None` in a file of an earlier version, which did not say: left
    /// alone too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
}

impl StateDir {
    pub fn dns_dir(&self) -> PathBuf {
        self.root.join("dns")
    }

    fn resolver_pid_path(&self) -> PathBuf {
        self.dns_dir().join("resolver.json")
    }

    pub fn resolver_lock_file(&self) -> PathBuf {
        self.dns_dir().join("resolver.lock")
    }

    pub fn ensure_dns_dir(&self) -> Result<()> {
        self.dir(&self.dns_dir(), Need::Create).map(|_| ())
    }

    pub fn dns_stats_path(&self) -> PathBuf {
        self.dns_dir().join("stats.json")
    }

    pub fn resolv_conf_path(&self, id: &str) -> Result<PathBuf> {
        validate::container_id("container id", id)?;
        Ok(self.dns_dir().join("resolv").join(format!("{id}.conf")))
    }

    /// The running resolver, if its pid file names a live process.
    pub fn resolver(&self) -> Option<ProcessId> {
        self.resolver_state().map(|s| s.process)
    }

    /// The running resolver and where it listens.
    pub fn resolver_state(&self) -> Option<ResolverState> {
        if !self.dir(&self.dns_dir(), Need::Existing).ok()? {
            return None;
        }
        let s: ResolverState = fsutil::read_json(&self.resolver_pid_path()).ok()??;
        s.process.is_alive().then_some(s)
    }

    pub fn save_resolver(&self, s: &ResolverState) -> Result<()> {
        self.dir(&self.dns_dir(), Need::Create)?;
        fsutil::write_json(&self.resolver_pid_path(), s, fsutil::Durability::Runtime)
    }

    /// Forget the resolver, if the pid file names `p` (a newer one keeps
    /// its file).
    pub fn forget_resolver(&self, p: &ProcessId) -> Result<()> {
        let path = self.resolver_pid_path();
        if fsutil::read_json::<ProcessId>(&path)
            .ok()
            .flatten()
            .as_ref()
            == Some(p)
        {
            fsutil::remove_if_exists(&path)?;
        }
        Ok(())
    }

    pub fn save_dns_stats<T: serde::Serialize>(&self, stats: &T) -> Result<()> {
        self.dir(&self.dns_dir(), Need::Create)?;
        fsutil::write_json(&self.dns_stats_path(), stats, fsutil::Durability::Runtime)
    }

    pub fn dns_stats<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        if !self.dir(&self.dns_dir(), Need::Existing)? {
            return Ok(None);
        }
        fsutil::read_json(&self.dns_stats_path())
    }

    /// Write the resolv.conf of container `id`.
    pub fn save_resolv_conf(&self, id: &str, text: &str) -> Result<PathBuf> {
        let path = self.resolv_conf_path(id)?;
        self.dir(&self.dns_dir(), Need::Create)?;
        self.dir(&self.dns_dir().join("resolv"), Need::Create)?;
        fsutil::write_atomic_mode(&path, text.as_bytes(), fsutil::Durability::Runtime, 0o644)?;
        Ok(path)
    }

    /// Replace the content of a generated resolv.conf in place (it is
    /// bind-mounted into the container: the inode must stay). The new
    /// text is written over the old, then the file cut to its length.
    pub fn rewrite_resolv_conf(&self, id: &str, text: &str) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let path = self.resolv_conf_path(id)?;
        if !self.dir(&self.dns_dir(), Need::Existing)? {
            return Ok(());
        }
        let f = match fsutil::open_nofollow(&path, std::fs::OpenOptions::new().write(true), 0) {
            Ok(f) => f,
            Err(crate::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        fsutil::check_own_file(&f, &path)?;
        f.write_all_at(text.as_bytes(), 0).at(&path)?;
        f.set_len(text.len() as u64).at(&path)
    }

    /// The containers a resolv.conf was generated for.
    pub fn resolv_conf_ids(&self) -> Result<Vec<String>> {
        let dir = self.dns_dir().join("resolv");
        if !self.dir(&self.dns_dir(), Need::Existing)? || !self.dir(&dir, Need::Existing)? {
            return Ok(Vec::new());
        }
        Ok(fsutil::dir_entries(&dir)?
            .into_iter()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".conf")?.to_string();
                validate::container_id("id", &name).is_ok().then_some(name)
            })
            .collect())
    }

    pub fn remove_resolv_conf(&self, id: &str) -> Result<()> {
        if !self.dir(&self.dns_dir(), Need::Existing)? {
            return Ok(());
        }
        fsutil::remove_if_exists(&self.resolv_conf_path(id)?)
    }
}
