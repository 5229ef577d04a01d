//! `ocinet firewall reload|rules`.

use ocinet_common::firewall::Firewall;
use ocinet_common::Result;

use crate::cli::FirewallCommand;
use crate::context::Context;

pub fn run(ctx: &Context, cmd: &FirewallCommand) -> Result<String> {
    let fw = ctx.firewall()?;
    match cmd {
        FirewallCommand::Reload => {
            let _lock = ctx.lock()?;
            let (networks, elements) = ctx.rebuild_firewall(&fw, None, &[])?;
            tracing::info!(networks, elements, "firewall rebuilt");
            Ok(format!(
                "rebuilt table inet ocinet: {networks} networks, {elements} elements\n"
            ))
        }
        FirewallCommand::Rules => Ok(format!("{}\n", fw.rule_count()?)),
    }
}
