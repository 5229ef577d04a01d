//! The hook's endpoint records, read again only when they changed. With a
//! thousand containers, parsing every record on every scrape was most of a
//! scrape's time; the hook writes each record by renaming a temporary file
//! into the directory, so any change moves the directory's mtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ocinet_common::model::Endpoint;
use ocinet_common::store::StateDir;

/// A directory's mtime comes from the kernel's coarse clock (one tick, at
/// most 10 ms): a read that started within this long of the mtime may have
/// missed a write made in the same tick, so it is not reused.
const RACY: Duration = Duration::from_millis(50);

pub struct EndpointCache {
    state: StateDir,
    dir: PathBuf,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    mtime: SystemTime,
    endpoints: Arc<Vec<Endpoint>>,
    unreadable: usize,
}

impl EndpointCache {
    pub fn new(state: StateDir) -> Self {
        let dir = state.endpoints_dir();
        EndpointCache {
            state,
            dir,
            cached: Mutex::new(None),
        }
    }

    /// The records, and how many files could not be read. Unreadable files
    /// are logged when they are read, not on every scrape.
    pub fn get(&self) -> (Arc<Vec<Endpoint>>, usize) {
        let started = SystemTime::now();
        // Not followed: a symlink there is refused by list_endpoints below.
        let mtime = std::fs::symlink_metadata(&self.dir)
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok());
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(c), Some(m)) = (cached.as_ref(), mtime) {
            if c.mtime == m {
                return (c.endpoints.clone(), c.unreadable);
            }
        }
        let (endpoints, bad) = self.state.list_endpoints();
        for e in &bad {
            tracing::warn!("skipping endpoint state: {e}");
        }
        let endpoints = Arc::new(endpoints);
        let trusted = mtime.filter(|m| started.duration_since(*m).is_ok_and(|age| age >= RACY));
        *cached = trusted.map(|mtime| Cached {
            mtime,
            endpoints: endpoints.clone(),
            unreadable: bad.len(),
        });
        (endpoints, bad.len())
    }
}
