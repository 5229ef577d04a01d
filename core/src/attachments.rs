//! Wiring a container's attachments, the part setup and `network connect`
//! share: each network's host side first (its bridge), then the firewall
//! transaction started, the interfaces made while it runs, and its outcome
//! awaited before the attachments count as made.

use std::fs::File;

use ocinet_common::firewall::{Change, Firewall};
use ocinet_common::model::{Attachment, Endpoint};
use ocinet_common::netlink::Netlink;
use ocinet_common::Result;

use super::drivers::NetworkDriver;
use crate::context::{Locked, Subject};
use crate::killpoint;

/// Make the attachments of `ep` that `made` names (index, its driver), in
/// the namespace `ns`. What was made differently from the record (see
/// `NetworkDriver::wire`) is put in `ep` and saved with `save` at once; on
/// failure `ep` says what there is to undo.
pub(crate) fn wire(
    ctx: &Locked,
    host: &mut Netlink,
    ep: &mut Endpoint,
    made: &[(usize, &dyn NetworkDriver)],
    ns: &File,
    subject: Subject,
    save: impl Fn(&Endpoint) -> Result<()>,
) -> Result<()> {
    let (which, drivers): (Vec<usize>, Vec<&dyn NetworkDriver>) = made.iter().copied().unzip();
    let mut prepared = Vec::with_capacity(drivers.len());
    for d in &drivers {
        prepared.push(d.prepare(ctx, host)?);
    }
    killpoint::reached("bridge");
    let change = Change {
        networks_present: drivers
            .iter()
            .filter(|d| d.uses_firewall())
            .map(|d| d.network().clone())
            .collect(),
        attachments_added: which
            .iter()
            .zip(&drivers)
            .filter(|(_, d)| d.uses_firewall())
            .map(|(i, _)| ep.attachments[*i].clone())
            .collect(),
        ..Default::default()
    };
    let pending = match change.networks_present.is_empty() {
        true => None,
        false => Some(ctx.firewall()?.start_apply(&change)?),
    };
    killpoint::reached("firewall-started");
    let before: Vec<Attachment> = which.iter().map(|i| ep.attachments[*i].clone()).collect();
    // A container connected to one more network has its id since its
    // first veth: asking again would only cost the kernel's whole walk
    // of the ids to answer that it has one.
    let has_veth = ep
        .attachments
        .iter()
        .enumerate()
        .any(|(i, a)| a.host_veth.is_some() && !which.contains(&i));
    if !has_veth && drivers.iter().any(|d| d.uses_veths()) {
        crate::nsid::assign(ctx, host, ns);
    }
    let mut wired = Ok(());
    for (k, d) in drivers.iter().enumerate() {
        let i = which[k];
        let made = d.wire(host, &mut ep.attachments[i], ns, prepared[k]);
        // What was made differently (passthru's MAC) is recorded before
        // anything else can fail or kill the hook: teardown recognises
        // the interface by it.
        let made = made.and_then(|()| {
            if ep.attachments[i] != before[k] {
                save(ep)?;
            }
            Ok(())
        });
        if let Err(e) = made {
            // Only the namespace reaches these until it is pinned: every
            // interface made so far, and the one that failed.
            for (j, d) in drivers.iter().enumerate().take(k + 1) {
                let att = &ep.attachments[which[j]];
                if let Err(undo) = d.unwire_inside(ns, att) {
                    tracing::warn!(interface = %att.interface, "rollback: {undo}");
                }
            }
            wired = Err(e);
            break;
        }
    }
    if wired.is_ok() {
        killpoint::reached("veth");
    }
    let firewall = match pending {
        Some(p) => ctx.finish_firewall(p, &change, subject),
        None => Ok(()),
    };
    // An interface found to be someone else's was dropped from the record,
    // so its teardown leaves it alone; the elements added for it under its
    // name go now, as the record no longer implies them.
    let dropped: Vec<Attachment> = before
        .iter()
        .zip(&which)
        .filter(|(b, i)| b.host_veth.is_some() && ep.attachments[**i].host_veth.is_none())
        .map(|(b, _)| b.clone())
        .collect();
    if !dropped.is_empty() && firewall.is_ok() {
        let undo = Change {
            attachments_removed: dropped,
            ..Default::default()
        };
        if let Err(e) = ctx.apply_firewall(&undo, Subject::Nobody) {
            tracing::warn!("rollback: firewall elements of an interface that is not ours: {e}");
        }
    }
    wired?;
    firewall?;
    killpoint::reached("firewall");
    Ok(())
}
