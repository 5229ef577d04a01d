//! Overlay membership across simulated hosts (issue 23, "Tests"): bad
//! input refused with nothing left behind, TLS to etcd, a host joining
//! late, `cluster leave` / `network rm` / the last container's teardown
//! leaving nothing in the kernel or the store, `cluster rm` forgetting a
//! host gone for good (and only such a host), and hostile store values
//! refused and logged without a crash.

use std::process::Output;
use std::time::Duration;

use ocinet_integration::cluster::{names_node, Cluster, Etcd};
use ocinet_integration::{ok, refused, text, Host, Runtime, Spec};

/// Convergence bound of these tests: the agent's pass runs on every
/// store change and at least every 2 s.
const CONVERGE: Duration = Duration::from_secs(8);

fn ip_of(h: &ocinet_integration::Host, id: &str, net: &str) -> String {
    ocinet_integration::cluster::ip_on(h, id, net)
}

/// The /24 block an address of a /16 overlay subnet is in, as `ip route`
/// prints it.
fn block_of(ip: &str) -> String {
    let o: Vec<&str> = ip.split('.').collect();
    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
}

fn ocinet(h: &Host, args: &[&str]) -> Output {
    h.ocinet(args)
}

fn create_overlay(h: &Host, name: &str, subnet: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "network", "create", name, "--driver", "overlay", "--subnet", subnet,
    ];
    args.extend_from_slice(extra);
    h.ocinet(&args)
}

fn lists_network(h: &Host, name: &str) -> bool {
    ok(h.ocinet(&["network", "ls"]))
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn ping(h: &Host, id: &str, ip: &str) -> bool {
    ocinet_integration::cluster::ping(h, id, ip, CONVERGE)
}

fn resolves(h: &Host, id: &str, name: &str, ip: &str) -> bool {
    Cluster::eventually(CONVERGE, || {
        text(&h.in_container_fs(id, &["nslookup", name])).contains(ip)
    })
}

/// `ip ARGS` in the host's namespace.
fn ip(h: &Host, args: &[&str]) -> String {
    let mut all = vec!["ip"];
    all.extend_from_slice(args);
    text(&h.exec(&all))
}

fn has_device(h: &Host, dev: &str) -> bool {
    h.exec(&["ip", "link", "show", dev]).status.success()
}

/// The kernel's entries on `dev` toward the host at `remote` holding
/// `block`: route, neighbour (the block's first address) and FDB.
fn entries_toward(h: &Host, dev: &str, block: &str, remote: &str) -> Vec<String> {
    let mut found = Vec::new();
    let vtep = block.replace(".0/24", ".0");
    for l in ip(h, &["route", "show", "dev", dev]).lines() {
        if l.starts_with(block) {
            found.push(format!("route {l}"));
        }
    }
    if has_device(h, dev) {
        for l in ip(h, &["neigh", "show", "dev", dev]).lines() {
            if l.starts_with(&format!("{vtep} ")) {
                found.push(format!("neigh {l}"));
            }
        }
        for l in text(&h.exec(&["bridge", "fdb", "show", "dev", dev])).lines() {
            if l.contains(&format!("dst {remote} ")) || l.ends_with(&format!("dst {remote}")) {
                found.push(format!("fdb {l}"));
            }
        }
    }
    found
}

/// The agent of `h` still runs and answers for the host.
#[track_caller]
fn agent_alive(h: &Host) {
    let st: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["cluster", "status", "--json"])))
            .expect("cluster status --json");
    let pid = st["agent"]["pid"].as_i64().unwrap_or(0);
    assert!(
        pid > 0 && ocinet_integration::running(pid) && h.agents().contains(&(pid as i32)),
        "the agent is not running: {st}\n{}",
        h.log()
    );
}

fn agent_pid(h: &Host) -> i32 {
    let st: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["cluster", "status", "--json"])))
            .expect("cluster status --json");
    st["agent"]["pid"].as_i64().unwrap_or(0) as i32
}

/// `cluster join` on host `i` with `args` after `cluster join`.
fn join_with(c: &Cluster, i: usize, args: &[&str]) -> Output {
    let mut all = vec!["cluster", "join"];
    all.extend_from_slice(args);
    c.hosts[i].ocinet(&all)
}

/// Host `i` is no member: no config, no agent, no key of its node.
#[track_caller]
fn not_joined(c: &Cluster, i: usize, what: &str) {
    let h = &c.hosts[i];
    assert!(
        !h.config_dir().join("cluster.json").exists(),
        "{what}: cluster.json left behind"
    );
    assert!(h.agents().is_empty(), "{what}: an agent left running");
    let node = c.node(i);
    let keys = c.etcd.keys("/ocinet/v1/");
    assert!(
        !keys.iter().any(|k| k.ends_with(&format!("/{node}"))),
        "{what}: a key of node {node} left in etcd: {keys:?}"
    );
}

#[test]
fn bad_input_is_refused_naming_the_field_and_leaves_nothing() {
    let c = Cluster::new(3);
    ok(c.join(0));
    ok(c.join(1));
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    let ep = c.etcd.endpoint();
    let adv3 = c.addr(2);

    // Joins refused on host 3, each naming the field and the value.
    for (args, words) in [
        (
            vec!["--store", "10.99.0.254:2379", "--advertise-addr", &adv3],
            vec!["store", "10.99.0.254:2379"],
        ),
        (
            vec!["--store", "http://10.99.0.254", "--advertise-addr", &adv3],
            vec!["store", "http://10.99.0.254", "port"],
        ),
        (
            vec![
                "--store",
                "http://10.99.0.254:99999",
                "--advertise-addr",
                &adv3,
            ],
            vec!["store", "http://10.99.0.254:99999", "port"],
        ),
        (
            vec![
                "--store",
                "https://10.99.0.254:2379",
                "--advertise-addr",
                &adv3,
            ],
            vec!["store", "https://10.99.0.254:2379", "--store-cacert"],
        ),
        (
            vec![
                "--store",
                &format!("{ep},ftp://x:1"),
                "--advertise-addr",
                &adv3,
            ],
            vec!["store", "ftp://x:1"],
        ),
        (
            vec!["--store", &ep, "--advertise-addr", "10.99.0.77"],
            vec![
                "advertise-addr",
                "10.99.0.77",
                "not an address of this host",
            ],
        ),
        (
            vec!["--store", &ep, "--advertise-addr", "127.0.0.1"],
            vec!["advertise-addr", "127.0.0.1"],
        ),
        (
            // h1 is up at 10.99.0.1: its name is not free.
            vec!["--store", &ep, "--advertise-addr", &adv3, "--node", "h1"],
            vec!["node", "h1", "10.99.0.1"],
        ),
        (
            vec!["--store", &ep, "--advertise-addr", &adv3, "--node", "../x"],
            vec!["node", "../x"],
        ),
    ] {
        let what = format!("join {args:?}");
        let t = refused(
            join_with(&c, 2, &[&args[..], &["--lease-ttl", "5"]].concat()),
            &words,
        );
        assert!(!t.contains("panicked"), "{what}: {t}");
        not_joined(&c, 2, &what);
    }

    // Nothing of a refused create may stay: not in any host's config,
    // not in etcd.
    let keys_before: Vec<String> = c
        .etcd
        .keys("/ocinet/v1/")
        .into_iter()
        .filter(|k| !k.contains("/members/"))
        .collect();
    let nothing_left = |name: &str, vni: Option<&str>| {
        for h in [h1, h2] {
            assert!(!lists_network(h, name), "{name} left in network ls");
            assert!(
                !h.config_dir()
                    .join("networks")
                    .join(format!("{name}.json"))
                    .exists(),
                "{name} left in the config dir"
            );
        }
        let keys = c.etcd.keys("/ocinet/v1/");
        assert!(
            !keys
                .iter()
                .any(|k| k.ends_with(&format!("/networks/{name}"))),
            "{name} left in etcd: {keys:?}"
        );
        if let Some(v) = vni {
            assert!(
                !keys.iter().any(|k| k.ends_with(&format!("/vnis/{v}"))),
                "vni {v} left in etcd: {keys:?}"
            );
        }
    };

    // A host that did not join: no overlay network, no store touched.
    refused(
        create_overlay(&c.hosts[2], "nojoin", "10.71.0.0/16", &["--vni", "7100"]),
        &["not a cluster member", "cluster join"],
    );
    refused(
        create_overlay(&c.hosts[2], "nojoin", "10.71.0.0/16", &[]),
        &["not a cluster member"],
    );
    assert!(!lists_network(&c.hosts[2], "nojoin"));
    nothing_left("nojoin", Some("7100"));

    // VNI out of range.
    for v in ["0", "16777216"] {
        refused(
            create_overlay(h1, "badvni", "10.72.0.0/16", &["--vni", v]),
            &["vni", v, "16777215"],
        );
        nothing_left("badvni", Some(v));
    }

    // A VNI another overlay network holds (made on the other host).
    ok(create_overlay(
        h1,
        "first",
        "10.73.0.0/16",
        &["--vni", "7300"],
    ));
    let t = refused(
        create_overlay(h2, "second", "10.74.0.0/16", &["--vni", "7300"]),
        &["7300", "first"],
    );
    assert!(t.contains("vni") || t.contains("VNI"), "{t}");
    nothing_left("second", None);
    // ... and the same from the host that made it.
    refused(
        create_overlay(h1, "second", "10.74.0.0/16", &["--vni", "7300"]),
        &["7300", "first"],
    );
    nothing_left("second", None);

    // A subnet overlapping a local bridge network of this host.
    ok(h2.ocinet(&["network", "create", "localbr", "--subnet", "10.75.3.0/24"]));
    refused(
        create_overlay(h2, "wide", "10.75.0.0/16", &["--vni", "7500"]),
        &["10.75.0.0/16", "localbr"],
    );
    nothing_left("wide", Some("7500"));

    // A subnet overlapping another overlay network of the cluster.
    refused(
        create_overlay(h2, "over", "10.73.128.0/17", &["--vni", "7600"]),
        &["first"],
    );
    nothing_left("over", Some("7600"));

    // An MTU the underlay (1500) cannot carry with VXLAN's 50 bytes.
    refused(
        create_overlay(
            h1,
            "jumbo",
            "10.76.0.0/16",
            &["--vni", "7700", "--mtu", "1451"],
        ),
        &["mtu", "1451", "1450"],
    );
    nothing_left("jumbo", Some("7700"));
    // 1450 is carried.
    ok(create_overlay(
        h1,
        "fits",
        "10.76.0.0/16",
        &["--vni", "7700", "--mtu", "1450"],
    ));
    assert!(Cluster::eventually(CONVERGE, || lists_network(h2, "fits")));

    // A name the cluster has.
    refused(
        create_overlay(h2, "first", "10.78.0.0/16", &["--vni", "7800"]),
        &["first"],
    );
    nothing_left_keys(&c, &keys_before, &["first", "fits", "7300", "7700"]);
}

/// The store holds what it held before plus the keys that name one of
/// `made` (networks and VNIs created since).
#[track_caller]
fn nothing_left_keys(c: &Cluster, before: &[String], made: &[&str]) {
    let extra: Vec<String> = c
        .etcd
        .keys("/ocinet/v1/")
        .into_iter()
        .filter(|k| !k.contains("/members/") && !before.contains(k))
        .filter(|k| !made.iter().any(|m| k.ends_with(&format!("/{m}"))))
        .collect();
    assert!(extra.is_empty(), "keys left by refused commands: {extra:?}");
}

#[test]
fn tls_members_reach_each_other_and_partial_tls_is_refused() {
    let c = Cluster::new_tls(3);
    let ep = c.etcd.endpoint();
    let (ca, cert, key) = (
        c.etcd.ca().expect("ca"),
        c.etcd.cert().expect("cert"),
        c.etcd.key().expect("key"),
    );
    let (ca, cert, key) = (
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let adv = c.addr(2);
    for (args, words) in [
        (
            vec!["--store-cacert", ca.as_str()],
            vec!["--store-cert", "--store-key"],
        ),
        (
            vec!["--store-cacert", ca.as_str(), "--store-cert", cert.as_str()],
            vec!["--store-key"],
        ),
        (
            vec!["--store-cert", cert.as_str(), "--store-key", key.as_str()],
            vec!["--store-cacert"],
        ),
        (
            vec![
                "--store-cacert",
                "ca.crt",
                "--store-cert",
                cert.as_str(),
                "--store-key",
                key.as_str(),
            ],
            vec!["store-cacert", "ca.crt", "absolute"],
        ),
        // No certificate at all: the store is https.
        (vec![], vec!["store", "https://", "--store-cacert"]),
    ] {
        let mut all = vec!["--store", ep.as_str(), "--advertise-addr", adv.as_str()];
        all.extend_from_slice(&args);
        refused(join_with(&c, 2, &all), &words);
        not_joined(&c, 2, &format!("join {args:?}"));
    }
    // https with http: refused before any connection.
    let http = ep.replace("https://", "http://");
    refused(
        join_with(
            &c,
            2,
            &[
                "--store",
                &http,
                "--advertise-addr",
                &adv,
                "--store-cacert",
                &ca,
                "--store-cert",
                &cert,
                "--store-key",
                &key,
            ],
        ),
        &["store", &http, "https://"],
    );
    not_joined(&c, 2, "http with TLS files");

    ok(c.join(0));
    ok(c.join(1));
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h1.config_dir().join("cluster.json"))
            .expect("cluster.json")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "cluster.json names the client key: 0600"
        );
    }
    ok(create_overlay(h1, "sec", "10.81.0.0/16", &[]));
    let a = h1.started(Runtime::Runc, "a", &Spec::on("sec", "alpha"));
    let b = h2.started(Runtime::Crun, "b", &Spec::on("sec", "beta"));
    let (ipa, ipb) = (ip_of(h1, &a.id, "sec"), ip_of(h2, &b.id, "sec"));
    assert!(
        ping(h1, &a.id, &ipb),
        "alpha does not reach beta {ipb} over TLS-configured hosts"
    );
    assert!(ping(h2, &b.id, &ipa), "beta does not reach alpha {ipa}");
    assert!(
        resolves(h1, &a.id, "beta", &ipb),
        "beta does not resolve on h1"
    );
    let members = c.members(1);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.iter().all(|m| m["state"] == "up"), "{members:?}");
}

#[test]
fn a_host_joining_late_sees_the_network_and_every_container() {
    let c = Cluster::new(3);
    ok(c.join(0));
    ok(c.join(1));
    let (h1, h2, h3) = (&c.hosts[0], &c.hosts[1], &c.hosts[2]);
    ok(create_overlay(
        h1,
        "late",
        "10.82.0.0/16",
        &["--vni", "8200"],
    ));
    let a = h1.started(Runtime::Runc, "a", &Spec::on("late", "alpha"));
    // beta is on two overlay networks: one container of h2's all the same
    // (`cluster ls` counts containers, not their entries).
    ok(create_overlay(
        h1,
        "late2",
        "10.88.0.0/16",
        &["--vni", "8201"],
    ));
    let b = h2.started(
        Runtime::Crun,
        "b",
        &Spec::on("late,late2", "beta").ann("io.ocinet.aliases", "db"),
    );
    let (ipa, ipb) = (ip_of(h1, &a.id, "late"), ip_of(h2, &b.id, "late"));
    assert!(
        !ip_of(h2, &b.id, "late2").is_empty(),
        "beta has no address on late2"
    );

    ok(c.join(2));
    let ls = ok(h3.ocinet(&["network", "ls"]));
    assert!(
        ls.lines()
            .any(|l| l.starts_with("late ") && l.contains("overlay") && l.contains("global")),
        "the late host does not list the network: {ls}"
    );
    let members = c.members(2);
    assert_eq!(members.len(), 3, "{members:?}");
    let x = h3.started(Runtime::Runc, "x", &Spec::on("late", "gamma"));
    let ipx = ip_of(h3, &x.id, "late");
    for (ip, who) in [(&ipa, "alpha"), (&ipb, "beta")] {
        assert!(ping(h3, &x.id, ip), "gamma on h3 does not reach {who} {ip}");
    }
    for (name, want) in [("alpha", &ipa), ("beta", &ipb), ("db", &ipb)] {
        assert!(
            resolves(h3, &x.id, name, want),
            "{name} does not resolve to {want} on the late host: {}",
            text(&h3.in_container_fs(&x.id, &["nslookup", name]))
        );
    }
    // And the earlier hosts reach the late one, by address and name.
    assert!(ping(h1, &a.id, &ipx), "alpha does not reach gamma {ipx}");
    assert!(ping(h2, &b.id, &ipx), "beta does not reach gamma {ipx}");
    assert!(
        resolves(h2, &b.id, "gamma", &ipx),
        "gamma does not resolve on h2"
    );
    let members = c.members(0);
    assert_eq!(members.len(), 3, "{members:?}");
    for (i, m) in members.iter().enumerate() {
        assert!(
            m["node"] == c.node(i).as_str()
                && m["advertise"] == c.addr(i).as_str()
                && m["state"] == "up"
                && m["containers"] == 1,
            "row {i} of cluster ls --json: {members:?}"
        );
    }
    // The table says the same: NODE ADVERTISE STATE CONTAINERS.
    let table = ok(h1.ocinet(&["cluster", "ls"]));
    for i in 0..3 {
        let node = c.node(i);
        let row: Vec<&str> = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(node.as_str()))
            .unwrap_or_else(|| panic!("no row of {node}: {table}"))
            .split_whitespace()
            .filter(|w| *w != "*")
            .collect();
        assert_eq!(
            row,
            vec![node.as_str(), c.addr(i).as_str(), "up", "1"],
            "{table}"
        );
    }
}

#[test]
fn leave_rm_and_the_last_teardown_leave_nothing() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    const VNI: &str = "8300";
    let dev = format!("ocv{VNI}");
    ok(create_overlay(h1, "gone", "10.83.0.0/16", &["--vni", VNI]));
    let mut a = h1.started(Runtime::Runc, "a", &Spec::on("gone", "alpha"));
    let mut b = h2.started(Runtime::Crun, "b", &Spec::on("gone", "beta"));
    let (ipa, ipb) = (ip_of(h1, &a.id, "gone"), ip_of(h2, &b.id, "gone"));
    let (blka, blkb) = (block_of(&ipa), block_of(&ipb));
    assert!(ping(h1, &a.id, &ipb), "alpha does not reach beta {ipb}");
    // Each host routes the other's block (what must go later).
    assert!(
        Cluster::eventually(CONVERGE, || entries_toward(h2, &dev, &blka, &c.addr(0))
            .len()
            == 3),
        "h2 lacks its entries toward h1: {:?}",
        entries_toward(h2, &dev, &blka, &c.addr(0))
    );

    // leave refused while containers run here, naming them.
    refused(ocinet(h2, &["cluster", "leave"]), &["beta", "gone"]);
    assert!(h2.config_dir().join("cluster.json").exists());
    agent_alive(h2);

    // rm refused while any host has a container: here, naming it...
    refused(ocinet(h2, &["network", "rm", "gone"]), &[&b.id]);
    // ... and elsewhere, naming the host and the container.
    h2.stop(&mut b);
    let t = refused(ocinet(h2, &["network", "rm", "gone"]), &["h1", &a.id]);
    assert!(t.contains("alpha"), "the refusal does not name alpha: {t}");
    assert!(lists_network(h1, "gone") && lists_network(h2, "gone"));

    // h2's last container is gone: nothing of it for the network there
    // or in the store, and h1 forgets the block.
    let keys = |pre: &str| c.etcd.keys(&format!("/ocinet/v1/{pre}"));
    assert!(
        !has_device(h2, &dev),
        "{dev} left on h2 after its last container"
    );
    assert!(
        h2.leases("gone").is_empty(),
        "leases left on h2: {:?}",
        h2.leases("gone")
    );
    assert!(
        !ip(h2, &["route"]).contains(&blka),
        "route to h1's block left on h2: {}",
        ip(h2, &["route"])
    );
    assert!(
        keys("containers/gone/h2/").is_empty(),
        "{:?}",
        keys("containers/")
    );
    let blk_key = |b: &str| format!("/ocinet/v1/blocks/gone/{}", b.replace('/', "-"));
    assert!(
        !keys("blocks/gone/").contains(&blk_key(&blkb)),
        "h2's block left in etcd: {:?}",
        keys("blocks/")
    );
    assert!(
        Cluster::eventually(CONVERGE, || entries_toward(h1, &dev, &blkb, &c.addr(1))
            .is_empty()),
        "h1 keeps entries toward h2's released block: {:?}",
        entries_toward(h1, &dev, &blkb, &c.addr(1))
    );
    assert!(
        has_device(h1, &dev),
        "h1 still has a container: its device stays"
    );

    // Now h2 may leave, and is gone from the cluster.
    ok(ocinet(h2, &["cluster", "leave"]));
    assert!(!h2.config_dir().join("cluster.json").exists());
    assert!(
        Cluster::eventually(CONVERGE, || h2.agents().is_empty()),
        "h2's agent still runs after leave: {:?}",
        h2.agents()
    );
    assert!(
        !lists_network(h2, "gone"),
        "h2 keeps the overlay network after leave"
    );
    let members = c.members(0);
    assert!(
        members.iter().all(|m| m["node"] != "h2"),
        "h2 still in cluster ls: {members:?}"
    );
    assert!(
        !c.etcd
            .keys("/ocinet/v1/")
            .iter()
            .any(|k| k.ends_with("/h2") || k.contains("/h2/")),
        "keys of h2 left: {:?}",
        c.etcd.keys("/ocinet/v1/")
    );

    // The last container of the cluster: then rm works, and nothing of
    // the network is left anywhere.
    h1.stop(&mut a);
    assert!(
        !has_device(h1, &dev),
        "{dev} left on h1 after its last container"
    );
    assert!(h1.leases("gone").is_empty(), "{:?}", h1.leases("gone"));
    assert!(keys("containers/").is_empty(), "{:?}", keys("containers/"));
    assert!(keys("blocks/").is_empty(), "{:?}", keys("blocks/"));
    ok(ocinet(h1, &["network", "rm", "gone"]));
    assert!(!lists_network(h1, "gone"));
    let left: Vec<String> = c
        .etcd
        .keys("/ocinet/v1/")
        .into_iter()
        .filter(|k| !k.contains("/members/h1") && !k.contains("/nodes/h1"))
        .collect();
    assert!(left.is_empty(), "keys left after rm: {left:?}");
    assert!(
        ip(h1, &["route"]).lines().all(|l| !l.contains("10.83.")),
        "{}",
        ip(h1, &["route"])
    );
}

#[test]
fn network_rm_from_another_member_removes_it_everywhere() {
    let c = Cluster::joined(3);
    let hs = &c.hosts;
    ok(create_overlay(
        &hs[0],
        "wide",
        "10.84.0.0/16",
        &["--vni", "8400"],
    ));
    let mut x = hs[2].started(Runtime::Runc, "x", &Spec::on("wide", "xi"));
    for h in hs.iter() {
        assert!(Cluster::eventually(CONVERGE, || lists_network(h, "wide")));
    }
    let t = refused(ocinet(&hs[1], &["network", "rm", "wide"]), &["h3", &x.id]);
    assert!(t.contains("xi"), "{t}");
    hs[2].stop(&mut x);
    ok(ocinet(&hs[1], &["network", "rm", "wide"]));
    for (i, h) in hs.iter().enumerate() {
        assert!(
            Cluster::eventually(Duration::from_secs(5), || !lists_network(h, "wide")),
            "h{} still lists the removed network",
            i + 1
        );
        assert!(!has_device(h, "ocv8400"));
    }
    assert!(
        c.etcd
            .keys("/ocinet/v1/")
            .iter()
            .all(|k| k.contains("/members/") || k.contains("/nodes/")),
        "{:?}",
        c.etcd.keys("/ocinet/v1/")
    );
}

/// `network rm` while no container entry exists but another host may
/// still run a container on the network: a setup there killed after it
/// took a block (no entry: entries are written once a setup is ready),
/// and a host cut off from the store past its lease (its block and
/// entries went with the lease; its last-holder key stays). Refused
/// naming the host and block each time; once the host cleaned up (`gc`
/// there; its container stopped), rm leaves no key of the network.
#[test]
fn network_rm_is_refused_while_a_host_may_still_run_containers() {
    use std::os::unix::process::ExitStatusExt;
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    ok(create_overlay(
        h1,
        "inuse",
        "10.89.0.0/16",
        &["--vni", "8900"],
    ));
    assert!(Cluster::eventually(CONVERGE, || lists_network(h2, "inuse")));
    let keys = |pre: &str| c.etcd.keys(&format!("/ocinet/v1/{pre}"));
    let network_kept = |when: &str| {
        assert!(
            keys("networks/").contains(&"/ocinet/v1/networks/inuse".to_string())
                && keys("vnis/").contains(&"/ocinet/v1/vnis/8900".to_string()),
            "{when}: the refused rm removed the definition: {:?}",
            keys("")
        );
        assert!(lists_network(h1, "inuse"), "{when}: h1 lost the network");
    };

    // A running container on h2, then h2 cut off from everything past
    // its lease: no entry or block of it in the store, but it may still
    // run containers there.
    let mut p = h2.started(Runtime::Runc, "p", &Spec::on("inuse", "pi"));
    let ipp = ip_of(h2, &p.id, "inuse");
    let held = format!("/ocinet/v1/held/inuse/{}", block_of(&ipp).replace('/', "-"));
    c.ul.set_link(h2, false);
    assert!(
        Cluster::eventually(Duration::from_secs(20), || !keys("nodes/")
            .contains(&"/ocinet/v1/nodes/h2".to_string())),
        "h2's lease did not expire while it was cut off"
    );
    assert!(
        keys("blocks/inuse/").is_empty() && keys("containers/").is_empty(),
        "h2's keys outlived its lease: {:?}",
        keys("")
    );
    assert!(keys("held/inuse/").contains(&held), "{:?}", keys(""));
    let t = refused(
        ocinet(h1, &["network", "rm", "inuse"]),
        &["h2", "down", &block_of(&ipp)],
    );
    assert!(!t.contains(&p.id), "no entry names the container: {t}");
    network_kept("h2 cut off");

    // Back: its agent puts its entry back, and the refusal names it.
    c.ul.set_link(h2, true);
    assert!(
        Cluster::eventually(Duration::from_secs(15), || !keys(&format!(
            "containers/inuse/h2/{}",
            p.id
        ))
        .is_empty()),
        "h2's container is not back in the store: {:?}",
        keys("")
    );
    refused(
        ocinet(h1, &["network", "rm", "inuse"]),
        &["h2", &format!("pi ({})", p.id)],
    );

    h2.stop(&mut p);

    // A setup on h2 SIGKILLed once recorded: its block is taken, no entry.
    let mut k = h2.bare_container(
        "k",
        serde_json::json!({"io.ocinet.network": "inuse", "io.ocinet.name": "kappa"}),
    );
    let o = h2.hook_with_env(
        "createRuntime",
        &k.state,
        &[],
        &[("OCINET_TEST_KILL_AT", "recorded")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let blocks = keys("blocks/inuse/");
    assert_eq!(blocks.len(), 1, "the killed setup's block: {blocks:?}");
    assert!(keys("containers/").is_empty(), "{:?}", keys("containers/"));
    let block = blocks[0]
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .replace('-', "/");
    let t = refused(
        ocinet(h1, &["network", "rm", "inuse"]),
        &["h2", &block, "gc"],
    );
    assert!(!t.contains("panicked"), "{t}");
    network_kept("a setup killed on h2");
    assert!(lists_network(h2, "inuse"), "h2 lost the network");

    // gc on h2 tears the half-made container down and gives the block
    // back with its last-holder key.
    ok(h2.ocinet(&["gc"]));
    k.kill();
    assert!(
        Cluster::eventually(CONVERGE, || keys("blocks/inuse/").is_empty()
            && keys("held/inuse/").is_empty()),
        "gc on h2 left {:?}",
        keys("")
    );

    // Nothing of the network is left anywhere.
    ok(ocinet(h1, &["network", "rm", "inuse"]));
    let left: Vec<String> = keys("")
        .into_iter()
        .filter(|k| !k.contains("/members/") && !k.contains("/nodes/"))
        .collect();
    assert!(left.is_empty(), "keys left after rm: {left:?}");
    assert!(
        Cluster::eventually(CONVERGE, || !lists_network(h2, "inuse")),
        "h2 still lists the removed network"
    );
}

/// `cluster rm` of a host gone for good (its agent SIGKILLed, its
/// underlay link down, past its lease) from another member: refused for a
/// live node (naming it and that it is up), for this host, for a node the
/// store does not name and for a name that is no node name; killed before
/// its transaction it changed nothing and runs again (killed between the
/// batches of a node with many keys, it is finished the same way); then
/// every key of
/// the node is gone and nothing else (the whole key set compared), `cluster
/// ls` no longer lists it, and `network rm`, refused before naming the
/// node and `cluster rm`, succeeds leaving nothing of the network.
#[test]
fn cluster_rm_forgets_a_host_gone_for_good_and_only_such_a_host() {
    use std::os::unix::process::ExitStatusExt;
    let c = Cluster::joined(3);
    let (h1, h3) = (&c.hosts[0], &c.hosts[2]);
    ok(create_overlay(
        h1,
        "rmd",
        "10.91.0.0/16",
        &["--vni", "9100"],
    ));
    assert!(Cluster::eventually(CONVERGE, || lists_network(h3, "rmd")));
    let p = h3.started(Runtime::Runc, "p", &Spec::on("rmd", "pi"));
    let ipp = ip_of(h3, &p.id, "rmd");
    let held = format!("/ocinet/v1/held/rmd/{}", block_of(&ipp).replace('/', "-"));
    assert!(
        c.etcd.pairs("/ocinet/v1/").contains_key(&held),
        "h3's last-holder key"
    );

    // Refusals, each changing nothing.
    let before = c.etcd.pairs("/ocinet/v1/");
    refused(
        ocinet(h1, &["cluster", "rm", "h3"]),
        &["h3", "up", "cluster leave"],
    );
    refused(
        ocinet(h1, &["cluster", "rm", "h1"]),
        &["h1", "this host", "cluster leave"],
    );
    refused(
        ocinet(h1, &["cluster", "rm", "h9"]),
        &["h9", "not a member"],
    );
    refused(ocinet(h1, &["cluster", "rm", "a/b"]), &["node", "a/b"]);
    assert_eq!(
        c.etcd.pairs("/ocinet/v1/"),
        before,
        "a refused cluster rm changed the store"
    );

    // h3 dies: its agent killed, its underlay link down; past its lease
    // its blocks and entries are gone, its member and last-holder keys not.
    let agents = h3.agents();
    assert!(!agents.is_empty(), "h3 has no agent");
    for pid in &agents {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    c.ul.set_link(h3, false);
    assert!(
        Cluster::eventually(Duration::from_secs(20), || {
            let now = c.etcd.pairs("/ocinet/v1/");
            !now.contains_key("/ocinet/v1/nodes/h3")
                && now
                    .get("/ocinet/v1/members/h3")
                    .is_some_and(|v| v.contains("down_since"))
        }),
        "h3 is not down in the store: {:?}",
        c.etcd.pairs("/ocinet/v1/")
    );
    let down = c.members(0);
    assert!(
        down.iter()
            .any(|m| m["node"] == "h3" && m["state"] == "down"),
        "cluster ls does not show h3 down: {down:?}"
    );
    refused(
        ocinet(h1, &["network", "rm", "rmd"]),
        &["h3", "down", "cluster rm h3"],
    );

    // Killed before its transaction: nothing changed; run again: done.
    let before = c.etcd.pairs("/ocinet/v1/");
    let of_h3: Vec<&String> = before
        .iter()
        .filter(|(k, v)| names_node(k, v, "h3"))
        .map(|(k, _)| k)
        .collect();
    assert!(
        of_h3.contains(&&"/ocinet/v1/members/h3".to_string()) && of_h3.contains(&&held),
        "h3's keys: {of_h3:?}"
    );
    let o = h1.ocinet_with_env(
        &["cluster", "rm", "h3"],
        &[("OCINET_TEST_KILL_AT", "cluster-rm-read")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    assert_eq!(
        c.etcd.pairs("/ocinet/v1/"),
        before,
        "a cluster rm killed before its transaction"
    );
    assert_eq!(ok(ocinet(h1, &["cluster", "rm", "h3"])).trim(), "h3");
    let after = c.etcd.pairs("/ocinet/v1/");
    let expected: std::collections::BTreeMap<String, String> = before
        .into_iter()
        .filter(|(k, v)| !names_node(k, v, "h3"))
        .collect();
    assert_eq!(
        after, expected,
        "cluster rm h3: the store is not the one before without h3's keys"
    );
    let members = c.members(0);
    assert!(
        members.iter().all(|m| m["node"] != "h3"),
        "h3 still in cluster ls: {members:?}"
    );
    // Once removed it is unknown.
    refused(
        ocinet(h1, &["cluster", "rm", "h3"]),
        &["h3", "not a member"],
    );

    // Nothing holds the network any more.
    ok(ocinet(h1, &["network", "rm", "rmd"]));
    let left: Vec<String> = c
        .etcd
        .keys("/ocinet/v1/")
        .into_iter()
        .filter(|k| !k.contains("/members/h1") && !k.contains("/nodes/h1"))
        .filter(|k| !k.contains("/members/h2") && !k.contains("/nodes/h2"))
        .collect();
    assert!(
        left.is_empty(),
        "keys left after cluster rm and network rm: {left:?}"
    );

    // A node with more keys than one transaction carries (120 last-holder
    // keys, written here as a host would): its blocks go in batches, its
    // member key last. Killed after the first batch it is still a member,
    // listed down, and `cluster rm` again removes the rest.
    let value = r#"{"version":1,"node":"h9","advertise":"10.99.0.9"}"#;
    ok(c.etcd.etcdctl(&[
        "put",
        "/ocinet/v1/members/h9",
        r#"{"version":1,"node":"h9","advertise":"10.99.0.9","joined":1}"#,
    ]));
    for i in 0..120 {
        let key = format!("/ocinet/v1/held/many{}/10.200.{}.0-24", i / 60, i % 60);
        ok(c.etcd.etcdctl(&["put", &key, value]));
    }
    let o = h1.ocinet_with_env(
        &["cluster", "rm", "h9"],
        &[("OCINET_TEST_KILL_AT", "forget-node-batch")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let held_left = c.etcd.keys("/ocinet/v1/held/").len();
    assert!(
        held_left > 0 && held_left < 120,
        "killed after its first batch: {held_left} last-holder keys left"
    );
    assert!(
        c.members(0).iter().any(|m| m["node"] == "h9"),
        "h9 is no longer listed though some of its keys are left"
    );
    assert_eq!(ok(ocinet(h1, &["cluster", "rm", "h9"])).trim(), "h9");
    let left: Vec<String> = c
        .etcd
        .pairs("/ocinet/v1/")
        .into_iter()
        .filter(|(k, v)| names_node(k, v, "h9"))
        .map(|(k, _)| k)
        .collect();
    assert!(left.is_empty(), "keys of h9 left: {left:?}");

    // h3's container runs on, cut off; the harness stops it at the end.
    c.ul.set_link(h3, true);
}

#[test]
fn hostile_store_values_are_refused_logged_and_never_programmed() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    const VNI: &str = "8500";
    let dev = format!("ocv{VNI}");
    ok(create_overlay(h1, "ov", "10.85.0.0/16", &["--vni", VNI]));
    let a = h1.started(Runtime::Runc, "a", &Spec::on("ov", "alpha"));
    let b = h2.started(Runtime::Crun, "b", &Spec::on("ov", "beta"));
    let (ipa, ipb) = (ip_of(h1, &a.id, "ov"), ip_of(h2, &b.id, "ov"));
    assert!(ping(h1, &a.id, &ipb));

    let put = |e: &Etcd, k: &str, v: &str| ok(e.etcdctl(&["put", k, v]));
    let good_block = r#"{"version":1,"node":"h9","advertise":"10.99.0.9"}"#;
    let net_value = ok(c
        .etcd
        .etcdctl(&["get", "--print-value-only", "/ocinet/v1/networks/ov"]));
    let mut other: serde_json::Value =
        serde_json::from_str(net_value.trim()).expect("ov's value is JSON");
    other["network"]["name"] = "evil".into();
    other["network"]["driver"] = "bridge".into();
    other["network"]["bridge"] = "evilbr".into();
    if let Some(n) = other["network"].as_object_mut() {
        n.remove("vni");
    }
    let mut v2: serde_json::Value = serde_json::from_str(net_value.trim()).expect("JSON");
    v2["version"] = 2.into();
    v2["network"]["name"] = "future".into();
    let hostile: Vec<(String, String, &str)> = vec![
        // (key, value, what a host must not do with it)
        ("/ocinet/v1/blocks/ov/10.85.200.0-24".into(), "{not json".into(), "10.85.200.0/24"),
        (
            "/ocinet/v1/blocks/ov/10.85.201.0-24".into(),
            r#"{"version":2,"node":"h9","advertise":"10.99.0.9"}"#.into(),
            "10.85.201.0/24",
        ),
        ("/ocinet/v1/blocks/ov/10.86.0.0-24".into(), good_block.into(), "10.86.0.0/24"),
        ("/ocinet/v1/blocks/ov/10.85.0.0-16".into(), good_block.into(), "10.85.0.0/16 via"),
        (
            "/ocinet/v1/blocks/ov/10.85.203.0-24".into(),
            r#"{"version":1,"node":"h9","advertise":"127.0.0.1"}"#.into(),
            "10.85.203.0/24",
        ),
        (
            "/ocinet/v1/containers/ov/h9/cafe01".into(),
            r#"{"version":1,"node":"h9","id":"cafe01","name":"intruder","aliases":[],"addresses":["10.1.1.2"]}"#.into(),
            "10.1.1.2",
        ),
        ("/ocinet/v1/networks/evil".into(), other.to_string(), "evil"),
        ("/ocinet/v1/networks/future".into(), v2.to_string(), "future"),
        ("/ocinet/v1/networks/junk".into(), "\u{1}\u{2}garbage".into(), "junk"),
        (
            "/ocinet/v1/members/h8".into(),
            r#"{"version":1,"node":"h7","advertise":"10.99.0.8","joined":1}"#.into(),
            "10.99.0.8",
        ),
        (
            "/ocinet/v1/nodes/h8".into(),
            r#"{"version":2,"node":"h8","advertise":"10.99.0.8"}"#.into(),
            "10.99.0.8",
        ),
    ];
    let pids: Vec<i32> = [h1, h2].iter().map(|h| agent_pid(h)).collect();
    for (k, v, _) in &hostile {
        put(&c.etcd, k, v);
    }
    // Each refused value is named in some host's log.
    for (k, _, _) in &hostile {
        assert!(
            Cluster::eventually(CONVERGE, || {
                h1.log().contains(k.as_str()) || h2.log().contains(k.as_str())
            }),
            "{k} is not logged as refused:\n{}",
            h1.log()
        );
    }
    for h in [h1, h2] {
        agent_alive(h);
        let routes = ip(h, &["route"]);
        for (_, _, what) in &hostile {
            assert!(!routes.contains(what), "{what} programmed: {routes}");
        }
        let fdb = text(&h.exec(&["bridge", "fdb", "show", "dev", &dev]));
        assert!(
            !fdb.contains("10.99.0.9") && !fdb.contains("127.0.0.1"),
            "{fdb}"
        );
        for n in ["evil", "future", "junk"] {
            assert!(!lists_network(h, n), "{n} listed");
        }
        assert!(!h.config_dir().join("networks").join("evil.json").exists());
    }
    assert!(
        !text(&h1.in_container_fs(&a.id, &["nslookup", "intruder"])).contains("10.1.1.2"),
        "a hostile container entry answers"
    );
    // The good state is untouched: still reachable, still resolvable.
    assert!(ping(h1, &a.id, &ipb) && ping(h2, &b.id, &ipa));
    assert!(resolves(h2, &b.id, "alpha", &ipa));
    let members = c.members(0);
    assert!(
        members.len() == 2
            && members
                .iter()
                .all(|m| m["node"] != "h8" && m["state"] == "up"),
        "{members:?}"
    );
    // A create still works next to the hostile values.
    ok(create_overlay(
        h2,
        "after",
        "10.91.0.0/16",
        &["--vni", "8700"],
    ));
    agent_alive(h1);
    agent_alive(h2);
    let after: Vec<i32> = [h1, h2].iter().map(|h| agent_pid(h)).collect();
    assert_eq!(pids, after, "an agent was replaced: it crashed");
    // Refused, not re-read in a loop: with nothing changing, an agent
    // passes every 2 s, so over 3 quiet seconds the value is logged about
    // twice per host (a watch that woke at once logged it ~35 times a
    // second).
    let count = |h: &Host| h.log().matches(hostile[0].0.as_str()).count();
    let before: Vec<usize> = [h1, h2].iter().map(|h| count(h)).collect();
    std::thread::sleep(Duration::from_secs(3));
    for (h, n0) in [h1, h2].iter().zip(before) {
        let n = count(h) - n0;
        assert!(
            n <= 5,
            "{} logged {n} times in 3 quiet seconds: the agent spins",
            hostile[0].0
        );
    }
}
