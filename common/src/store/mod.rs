//! Everything ocinet keeps on disk: network definitions (config dir),
//! endpoint records, address leases and port claims (state dir). Files are
//! written atomically; leases and claims are one symlink each, made and
//! removed in one system call; every change happens under one lock.

pub mod endpoints;
pub mod entries;
pub mod fsutil;
pub mod ipam;
pub mod legacy;
pub mod lock;
pub mod networks;
pub mod ports;

use std::path::{Path, PathBuf};

/// The state directory layout.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("ocinet.lock")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("ocinet.log")
    }
    pub fn endpoints_dir(&self) -> PathBuf {
        self.root.join("endpoints")
    }
    pub fn ipam_dir(&self) -> PathBuf {
        self.root.join("ipam")
    }
}
