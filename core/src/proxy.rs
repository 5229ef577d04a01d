//! Published ports on the host's `[::1]`, served by the port proxy
//! (`ocinet_proxy`): started or asked to read the records again when a
//! container with such a port is set up (before its setup is concluded,
//! so a port that cannot be had fails it and it is rolled back), and
//! asked again once a container's record is gone (its sockets and
//! connections are closed before the hook returns).

use ocinet_common::model::Endpoint;
use ocinet_common::{Error, Result};
use ocinet_proxy::desired;

use crate::context::Locked;

/// Have the proxy accept on every `[::1]` port of `ep` (its record saved
/// as it is now). A port written `[::1]` that is not accepting fails the
/// setup, naming the address and why; the `::1` side of a bare or `[::]`
/// port is logged instead (its other addresses work).
pub(crate) fn ensure(ctx: &Locked, ep: &Endpoint) -> Result<()> {
    let wanted = desired::of_endpoint(ep);
    if wanted.is_empty() {
        return Ok(());
    }
    let _span = tracing::debug_span!("port_proxy").entered();
    let status = std::env::current_exe()
        .map_err(|e| Error::Conflict(format!("cannot start the port proxy: {e}")))
        .and_then(|exe| {
            ocinet_proxy::control::ensure(ctx.state_lock(), &ctx.state, ctx.state.root(), &exe)
        });
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            if let Some(l) = wanted.iter().find(|l| l.explicit) {
                return Err(Error::Conflict(format!(
                    "{} cannot be published: {e}",
                    l.key
                )));
            }
            tracing::warn!("the container's ports do not answer on [::1]: {e}");
            return Ok(());
        }
    };
    for l in &wanted {
        let why = match status.of(l.key) {
            Some(s) if s.listener.owner == ep.id => match &s.error {
                None => continue,
                Some(e) => e.clone(),
            },
            Some(s) => format!("the proxy serves it for container {}", s.listener.owner),
            None => "the port proxy does not serve it".to_string(),
        };
        if l.explicit {
            // The port claims keep containers apart: what holds it is
            // some other process of the host's (`ss -lnp` names it).
            return Err(Error::Conflict(format!(
                "{} cannot be published: {why}",
                l.key
            )));
        }
        tracing::warn!(port = %l.key, "does not answer on [::1] (its other addresses do): {why}");
    }
    Ok(())
}

/// After `ep`'s record is gone: the proxy closes its sockets and its
/// connections now, so the port is free when the hook returns. Not the
/// teardown's failure when it cannot (logged; the proxy looks again
/// within seconds).
pub(crate) fn released(ctx: &Locked, ep: &Endpoint) {
    if desired::of_endpoint(ep).is_empty() {
        return;
    }
    if let Err(e) = ocinet_proxy::control::sync(&ctx.state) {
        tracing::warn!("the port proxy may keep the container's [::1] ports a few seconds: {e}");
    }
}
