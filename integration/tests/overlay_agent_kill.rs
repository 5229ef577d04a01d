//! Issue 23, "SIGKILL of the hook and of the agent at every step, then gc
//! or the next call: nothing leaked locally or in etcd", for the overlay
//! agent (`ocinet agent`): killed at each step where it writes to the
//! store or to the kernel (debug builds honour `OCINET_TEST_KILL_AT`,
//! which the agent inherits from the `ocinet gc` that starts it; the
//! steps are listed in core/src/killpoint.rs), then started again as a
//! user would, by `ocinet gc`. Once its pass ran, the containers on the
//! two hosts reach each other again, both kernels have what a clean agent
//! programs, and the store holds exactly what it held before the kill.
//! Simulated hosts on an underlay with a real etcd (see
//! `ocinet_integration::cluster`); the test lease TTL is 5 s.

use std::collections::BTreeMap;
use std::time::Duration;

use ocinet_integration::cluster::{kill_agents, ping, Cluster, Etcd};
use ocinet_integration::{ok, text, Host, Runtime, Spec};

const SUBNET: &str = "10.77.0.0/16";
/// A block of `SUBNET` no container of the test is in.
const SPARE_BLOCK: &str = "10.77.200.0-24";
/// Another.
const SPARE_HELD: &str = "10.77.201.0-24";

fn ip_of(h: &Host, id: &str, net: &str) -> String {
    ocinet_integration::cluster::ip_on(h, id, net)
}

/// The network's VXLAN device on `h` (one overlay network in the test).
fn vxlan_dev(h: &Host) -> Option<String> {
    h.links("vxlan").into_iter().find(|l| l.starts_with("ocv"))
}

/// What the agent programs on `h`: its VXLAN device and the device's
/// routes, permanent neighbours and FDB entries, each list sorted.
fn kernel(h: &Host) -> String {
    let Some(dev) = vxlan_dev(h) else {
        return "no VXLAN device".into();
    };
    let sorted = |args: &[&str]| {
        let out = text(&h.exec(args));
        let mut l: Vec<&str> = out.lines().map(str::trim).collect();
        l.sort_unstable();
        l.join("\n")
    };
    format!(
        "device {dev}\nroutes:\n{}\nneighbours:\n{}\nfdb:\n{}",
        sorted(&["ip", "route", "show", "dev", &dev]),
        sorted(&["ip", "neigh", "show", "dev", &dev, "nud", "permanent"]),
        sorted(&["bridge", "fdb", "show", "dev", &dev]),
    )
}

/// The lease of `node`'s node key, in etcdctl's hexadecimal.
fn lease_of(etcd: &Etcd, node: &str) -> String {
    let out = ok(etcd.etcdctl(&["get", &format!("/ocinet/v1/nodes/{node}"), "-w", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
    let lease = v["kvs"][0]["lease"]
        .as_i64()
        .unwrap_or_else(|| panic!("{node}'s node key has no lease: {out}"));
    format!("{lease:x}")
}

/// The lease `key` is on (etcdctl's hexadecimal), `None` without one.
fn lease_on(etcd: &Etcd, key: &str) -> Option<String> {
    let out = ok(etcd.etcdctl(&["get", key, "-w", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
    v["kvs"][0]["lease"]
        .as_i64()
        .filter(|l| *l != 0)
        .map(|l| format!("{l:x}"))
}

/// The lease `h`'s agent registered the host on, once it did.
fn registered(h: &Host) -> Option<String> {
    let out = ok(h.ocinet(&["cluster", "status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("cluster status --json");
    let agent = &v["agent"];
    if agent["registered"] != true
        || !agent["pid"]
            .as_i64()
            .is_some_and(|p| h.agents().contains(&(p as i32)))
    {
        return None;
    }
    agent["lease"].as_str().map(str::to_string)
}

/// Keys of `node`'s that live on its lease: its node key, its blocks, its
/// containers' entries.
fn leased_keys<'a>(store: &'a BTreeMap<String, String>, node: &str) -> Vec<&'a String> {
    store
        .iter()
        .filter(|(k, v)| {
            *k == &format!("/ocinet/v1/nodes/{node}")
                || k.starts_with(&format!("/ocinet/v1/containers/ov/{node}/"))
                || (k.starts_with("/ocinet/v1/blocks/")
                    && v.contains(&format!("\"node\":\"{node}\"")))
        })
        .map(|(k, _)| k)
        .collect()
}

fn log_tail(h: &Host, n: usize) -> String {
    let log = h.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What makes h1's agent, armed with a step, reach it.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Its start: registering, on the lease that is still alive.
    Start,
    /// h1's lease revoked (the store forgot it: an expiry): a new lease,
    /// h1's entries and blocks put back on it.
    Revoke,
    /// h1's VXLAN device deleted: made again and programmed.
    DeleteDevice,
    /// h2's agent killed and its lease revoked: h1 removes its entries for
    /// h2's block and marks h2 down.
    PeerDown,
    /// A container of h1 dies without its poststop: its entry dropped.
    DeadContainer,
    /// A block of h1's with no container in it (a setup killed after its
    /// claim): given back.
    EmptyBlock,
    /// A last-holder key naming h1 for a block nobody holds (its block's
    /// key went with an expired lease): removed.
    LoneHeldKey,
    /// An overlay network created on h2: h1 copies its definition (then it
    /// is removed on h2, before h1's agent is started again).
    NetworkCreated,
    /// An overlay network h1 copied removed on h2: h1 drops its copy.
    NetworkRemoved,
}

const STEPS: &[(&str, Trigger)] = &[
    ("agent-node-put", Trigger::Start),
    ("agent-registered", Trigger::Start),
    ("agent-lease-granted", Trigger::Revoke),
    ("agent-entry-put", Trigger::Revoke),
    ("agent-block-claimed", Trigger::Revoke),
    ("agent-device-made", Trigger::DeleteDevice),
    ("vxlan-fdb-added", Trigger::DeleteDevice),
    ("vxlan-neighbours-set", Trigger::DeleteDevice),
    ("vxlan-stale-removed", Trigger::PeerDown),
    ("agent-down-marked", Trigger::PeerDown),
    ("agent-entry-dropped", Trigger::DeadContainer),
    ("block-released", Trigger::EmptyBlock),
    ("held-released", Trigger::LoneHeldKey),
    ("agent-network-adopted", Trigger::NetworkCreated),
    ("agent-network-unwired", Trigger::NetworkRemoved),
];

/// The second overlay network of `Trigger::NetworkCreated` and `Removed`.
const OTHER: &str = "ov2";

fn create_other(h: &Host) {
    ok(h.ocinet(&[
        "network",
        "create",
        OTHER,
        "--driver",
        "overlay",
        "--subnet",
        "10.78.0.0/16",
    ]));
}

/// Whether `h` has a definition of `OTHER` (its own copy: `inspect` reads
/// only the config directory).
fn has_other(h: &Host) -> bool {
    h.ocinet(&["network", "inspect", OTHER]).status.success()
}

/// For each agent step: h1's agent started by `ocinet gc` with the step
/// armed, the trigger that makes it write there, its death there, then
/// `ocinet gc` on both hosts as a user would run it; once the new agent's
/// pass ran, the store equals the snapshot taken before (every key and
/// value: no orphan, nothing missing), both kernels equal theirs (device,
/// routes, neighbours, FDB), and the containers reach each other across
/// the hosts. One cluster for all steps: each ends where it began.
#[test]
fn the_agent_killed_at_each_step_is_made_whole_by_gc_with_nothing_leaked() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    ok(h1.ocinet(&[
        "network", "create", "ov", "--driver", "overlay", "--subnet", SUBNET,
    ]));
    let a = h1.started(Runtime::Runc, "a", &Spec::on("ov", "alpha"));
    let b = h2.started(Runtime::Runc, "b", &Spec::on("ov", "beta"));
    let (ipa, ipb) = (ip_of(h1, &a.id, "ov"), ip_of(h2, &b.id, "ov"));
    assert!(
        ping(h1, &a.id, &ipb, Duration::from_secs(10)),
        "alpha does not reach beta {ipb}:\n{}",
        kernel(h1)
    );
    assert!(
        ping(h2, &b.id, &ipa, Duration::from_secs(10)),
        "beta does not reach alpha {ipa}:\n{}",
        kernel(h2)
    );
    // Both agents' passes are done once h2 has its route to h1's block.
    let before_store = c.etcd.pairs("/ocinet/v1/");
    let (before1, before2) = (kernel(h1), kernel(h2));
    let leases_before = (h1.leases("ov"), h2.leases("ov"));
    assert!(
        before1.contains(&ipb[..ipb.rfind('.').unwrap_or(0)])
            && before2.contains(&ipa[..ipa.rfind('.').unwrap_or(0)]),
        "the kernels lack the remote blocks before any kill:\n{before1}\n{before2}"
    );
    let h1_block = before_store
        .iter()
        .find(|(k, v)| k.starts_with("/ocinet/v1/blocks/ov/") && v.contains("\"node\":\"h1\""))
        .map(|(_, v)| v.clone())
        .expect("h1 holds a block");

    for &(step, trigger) in STEPS {
        let when = format!("agent killed at {step} ({trigger:?})");
        let started = std::time::Instant::now();
        kill_agents(h1);
        let mut dead = None;
        if matches!(trigger, Trigger::Revoke) {
            // Before the agent starts: it finds its node key gone.
            ok(c.etcd
                .etcdctl(&["lease", "revoke", &lease_of(&c.etcd, "h1")]));
        }
        // Armed: the agent inherits OCINET_TEST_KILL_AT from gc. Not
        // checked: gc fails when the agent it started dies before gc saw
        // it run (a step of its start).
        let armed = h1.ocinet_with_env(&["gc"], &[("OCINET_TEST_KILL_AT", step)]);
        match trigger {
            Trigger::Start | Trigger::Revoke => {}
            Trigger::DeleteDevice => {
                let dev = vxlan_dev(h1).expect("h1's VXLAN device");
                ok(h1.exec(&["ip", "link", "del", &dev]));
            }
            Trigger::PeerDown => {
                let lease = lease_of(&c.etcd, "h2");
                kill_agents(h2);
                ok(c.etcd.etcdctl(&["lease", "revoke", &lease]));
            }
            Trigger::DeadContainer => {
                let ann = serde_json::json!({"io.ocinet.network": "ov", "io.ocinet.name": "gone"});
                let mut v = h1.bare_container("gone", ann);
                ok(h1.hook("createRuntime", &v.state, &[]));
                // Its runtime died with it: no poststop.
                v.kill();
                dead = Some(v);
            }
            Trigger::EmptyBlock => {
                // A claim's two keys (its transaction is the hook's), the
                // last-holder key first: seen alone, it is removed as in
                // `LoneHeldKey`; with the block, both go in one transaction.
                let lease = lease_of(&c.etcd, "h1");
                for key in [
                    format!("/ocinet/v1/held/ov/{SPARE_BLOCK}"),
                    format!("/ocinet/v1/blocks/ov/{SPARE_BLOCK}"),
                ] {
                    let mut args = vec!["put", key.as_str(), h1_block.as_str()];
                    let on = format!("--lease={lease}");
                    if key.contains("/blocks/") {
                        args.push(&on);
                    }
                    ok(c.etcd.etcdctl(&args));
                }
            }
            Trigger::LoneHeldKey => {
                let key = format!("/ocinet/v1/held/ov/{SPARE_HELD}");
                ok(c.etcd.etcdctl(&["put", &key, &h1_block]));
            }
            Trigger::NetworkCreated => create_other(h2),
            Trigger::NetworkRemoved => {
                create_other(h2);
                assert!(
                    Cluster::eventually(Duration::from_secs(10), || has_other(h1)),
                    "{when}: h1's agent did not copy {OTHER}; log:\n{}",
                    log_tail(h1, 30)
                );
                ok(h2.ocinet(&["network", "rm", OTHER]));
            }
        }
        assert!(
            Cluster::eventually(Duration::from_secs(15), || h1.agents().is_empty()),
            "{when}: the agent did not die there; log:\n{}",
            log_tail(h1, 30)
        );
        assert!(
            log_tail(h1, 400)
                .lines()
                .any(|l| l.contains("OCINET_TEST_KILL_AT") && l.contains(step)),
            "{when}: the agent ended, but not at its kill point; gc: {}; log:\n{}",
            text(&armed),
            log_tail(h1, 30)
        );

        if matches!(trigger, Trigger::NetworkCreated) {
            assert!(
                has_other(h1),
                "{when}: the agent died before it copied {OTHER}"
            );
            ok(h2.ocinet(&["network", "rm", OTHER]));
        }
        // As a user would: gc on the host whose agent is gone (and on the
        // other host, whose agent the trigger may have ended).
        ok(h1.ocinet(&["gc"]));
        ok(h2.ocinet(&["gc"]));
        if let Some(v) = dead.take() {
            // gc tore the dead container down: nothing of it here.
            let left = h1.leftovers(&v.id);
            assert!(left.is_empty(), "{when}: {left:?}");
        }
        let whole = || {
            registered(h1).is_some()
                && registered(h2).is_some()
                && c.etcd.pairs("/ocinet/v1/") == before_store
                && kernel(h1) == before1
                && kernel(h2) == before2
                && !has_other(h1)
                && !has_other(h2)
        };
        if !Cluster::eventually(Duration::from_secs(20), whole) {
            let now = c.etcd.pairs("/ocinet/v1/");
            let orphans: Vec<_> = now
                .iter()
                .filter(|(k, v)| before_store.get(*k) != Some(*v))
                .collect();
            let missing: Vec<_> = before_store
                .iter()
                .filter(|(k, v)| now.get(*k) != Some(*v))
                .collect();
            panic!(
                "{when}: not made whole after gc\nagents h1 {:?} h2 {:?}\n{OTHER} on h1 {} on h2 {}\nstore: new or changed {orphans:?}, missing or changed {missing:?}\n\
                 h1 kernel now:\n{}\nbefore:\n{before1}\nh2 kernel now:\n{}\nbefore:\n{before2}\nh1 log:\n{}",
                h1.agents(),
                h2.agents(),
                has_other(h1),
                has_other(h2),
                kernel(h1),
                kernel(h2),
                log_tail(h1, 30)
            );
        }
        assert_eq!(
            (h1.leases("ov"), h2.leases("ov")),
            leases_before,
            "{when}: the hosts' addresses on ov"
        );
        // Every key of a host on the lease its agent holds now (none left
        // on a lease of the dead agent's, which would expire with it).
        for (h, node) in [(h1, "h1"), (h2, "h2")] {
            let lease = registered(h);
            for k in leased_keys(&before_store, node) {
                assert_eq!(lease_on(&c.etcd, k), lease, "{when}: {k}'s lease");
            }
        }
        // Still so after a periodic pass of the new agent (every 2 s):
        // a pass left to run would have nothing to undo or add.
        std::thread::sleep(Duration::from_millis(2500));
        assert!(whole(), "{when}: made whole, then changed by a later pass");
        assert!(
            ping(h1, &a.id, &ipb, Duration::from_secs(5)),
            "{when}: alpha does not reach beta {ipb}"
        );
        assert!(
            ping(h2, &b.id, &ipa, Duration::from_secs(5)),
            "{when}: beta does not reach alpha {ipa}"
        );
        eprintln!("{when}: made whole in {:?}", started.elapsed());
    }
}
