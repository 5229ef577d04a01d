//! Host veths retired by a teardown that must not wait for their deletion
//! (a CNI DEL and the hook's poststop: the deletion of a link waits out an
//! RCU grace period, 20 ms and more, most of a teardown): down, out of
//! their bridge and marked retired (`netlink::RETIRED_ALIAS`) at once,
//! deleted by a detached process afterwards (or with the container's
//! namespace, which takes the pair along once nothing holds it). Each
//! reaper deletes every retired veth of its namespace, so one a killed
//! hook or reaper left goes with the next teardown; `ocinet gc` deletes
//! them too.

use std::process::Command;

use ocinet_common::netlink::Netlink;
use ocinet_common::validate;

use crate::context::Context;

/// The prefix of the names retired links are moved aside to when a new
/// link needs theirs (and which older versions gave every retired link):
/// no other name ocinet gives starts so.
pub const PREFIX: &str = "ocx-";

/// A name to move a retired link aside to: unique per link and moment,
/// within IFNAMSIZ.
pub fn retired_name(name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!("{name}/{now}/{}", std::process::id());
    format!(
        "{PREFIX}{:011x}",
        validate::fnv1a64(key.as_bytes()) & 0x7ff_ffff_ffff
    )
}

/// The hidden subcommand of the `ocinet` binary that deletes retired links.
pub const SUBCOMMAND: &str = "reap-links";

/// Start a detached `ocinet reap-links` (the runtime does not wait on
/// it: a new session, no inherited descriptor) that deletes every retired
/// veth, if this teardown retired any. Best effort: a failure leaves the
/// links to the next teardown's reaper or `gc`.
pub fn reap_later(ctx: &Context, retired_any: bool) {
    if !retired_any {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("retired links left to gc: {e}");
            return;
        }
    };
    let mut cmd = Command::new(exe);
    cmd.arg("--state-dir")
        .arg(ctx.state.root())
        .arg("--config-dir")
        .arg(ctx.config.root())
        .arg(SUBCOMMAND);
    if let Err(e) = ocinet_common::process::spawn_detached(&mut cmd) {
        tracing::warn!("retired links left to gc: {e}");
    }
}

/// Whether `name` is one `retired_name` gives (moved aside, or retired by
/// an older version, which renamed every retired link so).
fn has_retired_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|h| h.len() == 11 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Delete retired veths (`names`, or every one when empty): only veths
/// that carry the retired mark or a retired name are touched, by index (a
/// retired link's name can be a new container's a moment later). Returns
/// how many went.
pub fn reap(names: &[String]) -> ocinet_common::Result<usize> {
    crate::killpoint::reached("reaping");
    let mut nl = Netlink::new()?;
    let veths: Vec<(u32, String)> = nl
        .links()?
        .into_iter()
        .filter(|l| {
            l.kind.as_deref() == Some("veth") && (l.is_retired() || has_retired_name(&l.name))
        })
        .filter(|l| names.is_empty() || names.contains(&l.name))
        .map(|l| (l.index, l.name))
        .collect();
    let (mut gone, mut errors) = (0, Vec::new());
    for (index, name) in veths {
        match nl.delete_link_by_index(index, &name) {
            Ok(true) => gone += 1,
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(gone)
    } else {
        Err(ocinet_common::Error::Many(errors))
    }
}
