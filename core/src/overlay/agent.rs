//! The per-host agent (`ocinet agent`): keeps this host's store lease
//! alive, watches the store and keeps the kernel in step with it. Started
//! by the hook at the first overlay container (as the resolver is), by
//! `cluster join`, or by a service manager. One that died is started
//! again: by systemd within `RESTART_SEC` where systemd runs the host
//! (`Restart=on-failure` on its transient unit), and elsewhere (or if
//! systemd gave up) by the host's next overlay setup or teardown or by
//! `ocinet gc` (`revive`), while the host has overlay containers.
//!
//! One pass (`reconcile`) reads the whole cluster state once (a few
//! hundred bytes per host and network) and makes this host agree:
//! - overlay definitions: new ones copied into the config directory,
//!   removed ones removed here once no container of this host is on them;
//! - each local VXLAN device: routes, neighbour and FDB entries for the
//!   blocks other hosts hold (`dataplane::program`);
//! - this host's own keys: its blocks and container entries put back on
//!   the lease when they are missing (a new lease after the old one
//!   expired; the store restored), entries without a local record or
//!   whose container died without its poststop, empty blocks, and
//!   last-holder keys naming this host for blocks nobody holds, removed
//!   (a hook killed half-way, a lease that expired);
//! - other hosts' container names, for the resolver (`names.json`);
//! - members whose lease is gone marked down, with the time.
//!
//! A pass runs when the store reports a change, and at least every
//! `PERIOD`; a store that cannot be reached is tried again `RETRY` after
//! an attempt failed, without a restart, while the kernel keeps what it
//! has (containers keep talking across hosts). An attempt fails at once
//! when the store refuses the connection, and after the store timeout
//! (`ocinet_cluster::TIMEOUT`, 2 s) when it does not answer (a host or
//! etcd that hangs, packets dropped): a try every 0.5 s or every 2.5 s.
//!
//! The watch resumes from the revision the last pass read, so no change
//! is missed between two watches: a container removed on another host
//! leaves this host's names (for the resolver) as soon as its deletion
//! is delivered, written first in the pass, before any kernel work.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ocinet_cluster::store::Kv;
use ocinet_cluster::values::{self, Container, Member as MemberValue, NetworkValue, Node, VERSION};
use ocinet_cluster::{keys, ClusterConfig, Store};
use ocinet_common::model::{Endpoint, Network, ProcessId};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::cluster::{AgentState, RemoteName};
use ocinet_common::store::lock::StateLock;
use ocinet_common::{Error, Result};

use super::{dataplane, definitions, lease, names, Member};
use crate::context::{Context, Locked};

/// A pass at least this often, changes or not.
const PERIOD: Duration = Duration::from_secs(2);
/// Between attempts to reach a store that did not answer.
const RETRY: Duration = Duration::from_millis(500);
/// How long a hook waits for an agent it started to register the host.
const READY: Duration = Duration::from_secs(4);
/// How long `revive` waits for an agent it started to run (systemd may be
/// restarting one: `RESTART_SEC`).
const RUNNING: Duration = Duration::from_secs(3);
/// systemd's delay before it starts a dead agent again: below a third of
/// the shortest lease TTL `cluster join` accepts, so the lease outlives it.
const RESTART_SEC: &str = "RestartSec=1s";

/// The subcommand of the `ocinet` binary that is the agent.
pub const SUBCOMMAND: &str = "agent";

/// Make sure this host's agent runs and registered the host; start one
/// if none does. Bounded by `READY`.
pub fn ensure(ctx: &Locked, cfg: &ClusterConfig) -> Result<()> {
    if ctx.state.agent_state().is_some_and(|s| s.lease != 0) {
        return Ok(());
    }
    start(ctx, cfg)
}

/// Start the agent unless one runs; wait until it registered the host.
pub fn start(ctx: &Context, cfg: &ClusterConfig) -> Result<()> {
    launch(ctx, cfg, Until::Registered)
}

/// The agent of a member host with containers on overlay networks
/// (any of `endpoints`), started again if it is gone (crashed, SIGKILLed,
/// OOM-killed): `ocinet gc` and every overlay teardown call this, as gc
/// starts a resolver that died. Without an agent the host's lease
/// expires, the other hosts drop their routes to its blocks, and its
/// running containers are cut off from them. With `wait` (gc), waits
/// until the new agent runs, never until it reached the store: a store
/// out of reach must not hold anything up (the agent retries by itself);
/// without (a teardown, under the state lock), only starts it. The pid
/// started, `None` when nothing was to be done (or not known yet).
pub fn revive<'a>(
    ctx: &Context,
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
    wait: bool,
) -> Result<Option<i32>> {
    if ctx.state.agent_state().is_some() {
        return Ok(None);
    }
    let Some(cfg) = ClusterConfig::load(ctx.config.root())? else {
        return Ok(None);
    };
    let (nets, _) = ctx.config.list();
    let overlays: Vec<&str> = nets
        .iter()
        .filter(|n| n.overlay().is_some())
        .map(|n| n.name.as_str())
        .collect();
    let on_overlay = endpoints
        .into_iter()
        .any(|e| overlays.iter().any(|n| e.is_on(n)));
    if !on_overlay {
        return Ok(None);
    }
    tracing::warn!(node = %cfg.node, "the overlay agent is not running while this host has overlay containers: starting it again");
    launch(
        ctx,
        &cfg,
        if wait { Until::Running } else { Until::Started },
    )?;
    Ok(ctx.state.agent_state().map(|s| s.process.pid))
}

/// What `launch` waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The host registered on a lease (bounded by `READY`).
    Registered,
    /// The agent runs (its pid file written; bounded by `RUNNING`).
    Running,
    /// Nothing: started, not waited for (a teardown, which holds the
    /// state lock that every other hook of the host waits on, while
    /// systemd may take its `RESTART_SEC` to let a new unit of that name
    /// start).
    Started,
}

/// Start the agent unless one runs; wait for `until`.
fn launch(ctx: &Context, cfg: &ClusterConfig, until: Until) -> Result<()> {
    let _span = tracing::info_span!("start_agent").entered();
    let mut child = None;
    let systemd = ocinet_common::process::systemd_run();
    if ctx.state.agent_state().is_none() {
        let exe = std::env::current_exe()
            .map_err(|e| Error::Conflict(format!("cannot start the agent: {e}")))?;
        let state_dir =
            std::path::absolute(ctx.state.root()).map_err(|e| Error::io(ctx.state.root(), e))?;
        let config_dir =
            std::path::absolute(ctx.config.root()).map_err(|e| Error::io(ctx.config.root(), e))?;
        // A transient service where systemd runs the host (as the
        // resolver and the port proxy are started): it outlives the
        // hook's process group, and `systemctl` shows it. systemd starts
        // it again if it dies other than by a clean exit (a crash, a
        // SIGKILL), within `RESTART_SEC`: well inside the lease's TTL, so
        // the other hosts keep their routes to this host.
        let mut cmd = ocinet_common::process::daemon_command_with(
            systemd,
            "ocinet-agent",
            &state_dir,
            &exe,
            &["Restart=on-failure", RESTART_SEC],
        );
        cmd.arg(SUBCOMMAND)
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--config-dir")
            .arg(&config_dir);
        child =
            Some(ocinet_common::process::spawn_detached(&mut cmd).map_err(|e| Error::io(&exe, e))?);
    }
    let done = |s: &AgentState| until == Until::Running || s.lease != 0;
    let bound = match until {
        Until::Registered => READY,
        Until::Running => RUNNING,
        Until::Started => return Ok(()),
    };
    let deadline = Instant::now() + bound;
    let mut exited = None;
    while Instant::now() < deadline {
        if ctx.state.agent_state().is_some_and(|s| done(&s)) {
            return Ok(());
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                child = None;
                exited = Some(status);
                // Without systemd the child is the agent: it ended.
                // systemd-run returns once the service started, and fails
                // when a unit of that name exists (systemd restarting the
                // agent): waited for either way.
                if systemd.is_none() && ctx.state.agent_state().is_none() {
                    return Err(Error::Conflict(format!(
                        "the overlay agent exited ({status}) before registering host {}: see {}",
                        cfg.node,
                        ctx.state.log_file().display()
                    )));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let how = exited
        .filter(|s| !s.success())
        .map(|s| format!(" (systemd-run: {s})"))
        .unwrap_or_default();
    Err(Error::Conflict(match until {
        Until::Registered => format!(
            "the overlay agent did not register host {} in the cluster store {} within {} s{how}: see {}",
            cfg.node,
            cfg.store.join(","),
            READY.as_secs(),
            ctx.state.log_file().display()
        ),
        Until::Running | Until::Started => format!(
            "the overlay agent of host {} did not start within {} s{how}: see {}",
            cfg.node,
            RUNNING.as_secs(),
            ctx.state.log_file().display()
        ),
    }))
}

/// End this host's agent (`cluster leave`): by its pid, once.
pub fn stop(ctx: &Context) -> Result<bool> {
    // Under systemd the unit is stopped first (without waiting: the pid
    // is ended below), so that systemd does not start again
    // (`Restart=on-failure`) an agent that has to be SIGKILLed, which
    // would register the host again while it leaves.
    if let Some(run) = ocinet_common::process::systemd_run() {
        let ctl = run.with_file_name("systemctl");
        if let Ok(dir) = std::path::absolute(ctx.state.root()) {
            let unit = ocinet_common::process::unit_name("ocinet-agent", &dir);
            let _span = tracing::info_span!("systemctl_stop", %unit).entered();
            match std::process::Command::new(&ctl)
                .args(["stop", "--no-block", "--quiet", &unit])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
            {
                // Not loaded: an agent a hook started elsewhere, or one
                // under a service manager of its own.
                Ok(_) => {}
                Err(e) => tracing::debug!("{}: {e}", ctl.display()),
            }
        }
    }
    match ctx.state.agent_state() {
        Some(s) => {
            let ended = ocinet_common::process::end_daemon(&s.process, "overlay agent")?;
            let _ = ctx.state.forget_agent(&s.process);
            Ok(ended)
        }
        None => Ok(false),
    }
}

/// The agent itself, until this host leaves the cluster (its config is
/// gone) or it is ended. One per state directory (its instance lock).
pub fn run(ctx: &Context, persistent: bool) -> Result<()> {
    ctx.state.ensure_cluster_dir()?;
    let Some(_instance) = StateLock::try_acquire(&ctx.state.agent_lock_file())? else {
        tracing::info!("an overlay agent already runs for this state directory");
        return Ok(());
    };
    let me = ProcessId::of(std::process::id() as i32)
        .ok_or_else(|| Error::Conflict("cannot read this process's start time".into()))?;
    ctx.state.save_agent(&AgentState {
        process: me,
        lease: 0,
        persistent,
    })?;
    tracing::info!(pid = me.pid, "overlay agent started");
    let mut lease = 0i64;
    loop {
        let cfg = match ClusterConfig::load(ctx.config.root()) {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::info!("this host left the cluster: the agent ends");
                let _ = ctx.state.forget_agent(&me);
                return Ok(());
            }
            Err(e) => {
                tracing::error!("cluster config: {e}");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        match session(ctx, &cfg, &me, persistent, &mut lease) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!("overlay agent: {e}; retrying");
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// Connected to the store: register, then passes until the store fails.
fn session(
    ctx: &Context,
    cfg: &ClusterConfig,
    me: &ProcessId,
    persistent: bool,
    lease: &mut i64,
) -> Result<()> {
    let mut m = Member {
        cfg: cfg.clone(),
        store: Store::connect(cfg)?,
    };
    *lease = register(&mut m, *lease)?;
    ctx.state.save_agent(&AgentState {
        process: *me,
        lease: *lease,
        persistent,
    })?;
    let mut kept = Instant::now();
    let mut revision = 0;
    loop {
        if kept.elapsed() >= Duration::from_secs(u64::from(cfg.ttl) / 3) {
            match m.store.keep_alive(*lease)? {
                Some(_) => kept = Instant::now(),
                None => {
                    tracing::warn!(
                        lease = *lease,
                        "this host's lease expired: registering again"
                    );
                    *lease = register(&mut m, 0)?;
                    ctx.state.save_agent(&AgentState {
                        process: *me,
                        lease: *lease,
                        persistent,
                    })?;
                    kept = Instant::now();
                }
            }
        }
        match ClusterConfig::load(ctx.config.root()) {
            Ok(Some(c)) if c == *cfg => {}
            _ => return Ok(()),
        }
        revision = reconcile(ctx, &mut m, *lease)?.max(revision);
        let wait =
            PERIOD.min(Duration::from_secs(u64::from(cfg.ttl) / 3).saturating_sub(kept.elapsed()));
        m.store
            .wait_change(keys::ROOT, revision, wait.max(Duration::from_millis(50)))?;
    }
}

/// This host's node key on a live lease (`old`'s if it is still alive,
/// else a new one), and its member key up.
fn register(m: &mut Member, old: i64) -> Result<i64> {
    let node_key = keys::node(&m.cfg.node);
    let existing = m
        .store
        .get(&node_key)?
        .map(|kv| kv.lease)
        .filter(|l| *l != 0);
    let candidate = if old != 0 { Some(old) } else { existing };
    let lease = match candidate {
        Some(l) if m.store.lease_ttl(l)?.is_some() => l,
        _ => {
            let l = m.store.lease_grant(m.cfg.ttl)?;
            crate::killpoint::reached("agent-lease-granted");
            l
        }
    };
    let node = Node {
        version: VERSION,
        node: m.cfg.node.clone(),
        advertise: m.cfg.advertise,
    };
    m.store.put(&node_key, values::encode(&node), Some(lease))?;
    crate::killpoint::reached("agent-node-put");
    let member_key = keys::member(&m.cfg.node);
    let joined = match m.store.get(&member_key)? {
        Some(kv) => MemberValue::read(&kv.key, &m.cfg.node, &kv.value)
            .map(|v| v.joined)
            .unwrap_or_else(|_| values::now()),
        None => values::now(),
    };
    let member = MemberValue {
        version: VERSION,
        node: m.cfg.node.clone(),
        advertise: m.cfg.advertise,
        joined,
        down_since: None,
    };
    m.store.put(&member_key, values::encode(&member), None)?;
    crate::killpoint::reached("agent-registered");
    tracing::info!(node = %m.cfg.node, lease, "host registered in the cluster store");
    Ok(lease)
}

/// The cluster as one read shows it.
struct View {
    revision: i64,
    members: BTreeMap<String, (Kv, MemberValue)>,
    up: BTreeSet<String>,
    networks: BTreeMap<String, Network>,
    /// network -> its blocks.
    blocks: BTreeMap<String, BTreeMap<ipnet::Ipv4Net, values::Block>>,
    /// (network, node, id) -> entry.
    containers: BTreeMap<(String, String, String), (Kv, Container)>,
    /// network -> blocks whose last-holder key names this host.
    last_held: BTreeMap<String, BTreeSet<ipnet::Ipv4Net>>,
}

fn read_view(store: &mut Store, me: &str) -> Result<View> {
    let (kvs, revision) = store.list(keys::ROOT)?;
    let mut v = View {
        revision,
        members: BTreeMap::new(),
        up: BTreeSet::new(),
        networks: BTreeMap::new(),
        blocks: BTreeMap::new(),
        containers: BTreeMap::new(),
        last_held: BTreeMap::new(),
    };
    for kv in &kvs {
        let skip = |e: Error| super::refused(&kv.key, &kv.value, e);
        if let Some(n) = keys::name_under(&kv.key, &keys::members()) {
            match MemberValue::read(&kv.key, n, &kv.value) {
                Ok(m) => {
                    v.members.insert(n.to_string(), (kv.clone(), m));
                }
                Err(e) => skip(e),
            }
        } else if let Some(n) = keys::name_under(&kv.key, &keys::nodes()) {
            match Node::read(&kv.key, n, &kv.value) {
                Ok(_) => {
                    v.up.insert(n.to_string());
                }
                Err(e) => skip(e),
            }
        } else if let Some((net, b)) = keys::parse_held(&kv.key) {
            // Only whether it names this host matters (its own cleanup);
            // another host's is that host's to read.
            if values::Block::read(&kv.key, &kv.value).is_ok_and(|v| v.node == me) {
                v.last_held.entry(net).or_default().insert(b);
            }
        } else if let Some(n) = keys::name_under(&kv.key, &keys::networks()) {
            match NetworkValue::read(&kv.key, n, &kv.value) {
                Ok(net) => {
                    v.networks.insert(n.to_string(), net);
                }
                Err(e) => skip(e),
            }
        }
    }
    for (name, net) in &v.networks {
        if let Some((subnet, _)) = definitions::subnet_of(net) {
            v.blocks
                .insert(name.clone(), lease::parse_blocks(&kvs, name, subnet));
        }
    }
    for kv in &kvs {
        let Some((net, node, id)) = keys::parse_container(&kv.key) else {
            continue;
        };
        let Some((subnet, _)) = v.networks.get(&net).and_then(definitions::subnet_of) else {
            continue;
        };
        let subnet6 = v.networks.get(&net).and_then(|n| n.subnet6());
        match Container::read_in(&kv.key, &node, &id, subnet, subnet6, &kv.value) {
            Ok(c) => {
                v.containers.insert((net, node, id), (kv.clone(), c));
            }
            Err(e) => super::refused(&kv.key, &kv.value, e),
        }
    }
    Ok(v)
}

/// One pass (see the module's documentation): the store's revision read.
pub fn reconcile(ctx: &Context, m: &mut Member, lease: i64) -> Result<i64> {
    let _span = tracing::debug_span!("agent_pass").entered();
    let me = m.cfg.node.clone();
    let view = read_view(&mut m.store, &me)?;
    let (records, unreadable) = ctx.state.list_endpoints();
    let (local, _) = ctx.config.list();
    let local_overlays: Vec<&Network> = local.iter().filter(|n| n.overlay().is_some()).collect();

    remember_holders(ctx, &view, &me);

    // Names of other hosts' containers, for the resolver: first, so that
    // a container stopped elsewhere is NXDOMAIN here without waiting for
    // the state lock or the kernel work below.
    let remote: Vec<RemoteName> = view
        .containers
        .iter()
        .filter(|((_, node, _), _)| *node != me)
        .map(|((net, node, id), (_, c))| RemoteName {
            network: net.clone(),
            node: node.clone(),
            id: id.clone(),
            name: c.name.clone(),
            aliases: c.aliases.clone(),
            addresses: c.addresses.clone(),
        })
        .collect();
    if ctx.state.remote_names() != remote {
        // The resolver looks at the file's time before each query.
        ctx.state.save_remote_names(&remote)?;
    }

    // Definitions: what the store has and this host lacks, or has older.
    let missing: Vec<&Network> = view
        .networks
        .values()
        .filter(|n| !local.iter().any(|l| l == *n))
        .collect();
    let gone: Vec<&&Network> = local_overlays
        .iter()
        .filter(|n| {
            !view.networks.contains_key(&n.name) && !records.iter().any(|e| e.is_on(&n.name))
        })
        .collect();
    if !missing.is_empty() || !gone.is_empty() {
        let locked = ctx.lock()?;
        let mut nl = Netlink::new()?;
        for n in missing {
            if local
                .iter()
                .any(|l| l.name == n.name && l.overlay().is_none())
            {
                tracing::warn!(network = %n.name, "an overlay network of the cluster has the name of a local network: not used on this host");
                continue;
            }
            match definitions::adopt(&locked, n, &mut nl) {
                Ok(()) => crate::killpoint::reached("agent-network-adopted"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        for n in gone {
            forget_network(&locked, &mut nl, n);
        }
    }

    // The kernel: each local device to the blocks the store has.
    let mut nl = Netlink::new()?;
    for n in &local_overlays {
        // A device lost while containers of this host are on the network
        // (deleted by hand): made again from the definition, as `firewall
        // reload` would, so the host does not stay cut off until then.
        let dev = n.overlay().map(|o| o.device()).unwrap_or_default();
        let on = |eps: &[ocinet_common::model::Endpoint]| {
            eps.iter()
                .any(|e| e.phase == ocinet_common::model::Phase::Ready && e.is_on(&n.name))
        };
        if on(&records) && matches!(nl.vxlan_info(&dev), Ok(None)) {
            // Checked again under the state lock: the last container's
            // teardown removes the device under it, and one made again
            // after that would outlive every container.
            let locked = ctx.lock()?;
            let (now, _) = locked.state.list_endpoints();
            if on(&now) && matches!(nl.vxlan_info(&dev), Ok(None)) {
                match dataplane::ensure_device(&mut nl, &m.cfg, n) {
                    Ok(_) => {
                        tracing::warn!(network = %n.name, %dev, "the VXLAN device was missing: made again");
                        crate::killpoint::reached("agent-device-made");
                    }
                    Err(e) => {
                        tracing::warn!(network = %n.name, %dev, "making the missing VXLAN device: {e}")
                    }
                }
            }
        }
        let held = view.blocks.get(&n.name).cloned().unwrap_or_default();
        if let Err(e) = dataplane::program(&mut nl, &m.cfg, n, &held) {
            tracing::warn!(network = %n.name, "programming the VXLAN device: {e}");
        }
    }

    // This host's keys, from its records. An unreadable record may be a
    // running container: nothing of this host's is removed then.
    let careful = !unreadable.is_empty();
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    // A container that died without its poststop (its runtime killed with
    // it) is not wanted: its entry leaves the store at this pass, so the
    // other hosts stop answering its name within a pass, not at the next
    // gc. Its record, block and address stay until gc tears it down.
    for ep in records
        .iter()
        .filter(|e| e.phase == ocinet_common::model::Phase::Ready && !e.is_stale())
    {
        for a in &ep.attachments {
            let Some(net) = local_overlays.iter().find(|n| n.name == a.network) else {
                continue;
            };
            wanted.insert((a.network.clone(), ep.id.clone()));
            let value = names::entry(m, ep, a);
            let have = view
                .containers
                .get(&(a.network.clone(), me.clone(), ep.id.clone()));
            if have.is_none_or(|(kv, _)| kv.value != value || kv.lease != lease) {
                m.store
                    .put(&keys::container(&net.name, &me, &ep.id), value, Some(lease))?;
                crate::killpoint::reached("agent-entry-put");
            }
            // Its block, on this lease (a new lease after an expiry).
            if let (Some(ip), Some((subnet, _))) = (a.ipv4(), definitions::subnet_of(net)) {
                if let Some(b) = ocinet_cluster::blocks::of(subnet, ip) {
                    let held = view.blocks.get(&net.name).and_then(|h| h.get(&b));
                    match held {
                        Some(v) if v.node != me => tracing::error!(
                            network = %net.name, block = %b, holder = %v.node,
                            "a block with running containers of this host is leased to another host: their addresses may be given twice"
                        ),
                        // Missing: its key went with an expired lease.
                        None => {
                            lease::claim(m, &net.name, b, lease)?;
                            crate::killpoint::reached("agent-block-claimed");
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    if !careful {
        for (net, node, id) in view.containers.keys() {
            if *node == me
                && !wanted.contains(&(net.clone(), id.clone()))
                && !records
                    .iter()
                    .any(|e| e.id == *id && e.phase != ocinet_common::model::Phase::Ready)
            {
                tracing::info!(network = %net, id = %id, "removing the store entry of a container this host no longer has");
                m.store.delete(&keys::container(net, &me, id))?;
                crate::killpoint::reached("agent-entry-dropped");
            }
        }
        // Empty blocks of ours (a setup killed after taking one), under
        // the state lock so that no setup is between block and lease.
        // A last-holder key naming this host for a block nobody holds (the
        // block's key went with an expired lease, or with a host killed
        // between a claim and its first lease) counts too: nothing else
        // removes it while this host has no teardown, and it keeps the
        // block from other hosts and `network rm` refused.
        let empty_candidates = local_overlays.iter().any(|n| {
            let unused = |b: &ipnet::Ipv4Net| {
                !records.iter().any(|e| {
                    e.attachment_on(&n.name)
                        .and_then(|a| a.ipv4())
                        .is_some_and(|ip| b.contains(&ip))
                })
            };
            let held = view.blocks.get(&n.name);
            held.is_some_and(|h| h.iter().any(|(b, v)| v.node == me && unused(b)))
                || view.last_held.get(&n.name).is_some_and(|l| {
                    l.iter()
                        .any(|b| !held.is_some_and(|h| h.contains_key(b)) && unused(b))
                })
        });
        if empty_candidates {
            let locked = ctx.lock()?;
            for n in &local_overlays {
                lease::release_empty(&locked, m, n)?;
            }
        }
    }

    // Members whose lease is gone: down since now, as this host saw it.
    for (node, (kv, mv)) in &view.members {
        if !view.up.contains(node) && mv.down_since.is_none() {
            let down = MemberValue {
                down_since: Some(values::now()),
                ..mv.clone()
            };
            m.store
                .create_or_replace(&kv.key, values::encode(&down), Some(&kv.value), None)?;
            crate::killpoint::reached("agent-down-marked");
        }
    }
    Ok(view.revision)
}

/// Which blocks other hosts hold, remembered past their lease while the
/// holder is a member that is down (`lease::Holders`): forgotten once it
/// is up again (it holds what it needs) or left the cluster.
fn remember_holders(ctx: &Context, view: &View, me: &str) {
    let before = lease::remembered(&ctx.state);
    let down = |node: &str| view.members.contains_key(node) && !view.up.contains(node);
    let now = holders_after(&before, &view.blocks, &down, me);
    if now != before {
        if let Err(e) = lease::remember(&ctx.state, &now) {
            tracing::warn!("the blocks of hosts that are down are not remembered: {e}");
        }
    }
}

/// `before` updated with one pass's `blocks` (every network of the
/// cluster, each with the blocks held now): other hosts' blocks are
/// remembered; a block no host holds any more is kept only while its
/// last holder is `down` (a member without a lease); networks gone are
/// forgotten.
fn holders_after(
    before: &lease::Holders,
    blocks: &BTreeMap<String, BTreeMap<ipnet::Ipv4Net, values::Block>>,
    down: &dyn Fn(&str) -> bool,
    me: &str,
) -> lease::Holders {
    let mut now = before.clone();
    now.retain(|net, _| blocks.contains_key(net));
    for (net, held) in blocks {
        let known = now.entry(net.clone()).or_default();
        known.retain(|b, node| held.contains_key(b) || down(node));
        for (b, v) in held {
            if v.node == me {
                known.remove(b);
            } else {
                known.insert(*b, v.node.clone());
            }
        }
    }
    now.retain(|_, known| !known.is_empty());
    now
}

/// A local copy of an overlay network the cluster no longer has, with no
/// container of this host on it: its devices and definition go.
fn forget_network(ctx: &Locked, nl: &mut Netlink, n: &Network) {
    if let Err(e) = dataplane::remove_device(nl, n) {
        tracing::warn!(network = %n.name, "{e}");
    }
    crate::killpoint::reached("agent-network-unwired");
    if let Err(e) = crate::networks::remove_local(ctx, n) {
        tracing::warn!(network = %n.name, "the removed overlay network's local copy stays: {e}");
    } else {
        tracing::info!(network = %n.name, "overlay network removed in the cluster: local copy removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(node: &str, last: u8) -> values::Block {
        values::Block {
            version: VERSION,
            node: node.into(),
            advertise: std::net::Ipv4Addr::new(10, 99, 0, last),
        }
    }

    #[test]
    fn blocks_of_hosts_that_are_down_are_remembered_until_they_are_up_or_left() {
        let b = |s: &str| s.parse::<ipnet::Ipv4Net>().unwrap();
        let (b0, b1, b2) = (b("10.77.0.0/24"), b("10.77.1.0/24"), b("10.77.2.0/24"));
        let all = BTreeMap::from([(
            "ov".to_string(),
            BTreeMap::from([
                (b0, block("h1", 1)),
                (b1, block("h2", 2)),
                (b2, block("h3", 3)),
            ]),
        )]);
        let nobody_down = |_: &str| false;
        let seen = holders_after(&lease::Holders::new(), &all, &nobody_down, "h1");
        // Its own blocks are not remembered: this host knows them.
        assert_eq!(
            seen,
            BTreeMap::from([(
                "ov".to_string(),
                BTreeMap::from([(b1, "h2".to_string()), (b2, "h3".to_string())])
            )])
        );
        // h2's lease expired (down); h3 gave its block back (up).
        let after = BTreeMap::from([("ov".to_string(), BTreeMap::from([(b0, block("h1", 1))]))]);
        let h2_down = |n: &str| n == "h2";
        let kept = holders_after(&seen, &after, &h2_down, "h1");
        assert_eq!(
            kept,
            BTreeMap::from([("ov".to_string(), BTreeMap::from([(b1, "h2".to_string())]))])
        );
        // Still down at the next pass: still remembered.
        assert_eq!(holders_after(&kept, &after, &h2_down, "h1"), kept);
        // h2 left (no member key) or is up again: forgotten.
        assert!(holders_after(&kept, &after, &nobody_down, "h1").is_empty());
        // Another host took the block: remembered as that host's.
        let taken = BTreeMap::from([("ov".to_string(), BTreeMap::from([(b1, block("h3", 3))]))]);
        assert_eq!(
            holders_after(&kept, &taken, &h2_down, "h1"),
            BTreeMap::from([("ov".to_string(), BTreeMap::from([(b1, "h3".to_string())]))])
        );
        // The network removed from the cluster: forgotten.
        assert!(holders_after(&kept, &BTreeMap::new(), &h2_down, "h1").is_empty());
    }
}
