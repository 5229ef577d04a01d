//! `ocinet proxy status`: the port proxy as an operator (or a test) sees
//! it, asked over its control socket (nothing changed).

use ocinet_common::{Error, Result};
use ocinet_core::context::Context;
use serde_json::json;

pub fn status(ctx: &Context, as_json: bool) -> Result<String> {
    let status = ocinet_proxy::control::status(&ctx.state)?;
    if as_json {
        let doc = json!({
            "Running": status.is_some(),
            "Pid": status.as_ref().map(|s| s.pid),
            "Persistent": status.as_ref().map(|s| s.persistent),
            "Ports": status.as_ref().map(|s| s.listeners.iter().map(|l| json!({
                "HostIp": "::1",
                "HostPort": l.listener.key.port,
                "Protocol": l.listener.key.protocol.name(),
                "Upstream": l.listener.upstream.to_string(),
                "Container": l.listener.owner,
                "Explicit": l.listener.explicit,
                "Accepting": l.error.is_none(),
                "Error": l.error,
                "Open": l.open,
            })).collect::<Vec<_>>()).unwrap_or_default(),
        });
        return serde_json::to_string_pretty(&doc)
            .map(|s| s + "\n")
            .map_err(|e| Error::Conflict(e.to_string()));
    }
    let Some(s) = status else {
        return Ok("port proxy: not running\n".into());
    };
    let mut rows = vec![vec![
        "PORT".to_string(),
        "TO".into(),
        "CONTAINER".into(),
        "STATE".into(),
    ]];
    for l in &s.listeners {
        rows.push(vec![
            l.listener.key.to_string(),
            l.listener.upstream.to_string(),
            l.listener.owner.clone(),
            match &l.error {
                None => format!("accepting ({} open)", l.open),
                Some(e) => e.clone(),
            },
        ]);
    }
    Ok(format!(
        "port proxy: running, pid {}{}\n{}",
        s.pid,
        if s.persistent { " (persistent)" } else { "" },
        super::table(&rows)
    ))
}
