//! Issue 13 §6: what a hostile hand can put in the state directory and in
//! /run/netns before a setup. A symlink anywhere below the state directory
//! and a directory others can write to are refused with an error naming
//! the path, nothing is written where the symlink points, and nothing is
//! left behind; a taken /run/netns name (even a dangling symlink) is
//! skipped, never touched.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use ocinet_integration::{assert_clean, both_runtimes, Container, Host, Runtime, Spec};

/// The state directory as the hook would make it, so a test can plant
/// things in it before the first setup.
fn premade_state(h: &Host) -> PathBuf {
    let state = h.state_dir();
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    state
}

/// A directory outside the state directory, where a planted symlink points.
fn outside_dir(h: &Host) -> PathBuf {
    let d = h.dir.join("elsewhere");
    std::fs::create_dir_all(&d).expect("outside dir");
    d
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The setup failed, said why naming `path` (runc shows the hook's
/// stderr; crun discards it, so the log must say it too), and left nothing.
#[track_caller]
fn refused(h: &Host, c: &Container, path: &Path, why: &str) {
    assert!(
        c.exit.is_some_and(|s| !s.success()),
        "setup should fail: {}",
        c.output()
    );
    let path = path.display().to_string();
    if c.runtime == Runtime::Runc {
        let out = c.output();
        assert!(out.contains(&path) && out.contains(why), "{out}");
    }
    let log = h.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&c.id) && l.contains("ERROR"))
        .unwrap_or("");
    assert!(line.contains(&path) && line.contains(why), "{line:?}");
    assert_clean(h, &c.id);
}

fn ports() -> Spec {
    Spec::default().ann("io.ocinet.ports", "8080:80")
}

fn symlinked_pool_is_refused(rt: Runtime) {
    let h = Host::new();
    let state = premade_state(&h);
    let elsewhere = outside_dir(&h);
    std::fs::create_dir_all(state.join("ipam")).expect("ipam");
    let link = state.join("ipam/ocinet");
    symlink(&elsewhere, &link).expect("plant");
    let c = h.start(rt, "pool", &Spec::default());
    refused(&h, &c, &link, "symbolic link");
    assert_eq!(
        entries(&elsewhere),
        Vec::<String>::new(),
        "lease written outside"
    );
}

fn symlinked_ports_dir_is_refused(rt: Runtime) {
    let h = Host::new();
    let state = premade_state(&h);
    let elsewhere = outside_dir(&h);
    let link = state.join("ports");
    symlink(&elsewhere, &link).expect("plant");
    let c = h.start(rt, "ports", &ports());
    refused(&h, &c, &link, "symbolic link");
    assert_eq!(
        entries(&elsewhere),
        Vec::<String>::new(),
        "claim written outside"
    );
}

fn symlinked_log_is_refused(rt: Runtime) {
    let h = Host::new();
    let state = premade_state(&h);
    let target = outside_dir(&h).join("victim.log");
    std::fs::write(&target, "untouched\n").expect("victim");
    let link = state.join("ocinet.log");
    symlink(&target, &link).expect("plant");
    let c = h.start(rt, "log", &Spec::default());
    assert!(
        c.exit.is_some_and(|s| !s.success()),
        "setup should fail: {}",
        c.output()
    );
    if rt == Runtime::Runc {
        let out = c.output();
        assert!(
            out.contains(&link.display().to_string()) && out.contains("symbolic link"),
            "{out}"
        );
    }
    // Every ocinet command refuses the link, the harness's `ps` too.
    std::fs::remove_file(&link).expect("unplant");
    assert_clean(&h, &c.id);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap_or_default(),
        "untouched\n",
        "log lines written outside"
    );
}

fn symlinked_lock_is_refused(rt: Runtime) {
    let h = Host::new();
    let state = premade_state(&h);
    let elsewhere = outside_dir(&h);
    // Dangling: following it would create the file.
    let link = state.join("ocinet.lock");
    symlink(elsewhere.join("victim.lock"), &link).expect("plant");
    let c = h.start(rt, "lock", &Spec::default());
    refused(&h, &c, &link, "symbolic link");
    assert_eq!(
        entries(&elsewhere),
        Vec::<String>::new(),
        "lock made outside"
    );
}

fn open_ipam_dir_is_refused(rt: Runtime) {
    let h = Host::new();
    let state = premade_state(&h);
    let dir = state.join("ipam");
    std::fs::create_dir_all(&dir).expect("ipam");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let c = h.start(rt, "ipam777", &Spec::default());
    refused(&h, &c, &dir, "writable by group or others");
    assert_eq!(entries(&dir), Vec::<String>::new(), "pool made in it");
}

fn open_ports_dir_is_refused(rt: Runtime) {
    let h = Host::new();
    let state = premade_state(&h);
    let dir = state.join("ports");
    std::fs::create_dir_all(&dir).expect("ports");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let c = h.start(rt, "ports777", &ports());
    refused(&h, &c, &dir, "writable by group or others");
    assert_eq!(entries(&dir), Vec::<String>::new(), "claim made in it");
}

both_runtimes!(
    symlinked_pool_is_refused,
    symlinked_ports_dir_is_refused,
    symlinked_log_is_refused,
    symlinked_lock_is_refused,
    open_ipam_dir_is_refused,
    open_ports_dir_is_refused,
);

/// Symlinks planted at /run/netns names, removed when the test ends even
/// if it fails (only these: nothing else there is the test's).
struct Planted(Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for p in &self.0 {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// FNV-1a of the id, as the hook hashes it for the second pin name. This
/// test squats the very names the hook would pick, so it has to derive them
/// itself: no interface of ocinet names a pin before it exists.
fn fnv1a64(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const DANGLING: &str = "/nonexistent/ocinet-test-target";

/// The first `taken` pin names of `id`, as the hook derives them: the
/// first 12 characters, then with the low 32 bits of the id's FNV-1a (the
/// last 8 hex digits of its veth name).
fn pin_names(id: &str, taken: usize) -> Vec<PathBuf> {
    let short = &id[..12];
    let hash = &format!("{:016x}", fnv1a64(id))[8..];
    [
        format!("/run/netns/ocinet-{short}"),
        format!("/run/netns/ocinet-{short}-{hash}"),
    ]
    .into_iter()
    .take(taken)
    .map(PathBuf::from)
    .collect()
}

/// runc only: with crun the harness runs the runtime (and so the hook) in a
/// private mount namespace, where /run/netns is the same directory but the
/// pin's bind mount is invisible from here, so "the pin is elsewhere and
/// is a namespace" could not be checked.
fn taken_pin_names_are_skipped(taken: usize) {
    let h = Host::new();
    let id = format!("{}-pin", ocinet_integration::unique_hex());
    let names = pin_names(&id, taken);
    let planted = Planted(names.clone());
    for n in &planted.0 {
        symlink(DANGLING, n).expect("plant");
    }
    let mut c = h.start_id(Runtime::Runc, &id, &Spec::default());
    assert!(c.exit.is_none(), "setup failed: {}", c.output());
    let ep = h.endpoint(&id).expect("endpoint");
    let pin = PathBuf::from(ep["netns"].as_str().expect("netns path"));
    assert!(!names.contains(&pin), "pinned at a taken name: {pin:?}");
    // The pin is the container's namespace, and it is networked.
    let o = ocinet_integration::run_cmd(
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", pin.display()))
            .args(["ip", "-4", "-o", "addr", "show", "eth0"]),
    );
    let ip = ep["ip"].as_str().expect("ip");
    assert!(
        o.status.success() && ocinet_integration::text(&o).contains(ip),
        "{}",
        ocinet_integration::text(&o)
    );
    h.stop(&mut c);
    for n in &names {
        assert_eq!(
            std::fs::read_link(n).ok(),
            Some(PathBuf::from(DANGLING)),
            "{n:?} was touched"
        );
    }
    let planted_names: Vec<String> = names.iter().map(|n| n.display().to_string()).collect();
    let left: Vec<String> = h
        .leftovers(&id)
        .into_iter()
        .filter(|l| !planted_names.contains(l))
        .collect();
    assert!(left.is_empty(), "{id} left behind: {left:?}");
    assert!(!pin.exists(), "pin {pin:?} left");
    drop(planted);
}

#[test]
fn a_dangling_symlink_at_the_pin_name_is_skipped() {
    taken_pin_names_are_skipped(1);
}

#[test]
fn both_pin_names_taken_is_fine() {
    taken_pin_names_are_skipped(2);
}
