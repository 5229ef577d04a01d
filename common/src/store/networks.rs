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
        match self.probe(name)? {
            Definition::Missing => Ok(None),
            Definition::Good(n) => Ok(Some(n)),
            Definition::Broken(b) => Err(b.error()),
        }
    }

    /// The named definition as it is on disk: missing, good, or there but
    /// refused (what `network rm` still removes, and `ls` and `inspect`
    /// show as broken). Only a file that cannot be read at all is an
    /// error.
    pub fn probe(&self, name: &str) -> Result<Definition> {
        let path = self.path(name)?;
        let data = match fsutil::read_config_bytes(&path)? {
            Some(d) => d,
            None => return Ok(Definition::Missing),
        };
        let broken = |reason: String, parsed: Option<Network>| {
            // What ocinet may have made for it, named in the file even
            // when the rest does not parse.
            let bridge = serde_json::from_slice::<serde_json::Value>(&data)
                .ok()
                .and_then(|v| v.get("bridge")?.as_str().map(str::to_string))
                .filter(|b| validate::ifname("bridge", b).is_ok());
            Ok(Definition::Broken(Broken {
                name: name.to_string(),
                path: path.clone(),
                reason,
                parsed,
                bridge,
            }))
        };
        let n: Network = match fsutil::parse_json(&path, &data) {
            Ok(n) => n,
            Err(Error::CorruptState { reason, .. }) => return broken(reason, None),
            Err(e) => return Err(e),
        };
        if n.name != name {
            return broken(format!("holds network {:?}", n.name), None);
        }
        // Its values reach netlink, nft and /proc/sys paths: a file edited
        // by hand gets the same checks as `network create` (`save` runs
        // this very function before writing).
        if let Err(e) = n.validate() {
            return broken(e.to_string(), Some(n));
        }
        fsutil::check_private_dir(&self.networks_dir())?;
        Ok(Definition::Good(n))
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

    /// Write a definition: one the reader would refuse is refused here,
    /// by the same check (`Network::validate`), so that ocinet never
    /// writes a network it cannot read back.
    pub fn save(&self, net: &Network) -> Result<()> {
        net.validate()?;
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

    /// The definitions that are there but refused, by name.
    pub fn broken(&self) -> Vec<Broken> {
        let Ok(files) = fsutil::json_files(&self.networks_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<Broken> = files
            .into_iter()
            .filter_map(|(stem, _)| match self.probe(&stem) {
                Ok(Definition::Broken(b)) => Some(b),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// A network definition as found on disk.
#[derive(Debug)]
pub enum Definition {
    Missing,
    Good(Network),
    Broken(Broken),
}

/// A definition file that is there but refused.
#[derive(Debug, Clone)]
pub struct Broken {
    pub name: String,
    pub path: PathBuf,
    pub reason: String,
    /// The file's contents when they parse but fail validation.
    pub parsed: Option<Network>,
    /// The bridge the file names, if it names a valid interface name.
    pub bridge: Option<String>,
}

impl Broken {
    pub fn error(&self) -> Error {
        Error::CorruptState {
            path: self.path.clone(),
            reason: format!(
                "{} (`ocinet network rm {}` removes it)",
                self.reason, self.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::MAX_MTU;

    fn dir(tag: &str) -> ConfigDir {
        let root = std::env::temp_dir().join(format!("ocinet-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        ConfigDir::new(root)
    }

    /// The writer and the reader apply one check: what `save` writes
    /// `load` reads back equal, and what `load` would refuse `save` does
    /// not write (issue 21: a loopback parent's MTU 65536 was written and
    /// then unreadable).
    #[test]
    fn the_writer_refuses_what_the_reader_refuses() {
        let cfg = dir("agree");
        let good = Network {
            mtu: MAX_MTU,
            ..Network::default_network()
        };
        cfg.save(&good).unwrap();
        assert_eq!(cfg.load(&good.name).unwrap(), Some(good.clone()));
        for bad in [
            Network {
                mtu: MAX_MTU + 1,
                ..good.clone()
            },
            Network {
                mtu: 67,
                ..good.clone()
            },
            Network {
                options: crate::model::DriverOptions::Bridge(crate::model::BridgeOptions::named(
                    "not an ifname",
                )),
                ..good.clone()
            },
        ] {
            // Written by hand, the reader refuses it ...
            let path = cfg.networks_dir().join(format!("{}.json", bad.name));
            std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
            let read = cfg.load(&bad.name);
            assert!(read.is_err(), "{bad:?} was read back");
            assert!(matches!(cfg.probe(&bad.name), Ok(Definition::Broken(_))));
            // ... and the writer does not write it.
            std::fs::write(&path, serde_json::to_vec(&good).unwrap()).unwrap();
            let e = cfg.save(&bad).unwrap_err().to_string();
            assert!(e.contains("invalid"), "{e}");
            assert_eq!(cfg.load(&good.name).unwrap(), Some(good.clone()));
        }
        let _ = std::fs::remove_dir_all(cfg.root());
    }

    #[test]
    fn a_file_that_does_not_parse_is_broken_and_names_its_bridge() {
        let cfg = dir("broken");
        fsutil::ensure_private_dir(&cfg.networks_dir()).unwrap();
        std::fs::write(
            cfg.networks_dir().join("x.json"),
            br#"{"name":"x","bridge":"br-x","mtu":"lots"}"#,
        )
        .unwrap();
        match cfg.probe("x").unwrap() {
            Definition::Broken(b) => {
                assert_eq!(b.bridge.as_deref(), Some("br-x"));
                assert!(b.parsed.is_none());
                assert!(
                    b.error().to_string().contains("network rm x"),
                    "{}",
                    b.error()
                );
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(cfg.broken().len(), 1);
        assert!(cfg.list().0.is_empty());
        let _ = std::fs::remove_dir_all(cfg.root());
    }
}
