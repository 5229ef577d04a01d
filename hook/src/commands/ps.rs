use ocinet_common::{Error, Result};
use serde_json::json;

use crate::context::Context;

pub fn run(ctx: &Context, as_json: bool) -> Result<String> {
    let (eps, bad) = ctx.state.list_endpoints();
    for e in &bad {
        eprintln!("ocinet: skipping {e}");
    }
    if as_json {
        let rows: Vec<_> = eps
            .iter()
            .map(|e| {
                json!({
                    "id": e.id, "name": e.name, "network": e.mode.label(), "ip": e.ip,
                    "mac": e.mac, "host_interface": e.host_veth, "state": e.phase,
                    "netns": e.netns_link, "pid": e.container.map(|p| p.pid),
                    "ports": e.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows)
            .map(|s| s + "\n")
            .map_err(|e| Error::Conflict(e.to_string()));
    }
    let mut out = format!(
        "{:<14} {:<20} {:<20} {:<15} {:<17} {:<15} {}\n",
        "ID", "NAME", "NETWORK", "IP", "MAC", "HOST-VETH", "PORTS"
    );
    let dash = || "-".to_string();
    for e in eps {
        out += &format!(
            "{:<14} {:<20} {:<20} {:<15} {:<17} {:<15} {}\n",
            &e.id[..e.id.len().min(12)],
            e.name,
            e.mode.label(),
            e.ip.map(|i| i.to_string()).unwrap_or_else(dash),
            e.mac.clone().unwrap_or_else(dash),
            e.host_veth.clone().unwrap_or_else(dash),
            e.ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    Ok(out)
}
