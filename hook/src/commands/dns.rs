//! `ocinet dns status`: the resolver as an operator (or a test) sees it,
//! without reading its files.

use ocinet_common::{Error, Result};
use ocinet_core::context::Context;
use serde_json::json;

pub fn status(ctx: &Context, as_json: bool) -> Result<String> {
    // Only a live process with the start time its pid file names: a pid
    // file left by a killed resolver says nothing.
    let running = ctx.state.resolver_state();
    let stats: Option<ocinet_dns::stats::Snapshot> = ctx.state.dns_stats()?;
    if as_json {
        let doc = json!({
            "Running": running.is_some(),
            "Pid": running.as_ref().map(|r| r.process.pid),
            // null: a resolver of an earlier version, which did not say.
            "Persistent": running.as_ref().and_then(|r| r.persistent),
            "Listening": running
                .as_ref()
                .and_then(|r| r.listening.clone())
                .unwrap_or_default()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            // Counted since the resolver started, saved once a second.
            "Queries": stats.as_ref().map(|s| json!({
                "answered": s.answered,
                "nxdomain": s.nxdomain,
                "forwarded": s.forwarded,
                "servfail": s.servfail,
                "refused": s.refused,
            })),
        });
        return serde_json::to_string_pretty(&doc)
            .map(|s| s + "\n")
            .map_err(|e| Error::Conflict(e.to_string()));
    }
    let mut out = match &running {
        None => "resolver: not running\n".to_string(),
        Some(r) => format!(
            "resolver: running, pid {}{}\nlistening: {}\n",
            r.process.pid,
            match r.persistent {
                Some(true) => " (persistent)",
                Some(false) => "",
                None => " (of an earlier version: persistent or not, it did not say)",
            },
            r.listening
                .as_ref()
                .map(|l| l
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_else(|| "-".into())
        ),
    };
    if let Some(s) = stats {
        out += &format!(
            "queries: answered {}, nxdomain {}, forwarded {}, servfail {}, refused {}\n",
            s.answered, s.nxdomain, s.forwarded, s.servfail, s.refused
        );
    }
    Ok(out)
}
