//! Starting the resolver from a hook: a proper daemon (its own session,
//! stdio on /dev/null, no descriptor of the runtime's), so that runc does
//! not wait on it. (A foreground `crun run` is a child subreaper and
//! waits for every descendant whatever it does: see the README.)

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocinet_common::model::ProcessId;
use ocinet_common::store::StateDir;
use ocinet_common::{Error, Result};

/// The subcommand of the `ocinet` binary that is the resolver.
pub const SUBCOMMAND: &str = "dns-server";
/// How long a hook waits for a resolver it started to be listening.
const READY: Duration = Duration::from_secs(2);

/// Make sure a resolver runs for `state`; start `exe SUBCOMMAND` if not.
/// Callers hold the state lock (the resolver decides to end under it).
pub fn ensure(
    state: &StateDir,
    state_dir: &Path,
    config_dir: &Path,
    exe: &Path,
) -> Result<ProcessId> {
    if let Some(p) = state.resolver() {
        return Ok(p);
    }
    let _span = tracing::info_span!("start_resolver").entered();
    // The daemon works from /, not the hook's directory.
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let (state_dir, config_dir) = (abs(state_dir)?, abs(config_dir)?);
    let mut cmd = Command::new(exe);
    cmd.arg("--state-dir")
        .arg(&state_dir)
        .arg("--config-dir")
        .arg(&config_dir)
        .current_dir("/")
        .arg(SUBCOMMAND)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // No descriptor of the runtime's (runc waits for its pipes to
            // close): close everything above stdio (one by one on kernels
            // before 5.9, which have no close_range).
            if nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                for fd in 3..4096 {
                    nix::libc::close(fd);
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::io(exe, e))?;
    let pid = child.id() as i32;
    // Not waited for once running: it outlives the hook.
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        if let Some(p) = state.resolver().filter(|p| p.pid == pid) {
            tracing::info!(pid, "resolver started");
            return Ok(p);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another resolver held the lock (it is the one that runs), or
            // this one could not start.
            if let Some(p) = state.resolver() {
                return Ok(p);
            }
            return Err(Error::Conflict(format!(
                "the resolver exited at once ({status}); see the log"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Conflict(format!(
        "the resolver (pid {pid}) did not start listening within {} s; see the log",
        READY.as_secs()
    )))
}
