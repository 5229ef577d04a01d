//! Starting a daemon from a short-lived process run by someone who waits
//! for it (a hook, a CNI plugin): its own session, stdio on /dev/null, and
//! none of the caller's descriptors (runc waits for its pipes to close).

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
    match systemd {
        Some(run) => {
            let mut c = Command::new(run);
            c.args([
                "--quiet",
                "--collect",
                "--property=KillMode=mixed",
                "--unit",
            ])
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
