//! The finished records, kept by a long-lived reader (the resolver) as
//! the little it needs of each, and brought up to date by reading only the
//! files that changed. Records are replaced by rename, so a file with the
//! inode, mtime and size already read is the record already read, unless
//! its mtime is so recent that another rename could follow within the same
//! clock tick and reuse a freed inode (ext4 does): such a file is read
//! again. With a thousand containers, a start costs the reader a listing,
//! a stat per file and one file read, not a thousand reads.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use crate::model::{Endpoint, Liveness};
use crate::store::{fsutil, Need, StateDir};
use crate::Error;

/// A file this recently modified is not trusted to be unchanged.
const RACY: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

fn key_of(md: &std::fs::Metadata) -> FileKey {
    FileKey {
        ino: md.ino(),
        mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
        len: md.len(),
    }
}

struct Entry<T> {
    key: FileKey,
    /// None: a record the reader has no use for (still listed, so that it
    /// is not read again). Boxed: the table holds every record file, most
    /// of them on networks the reader has no use for, and its slots are
    /// then the size of a pointer, not of what is kept.
    kept: Option<Box<(T, Liveness, bool)>>,
    /// The `refresh` that last saw the file listed.
    seen: u64,
}

pub struct FinishedRecords<T> {
    files: HashMap<OsString, Entry<T>>,
    /// Counts `refresh` calls: what an entry's `seen` is compared with.
    epoch: u64,
    /// Files read by the last `refresh` (for tests and logs).
    pub last_reads: usize,
}

impl<T> Default for FinishedRecords<T> {
    fn default() -> Self {
        FinishedRecords {
            files: HashMap::new(),
            epoch: 0,
            last_reads: 0,
        }
    }
}

impl<T> FinishedRecords<T> {
    /// Bring the set up to date with `state`: finished records only (a
    /// record in setup is not a container yet, so `<id>.setup` files are
    /// not read), each kept as `keep` makes it. `recheck`: ask again
    /// whether each container is alive, which no file change tells (one
    /// killed without its poststop); otherwise only records read now are
    /// asked. Returns the errors of files that could not be read; they are
    /// left out.
    pub fn refresh(
        &mut self,
        state: &StateDir,
        recheck: bool,
        keep: impl Fn(&Endpoint) -> Option<T>,
    ) -> Vec<Error> {
        let mut errors = Vec::new();
        self.last_reads = 0;
        let dir = state.endpoints_dir();
        let entries = match state.dir(&dir, Need::Existing) {
            Ok(false) => Vec::new(),
            Ok(true) => match fsutil::dir_entries(&dir) {
                Ok(e) => e,
                Err(e) => {
                    self.files.clear();
                    return vec![e];
                }
            },
            Err(e) => {
                self.files.clear();
                return vec![e];
            }
        };
        // Brought up to date in place, not into a second table: a
        // thousand records' table is hundreds of KiB, and two at once were
        // the resolver's peak.
        self.epoch += 1;
        let epoch = self.epoch;
        for entry in entries {
            let name = entry.file_name();
            if !is_finished(&name) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(entry.path()) else {
                continue; // gone since listed
            };
            let key = key_of(&md);
            let settled = md
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= RACY);
            if let Some(e) = self
                .files
                .get_mut(&name)
                .filter(|e| settled && e.key == key)
            {
                if let (true, Some(kept)) = (recheck, e.kept.as_mut()) {
                    kept.2 = kept.1.is_stale();
                }
                e.seen = epoch;
                continue;
            }
            self.last_reads += 1;
            match read_entry(&entry.path(), key, epoch, &keep) {
                Ok(Some(e)) => {
                    self.files.insert(name, e);
                }
                // Gone since listed, or unreadable: left out.
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        self.files.retain(|_, e| e.seen == epoch);
        errors
    }

    /// Read again only the files `names` of the record directory (from a
    /// watch on it): each finished record that is there read, each that is
    /// not forgotten.
    pub fn refresh_names<'n>(
        &mut self,
        state: &StateDir,
        names: impl IntoIterator<Item = &'n std::ffi::OsStr>,
        keep: impl Fn(&Endpoint) -> Option<T>,
    ) -> Vec<Error> {
        let mut errors = Vec::new();
        self.last_reads = 0;
        let dir = state.endpoints_dir();
        for name in names {
            if !is_finished(name) {
                continue;
            }
            let path = dir.join(name);
            self.files.remove(name);
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue; // gone
            };
            self.last_reads += 1;
            match read_entry(&path, key_of(&md), self.epoch, &keep) {
                Ok(Some(e)) => {
                    self.files.insert(name.to_os_string(), e);
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Forget everything: the next `refresh` reads every file (what
    /// `keep` keeps has changed).
    pub fn clear(&mut self) {
        self.files.clear();
    }

    /// What was kept of the records whose container is alive, in no
    /// particular order.
    pub fn live(&self) -> impl Iterator<Item = &T> {
        self.files
            .values()
            .filter_map(|e| e.kept.as_deref())
            .filter(|(_, _, stale)| !stale)
            .map(|(t, _, _)| t)
    }
}

/// A finished record's file name (setups under way are `.`-prefixed).
fn is_finished(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json") && !n.contains('/'))
}

/// The record at `path` as an entry keyed `key`: what `keep` keeps of it
/// and whether its container is alive. `None`: gone.
fn read_entry<T>(
    path: &std::path::Path,
    key: FileKey,
    seen: u64,
    keep: &impl Fn(&Endpoint) -> Option<T>,
) -> Result<Option<Entry<T>>, Error> {
    Ok(fsutil::read_json::<Endpoint>(path)?.map(|record| {
        let live = record.liveness();
        Entry {
            key,
            kept: keep(&record).map(|t| Box::new((t, live, live.is_stale()))),
            seen,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Mode, Phase};

    fn record(id: &str) -> Endpoint {
        Endpoint {
            phase: Phase::Ready,
            ..Endpoint::new(id, id, Mode::None)
        }
    }

    #[test]
    fn only_changed_files_are_read() {
        let root = std::env::temp_dir().join(format!("ocinet-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = StateDir::new(&root);
        for id in ["a", "b", "c", "skip"] {
            state.save_endpoint(&record(id)).unwrap();
        }
        let settle = || std::thread::sleep(RACY + Duration::from_millis(10));
        settle();
        let mut r = FinishedRecords::default();
        let names = |e: &Endpoint| (e.id != "skip").then(|| e.name.clone());
        assert!(r.refresh(&state, false, names).is_empty());
        assert_eq!((r.last_reads, r.live().count()), (4, 3));
        r.refresh(&state, false, names);
        assert_eq!(r.last_reads, 0, "nothing changed");
        let mut b = record("b");
        b.name = "renamed".into();
        state.save_endpoint(&b).unwrap();
        state.remove_endpoint("c").unwrap();
        state.save_setup(&record("d")).unwrap();
        settle();
        r.refresh(&state, true, names);
        assert_eq!(r.last_reads, 1, "b only: c went, d is in setup");
        let mut live: Vec<_> = r.live().cloned().collect();
        live.sort();
        assert_eq!(live, ["a", "renamed"]);
        state.finish_setup("d").unwrap();
        // Just renamed: read even though unsettled files would be anyway.
        r.refresh(&state, false, names);
        assert_eq!((r.last_reads, r.live().count()), (1, 3));
        // From a watch: only the names it gives.
        let mut c = record("c");
        c.name = "back".into();
        state.save_endpoint(&c).unwrap();
        state.remove_endpoint("b").unwrap();
        let changed = [
            std::ffi::OsString::from("c.json"),
            "b.json".into(),
            "x.setup".into(),
        ];
        r.refresh_names(&state, changed.iter().map(|n| n.as_os_str()), names);
        assert_eq!(r.last_reads, 1);
        let mut live: Vec<_> = r.live().cloned().collect();
        live.sort();
        assert_eq!(live, ["a", "back", "d"]);
        // A file modified within the last tick is read again.
        let mut a = record("a");
        a.name = "again".into();
        state.save_endpoint(&a).unwrap();
        r.refresh(&state, false, names);
        r.refresh(&state, false, names);
        assert!(r.last_reads >= 1, "an unsettled file is not trusted");
        let _ = std::fs::remove_dir_all(&root);
    }
}
