//! STATUS: whether an ADD could be served now: the state directory is
//! writable, the network exists (or the configuration can make it), and
//! its pool has an address left. Code 50 when not.

use ocinet_core::context::Context;
use rscni_types::error::Error as CniError;

use crate::conf::Conf;

pub fn run(ctx: &Context, conf: &Conf) -> Result<(), CniError> {
    let unavailable = |why: String| Err(CniError::PluginNotAvailable(why));
    let probe = ctx
        .state
        .root()
        .join(format!(".status-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"") {
        return unavailable(format!(
            "the state directory {} is not writable: {e}",
            ctx.state.root().display()
        ));
    }
    let _ = std::fs::remove_file(&probe);
    let net = match ctx.config.load(&conf.network) {
        Ok(Some(n)) => n,
        Ok(None) if !conf.inline.is_empty() => return Ok(()),
        Ok(None) => return unavailable(format!("network {} does not exist", conf.network)),
        Err(e) => return unavailable(format!("network {}: {e}", conf.network)),
    };
    let range = net.range();
    let usable = range
        .hosts()
        .filter(|ip| net.assignable(*ip).is_ok())
        .count();
    let leased = ocinet_common::ipam::open(&ctx.state, &net.name)
        .and_then(|p| p.leases())
        .map(|l| l.len())
        .unwrap_or(0);
    if leased >= usable {
        return unavailable(format!(
            "network {}: every address of {range} is leased ({leased})",
            net.name
        ));
    }
    Ok(())
}
