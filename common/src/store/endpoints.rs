//! One JSON file per endpoint under `<state>/endpoints/<container id>.json`.

use std::path::PathBuf;

use crate::model::Endpoint;
use crate::store::{fsutil, StateDir};
use crate::{validate, Error, Result};

impl StateDir {
    pub fn endpoint_path(&self, id: &str) -> Result<PathBuf> {
        // The id is validated where it enters, but it becomes a path here, so
        // check again rather than trust every caller.
        validate::container_id("container id", id)?;
        Ok(self.endpoints_dir().join(format!("{id}.json")))
    }

    pub fn load_endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        fsutil::read_json(&self.endpoint_path(id)?)
    }

    pub fn save_endpoint(&self, ep: &Endpoint) -> Result<()> {
        fsutil::ensure_private_dir(&self.endpoints_dir())?;
        fsutil::write_json(
            &self.endpoint_path(&ep.id)?,
            ep,
            fsutil::Durability::Runtime,
        )
    }

    pub fn remove_endpoint(&self, id: &str) -> Result<()> {
        fsutil::remove_if_exists(&self.endpoint_path(id)?)
    }

    /// Every endpoint, sorted by id. Unreadable or corrupt files are returned
    /// as errors beside the good ones, so one bad file never hides the rest.
    pub fn list_endpoints(&self) -> (Vec<Endpoint>, Vec<Error>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let files = match fsutil::json_files(&self.endpoints_dir()) {
            Ok(f) => f,
            Err(e) => return (good, vec![e]),
        };
        for (_, path) in files {
            match fsutil::read_json::<Endpoint>(&path) {
                Ok(Some(ep)) => good.push(ep),
                Ok(None) => {}
                Err(e) => bad.push(e),
            }
        }
        good.sort_by(|a, b| a.id.cmp(&b.id));
        (good, bad)
    }
}
