//! Undo whatever an endpoint record says was done: the shared path of
//! teardown, rollback of a failed setup, and gc.

use ocinet_common::firewall::{Change, Firewall, Nft};
use ocinet_common::model::Endpoint;
use ocinet_common::netlink::Netlink;
use ocinet_common::{netns, Error, Result};

use crate::context::{Context, Subject};
use crate::killpoint;

/// Goes on past a failing step and reports every failure at the end. The
/// record (and the lease) are kept when something could not be undone, so a
/// second poststop or `ocinet gc` can finish the job. Callers hold the lock.
pub fn release(ctx: &Context, ep: &Endpoint) -> Result<()> {
    let mut errors = Vec::new();
    // The veth deletion waits out an RCU grace period (~20 ms here); the
    // conntrack dump (~9 ms, only for a container some connection was
    // DNATed to) goes beside it. The veth goes on this thread while the other thread removes
    // the published ports and only then their conntrack entries, so no new
    // packet can be DNATed to the dead address after its entries were
    // cleared. (The dump holds the grace period up while it walks, so
    // running it after the veth instead measured the same: 30.3 against
    // 30.0 ms.)
    let change = Change {
        elements_deleted: ocinet_common::firewall::ruleset::elements_of_record(ep),
        ..Default::default()
    };
    let publishes = ep.ip.is_some() && !ep.ports.is_empty();
    // Looked up once, for the element batch and the conntrack check.
    let fw = if change.elements_deleted.is_empty() && !publishes {
        None
    } else {
        match ctx.firewall() {
            Ok(fw) => Some(fw),
            Err(e) if change.elements_deleted.is_empty() => {
                tracing::warn!("conntrack entries of published ports left to expire: {e}");
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        }
    };
    let pending = match (&fw, change.elements_deleted.is_empty()) {
        (Some(fw), false) => match fw.start_apply(&change) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        _ => None,
    };
    std::thread::scope(|s| {
        let ports = s.spawn(|| {
            let mut errors = Vec::new();
            if let Some(p) = pending {
                if let Err(e) = ctx.finish_firewall(p, &change, Subject::Leaving(&ep.id)) {
                    errors.push(e);
                }
            }
            if let (Some(ip), Some(fw), true) = (ep.ip, &fw, publishes) {
                // Best effort: once the DNAT elements are gone the entries only
                // age out; a broken ctnetlink must not wedge every teardown.
                match clear_conntrack(fw, ip, ep) {
                    Ok(n) => {
                        tracing::debug!(deleted = n, "conntrack entries of published ports deleted")
                    }
                    Err(e) => {
                        tracing::warn!("conntrack entries of published ports left to expire: {e}")
                    }
                }
            }
            errors
        });
        if let Some(veth) = &ep.host_veth {
            // Deleting one end removes both; gone already (the namespace
            // died with the container) is fine.
            match Netlink::new().and_then(|mut nl| nl.delete_link(veth)) {
                Ok(existed) => tracing::debug!(veth, existed, "host veth removed"),
                Err(e) => errors.push(e),
            }
        }
        match ports.join() {
            Ok(errs) => errors.extend(errs),
            Err(_) => errors.push(Error::Conflict("removing published ports panicked".into())),
        }
    });
    if ep.parent.is_some() {
        // A macvlan interface lives in the container's namespace and goes
        // with it, unless something else keeps that namespace alive (the
        // pin, the container itself when a setup died before pinning, a
        // pod's namespace): then its address must not stay on the segment.
        match netns::of_endpoint(ep) {
            Some(ns) => match super::drivers::macvlan::remove_sub_interface(&ns, ep) {
                Ok(removed) => tracing::debug!(removed, "macvlan interface"),
                Err(e) => errors.push(e),
            },
            None => tracing::debug!("the container's namespace is gone, and its macvlan with it"),
        }
    }
    if let Some(link) = &ep.netns_link {
        if let Err(e) = netns::unpin(link, ep.netns_id) {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(Error::Many(errors));
    }
    killpoint::reached("teardown-unwired");
    if let (Some(net), Some(ip)) = (ep.network(), ep.ip) {
        ctx.state.pool(net)?.release(ip, &ep.id)?;
    }
    ctx.state.port_claims().release(&ep.id, &ep.ports)?;
    killpoint::reached("teardown-unleased");
    ctx.state.remove_endpoint(&ep.id)
}

/// Delete the conntrack entries of `ep`'s published ports, walking the
/// table only if the firewall saw a connection DNATed to `ip`. Called once
/// the DNAT elements are gone, so no new entry can appear meanwhile.
fn clear_conntrack(fw: &Nft, ip: std::net::Ipv4Addr, ep: &Endpoint) -> Result<usize> {
    let seen = fw.may_have_dnated(ip).unwrap_or_else(|e| {
        tracing::warn!("cannot tell whether {ip} was reached through a published port: {e}");
        true
    });
    if !seen {
        tracing::debug!(%ip, "no connection was DNATed to it: no conntrack walk");
        return Ok(0);
    }
    let mappings: Vec<_> = ep.ports.iter().flat_map(|p| p.mappings()).collect();
    let deleted = ocinet_common::conntrack::delete_for(ip, &mappings)?;
    fw.forget_dnated(ip)?;
    Ok(deleted)
}
