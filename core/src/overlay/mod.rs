//! Overlay networks across the members of a cluster: what the lifecycle
//! asks of the cluster store. The data plane is the kernel's (VXLAN,
//! routes, neighbour and FDB entries: `dataplane.rs`), kept in step with
//! the store by this host's agent (`agent.rs`); the hook only leases
//! addresses (per-host blocks, `lease.rs`) and says which containers it
//! has (`names.rs`), a few store round trips per setup.
//!
//! Layout (flannel's): each host leases whole blocks of the subnet by a
//! transaction and hands out their addresses itself; the other hosts
//! route each block via its host's VXLAN MAC. On each host the network
//! is a bridge network with the same gateway everywhere and proxy ARP on
//! the bridge, so containers see one subnet.

pub mod agent;
pub mod dataplane;
pub mod definitions;
pub mod lease;
pub mod names;
pub mod neighbours;

use std::path::Path;
use std::time::{Duration, Instant};

use ocinet_cluster::{keys, ClusterConfig, Store};
use ocinet_common::Result;

use crate::context::Context;

/// This host's membership and a connection to the store.
pub struct Member {
    pub cfg: ClusterConfig,
    pub store: Store,
}

impl Member {
    /// The membership (refused on a host that did not join) with the
    /// store connected, within `ocinet_cluster::TIMEOUT`.
    pub fn connect(ctx: &Context) -> Result<Member> {
        Self::connect_in(ctx.config.root())
    }

    pub fn connect_in(config_dir: &Path) -> Result<Member> {
        let cfg = ClusterConfig::required(config_dir)?;
        let store = Store::connect(&cfg)?;
        Ok(Member { cfg, store })
    }

    pub fn node(&self) -> &str {
        &self.cfg.node
    }

    /// The lease this host's keys go on: its node key's, which the agent
    /// keeps alive (as the agent's pid file says, else as the store does).
    pub fn lease_of(&mut self, ctx: &Context) -> Result<i64> {
        match ctx.state.agent_state() {
            Some(a) if a.lease != 0 => Ok(a.lease),
            _ => self.lease(),
        }
    }

    /// The lease of this host's node key in the store.
    pub fn lease(&mut self) -> Result<i64> {
        let key = keys::node(&self.cfg.node);
        match self.store.get(&key)? {
            Some(kv) if kv.lease != 0 => Ok(kv.lease),
            _ => Err(ocinet_common::Error::Conflict(format!(
                "host {} is not registered in the cluster store {} (its agent is not running): see `ocinet cluster ls` and the log",
                self.cfg.node,
                self.store.endpoints()
            ))),
        }
    }
}

/// How long a setup waits for the agent to register again after the
/// store forgot this host's lease (the store was out of reach for longer
/// than the lease's TTL): an agent that lost the store retries every
/// 0.5 s and registers first; one whose connection stayed up notices at
/// its next keep-alive, every third of the TTL. Bounded: the setup holds
/// the state lock meanwhile.
fn lease_wait(ttl: u32) -> Duration {
    Duration::from_millis(u64::from(ttl) * 1000 / 3 + 1000)
        .clamp(Duration::from_secs(3), Duration::from_secs(10))
}

/// Whether the agent has a lease other than `stale` (the one the store no
/// longer knows), waiting for it at most `lease_wait`.
pub(crate) fn agent_registered_again(ctx: &Context, ttl: u32, stale: Option<i64>) -> bool {
    let deadline = Instant::now() + lease_wait(ttl);
    loop {
        if let Some(a) = ctx.state.agent_state() {
            if a.lease != 0 && Some(a.lease) != stale {
                return true;
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "the store forgot this host's lease and its agent has not registered again"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

thread_local! {
    /// One connection per process: a setup leases and then registers, a
    /// CNI front end may run several verbs; each would otherwise pay a
    /// TCP and HTTP/2 handshake.
    static CONNECTED: std::cell::RefCell<Option<Member>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with this host's membership and a store connection, reused
/// within the process while the config is the same; a failure drops it
/// (the next call connects again).
pub fn with_member<T>(ctx: &Context, f: impl FnOnce(&mut Member) -> Result<T>) -> Result<T> {
    let cfg = ClusterConfig::required(ctx.config.root())?;
    let mut m = match CONNECTED.with(|c| c.borrow_mut().take()) {
        Some(m) if m.cfg == cfg => m,
        _ => Member {
            store: Store::connect(&cfg)?,
            cfg,
        },
    };
    let r = f(&mut m);
    if r.is_ok() {
        CONNECTED.with(|c| *c.borrow_mut() = Some(m));
    }
    r
}

/// Whether this host joined a cluster (a host that did not never talks to
/// a store).
pub fn joined(ctx: &Context) -> bool {
    ClusterConfig::path(ctx.config.root()).exists()
}

/// `cluster leave`: every local overlay network's devices and local copy
/// go (the caller found no container on them, under the same lock).
pub fn forget_all(locked: &crate::context::Locked) -> Result<()> {
    let (nets, _) = locked.config.list();
    let mut nl = ocinet_common::netlink::Netlink::new()?;
    for n in nets.iter().filter(|n| n.overlay().is_some()) {
        dataplane::remove_device(&mut nl, n)?;
        crate::networks::remove_local(locked, n)?;
    }
    Ok(())
}

/// Log a value of the store that is refused: once per key and value (at
/// warn), then at debug, so a hostile or broken value does not flood the
/// log at every agent pass (every 2 s, forever).
pub(crate) fn refused(key: &str, value: &[u8], why: impl std::fmt::Display) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
    let h = ocinet_common::validate::fnv1a64(&[key.as_bytes(), b"\0", value].concat());
    let first = {
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        let set = seen.get_or_insert_with(HashSet::new);
        if set.len() > 100_000 {
            // Bounded: a store full of junk is logged again, not kept.
            set.clear();
        }
        set.insert(h)
    };
    if first {
        tracing::warn!(%key, "cluster store: skipping {why}");
    } else {
        tracing::debug!(%key, "cluster store: skipping {why}");
    }
}

/// A kill point of the crash tests (`crate::killpoint`), for the cluster
/// commands of the hook crate.
pub fn step(name: &'static str) {
    crate::killpoint::reached(name);
}

/// The most operations one transaction of `forget_node` carries (etcd's
/// `--max-txn-ops` defaults to 128).
const TXN_OPS: usize = 100;

/// What the store holds of one node, as one read found it.
#[derive(Debug, Default)]
pub struct NodeKeys {
    /// Its member key and value (None: not a member).
    pub member: Option<ocinet_cluster::store::Kv>,
    /// Its node key (Some: its lease is alive, it is up).
    pub up: Option<ocinet_cluster::store::Kv>,
    /// Its blocks and last-holder keys, each named by its value.
    pub blocks: Vec<String>,
    /// `containers/<network>/<node>/`, for each network it has entries on.
    pub containers: Vec<String>,
    /// The store's revision of the read.
    pub revision: i64,
}

impl NodeKeys {
    /// Whether nothing in the store names the node.
    pub fn is_empty(&self) -> bool {
        self.member.is_none()
            && self.up.is_none()
            && self.blocks.is_empty()
            && self.containers.is_empty()
    }
}

/// Every key of `node` in the store, read as of one revision: its member
/// and node keys, the blocks and last-holder keys whose value names it
/// (a value that does not read names nobody), its container entries.
pub fn node_keys(m: &mut Member, node: &str) -> Result<NodeKeys> {
    use ocinet_cluster::values::Block;
    let _span = tracing::debug_span!("node_keys", node).entered();
    let prefixes = [
        keys::member(node),
        keys::node(node),
        keys::all_blocks(),
        keys::all_held(),
        keys::all_containers(),
    ];
    let (read, revision) = m.store.snapshot(&prefixes)?;
    let [member, up, blocks, held, containers] =
        <[Vec<ocinet_cluster::store::Kv>; 5]>::try_from(read).map_err(|_| {
            ocinet_common::Error::Conflict("cluster store: a snapshot of the wrong size".into())
        })?;
    // `members/h2` as a prefix also reads `members/h20`: the exact key only.
    let exact =
        |kvs: Vec<ocinet_cluster::store::Kv>, key: String| kvs.into_iter().find(|kv| kv.key == key);
    let mut out = NodeKeys {
        member: exact(member, keys::member(node)),
        up: exact(up, keys::node(node)),
        revision,
        ..NodeKeys::default()
    };
    for kv in blocks.iter().chain(&held) {
        if Block::read(&kv.key, &kv.value).is_ok_and(|b| b.node == node) {
            out.blocks.push(kv.key.clone());
        }
    }
    let mut nets = std::collections::BTreeSet::new();
    for kv in &containers {
        if let Some((net, n, _)) = keys::parse_container(&kv.key) {
            if n == node {
                nets.insert(net);
            }
        }
    }
    out.containers = nets
        .iter()
        .map(|net| format!("{}{node}/", keys::containers(net)))
        .collect();
    Ok(out)
}

/// Remove every key `found` lists of `node`, only while the store still
/// holds what it was read as where it matters: with `down`, the node key
/// absent (its lease gone: it cannot be running containers the store
/// knows of), its member key unchanged since the read (a host that
/// registered again in between rewrote it), and each block and last-holder
/// key unchanged since the read (another host may take a down host's
/// block over meanwhile, when no other is free: the keys are then that
/// host's, and deleting its last-holder key would take away what keeps
/// its block from being given out while it is cut off). Normally one
/// transaction; a node with more keys than one carries has its blocks and
/// entries removed in earlier transactions under the same guards and its
/// member and node keys in the last, so a removal cut short is still a
/// member and is finished by running it again. Whether it was done
/// (false: the store changed; read again).
pub fn forget_node(m: &mut Member, node: &str, found: &NodeKeys, down: bool) -> Result<bool> {
    use ocinet_cluster::Guard;
    let _span = tracing::info_span!("forget_node", node, down).entered();
    let mut base = Vec::new();
    if down {
        base.push(Guard::Absent(keys::node(node)));
        base.push(Guard::KeyUnchanged(keys::member(node), found.revision));
    }
    let (mut keys_left, mut prefixes_left) = (found.blocks.clone(), found.containers.clone());
    loop {
        // Room for the member and node keys of the last transaction; a
        // guard per block key keeps the compares under etcd's limit too.
        let room = TXN_OPS - 2;
        let keys: Vec<String> = keys_left.drain(..room.min(keys_left.len())).collect();
        let prefixes: Vec<String> = prefixes_left
            .drain(..(room - keys.len()).min(prefixes_left.len()))
            .collect();
        let mut guards = base.clone();
        if down {
            guards.extend(
                keys.iter()
                    .map(|k| Guard::KeyUnchanged(k.clone(), found.revision)),
            );
        }
        let last = keys_left.is_empty() && prefixes_left.is_empty();
        let mut deleted = keys;
        if last {
            deleted.push(keys::member(node));
            deleted.push(keys::node(node));
        }
        if !m.store.delete_guarded(&deleted, &prefixes, &guards)? {
            return Ok(false);
        }
        if last {
            return Ok(true);
        }
        step("forget-node-batch");
    }
}
