use ocinet_common::model::detached_sharers;
use ocinet_common::{Error, Result};
use serde_json::json;

use crate::context::Context;

pub fn run(ctx: &Context, as_json: bool) -> Result<String> {
    let (eps, bad) = ctx.state.list_endpoints();
    for e in &bad {
        eprintln!("ocinet: skipping {e}");
    }
    let detached = detached_sharers(&eps);
    // A detached sharer shows nothing it copied from its target: that
    // address was freed and may be another container's now.
    let rows: Vec<_> = eps
        .iter()
        .map(|e| {
            if detached.contains(e.id.as_str()) {
                (e.detached(), "detached".to_string())
            } else {
                let phase = serde_json::to_value(e.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                (e.clone(), phase)
            }
        })
        .collect();
    if as_json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(e, state)| {
                json!({
                    "id": e.id, "name": e.name, "network": e.mode.label(), "ip": e.ip,
                    "mac": e.mac, "host_interface": e.host_veth, "state": state,
                    "detached": state == "detached",
                    "netns": e.netns_link, "pid": e.container.map(|p| p.pid),
                    "ports": e.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows)
            .map(|s| s + "\n")
            .map_err(|e| Error::Conflict(e.to_string()));
    }
    let mut table = vec![[
        "ID",
        "NAME",
        "NETWORK",
        "STATE",
        "IP",
        "MAC",
        "HOST-VETH",
        "PORTS",
    ]
    .map(String::from)
    .to_vec()];
    let dash = || "-".to_string();
    for (e, state) in rows {
        table.push(vec![
            e.id[..e.id.len().min(12)].to_string(),
            e.name.clone(),
            e.mode.label(),
            state,
            e.ip.map(|i| i.to_string()).unwrap_or_else(dash),
            e.mac.clone().unwrap_or_else(dash),
            e.host_veth.clone().unwrap_or_else(dash),
            e.ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    Ok(super::table(&table))
}
