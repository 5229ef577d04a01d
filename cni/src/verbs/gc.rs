//! GC: release every attachment of this network that the runtime no longer
//! lists (`cni.dev/valid-attachments`): what a DEL never came for (a
//! detached `ctr run`, a crashed runtime). Only containers the CNI front
//! end made are considered; a hook's are its poststop's and `ocinet gc`'s.
//! Goes on past a failure and reports them all.

use std::collections::BTreeSet;

use ocinet_common::model::Origin;
use ocinet_core::context::Context;
use ocinet_core::release;
use rscni_types::error::Error as CniError;

use crate::conf::Conf;
use crate::errors::to_cni;

pub fn run(ctx: &Context, conf: &Conf) -> Result<(), CniError> {
    let valid: BTreeSet<(String, String)> = conf
        .valid
        .clone()
        .ok_or_else(|| {
            CniError::InvalidNetworkConfig(
                "GC needs cni.dev/valid-attachments (an empty list releases every attachment)"
                    .into(),
            )
        })?
        .into_iter()
        .collect();
    let ctx = &ctx.lock().map_err(to_cni)?;
    let (records, unreadable) = ctx.state.list_endpoints();
    for e in unreadable {
        tracing::warn!("skipped by GC: {e}");
    }
    let mut failures = Vec::new();
    for mut ep in records.into_iter().filter(|e| e.origin == Origin::Cni) {
        let stale: Vec<usize> = ep
            .attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.network == conf.network && !valid.contains(&(ep.id.clone(), a.interface.clone()))
            })
            .map(|(i, _)| i)
            .collect();
        if stale.is_empty() {
            continue;
        }
        let outcome = if stale.len() == ep.attachments.len() {
            release::release(ctx, &ep)
        } else {
            // Highest first, so the lower indices stay right.
            stale
                .iter()
                .rev()
                .try_for_each(|i| release::release_attachment(ctx, &mut ep, *i))
        };
        match outcome {
            Ok(()) => tracing::info!(id = %ep.id, released = stale.len(), "collected"),
            Err(e) => failures.push(format!("{}: {e}", ep.id)),
        }
    }
    // Leases of this network held by an ADD killed before it recorded
    // anything, for a container the runtime does not list.
    let listed: BTreeSet<&str> = valid.iter().map(|(id, _)| id.as_str()).collect();
    let (records, _) = ctx.state.list_endpoints();
    let recorded: BTreeSet<String> = records.into_iter().map(|e| e.id).collect();
    if let Ok(pool) = ocinet_common::ipam::open(&ctx.state, &conf.network) {
        for (ip, holder) in pool.leases().unwrap_or_default() {
            if !recorded.contains(&holder) && !listed.contains(holder.as_str()) {
                if let Err(e) = release::forget_unrecorded(ctx, &holder) {
                    failures.push(format!("{holder}: {e}"));
                } else {
                    tracing::info!(%ip, %holder, "released an unrecorded lease");
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::Custom(
            crate::errors::FAILED,
            "some attachments could not be released".into(),
            failures.join("; "),
        ))
    }
}
