//! Leases and port claims are one symlink each, named for what is held and
//! pointing at the holder: a lease at the container id (the network is its
//! directory), a port claim at `<id>@<network>`, the network its ports are
//! published from (claims made by 0.1.0 name the container only; `@` is in
//! neither ids nor network names). Taking one is one symlink(2),
//! atomic and exclusive, and giving it back one unlink(2). The entries are
//! never followed, only read with readlink(2). Callers that change entries
//! hold the state lock, so a holder check and the unlink after it never
//! race another hook. The directory of an entry is checked (see
//! `StateDir::dir`) before it is used, so an entry is never made, read or
//! removed through a symlinked directory.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::store::{Need, StateDir};
use crate::{validate, Error, Result};

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .ok_or_else(|| Error::invalid("state path", path.display(), "has no parent directory"))
}

/// Who holds the entry at `path`: `None` when nobody does. An entry that is
/// not a symlink (put there by hand) is held by "?", so it is never handed
/// out and gc can remove it.
pub(crate) fn holder_at(state: &StateDir, path: &Path) -> Result<Option<String>> {
    if !state.dir(parent(path)?, Need::Existing)? {
        return Ok(None);
    }
    match fs::read_link(path) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => Ok(Some("?".into())),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The container id of an entry's holder, and the network it names, if any.
pub(crate) fn split_holder(raw: &str) -> (&str, Option<&str>) {
    match raw.split_once('@') {
        Some((id, net)) => (id, Some(net)),
        None => (raw, None),
    }
}

/// What taking an entry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Made now.
    Made,
    /// It named the taker already.
    Already,
    /// Another holder has it.
    HeldBy(String),
}

/// Make `path` a symlink to `id` (`id@network` when a network is named),
/// creating its (private) directory if needed. An entry of `id` is taken
/// already whatever network it names.
pub(crate) fn take_entry(
    state: &StateDir,
    path: &Path,
    id: &str,
    network: Option<&str>,
) -> Result<Taken> {
    validate::container_id("container id", id)?;
    let target = match network {
        Some(n) => {
            validate::name("network", n)?;
            format!("{id}@{n}")
        }
        None => id.to_string(),
    };
    let dir = parent(path)?;
    state.dir(dir, Need::Create)?;
    let mut tried_dir = false;
    loop {
        match std::os::unix::fs::symlink(&target, path) {
            Ok(()) => return Ok(Taken::Made),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Ok(match holder_at(state, path)? {
                    Some(h) if split_holder(&h).0 != id => {
                        Taken::HeldBy(split_holder(&h).0.to_string())
                    }
                    _ => Taken::Already,
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound && !tried_dir => {
                // Checked earlier in this process, then removed by another
                // hook (its last entry went): make and check it again.
                tried_dir = true;
                state.forget_branch(dir);
                state.dir(dir, Need::Create)?;
            }
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

/// Remove the entry at `path` if `id` holds it; whether it did.
pub(crate) fn drop_entry(state: &StateDir, path: &Path, id: &str) -> Result<bool> {
    match holder_at(state, path)? {
        Some(h) if split_holder(&h).0 == id => {}
        _ => return Ok(false),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}
