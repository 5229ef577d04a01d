//! Host veths retired by a teardown that must not wait for their deletion
//! (a CNI DEL: the deletion of a link waits out an RCU grace period, 20 ms
//! and more, most of a DEL): down, out of their bridge and renamed to
//! `ocx-…` at once, deleted by a detached process afterwards (or with the
//! pod's namespace, which takes the pair along). `ocinet gc` deletes what
//! a killed reaper left.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use ocinet_common::netlink::Netlink;
use ocinet_common::validate;

use crate::context::Context;

/// The prefix of retired links: no other name ocinet gives starts so.
pub const PREFIX: &str = "ocx-";

/// The name a link is retired under: unique per link and moment, within
/// IFNAMSIZ.
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

/// Start a detached `ocinet reap-links NAMES` (its own session, stdio on
/// /dev/null, no descriptor of the caller's: the runtime does not wait on
/// it). Best effort: a failure leaves the links to `gc`.
pub fn reap_later(ctx: &Context, names: &[String]) {
    if names.is_empty() {
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
        .arg(SUBCOMMAND)
        .args(names)
        .current_dir("/")
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                for fd in 3..4096 {
                    nix::libc::close(fd);
                }
            }
            Ok(())
        });
    }
    if let Err(e) = cmd.spawn() {
        tracing::warn!("retired links left to gc: {e}");
    }
}

/// Delete retired links (`names`, or every one when empty); only names
/// with the retired prefix are touched. Returns how many went.
pub fn reap(names: &[String]) -> ocinet_common::Result<usize> {
    let mut nl = Netlink::new()?;
    let names: Vec<String> = if names.is_empty() {
        nl.links()?
            .into_iter()
            .filter(|l| l.kind.as_deref() == Some("veth"))
            .map(|l| l.name)
            .collect()
    } else {
        names.to_vec()
    };
    let mut gone = 0;
    for n in names.iter().filter(|n| n.starts_with(PREFIX)) {
        if nl.delete_link(n)? {
            gone += 1;
        }
    }
    Ok(gone)
}
