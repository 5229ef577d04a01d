//! `ocinet gc`: undo endpoints whose container is gone (a crashed runtime,
//! a SIGKILLed hook), connects and disconnects whose hook died, and
//! leases and port claims no record accounts for; start the daemons the
//! remaining containers need (resolver, port proxy, overlay agent) if
//! they died.

use std::collections::BTreeMap;

use ocinet_common::ipam;
use ocinet_common::Result;

use crate::context::Context;
use crate::{held, release};

pub fn run(ctx: &Context) -> Result<String> {
    let ctx = &ctx.lock()?;
    let mut out = String::new();
    // A record that exists but cannot be read counts (as `None`) for
    // everything its container might hold: its veth and firewall elements
    // may be there. An unlistable directory stops gc rather than making
    // every lease look orphaned.
    let (mut records, unreadable) = held::records(ctx)?;
    for e in unreadable {
        out += &format!("skipped: {e}\n");
    }
    let mut errors = Vec::new();
    let mut removed = Vec::new();
    for (id, ep) in records
        .iter()
        .filter_map(|(id, ep)| Some((id, ep.as_ref()?)))
        .filter(|(_, e)| e.is_stale())
    {
        let _span = tracing::info_span!("gc", id = %ep.id).entered();
        match release::release(ctx, ep) {
            Ok(()) => {
                tracing::info!("removed stale endpoint");
                out += &format!("removed endpoint {} ({})\n", ep.id, ep.mode.label());
                removed.push(id.clone());
            }
            Err(e) => errors.push(e),
        }
    }
    for id in &removed {
        records.remove(id);
    }
    // Connects and disconnects of running containers whose hook died.
    for ep in records.values_mut().flatten() {
        if !ep.attachments.iter().any(|a| a.change_abandoned()) {
            continue;
        }
        let _span = tracing::info_span!("gc", id = %ep.id).entered();
        match release::finish_abandoned(ctx, ep) {
            Ok(done) => {
                for (net, verb) in done {
                    out += &format!(
                        "finished the interrupted {} of {} to network {net}\n",
                        match verb {
                            ocinet_common::model::ChangeVerb::Connect => "connect (undone)",
                            ocinet_common::model::ChangeVerb::Disconnect => "disconnect",
                        },
                        ep.id
                    );
                }
            }
            Err(e) => errors.push(e),
        }
    }
    // Macvlan attachments whose interface went with a deleted parent.
    let lost = crate::drivers::macvlan::gc_gone(records.values().flatten(), &mut out, &mut errors);
    // Leases and port claims their holder's record does not account for:
    // a hook died between leasing and recording (or a record was deleted by
    // hand).
    for net in ipam::leased_networks(&ctx.state)? {
        let pool = ipam::open(&ctx.state, &net)?;
        let leases = match pool.leases() {
            Ok(l) => l,
            Err(e) => {
                out += &format!("skipped: {e}\n");
                continue;
            }
        };
        for (ip, holder) in leases {
            if held::accounts_for_lease(&records, &holder, &net, ip) {
                continue;
            }
            match pool.release(ip, &holder) {
                Ok(true) => out += &format!("released lease {ip} of {holder} in network {net}\n"),
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    let claims = ctx.state.port_claims();
    // One line per holder: a range of published ports is many claims.
    let mut freed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for claim in claims.list()? {
        if held::accounts_for_claim(&records, &claim) {
            continue;
        }
        match claims.release_claim(&claim) {
            Ok(true) => freed
                .entry(claim.holder.clone())
                .or_default()
                .push(claim.to_string()),
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    for (holder, ports) in freed {
        let shown = ports.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        let more = ports.len().saturating_sub(8);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        out += &format!("released published ports {shown}{more} of {holder}\n");
    }
    // Host veths a teardown retired whose reaper never ran (killed).
    match crate::reaper::reap(&[]) {
        Ok(0) => {}
        Ok(n) => out += &format!("deleted {n} retired host veth(s)\n"),
        Err(e) => errors.push(e),
    }
    // The resolver, while a DNS-enabled network has containers (started
    // again if it died), and no generated resolv.conf without its record.
    let (networks, _) = ctx.config.list();
    let dns_nets: Vec<&str> = networks
        .iter()
        .filter(|n| n.dns)
        .map(|n| n.name.as_str())
        .collect();
    // An attachment that lost its interface (a deleted macvlan parent) is
    // not served by the resolver either: counted, gc would start a
    // resolver at every run that then ends for want of anyone to serve.
    let wants_dns = records.values().flatten().any(|e| {
        e.attachments.iter().any(|a| {
            dns_nets.contains(&a.network.as_str())
                && !lost.iter().any(|(id, n)| *id == e.id && *n == a.network)
        })
    });
    if wants_dns && ctx.state.resolver().is_none() {
        crate::resolv::ensure_resolver(ctx, &[]);
        if ctx.state.resolver().is_some() {
            out += "started the resolver\n";
        }
    }
    // One a hook started and nothing needs (it ends by itself when it
    // notices; one that cannot, ends here).
    if !wants_dns {
        match ocinet_dns::control::stop_idle(ctx.state_lock(), &ctx.state) {
            Ok(Some(pid)) => {
                out += &format!(
                    "ended the resolver (pid {pid}): no container on a DNS-enabled network\n"
                )
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    // The overlay agent, while this host is a cluster member with overlay
    // containers (started again if it died: without it the host's lease
    // expires and the other hosts drop their routes to these containers).
    match crate::overlay::agent::revive(ctx, records.values().flatten(), true) {
        Ok(Some(pid)) => {
            out += &format!("started the overlay agent (pid {pid}): it was not running\n")
        }
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    // The port proxy, while a record asks for a port on [::1]: started
    // again if it died (it binds every such port from the records), told
    // to look again if it runs (the ports of what gc just removed close),
    // ended when nothing asks.
    let wants_proxy = records
        .values()
        .flatten()
        .any(|e| !ocinet_proxy::desired::of_endpoint(e).is_empty());
    if wants_proxy {
        let running = ctx.state.proxy_state().is_some();
        let exe =
            std::env::current_exe().map_err(|e| ocinet_common::Error::io("/proc/self/exe", e));
        match exe.and_then(|exe| {
            ocinet_proxy::control::ensure(ctx.state_lock(), &ctx.state, ctx.state.root(), &exe)
        }) {
            Ok(status) => {
                if !running {
                    out += &format!("started the port proxy (pid {})\n", status.pid);
                }
                for s in status.listeners.iter().filter(|s| s.error.is_some()) {
                    out += &format!(
                        "port proxy: {} of {}: {}\n",
                        s.listener.key,
                        s.listener.owner,
                        s.error.as_deref().unwrap_or_default()
                    );
                }
            }
            Err(e) => errors.push(e),
        }
    } else {
        match ocinet_proxy::control::stop_idle(ctx.state_lock(), &ctx.state) {
            Ok(Some(pid)) => {
                out += &format!("ended the port proxy (pid {pid}): no port published on [::1]\n")
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    for id in ctx.state.resolv_conf_ids().unwrap_or_default() {
        if !records.contains_key(&id) {
            match ctx.state.remove_resolv_conf(&id) {
                Ok(()) => out += &format!("removed the resolv.conf of {id}\n"),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        eprint!("{out}");
        Err(ocinet_common::Error::Many(errors))
    }
}
