//! Secure, atomic file handling: the hook runs as root and its state decides
//! what gets deleted, so nobody else may write it and no reader may see half
//! a file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::IoContext;
use crate::{Error, Result};

/// Create `dir` (and parents) as 0700 and refuse it when another user owns it
/// or group/others can write to it.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    check_private_dir(dir)
}

pub fn check_private_dir(dir: &Path) -> Result<()> {
    match check_dir(dir, Tighten::Yes)? {
        true => Ok(()),
        false => Err(Error::io(dir, std::io::ErrorKind::NotFound.into())),
    }
}

/// Whether a directory found too open for reading is made 0700 (the hook)
/// or only read (the exporter, which changes nothing of the hook's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tighten {
    Yes,
    No,
}

/// Check that `dir` is a directory (a symlink to one is refused, never
/// followed) owned by this user and not writable by group or others:
/// everything below it can then be changed by this user only, so paths
/// through it stay where they were checked. `Ok(false)` when it does not
/// exist.
pub fn check_dir(dir: &Path, tighten: Tighten) -> Result<bool> {
    let md = match fs::symlink_metadata(dir) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(dir, e)),
    };
    if md.file_type().is_symlink() {
        return Err(Error::invalid(
            "state directory",
            dir.display(),
            "is a symbolic link (ocinet never follows one in its state directory)",
        ));
    }
    if !md.is_dir() {
        return Err(Error::invalid(
            "state directory",
            dir.display(),
            "is not a directory",
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(Error::invalid(
            "state directory",
            dir.display(),
            format!("is owned by uid {}, not by uid {me}", md.uid()),
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(Error::invalid(
            "state directory",
            dir.display(),
            format!(
                "is writable by group or others (mode {:o})",
                md.mode() & 0o7777
            ),
        ));
    }
    if md.mode() & 0o077 != 0 && tighten == Tighten::Yes {
        // Ours and not writable by others, only too open for reading: tighten.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).at(dir)?;
    }
    Ok(true)
}

/// Open a file of the state directory without following a symlink at its
/// name (O_NOFOLLOW; std opens with O_CLOEXEC). `extra` are further
/// open(2) flags.
pub fn open_nofollow(path: &Path, opts: &mut OpenOptions, extra: i32) -> Result<File> {
    opts.custom_flags(nix::libc::O_NOFOLLOW | extra)
        .open(path)
        .map_err(|e| nofollow_error(path, e))
}

/// ELOOP from O_NOFOLLOW means a symlink was there: say so, naming it.
pub fn nofollow_error(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        Error::invalid(
            "state file",
            path.display(),
            "is a symbolic link (ocinet never follows one in its state directory)",
        )
    } else {
        Error::io(path, e)
    }
}

/// Refuse a file opened in place (the log, the lock, the last-address
/// hint) unless it is a regular file of ours with no other name: a hard
/// link would make a write land in a file outside the state directory,
/// and a FIFO or device would block or do worse. One fstat(2).
pub fn check_own_file(f: &File, path: &Path) -> Result<()> {
    let md = f.metadata().at(path)?;
    let me = nix::unistd::geteuid().as_raw();
    let why = if !md.is_file() {
        "is not a regular file".to_string()
    } else if md.uid() != me {
        format!("is owned by uid {}, not by uid {me}", md.uid())
    } else if md.nlink() > 1 {
        format!(
            "has {} hard links (another name outside the state directory?)",
            md.nlink()
        )
    } else {
        return Ok(());
    };
    Err(Error::invalid("state file", path.display(), why))
}

/// How long a file must last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Configuration (network definitions, hooks.d files): synced to disk
    /// before it replaces the old file, so it survives a power loss.
    Persistent,
    /// Runtime state (endpoint records, leases, port claims), describing
    /// containers and namespaces that a power loss or reboot ends anyway.
    /// The rename alone makes the replacement atomic for every reader and
    /// against a crashed or killed process, which is what this state must
    /// survive; a data sync per write costs ~0.3 ms where /run is on disk
    /// (a setup makes five writes), for no crash it would protect against.
    Runtime,
}

/// Write `data` to `path` through a 0600 temporary file in the same
/// directory, then rename it over the target (syncing it first when
/// `Persistent`).
pub fn write_atomic(path: &Path, data: &[u8], durability: Durability) -> Result<()> {
    write_atomic_mode(path, data, durability, 0o600)
}

/// `write_atomic` with the file's mode (a file other users read: the
/// resolv.conf a container's processes open under any uid).
pub fn write_atomic_mode(
    path: &Path,
    data: &[u8],
    durability: Durability,
    mode: u32,
) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid("path", path.display(), "has no parent directory"))?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid("path", path.display(), "has no file name"))?;
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        // O_EXCL: a file already at the temporary name (left by a killed
        // hook of the same pid, or planted as a hard link to a file
        // elsewhere) is unlinked, never written through.
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
        };
        let mut f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                remove_if_exists(&tmp)?;
                open()
            }
            other => other,
        }
        .at(&tmp)?;
        f.write_all(data).at(&tmp)?;
        if durability == Durability::Persistent {
            f.sync_data().at(&tmp)?;
        }
        fs::rename(&tmp, path).at(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
    durability: Durability,
) -> Result<()> {
    let _span = tracing::debug_span!("state_write", file = ?path.file_name()).entered();
    let mut data = serde_json::to_vec_pretty(value).map_err(|e| Error::CorruptState {
        path: path.into(),
        reason: e.to_string(),
    })?;
    data.push(b'\n');
    write_atomic(path, &data, durability)
}

/// Read a JSON file; `Ok(None)` when it does not exist, `CorruptState` naming
/// the path when it cannot be parsed.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let _span = tracing::debug_span!("state_read", file = ?path.file_name()).entered();
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(nofollow_error(path, e)),
    };
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut data).at(path)?;
    parse_json(path, &data).map(Some)
}

/// The bytes of the configuration file at `path`; None if there is none.
/// Followed if a symlink (config management links files into /etc): the
/// config directory is the administrator's, unlike the state directory,
/// which only ocinet writes.
pub fn read_config_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    let _span = tracing::debug_span!("config_read", file = ?path.file_name()).entered();
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The contents of the state file at `path`, parsed; `CorruptState` naming
/// the path when they cannot be (this is what the state fuzz target
/// drives).
pub fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::CorruptState {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The `*.json` files of `dir` as (stem, path), hidden and temporary files
/// left out; a missing directory is empty.
pub fn json_files(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    Ok(dir_entries(dir)?
        .into_iter()
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".json")?;
            (!stem.starts_with('.')).then(|| (stem.to_string(), entry.path()))
        })
        .collect())
}

/// The entries of `dir` (unreadable ones left out); a missing directory is
/// empty, any other failure to list it an error naming it.
pub fn dir_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(e) => Ok(e.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ocinet-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn private_dir_and_atomic_write() {
        let d = tempdir("a");
        ensure_private_dir(&d).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        let f = d.join("x.json");
        write_json(&f, &serde_json::json!({"a": 1}), Durability::Runtime).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        let v: serde_json::Value = read_json(&f).unwrap().unwrap();
        assert_eq!(v["a"], 1);
        assert!(read_json::<serde_json::Value>(&d.join("missing"))
            .unwrap()
            .is_none());
        fs::write(&f, b"{trunc").unwrap();
        let e = read_json::<serde_json::Value>(&f).unwrap_err().to_string();
        assert!(e.contains("x.json"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_world_writable_dir() {
        let d = tempdir("b");
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&d).unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
