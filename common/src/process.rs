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

/// One unit name per daemon and state directory, as there is one resolver
/// (and one port proxy) per state directory.
pub fn unit_name(daemon: &str, state_dir: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    format!(
        "{daemon}-{:016x}.service",
        crate::validate::fnv1a64(state_dir.as_os_str().as_bytes())
    )
}
