//! Starting a daemon from a short-lived process run by someone who waits
//! for it (a hook, a CNI plugin): its own session, stdio on /dev/null, and
//! none of the caller's descriptors (runc waits for its pipes to close).

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// `cmd` started detached. Descriptors above stdio are marked
/// close-on-exec rather than closed, so that std's exec-error pipe still
/// reports a failed exec.
pub fn spawn_detached(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
            if nix::libc::syscall(
                nix::libc::SYS_close_range,
                3u32,
                u32::MAX,
                CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                // Kernels before 5.11: one by one.
                for fd in 3..4096 {
                    nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// `systemd-run`, when systemd runs this host (its own test:
/// `/run/systemd/system` exists, sd_booted(3)) and the hook is in systemd's
/// network and mount namespaces: a service starts in those, and the
/// resolver and the port proxy must run in the hook's (one per host
/// network namespace).
pub fn systemd_run() -> Option<&'static std::path::Path> {
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let same = |ns: &str| {
        let id = |pid: &str| {
            std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
                .ok()
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.dev(), m.ino())
                })
        };
        id("self").is_some() && id("self") == id("1")
    };
    if !same("net") || !same("mnt") {
        return None;
    }
    ["/usr/bin/systemd-run", "/bin/systemd-run"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file())
}

/// The command that starts daemon `daemon` (`exe`, for `state_dir`): a
/// transient systemd service where systemd runs the host (`systemd`,
/// from `systemd_run`), so that it outlives the caller's process group
/// and `systemctl` shows it; `exe` itself elsewhere. The caller adds the
/// daemon's arguments.
pub fn daemon_command(
    systemd: Option<&std::path::Path>,
    daemon: &str,
    state_dir: &std::path::Path,
    exe: &std::path::Path,
) -> Command {
    daemon_command_with(systemd, daemon, state_dir, exe, &[])
}

/// `daemon_command` with more unit properties (`Restart=on-failure`, ...)
/// for the transient service; without systemd they have no meaning and
/// are not used.
pub fn daemon_command_with(
    systemd: Option<&std::path::Path>,
    daemon: &str,
    state_dir: &std::path::Path,
    exe: &std::path::Path,
    properties: &[&str],
) -> Command {
    match systemd {
        Some(run) => {
            let mut c = Command::new(run);
            c.args(["--quiet", "--collect", "--property=KillMode=mixed"]);
            for p in properties {
                c.arg(format!("--property={p}"));
            }
            c.arg("--unit")
                .arg(unit_name(daemon, state_dir))
                .arg("--")
                .arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

/// One unit name per daemon and state directory, as there is one resolver
/// (and one port proxy) per state directory.
pub fn unit_name(daemon: &str, state_dir: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    format!(
        "{daemon}-{:016x}.service",
        crate::validate::fnv1a64(state_dir.as_os_str().as_bytes())
    )
}

/// End daemon `p` (named `what` in errors): SIGTERM, and SIGKILL if it has
/// not ended within 2 s, then up to 1 s more for it to go. Whether it had
/// to be killed (its state file, which it removes on a clean exit, is the
/// caller's to forget then).
pub fn end_daemon(p: &crate::model::ProcessId, what: &str) -> crate::Result<bool> {
    use nix::sys::signal::{kill, Signal};
    use std::time::Duration;
    let pid = nix::unistd::Pid::from_raw(p.pid);
    if let Err(e) = kill(pid, Signal::SIGTERM) {
        return Err(crate::Error::Conflict(format!(
            "ending the {what} (pid {}): {e}",
            p.pid
        )));
    }
    if ended_within(p, Duration::from_secs(2)) {
        return Ok(false);
    }
    let _ = kill(pid, Signal::SIGKILL);
    ended_within(p, Duration::from_secs(1));
    Ok(true)
}

/// Whether `p` ended within `limit`.
pub fn ended_within(p: &crate::model::ProcessId, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while p.is_alive() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// The state lock of the transactions this process took part in (set by
/// the first one): `exit_leaving_to_child`'s child closes the netfilter
/// sockets only once nobody holds it.
static QUIET_LOCK: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Note the lock whose holders the final close of this process's netfilter
/// sockets must not hold up (see `exit_leaving_to_child`).
pub fn close_netfilter_sockets_outside(lock: &std::path::Path) {
    let _ = QUIET_LOCK.set(lock.to_path_buf());
}

/// How long the child waits for the state lock to be free before it
/// closes anyway: a burst of hooks (32 teardowns at once) lasts a few
/// hundred milliseconds; a foreground `crun run`, a child subreaper, waits
/// for the child too, so never for long.
const QUIET_WAIT_MAX_US: u64 = 500_000;

/// `membarrier(2)`'s command that returns after an RCU grace period.
const MEMBARRIER_CMD_GLOBAL: nix::libc::c_int = 1;

/// End the process with `code` without making its caller wait for the
/// kernel's cleanup of its netfilter sockets. Closing a NETLINK_NETFILTER
/// socket (nf_tables or conntrack) while a committed nf_tables
/// transaction's release is pending flushes that work, which waits out an
/// RCU grace period (`nft_rcv_nl_event`: 2-10 ms here, most of what a hook
/// took after its own work). A child started here keeps those sockets (and
/// nothing else) until this process has gone, so the final close, and its
/// wait, fall on the child: the runtime's wait for the hook ends at once.
/// The child ends by itself right after; a child subreaper (a foreground
/// `crun run`) waits for it as it waited for the hook's own exit before.
/// Without such a socket, or if the child cannot be started, an ordinary
/// exit.
///
/// The close holds nf_tables' per-namespace `commit_mutex` while it
/// waits, and everything that takes that mutex waits with it: every other
/// process's commit, and every device registered meanwhile
/// (`nf_tables_netdev_event`). So the child first waits (up to
/// `QUIET_WAIT_MAX_US`, trying a shared lock without waiting and giving
/// it back at once) until nobody holds the state lock
/// (`close_netfilter_sockets_outside`): in a burst of hooks (32
/// teardowns), their element commits, made under the state lock, had
/// queued behind these closes one grace period each. Then it waits out a
/// grace period of its own, holding nothing (`membarrier`'s
/// `MEMBARRIER_CMD_GLOBAL` is `synchronize_rcu()`): the release work is
/// done after it, and the close takes microseconds. Without that, a
/// setup right after a teardown waited 1-2 ms for the teardown's child,
/// in the kernel's registration of its veth.
///
/// The child shares this process's memory (`clone` with `CLONE_VM`, as
/// `posix_spawn` starts its child, but without waiting for it): a fork
/// copied the page tables (~0.1 ms) and this process's exit then tore its
/// own down (~0.2 ms), both while the runtime waited; now the exit leaves
/// the memory to the child, whose end frees it. The child touches nothing
/// of the parent's but its own stack, where its arguments are too
/// (`ExitChild`), and makes only system calls.
pub fn exit_leaving_to_child(code: u8) -> ! {
    use std::io::Write;
    use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let sockets = netfilter_sockets();
    if sockets.is_empty() || sockets.len() > EXIT_CHILD_SOCKETS {
        std::process::exit(i32::from(code));
    }
    let Ok((parent_gone, parent_end)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        std::process::exit(i32::from(code));
    };
    // A description of its own (a flock belongs to the open file
    // description: sharing the parent's would keep its lock held).
    let quiet: RawFd = QUIET_LOCK
        .get()
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(p)
                .ok()
        })
        .map_or(-1, IntoRawFd::into_raw_fd);
    let mut args = ExitChild {
        keep: [-1; EXIT_CHILD_SOCKETS + 2],
        kept: 0,
        watch: parent_gone.as_raw_fd(),
        quiet,
    };
    for fd in sockets.iter().copied().chain([args.watch, quiet]) {
        if fd >= 0 {
            args.keep[args.kept] = fd;
            args.kept += 1;
        }
    }
    args.keep[..args.kept].sort_unstable();
    // SAFETY: a fresh private mapping, written here before the child
    // starts and never unmapped (it goes with the memory, at the child's
    // end); the child's stack grows down from its top, its arguments sit
    // at its bottom.
    let started = unsafe {
        let region = nix::libc::mmap(
            std::ptr::null_mut(),
            EXIT_CHILD_STACK,
            nix::libc::PROT_READ | nix::libc::PROT_WRITE,
            nix::libc::MAP_PRIVATE | nix::libc::MAP_ANONYMOUS | nix::libc::MAP_STACK,
            -1,
            0,
        );
        if region == nix::libc::MAP_FAILED {
            -1
        } else {
            let at = region.cast::<ExitChild>();
            at.write(args);
            let top = region.cast::<u8>().add(EXIT_CHILD_STACK);
            nix::libc::clone(
                exit_child,
                top.cast(),
                nix::libc::CLONE_VM | nix::libc::SIGCHLD,
                at.cast(),
            )
        }
    };
    if started > 0 {
        drop(parent_gone);
        // The sockets go first (the child's copies keep them open), and
        // only then, at exit, the pipe's write end, which wakes the child:
        // the last close must be the child's.
        for fd in sockets {
            // SAFETY: the process ends below; nothing uses them again.
            unsafe { nix::libc::close(fd) };
        }
        std::mem::forget(parent_end);
    }
    std::process::exit(i32::from(code))
}

/// Netfilter sockets an exit child keeps at most (a process has one
/// nf_tables and one conntrack socket); with more, an ordinary exit.
const EXIT_CHILD_SOCKETS: usize = 8;

/// The exit child's stack, its arguments at the bottom.
const EXIT_CHILD_STACK: usize = 64 * 1024;

/// What the exit child needs, copied onto its own stack: the parent's
/// heap and stack change under it (they share the memory) as the parent
/// exits.
#[repr(C)]
struct ExitChild {
    /// The descriptors it keeps, sorted: the netfilter sockets, `watch`
    /// and `quiet`.
    keep: [std::os::fd::RawFd; EXIT_CHILD_SOCKETS + 2],
    kept: usize,
    /// The read end of a pipe whose write end only the parent holds.
    watch: std::os::fd::RawFd,
    /// The state lock, opened anew, or -1.
    quiet: std::os::fd::RawFd,
}

/// The exit child (see `exit_leaving_to_child`): only system calls, on
/// its own stack.
extern "C" fn exit_child(arg: *mut nix::libc::c_void) -> nix::libc::c_int {
    use std::os::fd::RawFd;
    // SAFETY: `arg` is the `ExitChild` the parent wrote before the clone,
    // in a mapping nobody unmaps; every call below is a plain system call.
    unsafe {
        let a = &*arg.cast::<ExitChild>();
        // Everything but what it keeps: the runtime's stdout and stderr
        // pipes, the state lock and the pipe's write end must not outlive
        // the parent here.
        let mut from: RawFd = 0;
        for &k in &a.keep[..a.kept] {
            if from < k {
                nix::libc::syscall(
                    nix::libc::SYS_close_range,
                    from as u32,
                    (k - 1) as u32,
                    0u32,
                );
            }
            from = k + 1;
        }
        nix::libc::syscall(nix::libc::SYS_close_range, from as u32, u32::MAX, 0u32);
        let mut b = 0u8;
        // EOF once the parent, the only holder of the write end, ended.
        // Through syscall(2), not glibc's cancellable wrappers, which
        // would flip the parent's thread's cancellation state; errno is
        // the parent's too, where a misread costs one try more.
        while nix::libc::syscall(
            nix::libc::SYS_read,
            a.watch,
            (&mut b as *mut u8).cast::<nix::libc::c_void>(),
            1usize,
        ) < 0
            && *nix::libc::__errno_location() == nix::libc::EINTR
        {}
        if a.quiet >= 0 {
            wait_until_unlocked(a.quiet);
        }
        // The pending release (ours, or the last teardown's) is over once
        // a grace period has passed: the close below then finds nothing
        // to flush and holds `commit_mutex` for microseconds. EINVAL (a
        // nohz_full kernel) leaves the wait to the close.
        nix::libc::syscall(nix::libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0u32, 0i32);
        nix::libc::_exit(0)
    }
}

/// Poll (system calls only: the exit child's) until nobody holds the lock on
/// `fd`'s file, for at most `QUIET_WAIT_MAX_US`; a shared lock taken and
/// given back at once, which holds up an exclusive taker for no longer
/// than two system calls.
fn wait_until_unlocked(fd: std::os::fd::RawFd) {
    let (mut waited, mut step) = (0u64, 1_000u64);
    loop {
        // SAFETY: plain system calls on a descriptor this process owns.
        unsafe {
            if nix::libc::flock(fd, nix::libc::LOCK_SH | nix::libc::LOCK_NB) == 0 {
                nix::libc::flock(fd, nix::libc::LOCK_UN);
                return;
            }
        }
        if waited >= QUIET_WAIT_MAX_US {
            return;
        }
        let ts = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: (step * 1_000) as nix::libc::c_long,
        };
        // SAFETY: nanosleep with a valid timespec; EINTR only shortens it.
        // syscall(2): glibc's nanosleep is a cancellation point, which
        // touches the calling thread's descriptor (the parent's, in the
        // exit child).
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_nanosleep,
                &ts as *const nix::libc::timespec,
                std::ptr::null_mut::<nix::libc::timespec>(),
            )
        };
        waited += step;
        step = (step * 2).min(16_000);
    }
}

/// This process's open NETLINK_NETFILTER sockets.
fn netfilter_sockets() -> Vec<std::os::fd::RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let opt = |fd, name| {
        let mut v: nix::libc::c_int = 0;
        let mut len = std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t;
        // SAFETY: a plain getsockopt into a local int.
        let r = unsafe {
            nix::libc::getsockopt(
                fd,
                nix::libc::SOL_SOCKET,
                name,
                (&mut v as *mut nix::libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<std::os::fd::RawFd>().ok())
        .filter(|&fd| {
            opt(fd, nix::libc::SO_DOMAIN) == Some(nix::libc::AF_NETLINK)
                && opt(fd, nix::libc::SO_PROTOCOL) == Some(nix::libc::NETLINK_NETFILTER)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A lock file of the test's own, removed when dropped.
    struct LockFile(std::path::PathBuf);

    impl Drop for LockFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn lock_file(tag: &str) -> LockFile {
        let path = std::env::temp_dir().join(format!("ocinet-quiet-{tag}-{}", std::process::id()));
        std::fs::write(&path, b"").expect("lock file");
        LockFile(path)
    }

    /// The exit child's wait returns only once the holder let go.
    #[test]
    fn the_wait_ends_when_the_holder_lets_go() {
        let f = lock_file("go");
        let path = &f.0;
        let holder = std::fs::File::open(path).expect("open");
        let held = nix::fcntl::Flock::lock(holder, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock");
        let released = Arc::new(AtomicBool::new(false));
        let r = released.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            r.store(true, Ordering::SeqCst);
            drop(held);
        });
        let waiter = std::fs::File::open(path).expect("open");
        let t0 = std::time::Instant::now();
        wait_until_unlocked(waiter.as_raw_fd());
        assert!(
            released.load(Ordering::SeqCst),
            "returned while the lock was held"
        );
        // Noticed the release, not the bound (the holder lets go at 30 ms).
        assert!(
            t0.elapsed() < std::time::Duration::from_micros(QUIET_WAIT_MAX_US * 4 / 5),
            "waited {:?}: the release went unnoticed",
            t0.elapsed()
        );
        t.join().expect("holder");
        // And the wait took nothing: an exclusive lock is free at once.
        let again = std::fs::File::open(path).expect("open");
        assert!(
            nix::fcntl::Flock::lock(again, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok(),
            "the waiter kept a lock"
        );
    }

    /// A holder that never lets go delays the close by the bound, no more.
    #[test]
    fn the_wait_gives_up_after_its_bound() {
        let f = lock_file("bound");
        let path = &f.0;
        let holder = std::fs::File::open(path).expect("open");
        let _held = nix::fcntl::Flock::lock(holder, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock");
        let waiter = std::fs::File::open(path).expect("open");
        let t = std::time::Instant::now();
        wait_until_unlocked(waiter.as_raw_fd());
        assert!(t.elapsed() >= std::time::Duration::from_micros(QUIET_WAIT_MAX_US));
    }

    #[test]
    fn unit_properties_go_before_the_unit_and_the_command() {
        let run = std::path::Path::new("/usr/bin/systemd-run");
        let state = std::path::Path::new("/run/ocinet");
        let exe = std::path::Path::new("/usr/bin/ocinet");
        let c = daemon_command_with(
            Some(run),
            "ocinet-agent",
            state,
            exe,
            &["Restart=on-failure"],
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = |s: &str| args.iter().position(|a| a == s);
        assert_eq!(c.get_program(), run.as_os_str());
        assert!(
            at("--property=Restart=on-failure") < at("--unit"),
            "{args:?}"
        );
        assert_eq!(args.last().map(String::as_str), Some("/usr/bin/ocinet"));
        assert_eq!(at("--"), Some(args.len() - 2), "{args:?}");
        // The plain variant is unchanged: no property but KillMode.
        let plain = daemon_command(Some(run), "ocinet-dns", state, exe);
        assert_eq!(
            plain
                .get_args()
                .filter(|a| a.to_string_lossy().starts_with("--property"))
                .count(),
            1
        );
        // Without systemd the properties have no meaning.
        let bare = daemon_command_with(None, "ocinet-agent", state, exe, &["Restart=on-failure"]);
        assert_eq!(bare.get_program(), exe.as_os_str());
        assert_eq!(bare.get_args().count(), 0);
    }
}
