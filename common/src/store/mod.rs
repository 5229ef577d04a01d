//! Everything ocinet keeps on disk: network definitions (config dir),
//! endpoint records, address leases and port claims (state dir). Files are
//! written atomically; leases and claims are one symlink each, made and
//! removed in one system call; every change happens under one lock.

pub mod cluster;
pub mod dns;
pub mod endpoints;
pub mod entries;
pub mod fsutil;
pub mod ipam;
pub mod legacy;
pub mod lock;
pub mod networks;
pub mod ports;
pub mod proxy;
pub mod watch;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::store::fsutil::Tighten;
use crate::{Error, Result};

/// The state directory layout. Every directory below the root is reached
/// only through directories checked (`fsutil::check_dir`) to be real
/// directories of this user that nobody else can write: then nobody else
/// can swap one for a symlink between the check and the use, and no path
/// built below the root can lead out of it.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    checks: Checks,
}

#[derive(Debug, Clone)]
enum Checks {
    /// A hook process lives for one call: each directory is checked once
    /// (a setup then costs no more lstat(2)s than before, fewer mkdir(2)s).
    Once(Arc<Mutex<HashSet<PathBuf>>>),
    /// A long-lived reader (the exporter): checked on every use, as the
    /// hook may remove and make directories meanwhile; never changed.
    Always,
}

/// Whether a directory that is not there is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Create,
    Existing,
}

impl StateDir {
    /// The hook's view: directories made when needed, checked once per
    /// process.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir {
            root: root.into(),
            checks: Checks::Once(Arc::default()),
        }
    }

    /// A reader's view (the exporter): nothing is made or chmodded, every
    /// use checks again.
    pub fn reader(root: impl Into<PathBuf>) -> Self {
        StateDir {
            root: root.into(),
            checks: Checks::Always,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Make the root (and its parents) if needed and check it.
    pub fn ensure_root(&self) -> Result<()> {
        let _span = tracing::debug_span!("state_root").entered();
        if self.is_checked(&self.root) {
            return Ok(());
        }
        fsutil::ensure_private_dir(&self.root)?;
        self.mark(&self.root);
        Ok(())
    }

    /// Check `dir` and every directory between it and the root (making
    /// them 0700 when `Create`); whether it exists.
    pub(crate) fn dir(&self, dir: &Path, need: Need) -> Result<bool> {
        if self.is_checked(dir) {
            return Ok(true);
        }
        let rel = dir.strip_prefix(&self.root).map_err(|_| {
            Error::invalid(
                "state path",
                dir.display(),
                "is not below the state directory",
            )
        })?;
        if need == Need::Create {
            self.ensure_root()?;
        } else if !self.step(&self.root, need)? {
            return Ok(false);
        }
        let mut p = self.root.clone();
        for c in rel.components() {
            match c {
                Component::Normal(n) => p.push(n),
                _ => {
                    return Err(Error::invalid(
                        "state path",
                        dir.display(),
                        "has a component that is not a plain name",
                    ))
                }
            }
            if !self.step(&p, need)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn step(&self, p: &Path, need: Need) -> Result<bool> {
        if self.is_checked(p) {
            return Ok(true);
        }
        let tighten = match self.checks {
            Checks::Once(_) => Tighten::Yes,
            Checks::Always => Tighten::No,
        };
        // lstat first: the directory is usually there, so one syscall.
        let mut exists = fsutil::check_dir(p, tighten)?;
        if !exists && need == Need::Create && tighten == Tighten::Yes {
            // mkdir(2) never follows a symlink at its name: one planted
            // since the lstat is EEXIST, and check_dir refuses it.
            match std::fs::DirBuilder::new().mode(0o700).create(p) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(p, e)),
            }
            exists = fsutil::check_dir(p, tighten)?;
        }
        if exists {
            self.mark(p);
        }
        Ok(exists)
    }

    fn is_checked(&self, p: &Path) -> bool {
        match &self.checks {
            Checks::Once(m) => m.lock().unwrap_or_else(|e| e.into_inner()).contains(p),
            Checks::Always => false,
        }
    }

    fn mark(&self, p: &Path) {
        if let Checks::Once(m) = &self.checks {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p.to_path_buf());
        }
    }

    /// A directory of `dir`'s branch was found gone (another hook removed
    /// it, or a whole subtree): check the branch again from just below the
    /// root.
    pub(crate) fn forget_branch(&self, dir: &Path) {
        if let Some(Component::Normal(top)) = dir
            .strip_prefix(&self.root)
            .ok()
            .and_then(|rel| rel.components().next())
        {
            self.forget(&self.root.join(top));
        }
    }

    /// `dir` was removed (or found gone): check it and what is below it
    /// again when next used.
    pub(crate) fn forget(&self, dir: &Path) {
        if let Checks::Once(m) = &self.checks {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| !p.starts_with(dir));
        }
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
    pub fn ports_dir(&self) -> PathBuf {
        self.root.join("ports")
    }
}

#[cfg(test)]
mod tests {
    //! What a hostile hand can put in the state directory: each is refused
    //! with an error naming the path, and nothing lands outside.
    use super::*;
    use crate::ipam::Ipam;
    use crate::model::ports::parse_list;
    use crate::model::{Endpoint, Mode, Network};
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    struct Scratch {
        base: PathBuf,
        state: StateDir,
        outside: PathBuf,
    }

    impl Scratch {
        fn new(tag: &str) -> Self {
            let base =
                std::env::temp_dir().join(format!("ocinet-hostile-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            let outside = base.join("outside");
            fs::create_dir_all(&outside).unwrap();
            let state = StateDir::new(base.join("state"));
            state.ensure_root().unwrap();
            Scratch {
                base,
                state,
                outside,
            }
        }
        /// A fresh view, as the next hook process has (nothing memoised).
        fn next_process(&self) -> StateDir {
            StateDir::new(self.state.root())
        }
        fn outside_is_empty(&self) {
            let left: Vec<_> = fs::read_dir(&self.outside)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "written outside: {left:?}");
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    fn net() -> Network {
        Network::new(
            "web",
            "10.1.0.0/24".parse().unwrap(),
            None,
            None,
            Some("br-w"),
            None,
            false,
        )
        .unwrap()
    }

    fn refused(e: Error, path: &Path, why: &str) {
        let e = e.to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(why),
            "{e}"
        );
    }

    type Op = Box<dyn Fn(&StateDir) -> Result<()>>;

    #[test]
    fn a_symlinked_directory_is_refused_everywhere() {
        let s = Scratch::new("dirs");
        let root = s.state.root().to_path_buf();
        let cases: Vec<(PathBuf, Op)> = vec![
            (
                root.join("ipam"),
                Box::new(|st| {
                    st.pool("web")?
                        .allocate(&net(), "c1", None, "io.ocinet.ip")
                        .map(drop)
                }),
            ),
            (
                root.join("ipam/web"),
                Box::new(|st| {
                    st.pool("web")?
                        .allocate(&net(), "c1", None, "io.ocinet.ip")
                        .map(drop)
                }),
            ),
            (
                root.join("ipam/web"),
                Box::new(|st| st.pool("web")?.remember_last("10.1.0.9".parse().unwrap())),
            ),
            (
                root.join("ipam/web"),
                Box::new(|st| st.pool("web")?.leases().map(drop)),
            ),
            (
                root.join("ipam/web"),
                Box::new(|st| {
                    st.pool("web")?
                        .release("10.1.0.2".parse().unwrap(), "c1")
                        .map(drop)
                }),
            ),
            (
                root.join("ipam"),
                Box::new(|st| st.leased_networks().map(drop)),
            ),
            (
                root.join("ports"),
                Box::new(|st| {
                    st.port_claims()
                        .claim("c1", "n", &parse_list("p", "8080:80")?)
                }),
            ),
            (
                root.join("ports"),
                Box::new(|st| {
                    st.port_claims()
                        .overlaps("c1", &parse_list("p", "8080:80")?)
                        .map(drop)
                }),
            ),
            (
                root.join("ports"),
                Box::new(|st| st.port_claims().list().map(drop)),
            ),
            (
                root.join("ports/tcp-8080.d"),
                Box::new(|st| {
                    st.port_claims()
                        .claim("c1", "n", &parse_list("p", "127.0.0.1:8080:80")?)
                }),
            ),
            (
                root.join("ports/tcp-8080.d"),
                Box::new(|st| {
                    st.port_claims()
                        .overlaps("c1", &parse_list("p", "8080:80")?)
                        .map(drop)
                }),
            ),
            (
                root.join("endpoints"),
                Box::new(|st| st.save_setup(&Endpoint::new("c1", "web", Mode::None))),
            ),
            (
                root.join("endpoints"),
                Box::new(|st| st.load_endpoint("c1").map(drop)),
            ),
            (
                root.join("endpoints"),
                Box::new(|st| st.read_endpoints().map(drop)),
            ),
        ];
        for (link, op) in cases {
            // Parents of the link are real directories of ours.
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            // A lease or claim a reader would otherwise find outside.
            symlink("c9", s.outside.join("10.1.0.2")).unwrap();
            symlink("c9", s.outside.join("tcp-8080")).unwrap();
            symlink(&s.outside, &link).unwrap();
            let e = op(&s.next_process()).unwrap_err();
            refused(e, &link, "symbolic link");
            fs::remove_file(&link).unwrap();
            fs::remove_file(s.outside.join("10.1.0.2")).unwrap();
            fs::remove_file(s.outside.join("tcp-8080")).unwrap();
            s.outside_is_empty();
            let _ = fs::remove_dir_all(root.join("ipam"));
            let _ = fs::remove_dir_all(root.join("ports"));
            let _ = fs::remove_dir_all(root.join("endpoints"));
        }
    }

    #[test]
    fn a_symlinked_state_file_is_refused() {
        let s = Scratch::new("files");
        let st = s.next_process();
        let target = s.outside.join("f");
        // The lock.
        symlink(&target, st.lock_file()).unwrap();
        let e = lock::StateLock::acquire(&st.lock_file()).err().unwrap();
        refused(e, &st.lock_file(), "symbolic link");
        assert!(!target.exists());
        fs::remove_file(st.lock_file()).unwrap();
        // A hard link to a file elsewhere.
        fs::write(&target, "x").unwrap();
        fs::hard_link(&target, st.lock_file()).unwrap();
        let e = lock::StateLock::acquire(&st.lock_file()).err().unwrap();
        refused(e, &st.lock_file(), "hard links");
        fs::remove_file(st.lock_file()).unwrap();
        fs::remove_file(&target).unwrap();
        // The last-address hint.
        let pool = st.pool("web").unwrap();
        pool.allocate(&net(), "c1", None, "io.ocinet.ip").unwrap();
        let last = st.ipam_dir().join("web/last");
        symlink(&target, &last).unwrap();
        let e = pool.remember_last("10.1.0.2".parse().unwrap()).unwrap_err();
        refused(e, &last, "symbolic link");
        // A record: reading it is refused, writing one replaces the link.
        let ep = Endpoint::new("c1", "web", Mode::None);
        st.save_endpoint(&ep).unwrap();
        let rec = st.endpoint_path("c1").unwrap();
        fs::remove_file(&rec).unwrap();
        fs::write(&target, serde_json::to_vec(&ep).unwrap()).unwrap();
        symlink(&target, &rec).unwrap();
        let e = st.load_endpoint("c1").unwrap_err();
        refused(e, &rec, "symbolic link");
        st.save_endpoint(&ep).unwrap();
        assert!(!fs::symlink_metadata(&rec).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), serde_json::to_vec(&ep).unwrap());
        fs::remove_file(&target).unwrap();
        s.outside_is_empty();
    }

    #[test]
    fn an_open_or_foreign_directory_is_refused_and_a_readable_one_tightened() {
        let s = Scratch::new("modes");
        let root = s.state.root().to_path_buf();
        for (sub, op) in [
            ("ipam", "lease"),
            ("ports", "claim"),
            ("endpoints", "save"),
            ("ipam/web", "lease"),
        ] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
            let st = s.next_process();
            let e = match op {
                "lease" => st
                    .pool("web")
                    .unwrap()
                    .allocate(&net(), "c1", None, "io.ocinet.ip")
                    .err(),
                "claim" => st
                    .port_claims()
                    .claim("c1", "n", &parse_list("p", "8080:80").unwrap())
                    .err(),
                _ => st
                    .save_endpoint(&Endpoint::new("c1", "web", Mode::None))
                    .err(),
            };
            refused(e.unwrap(), &dir, "writable by group or others");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Only too open for reading: the hook tightens it, a reader leaves it.
        let ipam = root.join("ipam");
        fs::set_permissions(&ipam, fs::Permissions::from_mode(0o755)).unwrap();
        StateDir::reader(&root).leased_networks().unwrap();
        assert_eq!(fs::metadata(&ipam).unwrap().mode() & 0o777, 0o755);
        s.next_process().leased_networks().unwrap();
        assert_eq!(fs::metadata(&ipam).unwrap().mode() & 0o777, 0o700);
        // Another user's.
        let ports = root.join("ports");
        nix::unistd::chown(&ports, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = s.next_process().port_claims().list().unwrap_err();
        refused(e, &ports, "owned by uid 65534");
        // Made by the hook: 0700.
        let st = s.next_process();
        st.pool("new").unwrap();
        let mut n = net();
        n.name = "new".into();
        st.pool("new")
            .unwrap()
            .allocate(&n, "c1", None, "io.ocinet.ip")
            .unwrap();
        assert_eq!(
            fs::metadata(root.join("ipam/new")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_directory_removed_by_another_hook_is_made_again() {
        let s = Scratch::new("gone");
        let st = s.next_process();
        let claims = st.port_claims();
        let one = parse_list("p", "127.0.0.1:8080:80").unwrap();
        claims.claim("a", "n", &one).unwrap();
        // Another process removes the per-port directory and the pool.
        fs::remove_dir_all(st.ports_dir()).unwrap();
        claims.claim("b", "n", &one).unwrap();
        assert_eq!(claims.list().unwrap()[0].holder, "b");
        let pool = st.pool("web").unwrap();
        pool.allocate(&net(), "a", None, "io.ocinet.ip").unwrap();
        fs::remove_dir_all(st.ipam_dir()).unwrap();
        pool.allocate(&net(), "b", None, "io.ocinet.ip").unwrap();
        assert_eq!(pool.leases().unwrap().len(), 1);
    }
}
