//! Issue 23: what the overlay must leave alone or refuse, beyond its own
//! networks: a macvlan network of a member host works while etcd is
//! down (as a bridge one does, `overlay_faults.rs`), an overlay subnet
//! may not cover a route the host already has (its underlay's), a store
//! nobody answers at is refused at join within a bound and leaves nothing,
//! and `cluster leave` gives the node's lease back to etcd.

use std::time::{Duration, Instant};

use ocinet_integration::cluster::{overlay_network, Cluster};
use ocinet_integration::{ok, refused, text, Host, Runtime, Spec};

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

/// The leases etcd holds now.
fn leases(c: &Cluster) -> Vec<String> {
    ok(c.etcd.etcdctl(&["lease", "list"]))
        .lines()
        .filter(|l| !l.starts_with("found"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A host that is a member, with an overlay container running, keeps
/// setting up macvlan containers (runc and crun) while etcd is stopped:
/// they get their addresses, reach each other on the parent's segment,
/// and leave nothing when they stop.
#[test]
fn a_macvlan_network_of_a_member_works_while_etcd_is_down() {
    let mut c = Cluster::joined(1);
    {
        let h = &c.hosts[0];
        overlay_network(h, "ov", "10.61.0.0/16", &[]);
        h.macvlan_network("mv");
    }
    let h = &c.hosts[0];
    let mut ova = h.started(Runtime::Runc, "ova", &Spec::on("ov", "alpha"));
    c.etcd.stop();
    let h = &c.hosts[0];
    let on_mv = Spec::default().ann("io.ocinet.network", "mv");
    let mut a = h.start(Runtime::Runc, "mva", &on_mv);
    assert!(
        a.exit.is_none(),
        "runc on macvlan, etcd down: {}",
        a.output()
    );
    let mut b = h.start(Runtime::Crun, "mvb", &on_mv);
    assert!(
        b.exit.is_none(),
        "crun on macvlan, etcd down: {}",
        b.output()
    );
    let bip = ip_of(h, &b.id);
    let pinged = h.in_container(&a.id, &["ping", "-c", "1", "-W", "2", &bip]);
    assert!(
        pinged.status.success(),
        "macvlan containers do not reach each other with etcd down: {}",
        text(&pinged)
    );
    for x in [&mut a, &mut b] {
        h.stop(x);
        let left = h.leftovers(&x.id);
        assert!(left.is_empty(), "{}: {left:?}", x.id);
    }
    c.etcd.restart();
    let h = &c.hosts[0];
    h.stop(&mut ova);
}

/// An overlay subnet covering a route the host has (here its underlay's
/// own 10.99.0.0/24) would take that traffic into the VXLAN: refused,
/// naming the subnet and the route's interface, with nothing left in the
/// config or the store.
#[test]
fn an_overlay_subnet_over_a_host_route_is_refused() {
    let c = Cluster::joined(1);
    let h = &c.hosts[0];
    let keys = c.etcd.keys("/ocinet/v1/");
    let t = refused(
        h.ocinet(&[
            "network",
            "create",
            "under",
            "--driver",
            "overlay",
            "--subnet",
            "10.99.0.0/16",
        ]),
        &["10.99.0.0/16"],
    );
    eprintln!("refused: {t}");
    assert!(t.contains("10.99.0.0/24") || t.contains("ul0"), "{t}");
    assert!(
        !ok(h.ocinet(&["network", "ls"])).contains("under"),
        "the refused network is listed"
    );
    assert_eq!(c.etcd.keys("/ocinet/v1/"), keys, "the store changed");
}

/// A store nobody answers at: an address of the underlay no host has
/// (the connection attempt times out) and etcd's host on a closed port
/// (refused). `cluster join` fails within a bound well under a runtime's
/// hook timeout, names the store, and leaves no config and no agent.
#[test]
fn a_store_nobody_answers_at_is_refused_at_join_and_leaves_nothing() {
    let c = Cluster::new(1);
    let h = &c.hosts[0];
    let adv = c.addr(0);
    for store in ["http://10.99.0.200:2379", "http://10.99.0.254:2399"] {
        let t0 = Instant::now();
        let o = h.ocinet(&[
            "cluster",
            "join",
            "--store",
            store,
            "--advertise-addr",
            &adv,
        ]);
        let took = t0.elapsed();
        let t = refused(o, &[store.trim_start_matches("http://")]);
        eprintln!("{store}: refused after {took:?}: {t}");
        // The store's bound is 2 s per request, with a few retries.
        assert!(took < Duration::from_secs(20), "{store}: took {took:?}");
        assert!(
            !h.config_dir().join("cluster.json").exists(),
            "{store}: cluster.json left behind"
        );
        assert!(h.agents().is_empty(), "{store}: an agent left running");
        assert!(
            text(&h.ocinet(&["cluster", "ls"])).contains("not a cluster member")
                || !h.ocinet(&["cluster", "ls"]).status.success(),
            "{store}: the host says it is a member"
        );
    }
    assert!(c.etcd.keys("/ocinet/v1/").is_empty());
}

/// `cluster leave` gives the node's lease back: etcd holds no lease of it
/// afterwards (not one left to expire), and no key of the node.
#[test]
fn cluster_leave_revokes_the_nodes_lease() {
    let c = Cluster::new(2);
    let before = leases(&c);
    ok(c.join(0));
    ok(c.join(1));
    let joined = leases(&c);
    assert!(joined.len() >= before.len() + 2, "{before:?} -> {joined:?}");
    ok(c.hosts[0].ocinet(&["cluster", "leave"]));
    let after = leases(&c);
    assert_eq!(
        after.len(),
        joined.len() - 1,
        "one lease given back: {joined:?} -> {after:?}"
    );
    let node = c.node(0);
    let keys = c.etcd.keys("/ocinet/v1/");
    assert!(
        !keys.iter().any(|k| k.contains(&format!("/{node}"))),
        "{node}'s keys left: {keys:?}"
    );
    assert!(c.hosts[0].agents().is_empty(), "the agent outlived leave");
    ok(c.hosts[1].ocinet(&["cluster", "leave"]));
    assert_eq!(leases(&c), before, "every lease given back");
}

/// A member whose own bridge network has the subnet another member gives
/// an overlay network does not take that definition in: it is not listed
/// there, a container on it there is refused naming both networks and
/// leaves nothing (no record, no key in etcd), and the network works on
/// the host that made it.
#[test]
fn a_member_refuses_an_overlay_network_that_conflicts_with_its_own() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    ok(h2.ocinet(&["network", "create", "mine", "--subnet", "10.80.0.0/16"]));
    overlay_network(h1, "wide", "10.80.0.0/16", &[]);
    assert!(ok(h1.ocinet(&["network", "ls"])).contains("wide"));
    // Given the agent's pass time to try.
    std::thread::sleep(Duration::from_secs(3));
    let listed = ok(h2.ocinet(&["network", "ls"]));
    assert!(
        !listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some("wide")),
        "h2 took in a network that overlaps its own: {listed}"
    );
    let keys = c.etcd.keys("/ocinet/v1/");
    let mut x = h2.start(Runtime::Crun, "wide2", &Spec::on("wide", "x"));
    let st = h2.wait_runtime(&mut x, Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| !s.success()),
        "a container on a conflicting overlay network started: {}",
        x.output()
    );
    let why = format!("{}\n{}", x.output(), h2.log());
    assert!(
        why.contains("wide") && why.contains("mine"),
        "the refusal does not name both networks: {}",
        x.output()
    );
    assert!(h2.endpoint(&x.id).is_none(), "a record was left");
    assert!(h2.leftovers(&x.id).is_empty(), "{:?}", h2.leftovers(&x.id));
    assert_eq!(
        c.etcd.keys("/ocinet/v1/"),
        keys,
        "the refused setup wrote to etcd"
    );
    // The network is fine where it was made.
    let mut y = h1.started(Runtime::Runc, "wide1", &Spec::on("wide", "y"));
    assert!(h1.endpoint(&y.id).is_some());
    h1.stop(&mut y);
}

/// A setup that failed while etcd was paused sent requests etcd answers
/// once it runs again: none of them may leave a key behind (a claim made
/// after the hook gave up). The key set after etcd resumes, and after the
/// agent's next passes, is the key set before the pause.
#[test]
fn requests_of_a_setup_that_gave_up_leave_no_key_once_etcd_resumes() {
    let c = Cluster::joined(1);
    let h = &c.hosts[0];
    overlay_network(h, "ov", "10.62.0.0/16", &[]);
    let mut a = h.started(Runtime::Runc, "ova", &Spec::on("ov", "alpha"));
    let before = c.etcd.keys("/ocinet/v1/");
    c.etcd.pause();
    let mut d = h.start(Runtime::Runc, "ovd", &Spec::on("ov", "delta"));
    let st = h.wait_runtime(&mut d, Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| !s.success()),
        "an overlay setup with etcd paused did not fail: {}",
        d.output()
    );
    c.etcd.resume();
    // What etcd held back is applied now; the agent's passes run on it.
    std::thread::sleep(Duration::from_secs(4));
    ok(h.ocinet(&["gc"]));
    let after = c.etcd.keys("/ocinet/v1/");
    assert_eq!(after, before, "keys changed across the failed setup");
    assert!(h.endpoint(&d.id).is_none());
    assert!(h.leftovers(&d.id).is_empty(), "{:?}", h.leftovers(&d.id));
    h.stop(&mut a);
}
