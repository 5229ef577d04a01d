//! DEL: undo the attachment this invocation names, from the record alone
//! (the namespace may be gone, CNI_NETNS empty, the runtime's cached
//! result lost). The container's last attachment takes the whole record
//! with it. Nothing recorded is success: DEL is called again after a
//! failed ADD, and twice.

use ocinet_core::context::Context;
use ocinet_core::release;
use rscni_types::error::Error as CniError;

use super::attachment_index;
use crate::conf::Conf;
use crate::env::Invocation;
use crate::errors::to_cni;

pub fn run(ctx: &Context, inv: &Invocation, conf: &Conf) -> Result<(), CniError> {
    let ctx = &ctx.lock().map_err(to_cni)?;
    let Some(mut ep) = ctx.state.load_endpoint(&inv.container_id).map_err(to_cni)? else {
        // An ADD killed between leasing and recording holds an address
        // (or ports) no record names.
        release::forget_unrecorded(ctx, &inv.container_id).map_err(to_cni)?;
        tracing::info!("nothing recorded: nothing to delete");
        return Ok(());
    };
    if ep.origin != ocinet_common::model::Origin::Cni {
        // The hook's poststop ends it: a CNI runtime sharing the state
        // directory must not take a hook container's networking.
        tracing::warn!("the record is an OCI hook's: left to its poststop");
        return Ok(());
    }
    let Some(index) = attachment_index(&ep, conf, &inv.ifname) else {
        if ep.attachments.is_empty() {
            // A setup killed before it recorded any attachment.
            return release::release(ctx, &ep).map_err(to_cni);
        }
        tracing::info!("no such attachment: nothing to delete");
        return Ok(());
    };
    if ep.attachments.len() == 1 {
        // The runtime waits for DEL: the veth's deletion (an RCU grace
        // period, most of the time a DEL takes) goes to a reaper.
        // The pod's namespace lives on: its interface names are freed at
        // once for an ADD into it before the reaper ran.
        release::retire_inside(&ep);
        release::release_with(ctx, &ep, release::Veths::Retire).map_err(to_cni)?;
    } else {
        release::release_attachment(ctx, &mut ep, index).map_err(to_cni)?;
    }
    tracing::info!("deleted");
    Ok(())
}
