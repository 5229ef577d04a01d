//! The container's namespace's id in the host's namespace, chosen before
//! its veths are made.
//!
//! Every link notification about a host veth names the namespace its peer
//! lives in by that id, and the kernel finds the id by walking the host's
//! ids in increasing order until it meets the namespace (`peernet2id`, a
//! linear search). Left to the kernel, a namespace gets the lowest free
//! id: on a host whose containers only grow in number, the highest in use,
//! so each of a setup's six notifications walked every other container's
//! id (0.8 ms a setup with 9,000 containers). Counted down from the top
//! instead, the newest namespace comes first in the walk; one whole walk
//! is left, the kernel's own check that the namespace has no id yet.
//! Older containers' notifications (a teardown's) walk the newer ones
//! instead of the older ones.
//!
//! Not derived from the namespace's cookie, which looks like a creation
//! counter but is handed out from per-CPU batches of 4,096: a later
//! namespace may have a lower one. A count kept under the state lock is
//! in order.

use std::fs::File;

use ocinet_common::netlink::Netlink;

use crate::context::Locked;

/// Below every id ocinet gives: from the top down to here, then from the
/// top again (an id still in use is skipped; the kernel then picks one
/// itself, as it always did).
const FLOOR: i32 = 1 << 30;

fn next(last: Option<i32>) -> i32 {
    match last {
        Some(id) if id > FLOOR => id - 1,
        _ => i32::MAX,
    }
}

/// Give the container's namespace `ns` its id in the host's namespace.
/// Best effort: which number the host knows the namespace by changes how
/// fast the kernel's link notifications are made, not what they mean, so a
/// failure leaves the choice to the kernel. A
/// namespace the host knows by an id already (shared with a container set
/// up before, or given one by someone else) keeps it.
pub(crate) fn assign(ctx: &Locked, host: &mut Netlink, ns: &File) {
    let lock = ctx.state_lock();
    let id = next(lock.last_nsid());
    match host.assign_nsid(ns, id) {
        Ok(assigned) => tracing::debug!(id, assigned, "container namespace id in the host"),
        Err(e) => tracing::debug!("container namespace id left to the kernel: {e}"),
    }
    // Taken or not, the next setup tries the one below.
    lock.set_last_nsid(id);
}

#[cfg(test)]
mod tests {
    use super::{next, FLOOR};

    #[test]
    fn ids_count_down_from_the_top_and_start_over_below_the_floor() {
        assert_eq!(next(None), i32::MAX);
        assert_eq!(next(Some(i32::MAX)), i32::MAX - 1);
        assert_eq!(next(Some(FLOOR + 1)), FLOOR);
        // At the floor, or a value no setup wrote (a torn or foreign one).
        for odd in [FLOOR, 7, 0, -1, i32::MIN] {
            assert_eq!(next(Some(odd)), i32::MAX, "{odd}");
        }
    }
}
