//! Issue 23, "Faults (each one tested)": the overlay network when a host
//! dies, restarts, loses the store, is partitioned from another host, and
//! when the hook or the agent is SIGKILLed at any step. Simulated hosts on
//! an underlay with a real etcd (see `ocinet_integration::cluster`); the
//! test lease TTL is 5 s.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use ocinet_integration::cluster::{kill_agents, names_node, ping, Cluster, Etcd, TEST_TTL};
use ocinet_integration::{ok, text, Host, Runtime, Spec};

const SUBNET: &str = "10.77.0.0/16";

fn ttl() -> Duration {
    Duration::from_secs(TEST_TTL.parse().unwrap_or(5))
}

fn overlay(h: &Host, name: &str) {
    ok(h.ocinet(&[
        "network", "create", name, "--driver", "overlay", "--subnet", SUBNET,
    ]));
}

fn ip_of(h: &ocinet_integration::Host, id: &str, net: &str) -> String {
    ocinet_integration::cluster::ip_on(h, id, net)
}

/// Every overlay address `ps` shows on `h`, as (address, container id).
fn overlay_addresses(h: &Host, net: &str) -> Vec<(String, String)> {
    h.ps()
        .iter()
        .flat_map(|e| {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            e["attachments"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["network"] == net)
                .filter_map(move |a| Some((a["ip"].as_str()?.to_string(), id.clone())))
        })
        .collect()
}

/// The network's VXLAN device on `h` (the only one: one overlay network
/// per test).
fn vxlan_dev(h: &Host) -> Option<String> {
    h.links("vxlan").into_iter().find(|l| l.starts_with("ocv"))
}

/// What the kernel of `h` has on `dev`: routes, neighbours, FDB entries.
fn kernel_entries(h: &Host, dev: &str) -> String {
    let r = text(&h.exec(&["ip", "route", "show", "dev", dev]));
    let n = text(&h.exec(&["ip", "neigh", "show", "dev", dev]));
    let f = text(&h.exec(&["bridge", "fdb", "show", "dev", dev]));
    format!("routes:\n{r}neighbours:\n{n}fdb:\n{f}")
}

/// The block (x.y.z.0/24) an address is in.
fn block_of(ip: &str) -> String {
    let mut o: Vec<&str> = ip.split('.').collect();
    o.truncate(3);
    format!("{}.0", o.join("."))
}

/// Whether `h` has a route, a neighbour or an FDB entry on `dev` for the
/// block `block` held by the host at `advertise`.
fn has_entries_for(h: &Host, dev: &str, block: &str, advertise: &str) -> bool {
    let r = text(&h.exec(&["ip", "route", "show", "dev", dev]));
    let n = text(&h.exec(&["ip", "neigh", "show", "dev", dev]));
    let f = text(&h.exec(&["bridge", "fdb", "show", "dev", dev]));
    r.lines().any(|l| l.starts_with(&format!("{block}/")))
        || n.lines().any(|l| l.starts_with(&format!("{block} ")))
        || f.lines().any(|l| l.contains(&format!("dst {advertise} ")))
}

/// The blocks of `net` held by `node`, as their keys.
fn blocks_of(etcd: &Etcd, net: &str, node: &str) -> Vec<String> {
    etcd.pairs(&format!("/ocinet/v1/blocks/{net}/"))
        .into_iter()
        .filter(|(_, v)| v.contains(&format!("\"node\":\"{node}\"")))
        .map(|(k, _)| k)
        .collect()
}

fn container_key(net: &str, node: &str, id: &str) -> String {
    format!("/ocinet/v1/containers/{net}/{node}/{id}")
}

fn has_key(etcd: &Etcd, key: &str) -> bool {
    etcd.keys(key).iter().any(|k| k == key)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Two joined hosts with a container each on overlay network `ov`,
/// reaching each other: (cluster, id on h1, ip on h1, id on h2, ip on h2).
/// The containers live as long as the hosts (the harness stops them).
fn two_hosts_talking() -> (Cluster, String, String, String, String) {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    overlay(h1, "ov");
    let a = h1.started(Runtime::Runc, "a", &Spec::on("ov", "alpha"));
    let b = h2.started(Runtime::Runc, "b", &Spec::on("ov", "beta"));
    let (ipa, ipb) = (ip_of(h1, &a.id, "ov"), ip_of(h2, &b.id, "ov"));
    assert!(
        ping(h1, &a.id, &ipb, Duration::from_secs(10)),
        "alpha does not reach beta {ipb}: {}",
        kernel_entries(h1, &vxlan_dev(h1).unwrap_or_default())
    );
    assert!(
        ping(h2, &b.id, &ipa, Duration::from_secs(10)),
        "beta does not reach alpha {ipa}"
    );
    (c, a.id, ipa, b.id, ipb)
}

/// A host that dies (agent SIGKILLed, cut from the underlay): its blocks
/// and entries stay in the store until its lease expired, then the other
/// host removes its route, neighbour and FDB entries, and `cluster ls`
/// shows it down since a time.
#[test]
fn a_dead_host_is_forgotten_after_its_lease_and_not_before() {
    let (c, _a, _ipa, b, ipb) = two_hosts_talking();
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    let dev = vxlan_dev(h1).expect("h1 has the VXLAN device");
    let block = block_of(&ipb);
    let h2_blocks = blocks_of(&c.etcd, "ov", "h2");
    assert_eq!(h2_blocks.len(), 1, "h2 holds one block: {h2_blocks:?}");
    assert!(has_entries_for(h1, &dev, &block, &c.addr(1)));
    let ckey = container_key("ov", "h2", &b);
    assert!(has_key(&c.etcd, &ckey), "beta's entry is in the store");

    // The host dies: its agent killed, its link to the others gone.
    kill_agents(h2);
    ok(h2.exec(&["ip", "link", "del", "ul0"]));
    let died = Instant::now();

    // Until its lease expired its blocks stay: its containers may run.
    let mut gone_after = None;
    while died.elapsed() < ttl() * 3 {
        let blocks = blocks_of(&c.etcd, "ov", "h2");
        if blocks.is_empty() {
            gone_after = Some(died.elapsed());
            break;
        }
        assert_eq!(blocks, h2_blocks);
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone_after = gone_after.unwrap_or_else(|| {
        panic!(
            "h2's blocks still in the store {:?} after {:?}",
            blocks_of(&c.etcd, "ov", "h2"),
            died.elapsed()
        )
    });
    // The lease was last kept alive at most TTL/3 (1 s) before the kill.
    assert!(
        gone_after >= ttl() - Duration::from_millis(1500),
        "h2's blocks left the store {gone_after:?} after its agent died, before its {:?} lease can have expired",
        ttl()
    );
    assert!(
        !has_key(&c.etcd, "/ocinet/v1/nodes/h2"),
        "the blocks went with the lease"
    );
    assert!(!has_key(&c.etcd, &ckey), "beta's entry went with the lease");

    // h1 drops its kernel entries for h2 (a watch event, or the next pass).
    assert!(
        Cluster::eventually(Duration::from_secs(6), || !has_entries_for(
            h1,
            &dev,
            &block,
            &c.addr(1)
        )),
        "h1 still has entries for the dead h2 ({block}, {}):\n{}",
        c.addr(1),
        kernel_entries(h1, &dev)
    );
    // Down, with a time.
    assert!(
        Cluster::eventually(Duration::from_secs(5), || {
            c.members(0)
                .iter()
                .any(|m| m["node"] == "h2" && m["state"] == "down" && m["down_since"].is_string())
        }),
        "cluster ls on h1: {:?}",
        c.members(0)
    );
    let h1_row = c.members(0).into_iter().find(|m| m["node"] == "h1");
    assert_eq!(h1_row.map(|m| m["state"].clone()), Some("up".into()));
    // The other host's names no longer resolve there.
    let names =
        std::fs::read_to_string(h1.state_dir().join("cluster/names.json")).unwrap_or_default();
    assert!(!names.contains(&b), "h1 still serves beta's name: {names}");
}

/// A host whose agent is SIGKILLed (its containers keep running) and whose
/// lease then expires comes back, on the next agent, with the same
/// addresses: its keys are back in the store and the other host reaches
/// its containers. A VXLAN device deleted by hand is made again by
/// `firewall reload` and programmed by the agent.
#[test]
fn a_restarted_host_keeps_its_addresses_and_its_kernel_state_is_rebuilt() {
    let (c, a, ipa, b, ipb) = two_hosts_talking();
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    let dev1 = vxlan_dev(h1).expect("h1's VXLAN device");
    let block_b = block_of(&ipb);
    let old_blocks = blocks_of(&c.etcd, "ov", "h2");
    kill_agents(h2);
    // The lease expires: the store forgets h2, h1 its route to h2.
    assert!(
        Cluster::eventually(ttl() * 3, || blocks_of(&c.etcd, "ov", "h2").is_empty()),
        "h2's blocks outlived its lease"
    );
    assert!(
        Cluster::eventually(Duration::from_secs(6), || !has_entries_for(
            h1,
            &dev1,
            &block_b,
            &c.addr(1)
        )),
        "h1 kept its entries for h2:\n{}",
        kernel_entries(h1, &dev1)
    );
    assert_eq!(
        ip_of(h2, &b, "ov"),
        ipb,
        "beta kept its address while the agent was gone"
    );

    // With no agent, the kernel state is rebuilt from the local records
    // as nftables' is: `firewall reload` makes a VXLAN device deleted by
    // hand again (by its index: a new device).
    let dev2 = vxlan_dev(h2).expect("h2's VXLAN device");
    let index = |h: &Host| {
        text(&h.exec(&["ip", "-o", "link", "show", "dev", &dev2]))
            .split(':')
            .next()
            .and_then(|i| i.trim().parse::<u32>().ok())
    };
    let first = index(h2).expect("its index");
    ok(h2.exec(&["ip", "link", "del", &dev2]));
    assert_eq!(index(h2), None, "{dev2} was not deleted");
    ok(h2.ocinet(&["firewall", "reload"]));
    let second = index(h2);
    assert!(
        second.is_some_and(|i| i != first),
        "firewall reload did not make {dev2} again"
    );

    // The host's agent comes back (the same join again).
    ok(c.join(1));
    assert!(!h2.agents().is_empty(), "cluster join started no agent");
    assert!(
        Cluster::eventually(Duration::from_secs(6), || {
            blocks_of(&c.etcd, "ov", "h2") == old_blocks
                && has_key(&c.etcd, &container_key("ov", "h2", &b))
        }),
        "h2's block {old_blocks:?} and beta's entry are not back: {:?}",
        c.etcd.pairs("/ocinet/v1/")
    );
    assert_eq!(ip_of(h2, &b, "ov"), ipb, "beta's address changed");
    assert!(
        ping(h1, &a, &ipb, Duration::from_secs(8)),
        "alpha does not reach beta {ipb} after h2 came back:\n{}",
        kernel_entries(h1, &dev1)
    );
    assert!(
        ping(h2, &b, &ipa, Duration::from_secs(8)),
        "beta does not reach alpha {ipa} over the rebuilt {dev2}:\n{}",
        kernel_entries(h2, &dev2)
    );

    // With the agent running, the device deleted again is made again
    // and programmed by its next pass, with no command.
    let second = second.unwrap_or_default();
    ok(h2.exec(&["ip", "link", "del", &dev2]));
    assert!(
        Cluster::eventually(Duration::from_secs(5), || {
            index(h2).is_some_and(|i| i != second)
        }),
        "the agent did not make the deleted {dev2} again"
    );
    assert!(
        ping(h2, &b, &ipa, Duration::from_secs(8)),
        "beta does not reach alpha {ipa} after the agent rebuilt {dev2}:\n{}",
        kernel_entries(h2, &dev2)
    );
}

/// etcd down (paused: a hung store; stopped: refused): running containers
/// keep talking, a new overlay setup fails soon naming the store and
/// leaves nothing, a bridge container is set up meanwhile; when etcd is
/// back the agents resync without a restart.
#[test]
fn with_etcd_unreachable_the_data_plane_holds_and_setups_fail_fast_and_clean() {
    let (mut c, a, _ipa, b, ipb) = two_hosts_talking();
    let agents = (c.hosts[0].agents(), c.hosts[1].agents());
    for hung in [true, false] {
        let how = if hung { "paused" } else { "stopped" };
        if hung {
            c.etcd.pause();
        } else {
            c.etcd.stop();
        }
        let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
        // The agents' passes fail from now on; the kernel keeps its entries.
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            ping(h1, &a, &ipb, Duration::from_secs(3)),
            "etcd {how}: alpha no longer reaches beta {ipb}"
        );
        assert!(
            ping(h2, &b, &ip_of(h1, &a, "ov"), Duration::from_secs(3)),
            "etcd {how}: beta no longer reaches alpha"
        );

        let t = Instant::now();
        let mut d = h1.start(
            Runtime::Runc,
            &format!("new-{how}"),
            &Spec::on("ov", "delta"),
        );
        let took = t.elapsed();
        eprintln!("etcd {how}: the overlay setup failed after {took:?}");
        let st = h1.wait_runtime(&mut d, Duration::from_secs(20));
        assert!(
            st.is_some_and(|s| !s.success()),
            "etcd {how}: an overlay setup did not fail: {st:?} {}",
            d.output()
        );
        // Generous: the store's bound is 2 s per request; runc's hook
        // timeout is unset, podman's 30 s.
        assert!(
            took < Duration::from_secs(10),
            "etcd {how}: the setup took {took:?} to fail"
        );
        let why = format!("{}\n{}", d.output(), h1.log());
        assert!(
            why.contains("cluster store") && why.contains("10.99.0.254:2379"),
            "etcd {how}: the failure does not name the store: {}",
            d.output()
        );
        assert!(
            h1.endpoint(&d.id).is_none(),
            "etcd {how}: the failed setup left its record"
        );
        let left = h1.leftovers(&d.id);
        assert!(
            left.is_empty(),
            "etcd {how}: the failed setup left {left:?}"
        );

        // A bridge network does not need the store.
        let mut e = h1.started(
            Runtime::Runc,
            &format!("br-{how}"),
            &Spec::on("ocinet", "echo"),
        );
        assert!(h1.endpoint(&e.id).is_some());
        h1.stop(&mut e);
        assert!(h1.leftovers(&e.id).is_empty());

        if hung {
            c.etcd.resume();
        } else {
            c.etcd.restart();
        }
        let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
        // Resync without a restart: a new container on h2 is reached from
        // h1 by address and by name.
        let name = format!("new{how}");
        let n = h2.started(Runtime::Runc, &format!("n-{how}"), &Spec::on("ov", &name));
        let ipn = ip_of(h2, &n.id, "ov");
        assert!(
            ping(h1, &a, &ipn, Duration::from_secs(10)),
            "etcd {how} then back: alpha does not reach {ipn} on h2"
        );
        assert!(
            Cluster::eventually(Duration::from_secs(8), || text(
                &h1.in_container_fs(&a, &["nslookup", &name])
            )
            .contains(&ipn)),
            "etcd {how} then back: {name} does not resolve on h1: {}",
            text(&h1.in_container_fs(&a, &["nslookup", &name]))
        );
        assert_eq!(
            (h1.agents(), h2.agents()),
            agents,
            "the agents were restarted"
        );
    }
}

/// A partition between two hosts that both still reach etcd, with
/// setups on both sides racing for blocks; then a host cut from
/// everything past its lease while a third sets up: after healing, no
/// address is held twice (every host's `ps` and the store agree).
#[test]
fn a_partition_heals_without_an_address_given_twice() {
    let c = Cluster::joined(3);
    let (h1, h2, h3) = (&c.hosts[0], &c.hosts[1], &c.hosts[2]);
    overlay(h1, "ov");
    // Make sure h2 and h3 have the definition before the cut.
    for h in [h2, h3] {
        assert!(Cluster::eventually(Duration::from_secs(5), || {
            text(&h.ocinet(&["network", "ls"])).contains("ov ")
        }));
    }
    let cut = |from: &Host, to: &str, on: bool| {
        let verb = if on { "add" } else { "del" };
        ok(from.exec(&["ip", "route", verb, "blackhole", &format!("{to}/32")]));
    };
    // h1 and h2 do not reach each other; both reach etcd.
    cut(h1, &c.addr(1), true);
    cut(h2, &c.addr(0), true);
    let mut ids: Vec<(usize, String)> = Vec::new();
    std::thread::scope(|s| {
        let t1 = s.spawn(|| {
            (0..2)
                .map(|i| {
                    h1.started(
                        Runtime::Runc,
                        &format!("p1{i}"),
                        &Spec::on("ov", &format!("p1{i}")),
                    )
                    .id
                })
                .collect::<Vec<_>>()
        });
        let t2 = s.spawn(|| {
            (0..2)
                .map(|i| {
                    h2.started(
                        Runtime::Runc,
                        &format!("p2{i}"),
                        &Spec::on("ov", &format!("p2{i}")),
                    )
                    .id
                })
                .collect::<Vec<_>>()
        });
        ids.extend(t1.join().expect("h1 setups").into_iter().map(|id| (0, id)));
        ids.extend(t2.join().expect("h2 setups").into_iter().map(|id| (1, id)));
    });
    cut(h1, &c.addr(1), false);
    cut(h2, &c.addr(0), false);
    let ip1 = ip_of(h1, &ids[0].1, "ov");
    let ip2 = ip_of(h2, &ids[2].1, "ov");
    assert!(
        ping(h1, &ids[0].1, &ip2, Duration::from_secs(10)),
        "healed: h1 does not reach {ip2} on h2"
    );
    assert!(ping(h2, &ids[2].1, &ip1, Duration::from_secs(10)));

    // h2 cut from everything (etcd too) past its lease; meanwhile h3,
    // which had no block yet, and h1 set up containers.
    c.ul.set_link(h2, false);
    assert!(
        Cluster::eventually(ttl() * 3, || !has_key(&c.etcd, "/ocinet/v1/nodes/h2")),
        "h2's lease did not expire while it was cut off"
    );
    let late3 = h3.started(Runtime::Runc, "late3", &Spec::on("ov", "late3"));
    let late1 = h1.started(Runtime::Runc, "late1", &Spec::on("ov", "late1"));
    ids.push((2, late3.id.clone()));
    ids.push((0, late1.id.clone()));
    c.ul.set_link(h2, true);
    // h2 is back in the store with its containers.
    assert!(
        Cluster::eventually(Duration::from_secs(10), || {
            ids.iter()
                .filter(|(i, _)| *i == 1)
                .all(|(_, id)| has_key(&c.etcd, &container_key("ov", "h2", id)))
        }),
        "h2's containers are not back in the store: {:?}",
        c.etcd.pairs("/ocinet/v1/")
    );

    // Every address once: in the hosts' records and in the store.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, h) in c.hosts.iter().enumerate() {
        for (ip, id) in overlay_addresses(h, "ov") {
            if let Some(other) = seen.insert(ip.clone(), format!("{id} on h{}", i + 1)) {
                panic!(
                    "{ip} is held twice: by {other} and by {id} on h{}\nstore: {:?}",
                    i + 1,
                    c.etcd.pairs("/ocinet/v1/")
                );
            }
        }
    }
    assert_eq!(seen.len(), ids.len(), "{seen:?}");
    let entries = c.etcd.pairs("/ocinet/v1/containers/ov/");
    let mut in_store: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &entries {
        let doc: serde_json::Value = serde_json::from_str(v).expect("entry is JSON");
        for ip in doc["addresses"].as_array().into_iter().flatten() {
            let ip = ip.as_str().unwrap_or_default().to_string();
            assert!(
                in_store.insert(ip.clone(), k.clone()).is_none(),
                "{ip} twice in the store: {entries:?}"
            );
        }
    }
    assert_eq!(
        in_store.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>()
    );
    // Each block is held by the host whose containers use it.
    let blocks = c.etcd.pairs("/ocinet/v1/blocks/ov/");
    for (ip, holder) in &seen {
        let node = holder.rsplit(' ').next().unwrap_or_default();
        let key = format!("/ocinet/v1/blocks/ov/{}-24", block_of(ip));
        assert!(
            blocks
                .get(&key)
                .is_some_and(|v| v.contains(&format!("\"node\":\"{node}\""))),
            "{ip} of {holder}: block {key} is {:?}",
            blocks.get(&key)
        );
    }
    // And everyone reaches h2's first container again.
    assert!(
        ping(h3, &late3.id, &ip2, Duration::from_secs(10)),
        "after healing, late3 on h3 does not reach {ip2} on h2"
    );
}

const SETUP_STEPS: &[&str] = &[
    "leased",
    "recorded",
    "bridge",
    "firewall-started",
    "veth",
    "firewall",
    "pinned",
];

fn overlay_ann(name: &str) -> serde_json::Value {
    serde_json::json!({"io.ocinet.network": "ov", "io.ocinet.name": name})
}

/// Nothing of container `id` left on `h` or in the store, and once the
/// agent made its pass, no block of `h`'s left (it has no container).
/// The store is compared whole: every key under ocinet's prefix but the
/// host's membership, the network's definition and the entries, blocks
/// and last-holder keys of the containers in `running` (still there)
/// counts as leaked, whatever its kind.
#[track_caller]
fn assert_nothing_of(c: &Cluster, id: &str, when: &str, running: &[&str]) {
    let h = &c.hosts[0];
    let left = h.leftovers(id);
    assert!(left.is_empty(), "{when}: {id} left {left:?}");
    let leases: Vec<(String, String)> = h
        .leases("ov")
        .into_iter()
        .filter(|(_, holder)| !running.contains(&holder.as_str()))
        .collect();
    assert!(leases.is_empty(), "{when}: leases {leases:?}");
    let key = container_key("ov", "h1", id);
    assert!(!has_key(&c.etcd, &key), "{when}: {key} left in the store");
    let mut legit: Vec<String> = vec![
        "/ocinet/v1/members/h1".into(),
        "/ocinet/v1/nodes/h1".into(),
        "/ocinet/v1/networks/ov".into(),
    ];
    for r in running {
        legit.push(container_key("ov", "h1", r));
        let block = format!("{}-24", block_of(&ip_of(h, r, "ov")));
        legit.push(format!("/ocinet/v1/blocks/ov/{block}"));
        legit.push(format!("/ocinet/v1/held/ov/{block}"));
    }
    let leaked = || -> Vec<String> {
        c.etcd
            .keys("/ocinet/v1/")
            .into_iter()
            .filter(|k| !legit.contains(k) && !k.starts_with("/ocinet/v1/vnis/"))
            .collect()
    };
    assert!(
        Cluster::eventually(Duration::from_secs(6), || leaked().is_empty()),
        "{when}: h1 has no container (but {running:?}) and the store still holds {:?}",
        leaked()
    );
    let vnis = c.etcd.keys("/ocinet/v1/vnis/");
    assert_eq!(vnis.len(), 1, "{when}: the network's one VNI: {vnis:?}");
}

/// The hook SIGKILLed at each step of an overlay setup and teardown
/// (teardown-retired: its veths retired, nothing given back yet), and
/// the agent SIGKILLed before every other attempt: `gc` leaves nothing
/// locally or in etcd (after the agent's pass), and the next setup works.
#[test]
fn a_hook_or_agent_killed_at_any_step_leaks_nothing_locally_or_in_etcd() {
    let c = Cluster::joined(1);
    let h = &c.hosts[0];
    overlay(h, "ov");
    for (n, step) in SETUP_STEPS.iter().enumerate() {
        let when = format!("hook killed at {step}");
        if n % 2 == 1 {
            kill_agents(h);
        }
        let mut v = h.bare_container(&format!("k{n}"), overlay_ann(&format!("k{n}")));
        let o = h.hook_with_env(
            "createRuntime",
            &v.state,
            &[],
            &[("OCINET_TEST_KILL_AT", step)],
        );
        assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
        assert!(
            !h.agents().is_empty(),
            "{when}: the hook started no agent; log:\n{}",
            tail(&h.log(), 30)
        );
        ok(h.ocinet(&["gc"]));
        assert_nothing_of(&c, &v.id, &when, &[]);
        // The next setup of the same container works and registers it.
        ok(h.hook("createRuntime", &v.state, &[]));
        assert!(
            has_key(&c.etcd, &container_key("ov", "h1", &v.id)),
            "{when}: the next setup did not register it"
        );
        v.kill();
        ok(h.hook("poststop", &v.stopped_state(), &[]));
        assert_nothing_of(&c, &v.id, &format!("{when}, then torn down"), &[]);
    }
    // Killed at ready: the container runs, the agent registers it.
    let mut v = h.bare_container("kready", overlay_ann("kready"));
    let o = h.hook_with_env(
        "createRuntime",
        &v.state,
        &[],
        &[("OCINET_TEST_KILL_AT", "ready")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    assert!(
        Cluster::eventually(Duration::from_secs(6), || has_key(
            &c.etcd,
            &container_key("ov", "h1", &v.id)
        )),
        "killed at ready: the agent did not register the running container"
    );
    // Teardown killed half-way, with the agent killed too.
    for step in ["teardown-retired", "teardown-unwired", "teardown-unleased"] {
        let when = format!("poststop killed at {step}");
        kill_agents(h);
        let mut v2 = h.bare_container("kt", overlay_ann("kt"));
        ok(h.hook("createRuntime", &v2.state, &[]));
        // As at a real poststop, the container is gone.
        v2.kill();
        let o = h.hook_with_env(
            "poststop",
            &v2.stopped_state(),
            &[],
            &[("OCINET_TEST_KILL_AT", step)],
        );
        assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
        ok(h.ocinet(&["gc"]));
        let left = h.leftovers(&v2.id);
        assert!(left.is_empty(), "{when}: {left:?}");
        assert!(
            Cluster::eventually(Duration::from_secs(6), || !has_key(
                &c.etcd,
                &container_key("ov", "h1", &v2.id)
            )),
            "{when}: its entry stayed in the store"
        );
        // And nothing else of it: kready's keys are all that is left.
        assert_nothing_of(&c, &v2.id, &when, &[&v.id]);
    }
    v.kill();
    ok(h.hook("poststop", &v.stopped_state(), &[]));
    assert_nothing_of(&c, &v.id, "all torn down", &[]);
    assert!(
        vxlan_dev(h).is_none(),
        "the last container's teardown left the VXLAN device"
    );
}

/// The store forgot this host's lease (it was out of reach for longer than
/// the TTL; here the lease is revoked) and the agent has not registered
/// again when a setup comes (it is stopped, SIGSTOP): the setup waits for
/// the agent's new lease and succeeds once the agent runs again, instead of
/// failing with "requested lease not found" (seen in CI right after etcd
/// came back from a pause).
#[test]
fn a_setup_waits_for_the_agents_new_lease_when_the_store_forgot_the_old_one() {
    let (c, _a, _ipa, _b, _ipb) = two_hosts_talking();
    let h2 = &c.hosts[1];
    let agents = h2.agents();
    assert!(!agents.is_empty(), "h2 has no agent");
    let signal = |pids: &[i32], sig: nix::sys::signal::Signal| {
        for p in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), sig);
        }
    };
    let node = ok(c
        .etcd
        .etcdctl(&["get", "/ocinet/v1/nodes/h2", "-w", "json"]));
    let v: serde_json::Value = serde_json::from_str(&node).expect("etcdctl json");
    let lease = v["kvs"][0]["lease"]
        .as_i64()
        .expect("h2's node key has a lease");
    signal(&agents, nix::sys::signal::Signal::SIGSTOP);
    ok(c.etcd.etcdctl(&["lease", "revoke", &format!("{lease:x}")]));
    let stopped = agents.clone();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        signal(&stopped, nix::sys::signal::Signal::SIGCONT);
    });
    let mut d = h2.start(Runtime::Runc, "after-revoke", &Spec::on("ov", "delta"));
    let _ = waker.join();
    assert!(d.exit.is_none(), "the setup failed: {}", d.output());
    let ip = ip_of(h2, &d.id, "ov");
    assert!(!ip.is_empty(), "no overlay address");
    let now = ok(c
        .etcd
        .etcdctl(&["get", "/ocinet/v1/nodes/h2", "-w", "json"]));
    let v: serde_json::Value = serde_json::from_str(&now).expect("etcdctl json");
    assert_ne!(
        v["kvs"][0]["lease"].as_i64(),
        Some(lease),
        "h2 is on its old lease"
    );
    h2.stop(&mut d);
    assert!(h2.leftovers(&d.id).is_empty(), "{:?}", h2.leftovers(&d.id));
}

/// The keys of the store that are not membership (`members/`, `nodes/`).
fn beyond_membership(etcd: &Etcd) -> BTreeMap<String, String> {
    etcd.pairs("/ocinet/v1/")
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("/ocinet/v1/members/") && !k.starts_with("/ocinet/v1/nodes/")
        })
        .collect()
}

fn lists(h: &Host, net: &str) -> bool {
    text(&h.ocinet(&["network", "ls"]))
        .lines()
        .any(|l| l.split_whitespace().next() == Some(net))
}

/// The store holds exactly the definition of overlay network `net` and
/// its VNI beyond membership (nothing half made, no orphan VNI).
#[track_caller]
fn store_has_only_network(c: &Cluster, net: &str, vni: &str, when: &str) {
    let keys: Vec<String> = beyond_membership(&c.etcd).into_keys().collect();
    assert_eq!(
        keys,
        vec![
            format!("/ocinet/v1/networks/{net}"),
            format!("/ocinet/v1/vnis/{vni}")
        ],
        "{when}: the store beyond membership"
    );
}

/// Nothing of overlay networks in the store (membership only), and no
/// host lists `net`.
#[track_caller]
fn no_network_anywhere(c: &Cluster, net: &str, when: &str) {
    let left = beyond_membership(&c.etcd);
    assert!(left.is_empty(), "{when}: the store still holds {left:?}");
    for h in &c.hosts {
        assert!(
            Cluster::eventually(Duration::from_secs(6), || !lists(h, net)),
            "{when}: {} still lists {net}",
            h.name
        );
        assert!(
            !h.ocinet(&["network", "inspect", net]).status.success(),
            "{when}: {} still has {net}'s definition",
            h.name
        );
    }
}

const NET_CREATE: &[&str] = &[
    "network",
    "create",
    "ck",
    "--driver",
    "overlay",
    "--subnet",
    "10.78.0.0/16",
    "--vni",
    "5000",
];

/// `network create --driver overlay` and `network rm` of an overlay
/// network SIGKILLed at each of their store steps, and a dual-stack setup
/// killed between its IPv4 and IPv6 addresses: the store holds either
/// nothing of the network or all of it (definition and VNI, never one),
/// the command run again (or gc) finishes or says what exists, and the
/// config directories agree with the store (every host lists the network
/// or none does).
#[test]
fn network_create_and_rm_killed_at_each_store_step_leave_nothing_half_made() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    let kill = |h: &Host, args: &[&str], step: &str| {
        let o = h.ocinet_with_env(args, &[("OCINET_TEST_KILL_AT", step)]);
        assert_eq!(o.status.signal(), Some(9), "killed at {step}: {}", text(&o));
    };

    // Killed before its transaction: nothing anywhere; again: made.
    kill(h1, NET_CREATE, "network-publishing");
    no_network_anywhere(&c, "ck", "create killed at network-publishing");
    ok(h1.ocinet(NET_CREATE));
    store_has_only_network(&c, "ck", "5000", "created after a kill");
    ok(h1.ocinet(&["network", "rm", "ck"]));
    no_network_anywhere(&c, "ck", "removed");

    // Killed after it: the whole definition is in the store, no local
    // copy was written; every host takes it in, and running the command
    // again says it exists (and changes nothing).
    kill(h1, NET_CREATE, "network-published");
    store_has_only_network(&c, "ck", "5000", "create killed at network-published");
    for h in [h1, h2] {
        assert!(
            Cluster::eventually(Duration::from_secs(6), || lists(h, "ck")),
            "{} does not list the network created in the store",
            h.name
        );
    }
    let again = h1.ocinet(NET_CREATE);
    assert!(!again.status.success(), "created twice: {}", text(&again));
    assert!(text(&again).contains("ck"), "{}", text(&again));
    store_has_only_network(&c, "ck", "5000", "create run again");

    // network rm killed at each step, with a block given and taken back
    // before (a container on each host, stopped). Killed once the store
    // has nothing of it, h1's copy is removed by `network rm` again (h1's
    // agent killed first, as if it were down) or by h1's agent's pass.
    for (step, agent) in [
        ("network-released", true),
        ("network-unpublished", false),
        ("network-unpublished", true),
    ] {
        let when = format!(
            "rm killed at {step}, agent {}",
            if agent { "up" } else { "down" }
        );
        let mut a = h1.started(Runtime::Runc, "a", &Spec::on("ck", "alpha"));
        let mut b = h2.started(Runtime::Runc, "b", &Spec::on("ck", "beta"));
        h1.stop(&mut a);
        h2.stop(&mut b);
        if !agent {
            kill_agents(h1);
        }
        kill(h1, &["network", "rm", "ck"], step);
        if step == "network-released" {
            store_has_only_network(&c, "ck", "5000", &when);
            assert!(lists(h1, "ck"), "{when}: h1 lost its copy");
            ok(h1.ocinet(&["network", "rm", "ck"]));
        } else {
            let left = beyond_membership(&c.etcd);
            assert!(left.is_empty(), "{when}: the store holds {left:?}");
            if !agent {
                assert!(lists(h1, "ck"), "{when}: h1's copy went with no agent");
                ok(h1.ocinet(&["network", "rm", "ck"]));
            }
        }
        no_network_anywhere(&c, "ck", &format!("{when}, then recovered"));
        ok(h1.ocinet(NET_CREATE));
        assert!(Cluster::eventually(Duration::from_secs(6), || lists(
            h2, "ck"
        )));
    }
    ok(h1.ocinet(&["network", "rm", "ck"]));
    no_network_anywhere(&c, "ck", "the last rm");

    // Dual stack: a setup killed with its IPv4 address taken and its IPv6
    // one not yet; gc, and the agent's pass, leave the definition only.
    ok(h1.ocinet(&[
        "network",
        "create",
        "ck",
        "--driver",
        "overlay",
        "--subnet",
        "10.78.0.0/16",
        "--vni",
        "5000",
        "--ipv6",
        "--subnet",
        "fd78::/64",
    ]));
    let mut v = h1.bare_container(
        "k6",
        serde_json::json!({"io.ocinet.network": "ck", "io.ocinet.name": "k6"}),
    );
    let o = h1.hook_with_env(
        "createRuntime",
        &v.state,
        &[],
        &[("OCINET_TEST_KILL_AT", "leased-ipv4")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    ok(h1.ocinet(&["gc"]));
    let left = h1.leftovers(&v.id);
    assert!(left.is_empty(), "killed at leased-ipv4: {left:?}");
    assert!(
        h1.leases("ck").is_empty(),
        "killed at leased-ipv4: leases {:?}",
        h1.leases("ck")
    );
    assert!(
        Cluster::eventually(Duration::from_secs(6), || beyond_membership(&c.etcd).len()
            == 2),
        "killed at leased-ipv4, then gc: the store holds {:?}",
        beyond_membership(&c.etcd)
    );
    store_has_only_network(&c, "ck", "5000", "killed at leased-ipv4, then gc");
    // The next setup gets both addresses; its teardown leaves the same.
    ok(h1.hook("createRuntime", &v.state, &[]));
    let ep = h1.endpoint(&v.id).expect("set up again");
    let att = &ep["attachments"][0];
    assert!(
        att["ip"].as_str().is_some() && att["ip6"].as_str().is_some_and(|a| a.starts_with("fd78:")),
        "dual stack after the kill: {ep}"
    );
    v.kill();
    ok(h1.hook("poststop", &v.stopped_state(), &[]));
    assert!(h1.leftovers(&v.id).is_empty(), "{:?}", h1.leftovers(&v.id));
    assert!(
        Cluster::eventually(Duration::from_secs(6), || beyond_membership(&c.etcd).len()
            == 2),
        "torn down: the store holds {:?}",
        beyond_membership(&c.etcd)
    );
    ok(h1.ocinet(&["network", "rm", "ck"]));
    no_network_anywhere(&c, "ck", "dual stack removed");
}

/// `cluster join` killed once its config is saved (no agent yet) and
/// `cluster leave` killed at each of its steps: the same command again
/// finishes, and a host that left has nothing in the store (the whole key
/// set compared with the other host's alone), no config and no agent;
/// one that joined again is up with its agent.
#[test]
fn cluster_join_and_leave_killed_at_each_step_are_finished_by_running_them_again() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    overlay(h1, "ov");
    let endpoint = c.etcd.endpoint();
    let addr = c.addr(1);
    let join: Vec<&str> = vec![
        "cluster",
        "join",
        "--store",
        &endpoint,
        "--advertise-addr",
        &addr,
        "--node",
        "h2",
        "--lease-ttl",
        TEST_TTL,
    ];
    let up = |when: &str| {
        assert!(
            Cluster::eventually(Duration::from_secs(6), || {
                let st = c.etcd.pairs("/ocinet/v1/");
                st.contains_key("/ocinet/v1/nodes/h2") && st.contains_key("/ocinet/v1/members/h2")
            }),
            "{when}: h2 is not up in the store: {:?}\n{}",
            c.etcd.pairs("/ocinet/v1/"),
            tail(&h2.log(), 20)
        );
        assert!(!h2.agents().is_empty(), "{when}: h2 has no agent");
        assert!(
            Cluster::eventually(Duration::from_secs(6), || lists(h2, "ov")),
            "{when}: h2 does not list the cluster's network"
        );
    };
    let gone = |when: &str| {
        assert!(
            !h2.config_dir().join("cluster.json").exists(),
            "{when}: cluster.json left"
        );
        assert!(
            Cluster::eventually(Duration::from_secs(5), || h2.agents().is_empty()),
            "{when}: an agent of h2 runs: {:?}",
            h2.agents()
        );
        let of_h2: Vec<(String, String)> = c
            .etcd
            .pairs("/ocinet/v1/")
            .into_iter()
            .filter(|(k, v)| names_node(k, v, "h2"))
            .collect();
        assert!(of_h2.is_empty(), "{when}: keys of h2 left: {of_h2:?}");
        let keys: Vec<String> = c.etcd.pairs("/ocinet/v1/").into_keys().collect();
        assert_eq!(
            keys,
            vec![
                "/ocinet/v1/members/h1".to_string(),
                "/ocinet/v1/networks/ov".to_string(),
                "/ocinet/v1/nodes/h1".to_string(),
                "/ocinet/v1/vnis/4096".to_string(),
            ],
            "{when}: the store is not h1's membership and the network"
        );
        assert!(!lists(h2, "ov"), "{when}: h2 keeps the overlay network");
    };
    up("joined");
    for step in [
        "leave-agent-stopped",
        "leave-unregistered",
        "leave-revoked",
        "leave-forgotten",
    ] {
        let when = format!("leave killed at {step}");
        // A container came and went: h2 held a block and its last-holder key.
        let mut b = h2.started(Runtime::Runc, "b", &Spec::on("ov", "beta"));
        h2.stop(&mut b);
        let o = h2.ocinet_with_env(&["cluster", "leave"], &[("OCINET_TEST_KILL_AT", step)]);
        assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
        ok(h2.ocinet(&["cluster", "leave"]));
        gone(&when);

        let o = h2.ocinet_with_env(&join, &[("OCINET_TEST_KILL_AT", "join-saved")]);
        assert_eq!(o.status.signal(), Some(9), "join killed: {}", text(&o));
        assert!(
            h2.agents().is_empty(),
            "join killed before its agent started one"
        );
        assert!(
            !c.etcd
                .pairs("/ocinet/v1/")
                .iter()
                .any(|(k, v)| names_node(k, v, "h2")),
            "join killed before its agent: a key of h2 in the store"
        );
        ok(h2.ocinet(&join));
        up(&format!("{when}, then join killed and run again"));
    }
}
