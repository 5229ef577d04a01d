//! The steps every driver's setup shares, in this order: lease an address
//! (and vet the MAC), record the intent before the first kernel change,
//! then conclude by renaming the record, or roll back everything recorded.
//! Each gives back what it took when it fails, so a driver only adds its
//! own kernel work in between.

use std::net::Ipv4Addr;

use ocinet_common::model::{Endpoint, Network};
use ocinet_common::netlink::Netlink;
use ocinet_common::{Error, Result};

use super::mac::check_mac;
use super::naming::mac_for;
use super::release;
use crate::context::Context;
use crate::killpoint;
use crate::settings::Settings;

/// An address leased for the container, and the MAC it will have.
pub(crate) struct Lease {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// Lease an address on `net` (the requested one, or the next free) and
/// check the MAC; on failure the lease and the container's port claims
/// (taken just before, by a driver that publishes) are given back.
pub(crate) fn lease(
    ctx: &Context,
    net: &Network,
    ep: &Endpoint,
    settings: &Settings,
    host: &mut Netlink,
) -> Result<Lease> {
    let give_back_claims = || {
        let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
    };
    let pool = ctx.state.pool(&net.name)?;
    let ip = pool
        .allocate(net, &ep.id, settings.ip)
        .inspect_err(|_| give_back_claims())?;
    killpoint::reached("leased");
    if let Err(e) = check_mac(ctx, net, &ep.id, settings, ip, host) {
        let _ = pool.release(ip, &ep.id);
        give_back_claims();
        return Err(e);
    }
    Ok(Lease {
        ip,
        mac: settings.mac.unwrap_or_else(|| mac_for(ip)),
    })
}

/// Write the intent record before touching the kernel: a hook killed from
/// here on leaves a record that gc (or the next hook for this id) undoes.
/// One killed before it leaves a lease and claims without a record: the
/// next hook for this id takes them again (the allocator starts where it
/// found this address, as the last one is remembered only below), and gc
/// frees them otherwise.
pub(crate) fn record_intent(
    ctx: &Context,
    net: &Network,
    ep: &Endpoint,
    settings: &Settings,
    ip: Ipv4Addr,
) -> Result<()> {
    let pool = ctx.state.pool(&net.name)?;
    if let Err(e) = ctx.state.save_setup(ep) {
        let _ = pool.release(ip, &ep.id);
        let _ = ctx.state.port_claims().release(&ep.id, &settings.ports);
        return Err(e);
    }
    if settings.ip.is_none() {
        if let Err(e) = pool.remember_last(ip) {
            tracing::warn!("next allocation starts from the beginning of the range: {e}");
        }
    }
    killpoint::reached("recorded");
    Ok(())
}

/// After the driver's kernel work (`wired`): done is a rename of the
/// intent record; a failure undoes everything the record names, as it
/// stands now (a driver drops what turned out not to be its own, such as
/// an interface that already existed).
pub(crate) fn conclude(ctx: &Context, ep: &Endpoint, wired: Result<()>) -> Result<()> {
    match wired.and_then(|()| ctx.state.finish_setup(&ep.id)) {
        Ok(()) => {
            killpoint::reached("ready");
            Ok(())
        }
        Err(e) => {
            tracing::error!("setup failed, rolling back: {e}");
            let _ = ctx.state.save_setup(ep);
            match release::release(ctx, ep) {
                Ok(()) => Err(e),
                Err(undo) => Err(Error::Conflict(format!(
                    "{e}; rollback incomplete (ocinet gc will retry): {undo}"
                ))),
            }
        }
    }
}
