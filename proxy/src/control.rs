//! The proxy as the hook (and `gc`) reach it: started as a daemon when
//! none runs (as the resolver is: `ocinet-proxy` beside `ocinet`, else
//! `ocinet port-proxy`; a transient systemd service where systemd runs
//! the host), and asked over its control socket to read the records again
//! and say which ports it accepts on. Every wait is bounded: a hung proxy
//! costs a hook at most `READY` + `REPLY`, never the runtime's patience.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ocinet_common::model::ProcessId;
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::StateDir;
use ocinet_common::{Error, Result};

use crate::wire::Status;

/// The proxy's own binary, looked for beside the hook's.
pub const BINARY: &str = "ocinet-proxy";
/// The subcommand of the `ocinet` binary that is the proxy too.
pub const SUBCOMMAND: &str = "port-proxy";
/// How long a hook waits for a proxy it started to write its pid file
/// (after binding every port the records ask for).
const READY: Duration = Duration::from_secs(2);
/// How long a hook waits for the proxy's answer, connecting included.
const REPLY: Duration = Duration::from_secs(2);
/// The longest answer read (a listener's entry is ~200 bytes).
const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// Make sure a proxy runs for `state` (starting one if none does) and has
/// read the records as they are now: its answer says, per port, whether it
/// is accepting. Under the state lock (`_held`), as the proxy decides to
/// end under it.
pub fn ensure(_held: &StateLock, state: &StateDir, state_dir: &Path, exe: &Path) -> Result<Status> {
    if state.proxy_state().is_none() {
        start(state, state_dir, exe)?;
    }
    request(state, "sync")
}

/// Have a running proxy read the records again (a container's ports
/// went): `None` when none runs.
pub fn sync(state: &StateDir) -> Result<Option<Status>> {
    if_running(state, "sync")
}

/// What a running proxy serves, without a change: `None` when none runs.
pub fn status(state: &StateDir) -> Result<Option<Status>> {
    if_running(state, "status")
}

/// `request`, when a proxy runs; one that died meanwhile (its socket
/// refuses) is no error: nothing serves the ports until the next hook or
/// gc starts another.
fn if_running(state: &StateDir, what: &str) -> Result<Option<Status>> {
    if state.proxy_state().is_none() {
        return Ok(None);
    }
    match request(state, what) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            // A process killed closes its descriptors a moment before it
            // is seen dead.
            for _ in 0..10 {
                if state.proxy_state().is_none() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e)
        }
    }
}

/// One request, its answer within `REPLY`.
fn request(state: &StateDir, what: &str) -> Result<Status> {
    let path = state.proxy_socket();
    let deadline = Instant::now() + REPLY;
    let failed = |e: std::io::Error| {
        Error::Conflict(format!(
            "the port proxy's control socket {}: {e}",
            path.display()
        ))
    };
    let timed_out = || {
        Error::Conflict(format!(
            "the port proxy did not answer within {} ms; see the log",
            REPLY.as_millis()
        ))
    };
    // Non-blocking: a proxy that accepts nothing fills its backlog, and a
    // blocking connect would then wait for good.
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM.cloexec(), None)
        .map_err(failed)?;
    sock.set_nonblocking(true).map_err(failed)?;
    let addr = socket2::SockAddr::unix(&path).map_err(failed)?;
    loop {
        match sock.connect(&addr) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(nix::libc::EAGAIN) => {
                if Instant::now() >= deadline {
                    return Err(timed_out());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(failed(e)),
        }
    }
    sock.set_nonblocking(false).map_err(failed)?;
    let mut stream: std::os::unix::net::UnixStream = sock.into();
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(left())).map_err(failed)?;
    stream
        .write_all(format!("{what}\n").as_bytes())
        .map_err(failed)?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut limited = (&mut stream).take(MAX_REPLY);
    loop {
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        limited
            .get_mut()
            .set_read_timeout(Some(left()))
            .map_err(failed)?;
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if reply.ends_with(b"\n") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    serde_json::from_slice(&reply).map_err(|e| {
        Error::Conflict(format!(
            "the port proxy's answer is not understood ({e}); see the log"
        ))
    })
}

/// End the proxy a hook started, when no record asks for a port (`gc`):
/// SIGTERM, SIGKILL if it has not ended within 2 s. A persistent one is
/// its service manager's and is left alone. Under the state lock
/// (`_held`). The pid, when one was ended.
pub fn stop_idle(_held: &StateLock, state: &StateDir) -> Result<Option<i32>> {
    let Some(s) = state.proxy_state().filter(|s| !s.persistent) else {
        return Ok(None);
    };
    let p = s.process;
    if ocinet_common::process::end_daemon(&p, "port proxy")? {
        state.forget_proxy(&p)?;
    }
    Ok(Some(p.pid))
}

/// What starts the proxy: `ocinet-proxy` beside `exe` (the hook's own
/// binary), else `exe port-proxy`.
fn proxy_command(exe: &Path) -> (std::path::PathBuf, Option<&'static str>) {
    use std::os::unix::fs::PermissionsExt;
    let own = exe.with_file_name(BINARY);
    match std::fs::metadata(&own) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => (own, None),
        _ => (exe.to_path_buf(), Some(SUBCOMMAND)),
    }
}

/// Start a proxy; once its pid file names it (it has bound what the
/// records ask for by then).
fn start(state: &StateDir, state_dir: &Path, exe: &Path) -> Result<ProcessId> {
    let _span = tracing::info_span!("start_proxy").entered();
    let state_dir = std::path::absolute(state_dir).map_err(|e| Error::io(state_dir, e))?;
    let (exe, subcommand) = proxy_command(exe);
    let exe = exe.as_path();
    let systemd = ocinet_common::process::systemd_run();
    let mut cmd = ocinet_common::process::daemon_command(systemd, "ocinet-proxy", &state_dir, exe);
    cmd.arg("--state-dir").arg(&state_dir).args(subcommand);
    let mut child =
        ocinet_common::process::spawn_detached(&mut cmd).map_err(|e| Error::io(exe, e))?;
    let pid = child.id() as i32;
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        if let Some(p) = state
            .proxy_state()
            .map(|s| s.process)
            .filter(|p| systemd.is_some() || p.pid == pid)
        {
            tracing::info!(pid = p.pid, "port proxy started");
            return Ok(p);
        }
        match child.try_wait() {
            Ok(Some(status)) if systemd.is_some() && status.success() => {}
            Ok(Some(status)) => {
                if let Some(s) = state.proxy_state() {
                    return Ok(s.process);
                }
                return Err(Error::Conflict(format!(
                    "the port proxy exited at once ({status}); see the log"
                )));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Conflict(format!(
        "the port proxy (pid {pid}) did not start within {} s; see the log",
        READY.as_secs()
    )))
}
