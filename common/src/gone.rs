//! Whether what a daemon of ocinet's (the resolver, the port proxy) serves
//! is gone: its state directory (removed,
//! or replaced by another), or the network namespace it runs in (no longer
//! named in /run/netns after it was there when the resolver started: `ip
//! netns del`). Either way nobody can reach it again, and a daemon left
//! running would hold the deleted namespace and files alive for good
//! (issue 21: one ran 25 minutes after its test had cleaned up).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity: device and inode.
type Identity = (u64, u64);

fn identity(p: &Path) -> Option<Identity> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Where the names of network namespaces are, as the host's own mount
/// namespace sees them: a resolver started by crun runs in the private
/// mount namespace crun's workaround makes, whose copy of a name stays
/// after `ip netns del` unmounts it on the host.
fn netns_dirs() -> [PathBuf; 2] {
    [
        PathBuf::from("/proc/1/root/run/netns"),
        PathBuf::from("/run/netns"),
    ]
}

pub struct Served {
    state_dir: PathBuf,
    state: Option<Identity>,
    /// This namespace, and the directory of names it was found named in;
    /// `None` where it had no name to lose (the host's own namespace, or
    /// one never named).
    netns: Option<(Identity, PathBuf)>,
}

impl Served {
    /// What is served now, by a resolver of `state_dir`.
    pub fn now(state_dir: &Path) -> Served {
        let me = identity(Path::new("/proc/self/ns/net"));
        let host = identity(Path::new("/proc/1/ns/net"));
        let netns = me.filter(|m| Some(*m) != host).and_then(|me| {
            netns_dirs()
                .into_iter()
                .find(|d| named_in(d, me))
                .map(|d| (me, d))
        });
        Served {
            state_dir: state_dir.to_path_buf(),
            state: identity(state_dir),
            netns,
        }
    }

    /// Why the resolver should end, if it should.
    pub fn gone(&self) -> Option<String> {
        if identity(&self.state_dir) != self.state {
            return Some(format!(
                "the state directory {} is gone",
                self.state_dir.display()
            ));
        }
        match &self.netns {
            Some((me, dir)) if !named_in(dir, *me) => Some(format!(
                "this network namespace is no longer named in {}",
                dir.display()
            )),
            _ => None,
        }
    }
}

/// Whether some name in `dir` is the namespace `ns` (a name is a bind
/// mount of the namespace's nsfs file: stat gives its identity).
fn named_in(dir: &Path, ns: Identity) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|entries| entries.flatten().any(|e| identity(&e.path()) == Some(ns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_state_directory_is_gone() {
        let root = std::env::temp_dir().join(format!("ocinet-gone-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let s = Served::now(&root);
        assert_eq!(s.gone(), None);
        std::fs::remove_dir(&root).unwrap();
        assert!(s.gone().unwrap().contains("state directory"));
    }
}
