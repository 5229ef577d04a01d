//! `ocinet firewall reload|rules`.

use ocinet_common::firewall::Firewall;
use ocinet_common::Result;

use crate::cli::FirewallCommand;
use ocinet_core::context::Context;
use ocinet_core::restore;

pub fn run(ctx: &Context, cmd: &FirewallCommand) -> Result<String> {
    match cmd {
        FirewallCommand::Reload => {
            let ((networks, attachments), (bridges, ports)) = restore::reload(ctx)?;
            Ok(format!(
                "rebuilt tables inet ocinet and bridge ocinet: {networks} networks, {attachments} container interfaces\n\
                 bridges made again: {bridges}, container ports put back on their bridge: {ports}\n"
            ))
        }
        FirewallCommand::Rules => Ok(format!("{}\n", ctx.firewall()?.rule_count()?)),
    }
}
