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
            let (networks, bad) = ctx.config.list();
            let (eps, bad_eps) = ctx.state.list_endpoints();
            let mut out = String::new();
            for e in bad.iter().chain(bad_eps.iter()) {
                out += &format!("skipped: {e}\n");
            }
            let elements: Vec<_> = eps.iter().flat_map(|e| e.firewall.iter().cloned()).collect();
            fw.rebuild(&networks, &elements)?;
            tracing::info!(networks = networks.len(), elements = elements.len(), "firewall rebuilt");
            out += &format!("rebuilt table inet ocinet: {} networks, {} elements\n", networks.len(), elements.len());
            Ok(out)
        }
        FirewallCommand::Rules => Ok(format!("{}\n", fw.rule_count()?)),
    }
}
