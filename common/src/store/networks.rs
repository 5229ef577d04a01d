//! Network definitions under `<config>/networks/<name>.json`.

use std::path::{Path, PathBuf};

use crate::model::network::{Network, DEFAULT_NETWORK};
use crate::store::fsutil;
use crate::{validate, Error, Result};

#[derive(Debug, Clone)]
pub struct ConfigDir {
    root: PathBuf,
}

impl ConfigDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ConfigDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        validate::name("network name", name)?;
        Ok(self.networks_dir().join(format!("{name}.json")))
    }

    pub fn load(&self, name: &str) -> Result<Option<Network>> {
        let net: Option<Network> = fsutil::read_config_json(&self.path(name)?)?;
        if let Some(n) = &net {
            if n.name != name {
                return Err(Error::CorruptState {
                    path: self.path(name)?,
                    reason: format!("holds network {:?}", n.name),
                });
            }
            // Its values reach netlink, nft and /proc/sys paths: a file
            // edited by hand gets the same checks as `network create`.
            n.validate().map_err(|e| Error::CorruptState {
                path: self.path(name).unwrap_or_default(),
                reason: e.to_string(),
            })?;
            fsutil::check_private_dir(&self.networks_dir())?;
        }
        Ok(net)
    }

    /// The named network; the default network is created on first use.
    pub fn get(&self, name: &str) -> Result<Network> {
        if let Some(n) = self.load(name)? {
            return Ok(n);
        }
        if name == DEFAULT_NETWORK {
            let n = Network::default_network();
            self.save(&n)?;
            return Ok(n);
        }
        Err(Error::NotFound(format!(
            "network {name:?} does not exist (create it with `ocinet network create {name}`)"
        )))
    }

    pub fn save(&self, net: &Network) -> Result<()> {
        fsutil::ensure_private_dir(&self.networks_dir())?;
        fsutil::write_json(&self.path(&net.name)?, net, fsutil::Durability::Persistent)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        fsutil::remove_if_exists(&self.path(name)?)
    }

    pub fn list(&self) -> (Vec<Network>, Vec<Error>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let files = match fsutil::json_files(&self.networks_dir()) {
            Ok(f) => f,
            Err(e) => return (good, vec![e]),
        };
        for (stem, _) in files {
            match self.load(&stem) {
                Ok(Some(n)) => good.push(n),
                Ok(None) => {}
                Err(e) => bad.push(e),
            }
        }
        good.sort_by(|a, b| a.name.cmp(&b.name));
        (good, bad)
    }
}
