//! Resident memory of a long-lived process (the resolver): the pages of
//! its binary and libraries that only its start-up used.
//!
//! A file's pages are mapped in 64 KiB windows around each fault
//! (`fault_around_bytes`), so argument parsing, configuration loading and
//! logging set-up leave hundreds of KiB of code and read-only data mapped
//! that serving never touches again: most of the difference between the
//! resolver's resident set and aardvark-dns's (BENCHMARKS.md, section 11).
//! Unmapping them is safe for mappings that are read-only and hold no page
//! of their own (copy-on-write): the next access maps the same page from
//! the page cache again, a minor fault. Writable mappings, and read-only
//! ones with private pages (the relocated `.data.rel.ro` that RELRO made
//! read-only after writing it), are never touched: unmapping those would
//! lose their contents.

use std::fs;

/// One mapping of /proc/self/smaps that may be released.
#[derive(Debug, PartialEq, Eq)]
struct Releasable {
    start: usize,
    end: usize,
}

/// Unmap the pages of read-only file mappings that hold no private page;
/// returns how many bytes of mappings were released (their pages come
/// back, from the page cache, as they are used). Best effort: a mapping
/// the kernel refuses is left as it is.
///
/// Between the read of smaps and the `madvise`, no thread of the process
/// may unmap a file mapping (an anonymous one could take its place and be
/// zeroed): the resolver maps and unmaps no file once started.
pub fn release_unused_file_pages() -> usize {
    let _span = tracing::debug_span!("release_file_pages").entered();
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    for m in releasable(&smaps) {
        let len = m.end - m.start;
        // SAFETY: the range is a whole mapping of this process that is
        // read-only, file-backed and has no private (anonymous) page, so
        // dropping its page-table entries loses nothing: every page is
        // the file's, mapped again from the page cache at the next access.
        let r = unsafe { nix::libc::madvise(m.start as *mut _, len, nix::libc::MADV_DONTNEED) };
        if r == 0 {
            released += len;
        }
    }
    tracing::debug!(released, "start-up pages released");
    released
}

/// The mappings of an smaps text that `release_unused_file_pages` may
/// unmap: a file's (path), not writable, no anonymous or locked page.
fn releasable(smaps: &str) -> Vec<Releasable> {
    let mut out = Vec::new();
    let mut current: Option<(Releasable, bool)> = None;
    let finish = |c: Option<(Releasable, bool)>, out: &mut Vec<Releasable>| {
        if let Some((m, true)) = c {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-').and_then(|(s, e)| {
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        }) {
            // A mapping's header: range perms offset dev inode [path].
            finish(current.take(), &mut out);
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let candidate = perms.as_bytes().get(1) == Some(&b'-')
                && perms.as_bytes().get(3) == Some(&b'p')
                && path.starts_with('/')
                && end > start;
            current = Some((Releasable { start, end }, candidate));
            continue;
        }
        let Some((_, keep)) = current.as_mut() else {
            continue;
        };
        let kb = fields
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        match first {
            // A private page of its own shows as Anonymous while in RAM and
            // as Swap (SwapPss) once swapped out: either way the mapping
            // holds contents the file does not have.
            "Anonymous:" | "Swap:" | "SwapPss:" | "Locked:" if kb != 0 => *keep = false,
            "VmFlags:" if line.split_whitespace().any(|f| f == "lo" || f == "io") => *keep = false,
            _ => {}
        }
    }
    finish(current.take(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /usr/bin/ocinet-dns
Size:               1024 kB
Anonymous:             0 kB
Locked:                0 kB
VmFlags: rd mr mw me dw
55d0c0100000-55d0c0400000 r-xp 00100000 fe:01 123 /usr/bin/ocinet-dns
Anonymous:             0 kB
Locked:                0 kB
VmFlags: rd ex mr mw me dw
55d0c0400000-55d0c0480000 r--p 00400000 fe:01 123 /usr/bin/ocinet-dns
Anonymous:           512 kB
Locked:                0 kB
VmFlags: rd mr mw me dw ac
55d0c0470000-55d0c0480000 r--p 00470000 fe:01 123 /usr/bin/ocinet-dns
Anonymous:             0 kB
Swap:                  8 kB
SwapPss:               8 kB
Locked:                0 kB
55d0c0480000-55d0c0490000 rw-p 00480000 fe:01 123 /usr/bin/ocinet-dns
Anonymous:            64 kB
VmFlags: rd wr mr mw me dw ac
7f0000000000-7f0000010000 rw-p 00000000 00:00 0
Anonymous:            64 kB
7f0000100000-7f0000200000 r-xp 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
Locked:                4 kB
7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_read_only_unmodified_file_mappings() {
        let r = releasable(SMAPS);
        assert_eq!(
            r,
            vec![
                Releasable {
                    start: 0x55d0c0000000,
                    end: 0x55d0c0100000
                },
                Releasable {
                    start: 0x55d0c0100000,
                    end: 0x55d0c0400000
                },
            ]
        );
    }

    #[test]
    fn this_process_keeps_working_after_a_release() {
        let before = format!("{:?}", (1..50).map(|i| i * i).collect::<Vec<u64>>());
        assert!(release_unused_file_pages() > 0);
        let after = format!("{:?}", (1..50).map(|i| i * i).collect::<Vec<u64>>());
        assert_eq!(before, after);
    }
}
