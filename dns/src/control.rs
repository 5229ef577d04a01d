//! Starting the resolver from a hook: a proper daemon (its own session,
//! stdio on /dev/null, no descriptor of the runtime's), so that runc does
//! not wait on it. On a host run by systemd it is started as a transient
//! service instead (systemd-run), so it is nobody's descendant: a
//! foreground `crun run`, a child subreaper that waits for every
//! descendant, does not wait on it either, and it is not in the cgroup of
//! whichever container's hook happened to start it. Without systemd, a
//! resolver the host's service manager runs (`ocinet-dns --persistent`)
//! is found here and none is started: see docs/dns.md.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ocinet_common::model::ProcessId;
use ocinet_common::store::dns::ResolverState;
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::StateDir;
use ocinet_common::{Error, Result};

/// The resolver's own binary, looked for beside the hook's.
pub const BINARY: &str = "ocinet-dns";
/// The subcommand of the `ocinet` binary that is the resolver too (where
/// `ocinet-dns` is not installed).
pub const SUBCOMMAND: &str = "dns-server";
/// How long a hook waits for a resolver it started to be listening.
const READY: Duration = Duration::from_secs(2);
/// How long a hook waits for a running resolver to listen on its
/// network's address (it looks at the networks every 50 ms).
const NEW_ADDRESS: Duration = Duration::from_millis(500);

/// What starts the resolver: `ocinet-dns` beside `exe` (the hook's own
/// binary), else `exe dns-server`.
fn resolver_command(exe: &Path) -> (std::path::PathBuf, Option<&'static str>) {
    use std::os::unix::fs::PermissionsExt;
    let own = exe.with_file_name(BINARY);
    match std::fs::metadata(&own) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => (own, None),
        _ => (exe.to_path_buf(), Some(SUBCOMMAND)),
    }
}

/// Make sure a resolver runs for `state` and listens on `addresses` (the
/// resolver addresses of the caller's networks); start one if none runs
/// (see `resolver_command`). Under the state lock (`_held`), as the
/// resolver decides to end under it.
pub fn ensure(
    _held: &StateLock,
    state: &StateDir,
    state_dir: &Path,
    config_dir: &Path,
    exe: &Path,
    addresses: &[IpAddr],
) -> Result<ProcessId> {
    let (p, read) = match state.resolver_state() {
        Some(s) => (s.process, Some(s)),
        None => (start(state, state_dir, config_dir, exe)?, None),
    };
    listening(state, &p, read, addresses)?;
    Ok(p)
}

/// End the resolver a hook started, when no container needs it (`gc`):
/// SIGTERM (it keeps its figures and removes its pid file), SIGKILL if it
/// has not ended within 2 s. A persistent one is its service manager's
/// and is left alone, and so is one whose pid file does not say (an
/// earlier version's). Under the state lock (`_held`), so no hook counts
/// on it meanwhile. The pid, when one was ended.
pub fn stop_idle(_held: &StateLock, state: &StateDir) -> Result<Option<i32>> {
    let Some(s) = state
        .resolver_state()
        .filter(|s| s.persistent == Some(false))
    else {
        return Ok(None);
    };
    let p = s.process;
    let _span = tracing::info_span!("stop_resolver", pid = p.pid).entered();
    // Looked at just now (resolver_state): its pid and start time. Gone
    // before the lock is given back: a hook that comes next starts a
    // resolver that must find the resolver lock free.
    if ocinet_common::process::end_daemon(&p, "resolver")? {
        state.forget_resolver(&p)?;
    }
    Ok(Some(p.pid))
}

/// Wait until the resolver `p` says it listens on every one of
/// `addresses`: a network created since it last looked is bound within a
/// tick, and a container's first query must find it. (A resolver of an
/// earlier version says nothing: not waited for.) `read`: its state as
/// the caller just read it, looked at first.
fn listening(
    state: &StateDir,
    p: &ProcessId,
    mut read: Option<ResolverState>,
    addresses: &[IpAddr],
) -> Result<()> {
    let deadline = Instant::now() + NEW_ADDRESS;
    loop {
        let missing: Vec<IpAddr> = match read.take().or_else(|| state.resolver_state()) {
            Some(s) if s.process == *p => match s.listening {
                Some(l) => addresses
                    .iter()
                    .filter(|a| !l.contains(a))
                    .copied()
                    .collect(),
                None => return Ok(()),
            },
            // Gone meanwhile: the next hook, or gc, starts another.
            _ => return Ok(()),
        };
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Conflict(format!(
                "the resolver (pid {}) does not listen on {missing:?} within {} ms; see the log",
                p.pid,
                NEW_ADDRESS.as_millis()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Start a resolver; its pid once its pid file names it.
fn start(state: &StateDir, state_dir: &Path, config_dir: &Path, exe: &Path) -> Result<ProcessId> {
    let _span = tracing::info_span!("start_resolver").entered();
    // The daemon works from /, not the hook's directory.
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let (state_dir, config_dir) = (abs(state_dir)?, abs(config_dir)?);
    let (exe, subcommand) = resolver_command(exe);
    let exe = exe.as_path();
    let systemd = ocinet_common::process::systemd_run();
    let mut cmd = ocinet_common::process::daemon_command(systemd, "ocinet-dns", &state_dir, exe);
    cmd.arg("--state-dir")
        .arg(&state_dir)
        .arg("--config-dir")
        .arg(&config_dir)
        .args(subcommand);
    let mut child =
        ocinet_common::process::spawn_detached(&mut cmd).map_err(|e| Error::io(exe, e))?;
    let pid = child.id() as i32;
    // Not waited for once running: it outlives the hook.
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        if let Some(p) = state
            .resolver()
            .filter(|p| systemd.is_some() || p.pid == pid)
        {
            tracing::info!(pid, "resolver started");
            return Ok(p);
        }
        match child.try_wait() {
            // systemd-run returns once the service is started; the
            // resolver then writes its pid file as when started directly.
            Ok(Some(status)) if systemd.is_some() && status.success() => {}
            Ok(Some(status)) => {
                // Another resolver held the lock (it is the one that
                // runs), or this one could not start.
                if let Some(p) = state.resolver() {
                    return Ok(p);
                }
                return Err(Error::Conflict(format!(
                    "the resolver exited at once ({status}); see the log"
                )));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Conflict(format!(
        "the resolver (pid {pid}) did not start listening within {} s; see the log",
        READY.as_secs()
    )))
}
