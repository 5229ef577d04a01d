//! Network namespaces: entering one briefly, identifying one, and pinning one
//! under /run/netns so `ip netns` sees it.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, CloneFlags};

use crate::error::IoContext;
use crate::{Error, Result};

pub const NETNS_RUN_DIR: &str = "/run/netns";

pub fn open(path: &Path) -> Result<File> {
    File::open(path).at(path)
}

/// NS_GET_NSTYPE from linux/nsfs.h: _IO(0xb7, 0x3).
const NS_GET_NSTYPE: nix::libc::c_ulong = 0xb703;

/// Open `path` and check that it really is a network namespace (a path in
/// config.json can name any file).
pub fn open_netns(path: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let f = open(path)?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let ty = unsafe { nix::libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE as _) };
    if ty != nix::libc::CLONE_NEWNET {
        return Err(Error::invalid(
            "network namespace",
            path.display(),
            "is not a network namespace",
        ));
    }
    Ok(f)
}

/// (device, inode): equal for two paths exactly when they name the same
/// namespace.
pub fn id_of(path: &Path) -> Result<(u64, u64)> {
    let md = std::fs::metadata(path).at(path)?;
    Ok((md.dev(), md.ino()))
}

/// The network namespace the calling thread is in (the hook's, the
/// plugin's: the host's).
pub fn own_id() -> Result<(u64, u64)> {
    id_of(Path::new("/proc/thread-self/ns/net"))
}

pub fn id_of_fd(f: &File) -> Result<(u64, u64)> {
    let md = f
        .metadata()
        .map_err(|e| Error::io("network namespace fd", e))?;
    Ok((md.dev(), md.ino()))
}

/// Run `f` with the calling thread in the namespace `ns`, then return to the
/// thread's own namespace even if `f` fails.
pub fn with_netns<T>(ns: &impl AsFd, f: impl FnOnce() -> T) -> Result<T> {
    let own = open(Path::new("/proc/thread-self/ns/net"))?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| Error::Netns {
        what: "enter".into(),
        source,
    })?;
    let out = f();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| Error::Netns {
        what: "return to own".into(),
        source,
    })?;
    Ok(out)
}

/// Make /run/netns a shared mount point, as `ip netns add` does, so a pin
/// made here propagates to other mount namespaces.
fn prepare_run_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    // Not MS_REC: recursing over every pinned namespace under /run/netns makes
    // each pin cost O(containers); mounts made below a shared mount are shared
    // anyway.
    let shared = MsFlags::MS_SHARED;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|source| Error::Netns {
                what: format!("bind {}", dir.display()),
                source,
            })?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>).map_err(|source| {
                Error::Netns {
                    what: format!("share {}", dir.display()),
                    source,
                }
            })
        }
        Err(source) => Err(Error::Netns {
            what: format!("share {}", dir.display()),
            source,
        }),
    }
}

/// How many names `free_pin_path` tries before giving up on finding a free
/// one (pin() then fails on the last, and the setup is undone).
const PIN_TRIES: u32 = 64;

/// A name under /run/netns for `id`'s pin that nothing holds now:
/// `ocinet-<first 12 of id>`, else that with a hash of the whole id (two ids
/// sharing their first 12 characters), else with a counter. lstat(2), not
/// stat(2): a dangling symlink takes a name too, and what is at a taken
/// name is never touched (it may not be ocinet's). Chosen before the
/// record is written; a name taken between this and pin() fails the pin.
pub fn free_pin_path(id: &str) -> PathBuf {
    free_name_in(Path::new(NETNS_RUN_DIR), id)
}

fn free_name_in(dir: &Path, id: &str) -> PathBuf {
    let short = id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i]);
    let hash = crate::validate::fnv1a64(id.as_bytes()) as u32;
    let name = |n: u32| match n {
        0 => format!("ocinet-{short}"),
        1 => format!("ocinet-{short}-{hash:08x}"),
        n => format!("ocinet-{short}-{hash:08x}-{n}"),
    };
    let mut path = dir.join(name(0));
    for n in 0..PIN_TRIES {
        path = dir.join(name(n));
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return path,
            _ => {}
        }
    }
    path
}

/// Bind-mount the namespace at `source` to /run/netns/`name`. Fails if that
/// entry exists already.
pub fn pin(source: &Path, name: &str) -> Result<PathBuf> {
    let _span = tracing::debug_span!("netns_pin", name).entered();
    let dir = Path::new(NETNS_RUN_DIR);
    prepare_run_dir(dir)?;
    let target = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .at(&target)?;
    if let Err(source_err) = mount(
        Some(source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&target);
        return Err(Error::Netns {
            what: format!("bind to {}", target.display()),
            source: source_err,
        });
    }
    Ok(target)
}

/// Undo `pin`; a missing entry is fine. Only what pin() makes is removed
/// (a regular file, the mount point): a symlink at the recorded name (a
/// hook killed after recording the name and before pinning, then someone
/// else's link) is left alone, and not followed to unmount elsewhere.
pub fn unpin(target: &Path, recorded: Option<(u64, u64)>) -> Result<()> {
    let _span = tracing::debug_span!("netns_unpin", target = %target.display()).entered();
    // A hook killed between naming the pin and making it leaves the name
    // free for anyone: what is mounted there now must be the container's.
    if let (Some(want), Ok(md)) = (recorded, std::fs::metadata(target)) {
        // Not mounted (any more), the empty file is on its directory's file
        // system; mounted, it is an nsfs inode (which also says "regular
        // file"), and must be the recorded one.
        let dir_dev = target
            .parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .map(|d| d.dev());
        if Some(md.dev()) != dir_dev && (md.dev(), md.ino()) != want {
            tracing::warn!(target = %target.display(), "another namespace is mounted there: left alone");
            return Ok(());
        }
    }
    match umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        // EINVAL: not a mount point (any more, or in this mount namespace).
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(source) => {
            return Err(Error::Netns {
                what: format!("unmount {}", target.display()),
                source,
            })
        }
    }
    match std::fs::symlink_metadata(target) {
        Ok(md) if md.is_file() => crate::store::fsutil::remove_if_exists(target),
        Ok(_) => {
            tracing::warn!(target = %target.display(), "not a namespace pin of ocinet's: left alone");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(target, e)),
    }
}

/// The container's network namespace, if it still exists: through the
/// pin, or through its init process when a setup died before pinning.
/// Either must be the namespace the record names (a pid can be reused, and
/// a pin path holds whatever is mounted there).
pub fn of_endpoint(ep: &crate::model::Endpoint) -> Option<File> {
    let recorded = ep.netns_id?;
    let pinned = ep.netns_link.clone();
    let by_pid = ep
        .container
        .as_ref()
        .map(|c| std::path::PathBuf::from(format!("/proc/{}/ns/net", c.pid)));
    pinned
        .into_iter()
        .chain(by_pid)
        .filter_map(|p| open_netns(&p).ok())
        .find(|ns| id_of_fd(ns).ok() == Some(recorded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_taken_name_even_by_a_dangling_symlink_is_skipped() {
        let dir = std::env::temp_dir().join(format!("ocinet-netns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let id = "0123456789abcdef";
        let first = free_name_in(&dir, id);
        assert_eq!(first, dir.join("ocinet-0123456789ab"));
        symlink("/nonexistent", &first).unwrap();
        let second = free_name_in(&dir, id);
        assert!(
            second
                .to_string_lossy()
                .starts_with(&format!("{}-", first.display())),
            "{second:?}"
        );
        symlink("/nonexistent", &second).unwrap();
        let third = free_name_in(&dir, id);
        assert!(third != first && third != second, "{third:?}");
        assert!(third.to_string_lossy().ends_with("-2"), "{third:?}");
        // Short and non-ASCII-safe ids: no panic, and the name is the id.
        assert_eq!(free_name_in(&dir, "c1"), dir.join("ocinet-c1"));
        // unpin leaves a symlink alone.
        unpin(&first, None).unwrap();
        assert!(std::fs::symlink_metadata(&first).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
