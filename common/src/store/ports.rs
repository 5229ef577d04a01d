//! Which container holds which host port: one index for all networks,
//! checked and updated under the state lock, so two containers can never
//! publish the same port and the check costs the same at 1 or 1,000
//! containers (no scan of every endpoint).

use serde::{Deserialize, Serialize};

use crate::model::ports::conflicts;
use crate::model::{PortMapping, PortSpec};
use crate::store::{fsutil, StateDir};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub name: String,
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortIndex {
    pub claims: Vec<Claim>,
}

impl PortIndex {
    /// The first claim of another container that overlaps `ports`: the
    /// claim, the wanted mapping and the held mapping it collides with.
    fn first_conflict(
        &self,
        id: &str,
        ports: &[PortSpec],
    ) -> Option<(&Claim, PortMapping, PortMapping)> {
        let wanted: Vec<PortMapping> = ports.iter().flat_map(|s| s.mappings()).collect();
        self.claims.iter().filter(|c| c.id != id).find_map(|c| {
            c.ports.iter().flat_map(|s| s.mappings()).find_map(|held| {
                wanted
                    .iter()
                    .find(|w| conflicts(w, &held))
                    .map(|w| (c, *w, held))
            })
        })
    }

    /// Claim `ports` for `id`, or name the port and the container holding it.
    pub fn claim(&mut self, id: &str, name: &str, ports: &[PortSpec]) -> Result<()> {
        if let Some((c, w, held)) = self.first_conflict(id, ports) {
            let addr = |m: &PortMapping| {
                m.host_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into())
            };
            return Err(Error::Conflict(format!(
                "host port {}:{}/{} is already published by container {} ({}) as {}:{}/{}",
                addr(&w),
                w.host_port,
                w.protocol,
                c.id,
                c.name,
                addr(&held),
                held.host_port,
                held.protocol
            )));
        }
        self.release(id);
        if !ports.is_empty() {
            self.claims.push(Claim {
                id: id.into(),
                name: name.into(),
                ports: ports.to_vec(),
            });
        }
        Ok(())
    }

    /// The container (other than `id`) holding any of `ports`.
    pub fn conflicting_holder(&self, id: &str, ports: &[PortSpec]) -> Option<String> {
        self.first_conflict(id, ports).map(|(c, _, _)| c.id.clone())
    }

    pub fn release(&mut self, id: &str) -> bool {
        let before = self.claims.len();
        self.claims.retain(|c| c.id != id);
        before != self.claims.len()
    }
}

impl StateDir {
    fn ports_path(&self) -> std::path::PathBuf {
        self.root().join("ports.json")
    }

    pub fn load_ports(&self) -> Result<PortIndex> {
        Ok(fsutil::read_json(&self.ports_path())?.unwrap_or_default())
    }

    pub fn save_ports(&self, index: &PortIndex) -> Result<()> {
        fsutil::write_json(&self.ports_path(), index, fsutil::Durability::Runtime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ports::parse_list;

    #[test]
    fn claims_conflict_by_protocol_port_and_address() {
        let mut ix = PortIndex::default();
        ix.claim(
            "a",
            "web",
            &parse_list("p", "8080:80,127.0.0.1:9000:90").unwrap(),
        )
        .unwrap();
        let e = ix
            .claim("b", "b", &parse_list("p", "8080:81").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("8080/tcp") && e.contains("container a (web)"),
            "{e}"
        );
        let e = ix
            .claim("b", "b", &parse_list("p", "9000:90").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("9000"), "{e}");
        ix.claim(
            "b",
            "b",
            &parse_list("p", "8080:80/udp,127.0.0.2:9000:90").unwrap(),
        )
        .unwrap();
        // Re-claiming one's own ports is fine; releasing frees them.
        ix.claim("a", "web", &parse_list("p", "8080:80").unwrap())
            .unwrap();
        assert!(ix.release("a"));
        ix.claim("c", "c", &parse_list("p", "8080:80").unwrap())
            .unwrap();
    }
}
