//! The finished records, kept by a long-lived reader (the resolver) and
//! brought up to date by re-reading only the files that changed. Records
//! are replaced by rename, so a file whose inode, mtime and size are
//! those already read is the record already read. With a thousand
//! containers, a start no longer costs the reader a thousand reads.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::model::Endpoint;
use crate::store::{fsutil, StateDir};
use crate::Error;

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

struct Entry {
    key: FileKey,
    record: Endpoint,
    stale: bool,
}

#[derive(Default)]
pub struct FinishedRecords {
    files: HashMap<PathBuf, Entry>,
    /// Files read by the last `refresh` (for tests and logs).
    pub last_reads: usize,
}

impl FinishedRecords {
    /// Bring the set up to date with `state`: finished records only (a
    /// record in setup is not a container yet, so `<id>.setup` files are
    /// not read). `recheck`: ask again whether each container is alive,
    /// which no file change tells (one killed without its poststop);
    /// otherwise only records read now are checked. Returns the errors of
    /// files that could not be read; they are left out.
    pub fn refresh(&mut self, state: &StateDir, recheck: bool) -> Vec<Error> {
        let mut errors = Vec::new();
        self.last_reads = 0;
        let files = match state.endpoint_files() {
            Ok(f) => f,
            Err(e) => {
                self.files.clear();
                return vec![e];
            }
        };
        let mut next = HashMap::with_capacity(files.len());
        for (_, path) in files {
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let key = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_file() => FileKey {
                    ino: m.ino(),
                    mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                    len: m.len(),
                },
                // Gone since listed, or not a file (read_json says which).
                Ok(_) | Err(_) => FileKey {
                    ino: 0,
                    mtime_ns: 0,
                    len: 0,
                },
            };
            if let Some(mut e) = self
                .files
                .remove(&path)
                .filter(|e| e.key == key && key.ino != 0)
            {
                if recheck {
                    e.stale = e.record.is_stale();
                }
                next.insert(path, e);
                continue;
            }
            self.last_reads += 1;
            match fsutil::read_json::<Endpoint>(&path) {
                Ok(Some(record)) => {
                    let stale = record.is_stale();
                    next.insert(path, Entry { key, record, stale });
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        self.files = next;
        errors
    }

    /// The records whose container is alive, in no particular order.
    pub fn live(&self) -> impl Iterator<Item = &Endpoint> {
        self.files.values().filter(|e| !e.stale).map(|e| &e.record)
    }
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
        for id in ["a", "b", "c"] {
            state.save_endpoint(&record(id)).unwrap();
        }
        let mut r = FinishedRecords::default();
        assert!(r.refresh(&state, false).is_empty());
        assert_eq!((r.last_reads, r.live().count()), (3, 3));
        r.refresh(&state, false);
        assert_eq!(r.last_reads, 0, "nothing changed");
        let mut b = record("b");
        b.name = "renamed".into();
        state.save_endpoint(&b).unwrap();
        state.remove_endpoint("c").unwrap();
        state.save_setup(&record("d")).unwrap();
        r.refresh(&state, true);
        assert_eq!(r.last_reads, 1, "b only: c went, d is in setup");
        let mut names: Vec<_> = r.live().map(|e| e.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["a", "renamed"]);
        state.finish_setup("d").unwrap();
        r.refresh(&state, false);
        assert_eq!((r.last_reads, r.live().count()), (1, 3));
        let _ = std::fs::remove_dir_all(&root);
    }
}
