//! `ocinet leases` and `ocinet ports`: what the store holds for
//! containers beyond their records, and who holds it. The answer to
//! "address already in use" and "port is already allocated": the holder,
//! and whether a record accounts for it (an orphaned one is what a hook
//! killed mid-way left; `ocinet gc` releases it).

use ocinet_common::{Error, Result};
use serde_json::json;

use ocinet_core::context::Context;
use ocinet_core::held;

fn state(orphaned: bool) -> &'static str {
    if orphaned {
        "orphaned"
    } else {
        "held"
    }
}

fn to_json(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Error::Conflict(e.to_string()))
}

/// Records that cannot be read count as holding what their id holds
/// (never shown orphaned); said on stderr, as `ps` does.
fn records(ctx: &Context) -> Result<held::Records> {
    let (records, bad) = held::records(ctx)?;
    for e in &bad {
        eprintln!("ocinet: skipping {e}");
    }
    Ok(records)
}

pub fn leases(ctx: &Context, network: Option<&str>, as_json: bool) -> Result<String> {
    if let Some(n) = network {
        ocinet_common::validate::name("network", n)?;
    }
    let records = records(ctx)?;
    let (all, bad) = held::leases(ctx, &records)?;
    for e in &bad {
        eprintln!("ocinet: skipping {e}");
    }
    let shown: Vec<_> = all
        .iter()
        .filter(|l| network.is_none_or(|n| l.network == n))
        .collect();
    if as_json {
        // Docker's names where it has them (`IPAddress`).
        let rows: Vec<_> = shown
            .iter()
            .map(|l| {
                json!({
                    "Network": l.network,
                    "IPAddress": l.ip.to_string(),
                    "Container": l.holder,
                    "Orphaned": l.orphaned,
                })
            })
            .collect();
        return to_json(&json!(rows));
    }
    let mut table = vec![["NETWORK", "IP", "CONTAINER", "STATE"]
        .map(String::from)
        .to_vec()];
    for l in shown {
        table.push(vec![
            l.network.clone(),
            l.ip.to_string(),
            l.holder.clone(),
            state(l.orphaned).into(),
        ]);
    }
    Ok(super::table(&table))
}

pub fn ports(ctx: &Context, as_json: bool) -> Result<String> {
    let records = records(ctx)?;
    let claims = held::port_claims(ctx, &records)?;
    let host_port = |c: &ocinet_common::store::ports::Claim| {
        if c.count > 1 {
            let last = u32::from(c.host_port) + u32::from(c.count) - 1;
            format!("{}-{last}", c.host_port)
        } else {
            c.host_port.to_string()
        }
    };
    let host_ip = |c: &ocinet_common::store::ports::Claim| {
        c.host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string())
    };
    if as_json {
        // Docker's port binding names (`HostIp`, `HostPort`: a string, a
        // range as `first-last`).
        let rows: Vec<_> = claims
            .iter()
            .map(|(c, orphaned)| {
                json!({
                    "Protocol": c.protocol.name(),
                    "HostIp": host_ip(c),
                    "HostPort": host_port(c),
                    "Container": c.holder,
                    "Network": c.network,
                    "Orphaned": orphaned,
                })
            })
            .collect();
        return to_json(&json!(rows));
    }
    let mut table = vec![[
        "PROTO",
        "HOST-IP",
        "HOST-PORT",
        "CONTAINER",
        "NETWORK",
        "STATE",
    ]
    .map(String::from)
    .to_vec()];
    for (c, orphaned) in &claims {
        table.push(vec![
            c.protocol.name().into(),
            host_ip(c),
            host_port(c),
            c.holder.clone(),
            c.network.clone().unwrap_or_else(|| "-".into()),
            state(*orphaned).into(),
        ]);
    }
    Ok(super::table(&table))
}
