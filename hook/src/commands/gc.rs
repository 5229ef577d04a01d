//! `ocinet gc`: undo endpoints whose container is gone (a crashed runtime,
//! a SIGKILLed hook), and leases nobody holds.

use ocinet_common::Result;

use crate::context::Context;
use crate::lifecycle::release;

pub fn run(ctx: &Context) -> Result<String> {
    let _lock = ctx.lock()?;
    let mut out = String::new();
    let (eps, bad) = ctx.state.list_endpoints();
    for e in &bad {
        out += &format!("skipped: {e}\n");
    }
    let mut errors = Vec::new();
    for ep in eps.iter().filter(|e| e.is_stale()) {
        let _span = tracing::info_span!("gc", id = %ep.id).entered();
        match release::release(ctx, ep) {
            Ok(()) => {
                tracing::info!("removed stale endpoint");
                out += &format!("removed endpoint {} ({})\n", ep.id, ep.mode.label());
            }
            Err(e) => errors.push(e),
        }
    }
    // Leases whose holder has no endpoint record: a hook died between
    // leasing and recording (or a record was deleted by hand). A record
    // that exists but cannot be read still counts as live: its veth and
    // firewall elements may be there.
    // Every record file names its id; an unlistable directory stops gc
    // rather than making every lease look orphaned.
    let live_ids: Vec<String> =
        ocinet_common::store::fsutil::json_files(&ctx.state.endpoints_dir())?
            .into_iter()
            .map(|(stem, _)| stem)
            .collect();
    for net in ctx.state.leased_networks() {
        let mut leases = match ctx.state.load_leases(&net) {
            Ok(l) => l,
            Err(e) => {
                out += &format!("skipped: {e}\n");
                continue;
            }
        };
        let before = leases.leases.clone();
        leases.leases.retain(|_, holder| live_ids.contains(holder));
        for (ip, holder) in before
            .iter()
            .filter(|(ip, _)| !leases.leases.contains_key(ip))
        {
            out += &format!("released lease {ip} of {holder} in network {net}\n");
        }
        if before != leases.leases {
            ctx.state.save_leases(&net, &leases)?;
        }
    }
    let mut ports = ctx.state.load_ports()?;
    let orphans: Vec<String> = ports
        .claims
        .iter()
        .filter(|c| !live_ids.contains(&c.id))
        .map(|c| c.id.clone())
        .collect();
    for id in &orphans {
        ports.release(id);
        out += &format!("released published ports of {id}\n");
    }
    if !orphans.is_empty() {
        ctx.state.save_ports(&ports)?;
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        eprint!("{out}");
        Err(ocinet_common::Error::Many(errors))
    }
}
