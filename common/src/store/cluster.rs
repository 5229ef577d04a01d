//! The overlay agent's files under `<state>/cluster/`: its pid and lease
//! (`agent.json`), its instance lock (`agent.lock`), and the names of
//! other hosts' containers it read from the cluster store
//! (`names.json`, for the resolver), in a 0700 directory.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::ProcessId;
use crate::store::{fsutil, Need, StateDir};
use crate::Result;

/// What `agent.json` says of the running agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    #[serde(flatten)]
    pub process: ProcessId,
    /// The store lease this host's keys are on, once the agent registered
    /// the host (0 before).
    pub lease: i64,
    /// Run by a service manager: stays when no overlay container is left.
    #[serde(default)]
    pub persistent: bool,
}

/// A container of another host on an overlay network, as its resolver
/// answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteName {
    pub network: String,
    pub node: String,
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub addresses: Vec<IpAddr>,
}

impl StateDir {
    pub fn cluster_dir(&self) -> PathBuf {
        self.root.join("cluster")
    }

    fn agent_path(&self) -> PathBuf {
        self.cluster_dir().join("agent.json")
    }

    pub fn agent_lock_file(&self) -> PathBuf {
        self.cluster_dir().join("agent.lock")
    }

    fn remote_names_path(&self) -> PathBuf {
        self.cluster_dir().join("names.json")
    }

    pub fn ensure_cluster_dir(&self) -> Result<()> {
        self.dir(&self.cluster_dir(), Need::Create).map(|_| ())
    }

    /// The running agent, if its pid file names a live process.
    pub fn agent_state(&self) -> Option<AgentState> {
        if !self.dir(&self.cluster_dir(), Need::Existing).ok()? {
            return None;
        }
        let s: AgentState = fsutil::read_json(&self.agent_path()).ok()??;
        s.process.is_alive().then_some(s)
    }

    pub fn save_agent(&self, s: &AgentState) -> Result<()> {
        self.dir(&self.cluster_dir(), Need::Create)?;
        fsutil::write_json(&self.agent_path(), s, fsutil::Durability::Runtime)
    }

    /// Forget the agent, if the pid file names `p`.
    pub fn forget_agent(&self, p: &ProcessId) -> Result<()> {
        let path = self.agent_path();
        if fsutil::read_json::<AgentState>(&path)
            .ok()
            .flatten()
            .is_some_and(|s| s.process == *p)
        {
            fsutil::remove_if_exists(&path)?;
        }
        Ok(())
    }

    /// Other hosts' containers, as an agent last read them from the
    /// store. The file outlives its agent: after the agent died these are
    /// served as they were (stale: what started or stopped on other hosts
    /// since is not in them) until an agent runs again (the next overlay
    /// setup starts one) and rewrites them; `cluster leave` removes the
    /// file. None when it was never written or cannot be read: the
    /// resolver then answers this host's names only.
    pub fn remote_names(&self) -> Vec<RemoteName> {
        if !matches!(self.dir(&self.cluster_dir(), Need::Existing), Ok(true)) {
            return Vec::new();
        }
        fsutil::read_json(&self.remote_names_path())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn save_remote_names(&self, names: &[RemoteName]) -> Result<()> {
        self.dir(&self.cluster_dir(), Need::Create)?;
        fsutil::write_json(
            &self.remote_names_path(),
            &names,
            fsutil::Durability::Runtime,
        )
    }

    pub fn remote_names_file(&self) -> PathBuf {
        self.remote_names_path()
    }
}
