//! Fault injection for the crash tests: in debug builds only, the hook
//! (or the overlay agent) SIGKILLs itself on reaching the step named by
//! `OCINET_TEST_KILL_AT`, so a test can prove that gc or the next hook
//! call recovers from a process that died there. Release builds compile
//! this to nothing.
//!
//! Steps, in the order setup and teardown reach them: leased-ipv4 (a
//! dual-stack network: the IPv4 address taken, the IPv6 one not yet),
//! leased, recorded,
//! bridge, firewall-started, veth, firewall, pinned, proxied (only with
//! a port on `[::1]`), ready,
//! teardown-retired (host veths retired: down, off the bridge, marked; no
//! reaper started yet),
//! teardown-unwired, teardown-unleased; then, in the detached reaper,
//! reaping. `network connect` reaches those of
//! setup but pinned; `disconnect` reaches teardown-unplugged (its
//! interface gone, its elements not yet), then those of teardown.
//!
//! The cluster store's commands (overlay networks):
//! - `network create --driver overlay`: network-publishing (checked, the
//!   store not written), network-published (definition and VNI in the
//!   store, one transaction; no local copy yet);
//! - `network rm` of an overlay network: network-released (this host's
//!   empty blocks given back), network-unpublished (the store has nothing
//!   of it; the local copy and devices are still there);
//! - `cluster join`: join-saved (config written, no agent started);
//! - `cluster leave`: leave-agent-stopped, leave-unregistered (the host's
//!   keys gone from the store, one transaction), leave-revoked (its lease
//!   too), leave-forgotten (its overlay devices and copies gone; the
//!   config not yet);
//! - `cluster rm`: cluster-rm-read (the node's keys read, not removed),
//!   and forget-node-batch between the transactions of a node with more
//!   keys than one transaction carries.
//!
//! The overlay agent (`ocinet agent`) inherits the variable from whoever
//! starts it (the hook, `cluster join`, `ocinet gc`), and dies at:
//! - registering: agent-lease-granted (a new lease, nothing on it yet),
//!   agent-node-put (the node key on the lease, the member key not yet
//!   written), agent-registered (both);
//! - its own keys: agent-entry-put (a container's entry put back on the
//!   lease), agent-block-claimed (a block of a running container put
//!   back), agent-entry-dropped (the entry of a container that is gone or
//!   died without its poststop removed; its record not torn down yet);
//! - block-released (an empty block and its last-holder key given back,
//!   one transaction), held-released (a last-holder key of a block nobody
//!   holds removed): reached by the agent, a teardown and `network rm`;
//! - agent-down-marked (a member without a lease marked down);
//! - overlay definitions: agent-network-adopted (a network of the store
//!   copied into the config directory), agent-network-unwired (a network
//!   the store no longer has: its devices removed, its local copy not);
//! - the kernel: agent-device-made (a VXLAN device that was missing made
//!   again, nothing programmed on it), vxlan-stale-removed (entries for
//!   blocks no longer held elsewhere removed, none added yet),
//!   vxlan-fdb-added (FDB entries added, no neighbour nor route yet),
//!   vxlan-neighbours-set (neighbours too, no route yet): the last three
//!   also by a setup that programs a device it made.
//!
//! `OCINET_TEST_STALL_AT` names a step where the process sleeps a minute
//! instead: what a runtime must not wait on (a reaper) can be shown not
//! to be waited on.

#[cfg(debug_assertions)]
pub fn reached(step: &'static str) {
    if std::env::var("OCINET_TEST_KILL_AT").is_ok_and(|v| v == step) {
        tracing::warn!(step, "OCINET_TEST_KILL_AT: killing this process here");
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
