//! `ocinet firewall reload|rules`.

use ocinet_common::firewall::Firewall;
use ocinet_common::Result;

use crate::cli::FirewallCommand;
use ocinet_core::context::{Context, Subject};
use ocinet_core::restore;

pub fn run(ctx: &Context, cmd: &FirewallCommand) -> Result<String> {
    let fw = ctx.firewall()?;
    match cmd {
        FirewallCommand::Reload => {
            let _lock = ctx.lock()?;
            let (networks, attachments) = ctx.rebuild_firewall(&fw, Subject::Nobody, &[])?;
            tracing::info!(networks, attachments, "firewall rebuilt");
            let (bridges, ports) = restore::restore_all(ctx)?;
            tracing::info!(bridges, ports, "bridges restored");
            Ok(format!(
                "rebuilt tables inet ocinet and bridge ocinet: {networks} networks, {attachments} container interfaces\n\
                 bridges made again: {bridges}, container ports put back on their bridge: {ports}\n"
            ))
        }
        FirewallCommand::Rules => Ok(format!("{}\n", fw.rule_count()?)),
    }
}
