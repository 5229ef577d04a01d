//! `ocinet ps`: every container and each of its attachments.

use ocinet_common::health::Health;
use ocinet_common::model::{detached_sharers, shown_attachments, Attachment, Endpoint, Mode};
use ocinet_common::{Error, Result};
use serde_json::json;

use super::network::attachment_state;
use ocinet_core::context::Context;

pub fn run(ctx: &Context, as_json: bool) -> Result<String> {
    let (eps, bad) = ctx.state.list_endpoints();
    for e in &bad {
        eprintln!("ocinet: skipping {e}");
    }
    let detached = detached_sharers(&eps);
    // Macvlan attachments whose interface went with a deleted parent: the
    // record still says ready.
    let health = ocinet_common::health::of_macvlans(&eps).unwrap_or_else(|e| {
        eprintln!("ocinet: cannot check macvlan attachments: {e}");
        Default::default()
    });
    let state_of =
        |e: &Endpoint, a: &Attachment| match health.get(&(e.id.clone(), a.network.clone())) {
            Some(h) if *h != Health::Ok => h.as_str().to_string(),
            _ => attachment_state(e, a),
        };
    for b in ctx.config.broken() {
        eprintln!(
            "ocinet: network {}: unusable definition: {}",
            b.name,
            b.error()
        );
    }
    // A detached sharer shows no interface: its target's went with it.
    let rows: Vec<(&Endpoint, &[Attachment], String, Option<String>)> = eps
        .iter()
        .map(|e| {
            let state = if detached.contains(e.id.as_str()) {
                "detached".to_string()
            } else {
                serde_json::to_value(e.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            // The table has one state per container: a connect or
            // disconnect under way, or a broken macvlan attachment, shows
            // there (`--json` has each attachment's).
            let changing = e
                .attachments
                .iter()
                .map(|a| state_of(e, a))
                .find(|s| s.ends_with("ing") || s.ends_with("-gone"));
            (e, shown_attachments(e, &eps), state, changing)
        })
        .collect();
    let network = |e: &Endpoint, atts: &[Attachment]| match (&e.mode, atts.is_empty()) {
        (Mode::Networks(_), false) => atts
            .iter()
            .map(|a| a.network.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => e.mode.label(),
    };
    if as_json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(e, atts, state, changing)| {
                // The first attachment's fields stand at the top, as before
                // there could be several.
                let first = atts.first();
                json!({
                    "id": e.id, "name": e.name, "network": network(e, atts),
                    "ip": first.and_then(|a| a.ipv4()),
                    "ip6": first.and_then(|a| a.ipv6()),
                    "mac": first.and_then(|a| a.mac.clone()),
                    "host_interface": first.and_then(|a| a.host_veth.clone()),
                    // A broken attachment shows here as in the table;
                    // `phase` keeps what the record says.
                    "state": changing.as_ref().filter(|c| c.ends_with("-gone")).unwrap_or(state),
                    "phase": state,
                    "detached": state == "detached",
                    "netns": e.netns_link, "pid": e.container.map(|p| p.pid),
                    "ports": e.ports().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "attachments": atts.iter().map(|a| json!({
                        "network": a.network,
                        "interface": a.interface,
                        "ip": a.ipv4(),
                        "address": a.ipv4_net().map(|n| n.to_string()),
                        "ip6": a.ipv6(),
                        "address6": a.ipv6_net().map(|n| n.to_string()),
                        "mac": a.mac,
                        "host_interface": a.host_veth,
                        "parent": a.parent,
                        "default_route": a.carries_default_route(),
                        "aliases": a.aliases,
                        "ports": a.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        "state": state_of(e, a),
                    })).collect::<Vec<_>>(),
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
        "INTERFACE",
        "IP",
        "MAC",
        "HOST-VETH",
        "PORTS",
    ]
    .map(String::from)
    .to_vec()];
    let dash = || "-".to_string();
    let list = |atts: &[Attachment], f: &dyn Fn(&Attachment) -> Option<String>| {
        let v: Vec<String> = atts.iter().map(|a| f(a).unwrap_or_else(dash)).collect();
        if v.is_empty() {
            dash()
        } else {
            v.join(",")
        }
    };
    for (e, atts, state, changing) in rows {
        table.push(vec![
            e.id[..e.id.len().min(12)].to_string(),
            e.name.clone(),
            network(e, atts),
            changing.unwrap_or(state),
            list(atts, &|a| Some(a.interface.clone())),
            list(atts, &|a| a.ipv4().map(|i| i.to_string())),
            list(atts, &|a| a.mac.clone()),
            list(atts, &|a| a.host_veth.clone()),
            e.ports()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    Ok(super::table(&table))
}
