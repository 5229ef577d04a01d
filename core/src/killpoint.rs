//! Fault injection for the crash tests: in debug builds only, the hook
//! SIGKILLs itself on reaching the step named by `OCINET_TEST_KILL_AT`, so
//! a test can prove that gc or the next hook call recovers from a hook
//! that died there. Release builds compile this to nothing.
//!
//! Steps, in the order setup and teardown reach them: leased, recorded,
//! bridge, firewall-started, veth, firewall, pinned, proxied (only with
//! a port on `[::1]`), ready,
//! teardown-retired (host veths retired: down, off the bridge, marked; no
//! reaper started yet),
//! teardown-unwired, teardown-unleased; then, in the detached reaper,
//! reaping. `network connect` reaches those of
//! setup but pinned; `disconnect` reaches teardown-unplugged (its
//! interface gone, its elements not yet), then those of teardown.
//!
//! `OCINET_TEST_STALL_AT` names a step where the process sleeps a minute
//! instead: what a runtime must not wait on (a reaper) can be shown not
//! to be waited on.

#[cfg(debug_assertions)]
pub fn reached(step: &'static str) {
    if std::env::var("OCINET_TEST_KILL_AT").is_ok_and(|v| v == step) {
        tracing::warn!(step, "OCINET_TEST_KILL_AT: killing the hook here");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    if std::env::var("OCINET_TEST_STALL_AT").is_ok_and(|v| v == step) {
        tracing::warn!(step, "OCINET_TEST_STALL_AT: sleeping here");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reached(_step: &'static str) {}
