//! Undo whatever a record says was done: the shared path of teardown,
//! rollback of a failed setup or connect, disconnect, and gc.

use ocinet_common::firewall::{Change, Firewall, Nft};
use ocinet_common::ipam;
use ocinet_common::model::{Attachment, ChangeVerb, Changing, Endpoint, ProcessId};
use ocinet_common::{netns, Error, Result};

use crate::context::{Context, Locked, Subject};
use crate::drivers;
pub use crate::drivers::Veths;
use crate::killpoint;

/// Undo a container's setup from its saved state. The container's process
/// and namespace may be gone already; a second call finds nothing to do.
pub fn teardown(ctx: &Context, id: &str) -> Result<()> {
    let ctx = &ctx.lock()?;
    match ctx.state.load_endpoint(id)? {
        None => {
            tracing::info!("no endpoint recorded; nothing to tear down");
            Ok(())
        }
        // A CNI runtime's container (one that also carries io.ocinet
        // annotations, so the hook runs for it too): its DEL ends it.
        Some(ep) if ep.origin == ocinet_common::model::Origin::Cni => {
            tracing::info!("set up through CNI: left to the runtime's DEL");
            Ok(())
        }
        Some(ep) => {
            // The runtime waits on poststop (crun's foreground `run`
            // returns only after it): no veth deletion (an RCU grace
            // period) on its path.
            let veths = if ep.netns_fresh && ep.netns_link.is_some() {
                Veths::WithNamespace
            } else {
                Veths::Retire
            };
            release_with(ctx, &ep, veths)?;
            tracing::info!(mode = %ep.mode.label(), "torn down");
            Ok(())
        }
    }
}

/// The whole container: every attachment, the pin, the leases and claims,
/// the record. Goes on past a failing step and reports every failure at
/// the end. The record (and the leases) are kept when something could not
/// be undone, so a second poststop or `ocinet gc` can finish the job.
pub fn release(ctx: &Locked, ep: &Endpoint) -> Result<()> {
    release_with(ctx, ep, Veths::Delete)
}

/// Before a CNI DEL of a pod whose namespace outlives it: the container's
/// ends of its veths renamed (see `NetworkKind::retire_inside`).
pub fn retire_inside(ep: &Endpoint) {
    drivers::retire_inside(ep, &ep.attachments);
}

/// `release`, with the host veths removed as `veths` says.
pub fn release_with(ctx: &Locked, ep: &Endpoint, veths: Veths) -> Result<()> {
    let mut errors = unwire(
        ctx,
        ep,
        &ep.attachments,
        Subject::Leaving(&ep.id),
        Devices::BesideElements(veths),
    );
    if let Some(link) = &ep.netns_link {
        if let Err(e) = netns::unpin(link, ep.netns_id) {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(Error::Many(errors));
    }
    killpoint::reached("teardown-unwired");
    for a in &ep.attachments {
        release_lease(ctx, &ep.id, a)?;
    }
    let ports: Vec<_> = ep.ports().cloned().collect();
    ctx.state.port_claims().release(&ep.id, &ports)?;
    killpoint::reached("teardown-unleased");
    if ep.resolv_conf.is_some() {
        // Its mount went with the container's mount namespace.
        ctx.state.remove_resolv_conf(&ep.id)?;
    }
    ctx.state.remove_endpoint(&ep.id)?;
    crate::proxy::released(ctx, ep);
    crate::overlay::names::released(ctx, ep, &ep.attachments);
    Ok(())
}

/// One attachment (`disconnect`, or the rollback of a `connect`): marked
/// as leaving in the record first, so that a hook killed on the way leaves
/// gc (or the next connect or disconnect) something to finish; removed
/// from the record once everything it made is gone.
pub fn release_attachment(ctx: &Locked, ep: &mut Endpoint, index: usize) -> Result<()> {
    let Some(att) = ep.attachments.get_mut(index) else {
        return Ok(());
    };
    let by = ProcessId::of(std::process::id() as i32);
    if let Some(by) = by {
        att.changing = Some(Changing {
            by,
            verb: ChangeVerb::Disconnect,
        });
    }
    let att = att.clone();
    ctx.state.save_endpoint(ep)?;
    // The container runs on: its interface goes before its elements do,
    // or a hook killed in between would leave a port on the bridge that
    // the anti-spoofing guard no longer covers.
    let atts = std::slice::from_ref(&att);
    let mut errors = Vec::new();
    drivers::remove_devices(ctx, ep, atts, Veths::Delete, &mut errors);
    if !errors.is_empty() {
        return Err(Error::Many(errors));
    }
    killpoint::reached("teardown-unplugged");
    let errors = unwire(ctx, ep, atts, Subject::Nobody, Devices::Gone);
    if !errors.is_empty() {
        return Err(Error::Many(errors));
    }
    if !address_taken_by_another(ctx, &ep.id, &att) {
        let v4 = att.ipv4().map(std::net::IpAddr::from);
        for ip in v4.into_iter().chain(att.ipv6().map(std::net::IpAddr::from)) {
            // Best effort, as for published ports: entries left only age out.
            match ocinet_common::conntrack::delete_address(ip) {
                Ok(n) => {
                    tracing::debug!(deleted = ?n, %ip, "conntrack entries of the address deleted")
                }
                Err(e) => tracing::warn!(%ip, "conntrack entries left to expire: {e}"),
            }
        }
    }
    killpoint::reached("teardown-unwired");
    release_lease(ctx, &ep.id, &att)?;
    if !att.ports.is_empty() {
        ctx.state.port_claims().release(&ep.id, &att.ports)?;
    }
    killpoint::reached("teardown-unleased");
    let removed = ep.attachments.remove(index);
    ctx.state.save_endpoint(ep)?;
    crate::overlay::names::released(ctx, ep, std::slice::from_ref(&removed));
    if !removed.ports.is_empty() {
        // Its [::1] ports close with it.
        let mut was = ep.clone();
        was.attachments.push(removed);
        crate::proxy::released(ctx, &was);
    }
    Ok(())
}

/// Finish what connects and disconnects of `ep` left behind when their
/// hook died: each such attachment is undone. Returns what each was
/// (network, the change it was in).
pub fn finish_abandoned(ctx: &Locked, ep: &mut Endpoint) -> Result<Vec<(String, ChangeVerb)>> {
    let mut done = Vec::new();
    while let Some(i) = ep.attachments.iter().position(|a| a.change_abandoned()) {
        let att = &ep.attachments[i];
        let verb = att.changing.map_or(ChangeVerb::Disconnect, |c| c.verb);
        tracing::warn!(network = %att.network, ?verb, "undoing a connect or disconnect whose hook died");
        done.push((att.network.clone(), verb));
        release_attachment(ctx, ep, i)?;
    }
    Ok(done)
}

fn release_lease(ctx: &Locked, id: &str, a: &Attachment) -> Result<()> {
    if a.addresses.is_empty() {
        return Ok(());
    }
    let pool = ipam::open(&ctx.state, &a.network)?;
    for ip in a.addresses.iter().map(|n| n.addr()) {
        pool.release(ip, id)?;
    }
    Ok(())
}

/// Whether `unwire` removes the interfaces too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Devices {
    /// Beside the element deletion (a container that is gone or going).
    BesideElements(Veths),
    /// Removed already, before the elements (a running container).
    Gone,
}

/// Remove what `atts` made in the kernel: their firewall elements (and the
/// conntrack entries of published ports), and, unless `Devices::Gone`,
/// the devices, each by the driver the record says made it. Returns every
/// failure.
fn unwire(
    ctx: &Locked,
    ep: &Endpoint,
    atts: &[Attachment],
    subject: Subject,
    devices: Devices,
) -> Vec<Error> {
    let mut errors = Vec::new();
    // An attachment whose address another container holds now was undone
    // already (its lease is given back only after this): its elements and
    // conntrack entries are that container's now (the same address, so
    // the same derived MAC), and must be left alone.
    let (theirs, ours): (Vec<&Attachment>, Vec<&Attachment>) = atts
        .iter()
        .partition(|a| address_taken_by_another(ctx, &ep.id, a));
    for a in theirs {
        tracing::info!(network = %a.network, ip = ?a.ipv4(), "address leased to another container since: its firewall side was undone already");
    }
    let kernel: Vec<Attachment> = ours.into_iter().cloned().collect();
    // The devices go on this thread (a deletion waits out an RCU grace
    // period, ~20 ms here, where a teardown deletes rather than retires)
    // while the other thread removes the published ports and only then
    // their conntrack entries, so no new packet can be DNATed to the dead
    // address after its entries were cleared.
    let change = Change {
        attachments_removed: kernel.clone(),
        ..Default::default()
    };
    let has_elements = kernel
        .iter()
        .any(|a| !ocinet_common::firewall::ruleset::elements_of_attachment(a).is_empty());
    let publishing: Vec<&Attachment> = kernel
        .iter()
        .filter(|a| a.ipv4().is_some() && !a.ports.is_empty())
        .collect();
    // Looked up once, for the element batch and the conntrack check.
    let fw = if !has_elements && publishing.is_empty() {
        None
    } else {
        match ctx.firewall() {
            Ok(fw) => Some(fw),
            Err(e) if !has_elements => {
                tracing::warn!("conntrack entries of published ports left to expire: {e}");
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        }
    };
    // The elements, then the conntrack entries of what they published, then
    // the devices, one after another: a thread for the first two beside the
    // third cost more than it saved, the devices being retired, not deleted
    // (a deletion, for a `disconnect`, waits ~20 ms beside which ~0.1 ms
    // of commit does not count).
    if let (Some(fw), true) = (&fw, has_elements) {
        if let Err(e) = fw
            .start_apply(&change)
            .and_then(|p| ctx.finish_firewall(p, &change, subject))
        {
            errors.push(e);
        }
    }
    if let Some(fw) = &fw {
        for a in &publishing {
            // Best effort: once the DNAT elements are gone the entries only
            // age out; a broken ctnetlink must not wedge every teardown.
            match clear_conntrack(fw, a) {
                Ok(n) => {
                    tracing::debug!(deleted = ?n, "conntrack entries of published ports deleted")
                }
                Err(e) => {
                    tracing::warn!("conntrack entries of published ports left to expire: {e}")
                }
            }
        }
    }
    if let Devices::BesideElements(how) = devices {
        drivers::remove_devices(ctx, ep, atts, how, &mut errors);
    }
    errors
}

fn address_taken_by_another(ctx: &Context, id: &str, a: &Attachment) -> bool {
    let Some(ip) = a.ipv4() else { return false };
    ipam::open(&ctx.state, &a.network)
        .and_then(|p| p.holder(ip.into()))
        .is_ok_and(|h| h.is_some_and(|h| h != id))
}

/// Delete the conntrack entries of `a`'s published ports (see
/// `conntrack::delete_for`), only if the firewall saw a connection DNATed
/// to its address. Called once the DNAT elements are gone, so no new
/// entry can appear meanwhile.
fn clear_conntrack(fw: &Nft, a: &Attachment) -> Result<Vec<ocinet_common::conntrack::Deleted>> {
    let mut deleted = Vec::new();
    // Each family's table, its own record of DNATed connections.
    let addresses = a
        .ipv4()
        .map(std::net::IpAddr::from)
        .into_iter()
        .chain(a.ipv6().map(std::net::IpAddr::from));
    for ip in addresses {
        let seen = fw.may_have_dnated(ip).unwrap_or_else(|e| {
            tracing::warn!("cannot tell whether {ip} was reached through a published port: {e}");
            true
        });
        if !seen {
            tracing::debug!(%ip, "no connection was DNATed to it: no conntrack deletion");
            continue;
        }
        let mappings: Vec<_> = a.ports.iter().flat_map(|p| p.mappings()).collect();
        deleted.push(ocinet_common::conntrack::delete_for(ip, &mappings)?);
        fw.forget_dnated(ip)?;
    }
    Ok(deleted)
}

/// What container `id` holds with no record to say so (a setup killed
/// between leasing and recording): its leases and port claims, released.
/// For a front end told the container is gone (a CNI DEL), which cannot
/// wait for `gc`. Callers have found no record.
pub fn forget_unrecorded(ctx: &Locked, id: &str) -> Result<()> {
    let mut errors = Vec::new();
    for net in ipam::leased_networks(&ctx.state)? {
        let pool = ipam::open(&ctx.state, &net)?;
        for (ip, holder) in pool.leases()? {
            if holder == id {
                match pool.release(ip, id) {
                    Ok(_) => tracing::info!(%ip, network = %net, "released an unrecorded lease"),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    let claims = ctx.state.port_claims();
    for claim in claims.list()? {
        if claim.holder == id {
            if let Err(e) = claims.release_claim(&claim) {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Many(errors))
    }
}
