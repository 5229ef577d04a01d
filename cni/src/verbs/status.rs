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
    // Per family: a dual-stack ADD needs an address of each.
    let fills = ocinet_common::ipam::open(&ctx.state, &net.name).and_then(|p| {
        let v4 = net
            .v4()
            .map(|v4| p.fill(&net).map(|f| (v4.range().to_string(), f)));
        let v6 = p
            .fill6(&net)?
            .zip(net.v6())
            .map(|(f, v6)| (v6.range().to_string(), f));
        v4.transpose()
            .map(|v4| v4.into_iter().chain(v6).collect::<Vec<_>>())
    });
    match fills {
        Ok(fills) => match fills.into_iter().find(|(_, f)| f.free == 0) {
            Some((range, f)) => unavailable(format!(
                "network {}: every address of {range} is leased ({})",
                net.name, f.allocated
            )),
            None => Ok(()),
        },
        // As before: a pool not readable now is not taken for a full one
        // (the ADD says what is wrong with it).
        Err(e) => {
            tracing::warn!(network = %net.name, "STATUS cannot read the pool: {e}");
            Ok(())
        }
    }
}
