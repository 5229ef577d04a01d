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
