//! One module per CNI verb, each over ocinet's core.

mod add;
mod check;
mod del;
mod gc;
mod network;
mod status;

use ocinet_common::model::Endpoint;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use ocinet_core::context::Context;
use rscni_types::error::Error as CniError;
use rscni_types::types::Cmd;
use rscni_types::version::SpecVersion;

use crate::conf::Conf;
use crate::env::Invocation;
use crate::errors::to_cni;

/// What the logging is given once the state directory is known.
pub type LogInit<'a> = &'a dyn Fn(&std::path::Path);

pub fn run(
    inv: &Invocation,
    conf: &Conf,
    version: SpecVersion,
    log: LogInit<'_>,
) -> Result<Option<String>, CniError> {
    let ctx = Context {
        state: StateDir::new(&conf.state_dir),
        config: ConfigDir::new(&conf.config_dir),
    };
    ctx.state.ensure_root().map_err(to_cni)?;
    log(&ctx.state.log_file());
    let verb: &str = inv.command.into();
    let _span = tracing::info_span!(
        "cni",
        verb,
        id = %inv.container_id,
        ifname = %inv.ifname,
        network = %conf.network
    )
    .entered();
    match inv.command {
        Cmd::Add => add::run(&ctx, inv, conf, version).map(Some),
        Cmd::Del => del::run(&ctx, inv, conf).map(|()| None),
        Cmd::Check => check::run(&ctx, inv, conf).map(|()| None),
        Cmd::Gc => gc::run(&ctx, conf).map(|()| None),
        Cmd::Status => status::run(&ctx, conf).map(|()| None),
        // Answered before any configuration is read.
        Cmd::Version => Ok(None),
    }
}

/// The index of the attachment of `ep` that this invocation names: on the
/// configuration's network, with the runtime's interface name.
fn attachment_index(ep: &Endpoint, conf: &Conf, ifname: &str) -> Option<usize> {
    ep.attachments
        .iter()
        .position(|a| a.network == conf.network && a.interface == ifname)
}
