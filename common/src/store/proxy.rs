//! The port proxy's files under `<state>/proxy/`: its pid (`proxy.json`),
//! its instance lock (`proxy.lock`) and its control socket
//! (`control.sock`), in a 0700 directory, so only ocinet's own user
//! reaches the socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::ProcessId;
use crate::store::{fsutil, Need, StateDir};
use crate::Result;

/// What `proxy.json` says of the running proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyState {
    #[serde(flatten)]
    pub process: ProcessId,
    /// Run by a service manager (`--persistent`): `gc` leaves it alone
    /// with no port to serve, where it ends one a hook started.
    pub persistent: bool,
}

impl StateDir {
    pub fn proxy_dir(&self) -> PathBuf {
        self.root.join("proxy")
    }

    fn proxy_pid_path(&self) -> PathBuf {
        self.proxy_dir().join("proxy.json")
    }

    pub fn proxy_lock_file(&self) -> PathBuf {
        self.proxy_dir().join("proxy.lock")
    }

    pub fn proxy_socket(&self) -> PathBuf {
        self.proxy_dir().join("control.sock")
    }

    /// Make (0700) and check the proxy's directory.
    pub fn ensure_proxy_dir(&self) -> Result<()> {
        self.dir(&self.proxy_dir(), Need::Create).map(|_| ())
    }

    /// The running proxy, if its pid file names a live process.
    pub fn proxy_state(&self) -> Option<ProxyState> {
        if !self.dir(&self.proxy_dir(), Need::Existing).ok()? {
            return None;
        }
        let s: ProxyState = fsutil::read_json(&self.proxy_pid_path()).ok()??;
        s.process.is_alive().then_some(s)
    }

    pub fn save_proxy(&self, s: &ProxyState) -> Result<()> {
        self.dir(&self.proxy_dir(), Need::Create)?;
        fsutil::write_json(&self.proxy_pid_path(), s, fsutil::Durability::Runtime)
    }

    /// Forget the proxy, if the pid file names `p` (a newer one keeps its
    /// file).
    pub fn forget_proxy(&self, p: &ProcessId) -> Result<()> {
        let path = self.proxy_pid_path();
        if fsutil::read_json::<ProxyState>(&path)
            .ok()
            .flatten()
            .is_some_and(|s| s.process == *p)
        {
            fsutil::remove_if_exists(&path)?;
        }
        Ok(())
    }
}
