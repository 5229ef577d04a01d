//! `ocinet cluster join|ls|leave|rm|status` and `ocinet agent`.

use std::collections::{BTreeMap, BTreeSet};

use ocinet_cluster::values::{Member as MemberValue, Node};
use ocinet_cluster::{keys, ClusterConfig, Store};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::fsutil;
use ocinet_common::{Error, Result};
use ocinet_core::context::Context;
use ocinet_core::overlay::{self, agent, Member};
use serde_json::json;

use crate::cli::{ClusterCommand, JoinArgs};

pub fn run(ctx: &Context, cmd: &ClusterCommand) -> Result<String> {
    match cmd {
        ClusterCommand::Join(a) => join(ctx, a),
        ClusterCommand::Ls(a) => ls(ctx, a.json),
        ClusterCommand::Leave => leave(ctx),
        ClusterCommand::Rm(a) => rm(ctx, &a.node),
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
    // Killed here, the host has a config and no agent: `cluster join`
    // with the same flags again starts the agent (the config is the same).
    overlay::step("join-saved");
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
    overlay::step("leave-agent-stopped");
    // Its member and node keys, blocks, last-holder keys and entries in
    // one transaction: no crash can leave a member without its node key
    // (which other hosts would take for a host cut off, that may still
    // run containers) or last-holder keys without a member. It runs no
    // overlay container (checked above), so its last holds are stale.
    let found = overlay::node_keys(&mut m, &cfg.node)?;
    let lease = found.up.as_ref().map(|kv| kv.lease).filter(|l| *l != 0);
    // Without guards nothing can make it refuse.
    let done = overlay::forget_node(&mut m, &cfg.node, &found, false)?;
    debug_assert!(done, "an unguarded forget_node refused");
    overlay::step("leave-unregistered");
    // The lease has no key left; revoked rather than left to expire. Gone
    // already (it expired, or a leave killed here revoked it) is fine.
    if let Some(l) = lease {
        if let Err(e) = m.store.lease_revoke(l) {
            if !ocinet_cluster::lease_gone(&e) {
                return Err(e);
            }
        }
    }
    overlay::step("leave-revoked");
    ocinet_core::overlay::forget_all(&locked)?;
    // Other hosts' names, which no agent keeps up to date any more.
    fsutil::remove_if_exists(&locked.state.remote_names_file())?;
    // Killed before the config goes, the host is no member in the store
    // but one locally: `cluster leave` again finishes (nothing left to
    // remove in the store) and removes the config.
    overlay::step("leave-forgotten");
    ClusterConfig::remove(locked.config.root())?;
    tracing::info!(node = %cfg.node, "left the cluster");
    Ok(format!("{}\n", cfg.node))
}

/// How many times `cluster rm` reads and decides again when the store
/// changed between its read and its transaction.
const RM_ATTEMPTS: usize = 5;

/// `cluster rm NODE`: forget a member that is gone for good (its machine
/// dead), so that the blocks it last held can be given again and `network
/// rm` is no longer refused for it. Refused while its lease is alive (it
/// may run containers: it leaves with `cluster leave`), for this host,
/// and for a node nothing in the store names. The removal is one
/// transaction that holds only while the node is still down and its
/// member key unchanged since the read: a host that came back meanwhile
/// is not removed.
///
/// The store cannot tell a dead host from one cut off from the store
/// past its lease that still runs containers; the operator must (see
/// docs/overlay.md): a host removed while alive registers again when it
/// reaches the store, and its addresses may have been given twice.
fn rm(ctx: &Context, node: &str) -> Result<String> {
    ocinet_common::validate::name("node", node)?;
    let mut m = Member::connect(ctx)?;
    if node == m.cfg.node {
        return Err(Error::invalid(
            "node",
            node,
            "is this host: `ocinet cluster leave` removes this host from the cluster",
        ));
    }
    for _ in 0..RM_ATTEMPTS {
        let found = overlay::node_keys(&mut m, node)?;
        if found.is_empty() {
            return Err(Error::NotFound(format!(
                "node {node} is not a member of the cluster at {}: no key of the store names it (`ocinet cluster ls` lists the members)",
                m.store.endpoints()
            )));
        }
        if let Some(kv) = &found.up {
            let since = found
                .member
                .as_ref()
                .and_then(|mv| MemberValue::read(&mv.key, node, &mv.value).ok())
                .map(|v| format!("a member since {}", utc(v.joined)))
                .unwrap_or_else(|| "registered".to_string());
            let left = match kv.lease {
                0 => None,
                l => m.store.lease_ttl(l)?,
            };
            return Err(Error::Conflict(format!(
                "node {node} is up ({since}; its lease is alive{}): it may run containers; stop them and run `ocinet cluster leave` on {node} (a host that died is down once its lease expired: then `cluster rm` forgets it)",
                left.map(|s| format!(", renewed by its agent, {s} s before it would expire"))
                    .unwrap_or_default()
            )));
        }
        overlay::step("cluster-rm-read");
        if overlay::forget_node(&mut m, node, &found, true)? {
            tracing::warn!(
                node,
                blocks = found.blocks.len(),
                "node removed from the cluster: its blocks can be given to other hosts"
            );
            return Ok(format!("{node}\n"));
        }
        tracing::debug!(node, "the store changed since it was read: reading again");
    }
    Err(Error::Conflict(format!(
        "node {node}: the cluster store changed under each of {RM_ATTEMPTS} attempts to remove it; try again"
    )))
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
