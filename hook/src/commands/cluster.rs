//! `ocinet cluster join|ls|leave|status` and `ocinet agent`.

use std::collections::{BTreeMap, BTreeSet};

use ocinet_cluster::values::{Member as MemberValue, Node};
use ocinet_cluster::{keys, ClusterConfig, Store};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::fsutil;
use ocinet_common::{Error, Result};
use ocinet_core::context::Context;
use ocinet_core::overlay::{agent, Member};
use serde_json::json;

use crate::cli::{ClusterCommand, JoinArgs};

pub fn run(ctx: &Context, cmd: &ClusterCommand) -> Result<String> {
    match cmd {
        ClusterCommand::Join(a) => join(ctx, a),
        ClusterCommand::Ls(a) => ls(ctx, a.json),
        ClusterCommand::Leave => leave(ctx),
        ClusterCommand::Status(a) => status(ctx, a.json),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Join: the config checked (store URLs, the advertise address this
/// host's, the node name not another live host's), saved, and the agent
/// started; it registers the host. Any failure leaves no config.
fn join(ctx: &Context, a: &JoinArgs) -> Result<String> {
    let cfg = ClusterConfig {
        store: a.store.clone(),
        advertise: a.advertise_addr,
        node: a.node.clone().unwrap_or_else(hostname),
        cacert: a.store_cacert.clone(),
        cert: a.store_cert.clone(),
        key: a.store_key.clone(),
        ttl: a.lease_ttl,
    };
    cfg.validate()?;
    for (flag, f) in [
        ("store-cacert", &cfg.cacert),
        ("store-cert", &cfg.cert),
        ("store-key", &cfg.key),
    ] {
        if let Some(p) = f {
            if !p.is_absolute() || !p.is_file() {
                return Err(Error::invalid(
                    flag,
                    p.display(),
                    "must be the absolute path of a readable file",
                ));
            }
        }
    }
    let mut nl = Netlink::new()?;
    if !nl
        .ipv4_addresses()?
        .iter()
        .any(|(_, ip, _)| *ip == cfg.advertise)
    {
        return Err(Error::invalid(
            "advertise-addr",
            cfg.advertise,
            "is not an address of this host (give the address the other hosts reach this one at)",
        ));
    }
    if let Some(existing) = ClusterConfig::load(ctx.config.root())? {
        if existing == cfg {
            agent::start(ctx, &cfg)?;
            return Ok(format!("{}\n", cfg.node));
        }
        return Err(Error::Conflict(format!(
            "this host is already member {} of the cluster at {}: `ocinet cluster leave` first",
            existing.node,
            existing.store.join(",")
        )));
    }
    let mut store = Store::connect(&cfg)?;
    // Reachable is not enough: a request must be answered.
    let node_key = keys::node(&cfg.node);
    if let Some(kv) = store.get(&node_key)? {
        if let Ok(n) = Node::read(&kv.key, &cfg.node, &kv.value) {
            if n.advertise != cfg.advertise {
                return Err(Error::invalid(
                    "node",
                    &cfg.node,
                    format!(
                        "is the name of a host that is up at {}: give --node another name",
                        n.advertise
                    ),
                ));
            }
        }
    }
    drop(store);
    cfg.save(ctx.config.root())?;
    if let Err(e) = agent::start(ctx, &cfg) {
        let _ = ClusterConfig::remove(ctx.config.root());
        let _ = agent::stop(ctx);
        return Err(e);
    }
    tracing::info!(node = %cfg.node, store = %cfg.store.join(","), "joined the cluster");
    Ok(format!("{}\n", cfg.node))
}

/// A time as `docker` prints one: UTC, to the second.
fn utc(secs: u64) -> String {
    super::docker::rfc3339(secs, 0)
}

fn ls(ctx: &Context, as_json: bool) -> Result<String> {
    let mut m = Member::connect(ctx)?;
    let (kvs, _) = m.store.list(keys::ROOT)?;
    let mut members: BTreeMap<String, MemberValue> = BTreeMap::new();
    let mut up: BTreeMap<String, Node> = BTreeMap::new();
    // A container on several overlay networks has an entry on each:
    // counted once per node.
    let mut containers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for kv in &kvs {
        if let Some(n) = keys::name_under(&kv.key, &keys::members()) {
            match MemberValue::read(&kv.key, n, &kv.value) {
                Ok(v) => {
                    members.insert(n.to_string(), v);
                }
                Err(e) => tracing::warn!("cluster store: skipping {e}"),
            }
        } else if let Some(n) = keys::name_under(&kv.key, &keys::nodes()) {
            if let Ok(v) = Node::read(&kv.key, n, &kv.value) {
                up.insert(n.to_string(), v);
            }
        } else if let Some((_, node, id)) = keys::parse_container(&kv.key) {
            containers.entry(node).or_default().insert(id);
        }
    }
    let rows: Vec<(String, String, String, Option<u64>, usize)> = members
        .iter()
        .map(|(name, v)| {
            let (state, since) = match up.get(name) {
                Some(_) => ("up".to_string(), None),
                None => ("down".to_string(), v.down_since),
            };
            let adv = up
                .get(name)
                .map_or(v.advertise, |n| n.advertise)
                .to_string();
            (
                name.clone(),
                adv,
                state,
                since,
                containers.get(name).map_or(0, BTreeSet::len),
            )
        })
        .collect();
    if as_json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(n, a, s, since, c)| {
                json!({"node": n, "advertise": a, "state": s, "down_since": since.map(utc), "containers": c, "self": *n == m.cfg.node})
            })
            .collect();
        return serde_json::to_string_pretty(&doc)
            .map(|s| s + "\n")
            .map_err(|e| Error::Conflict(e.to_string()));
    }
    let mut table = vec![["NODE", "ADVERTISE", "STATE", "CONTAINERS"]
        .map(String::from)
        .to_vec()];
    for (n, a, s, since, c) in rows {
        let state = match since {
            Some(t) => format!("{s} since {}", utc(t)),
            None => s,
        };
        let name = if n == m.cfg.node { format!("{n} *") } else { n };
        table.push(vec![name, a, state, c.to_string()]);
    }
    Ok(super::table(&table))
}

/// Leave: refused while this host has overlay containers (naming them);
/// else its lease is revoked (its node key, blocks and entries go with
/// it), its member key removed, its overlay devices and local copies of
/// overlay definitions removed, its agent ended and its config removed.
/// All under the state lock: a setup that came between the check and the
/// leave would run a container on a host that is no member any more.
fn leave(ctx: &Context) -> Result<String> {
    let cfg = ClusterConfig::required(ctx.config.root())?;
    let locked = ctx.lock()?;
    let (nets, _) = locked.config.list();
    let overlays: Vec<&ocinet_common::model::Network> =
        nets.iter().filter(|n| n.overlay().is_some()).collect();
    let (eps, unreadable) = locked.state.list_endpoints();
    if let Some(e) = unreadable.first() {
        return Err(Error::Conflict(format!(
            "host {}: cannot tell whether an overlay container runs here: {e}; fix or remove that record first",
            cfg.node
        )));
    }
    let on: Vec<String> = eps
        .iter()
        .flat_map(|e| {
            overlays.iter().filter(|n| e.is_on(&n.name)).map(move |n| {
                format!(
                    "{} on {}",
                    if e.name.is_empty() { &e.id } else { &e.name },
                    n.name
                )
            })
        })
        .collect();
    if !on.is_empty() {
        return Err(Error::Conflict(format!(
            "host {} has {} overlay container(s): {}; stop them first",
            cfg.node,
            on.len(),
            on.join(", ")
        )));
    }
    let mut m = Member::connect(&locked)?;
    agent::stop(&locked)?;
    // The member key first: another host's agent marks a member whose
    // node key is gone as down, writing its member key back, so the node
    // key must outlive the member key, not the reverse.
    m.store.delete(&keys::member(&cfg.node))?;
    if let Some(kv) = m.store.get(&keys::node(&cfg.node))? {
        if kv.lease != 0 {
            m.store.lease_revoke(kv.lease)?;
        }
    }
    m.store.delete(&keys::node(&cfg.node))?;
    // Its blocks went with the lease; that it held them goes too (it runs
    // no overlay container any more: checked above).
    let mine = ocinet_core::overlay::lease::mine(&m);
    let (held, _) = m.store.list(&keys::all_held())?;
    for kv in held.iter().filter(|kv| kv.value == mine) {
        m.store.delete_if(&kv.key, &mine)?;
    }
    ocinet_core::overlay::forget_all(&locked)?;
    // Other hosts' names, which no agent keeps up to date any more.
    fsutil::remove_if_exists(&locked.state.remote_names_file())?;
    ClusterConfig::remove(locked.config.root())?;
    tracing::info!(node = %cfg.node, "left the cluster");
    Ok(format!("{}\n", cfg.node))
}

fn status(ctx: &Context, as_json: bool) -> Result<String> {
    let cfg = ClusterConfig::load(ctx.config.root())?;
    let agent = ctx.state.agent_state();
    let doc = json!({
        "member": cfg.is_some(),
        "node": cfg.as_ref().map(|c| c.node.clone()),
        "advertise": cfg.as_ref().map(|c| c.advertise.to_string()),
        "store": cfg.as_ref().map(|c| c.store.clone()),
        "agent": agent.as_ref().map(|a| json!({"pid": a.process.pid, "lease": format!("{:x}", a.lease), "registered": a.lease != 0, "persistent": a.persistent})),
    });
    if as_json {
        return serde_json::to_string_pretty(&doc)
            .map(|s| s + "\n")
            .map_err(|e| Error::Conflict(e.to_string()));
    }
    Ok(match (&cfg, &agent) {
        (None, _) => "not a cluster member\n".to_string(),
        (Some(c), Some(a)) => format!(
            "member {} ({}) of {}; agent pid {}{}\n",
            c.node,
            c.advertise,
            c.store.join(","),
            a.process.pid,
            if a.lease == 0 {
                ", not registered yet"
            } else {
                ""
            }
        ),
        (Some(c), None) => format!(
            "member {} ({}) of {}; no agent runs (the next overlay container starts one)\n",
            c.node,
            c.advertise,
            c.store.join(",")
        ),
    })
}

/// `ocinet agent`.
pub fn agent_main(ctx: Context, persistent: bool) -> Result<String> {
    let _span = tracing::info_span!("agent", pid = std::process::id()).entered();
    agent::run(&ctx, persistent).map(|()| String::new())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_796_601_600), "2026-12-07T00:00:00Z");
    }
}
