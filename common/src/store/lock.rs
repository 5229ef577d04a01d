//! One exclusive lock serialises every change to leases, endpoints and the
//! firewall, across concurrent hook processes (flock is released by the
//! kernel if a holder dies, so a SIGKILLed hook never wedges the others).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::store::fsutil;
use crate::{Error, Result};

pub struct StateLock {
    lock: Flock<File>,
}

impl StateLock {
    /// The lock at `path` if no one holds it, else `None` (for the one
    /// resolver per state directory).
    pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
        let file = fsutil::open_nofollow(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600),
            0,
        )?;
        fsutil::check_own_file(&file, path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(StateLock { lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::io(path, std::io::Error::from(e))),
        }
    }

    pub fn acquire(path: &Path) -> Result<Self> {
        let _span = tracing::debug_span!("lock", path = %path.display()).entered();
        let file = fsutil::open_nofollow(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600),
            0,
        )?;
        fsutil::check_own_file(&file, path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io(path, std::io::Error::from(e)))?;
        Ok(StateLock { lock })
    }

    /// The namespace id the last setup gave a container's namespace in the
    /// host's (`ocinet_core::nsid`), kept in the lock file itself: the
    /// lock is all the protection it needs, and a lost or torn value costs
    /// nothing but speed (any id works), so it is read and written in
    /// place, without the rename and sync a state file gets.
    pub fn last_nsid(&self) -> Option<i32> {
        let mut b = [0u8; 4];
        match self.lock.read_at(&mut b, 0) {
            Ok(4) => Some(i32::from_le_bytes(b)),
            _ => None,
        }
    }

    pub fn set_last_nsid(&self, id: i32) {
        if let Err(e) = self.lock.write_at(&id.to_le_bytes(), 0) {
            tracing::debug!("namespace id not kept in the lock file: {e}");
        }
    }
}
