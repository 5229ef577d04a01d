//! Issue 15: name resolution between containers, per network. Every test
//! network names its upstream explicitly: a fake resolver this test runs
//! in the outside namespace (queries never reach the machine's resolvers).

use ocinet_integration::upstream::Upstream;
use ocinet_integration::{ok, text, Host, Runtime, Spec, OUTSIDE_IP};

/// A resolver in the outside namespace that answers every A query with
/// 203.0.113.7 (and, for `outside.test`, nothing else matters).
fn fake_upstream(h: &Host) -> Upstream {
    fake_upstream_at(h, OUTSIDE_IP, [203, 0, 113, 7])
}

/// The same, listening on `at` (an address of the outside namespace) and
/// answering `answer`.
fn fake_upstream_at(h: &Host, at: &str, answer: [u8; 4]) -> Upstream {
    Upstream::start(h, at, answer)
}

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

/// `nslookup NAME` inside container `id`, through its own resolv.conf.
fn lookup(h: &Host, id: &str, name: &str) -> String {
    text(&h.in_container_fs(id, &["nslookup", name]))
}

fn resolver_running(h: &Host) -> bool {
    h.resolver_pid().is_some()
}

fn containers_resolve_each_other_per_network(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    for (net, sub) in [("web", "10.64.0.0/24"), ("other", "10.65.0.0/24")] {
        ok(h.ocinet(&[
            "network",
            "create",
            net,
            "--subnet",
            sub,
            "--dns-upstream",
            OUTSIDE_IP,
        ]));
    }
    let on = |net: &str, name: &str| {
        Spec::default()
            .ann("io.ocinet.network", net)
            .ann("io.ocinet.name", name)
    };
    let mut a = h.started(
        rt,
        "a",
        &on("web", "web-1").ann("io.ocinet.aliases", "app,db"),
    );
    let mut b = h.started(rt, "b", &on("web", "web-2"));
    let mut c = h.started(rt, "c", &on("other", "lonely"));
    let a_ip = ip_of(&h, &a.id);
    assert!(
        resolver_running(&h),
        "no resolver after the first DNS container"
    );
    // The resolver's own binary, installed beside the hook's.
    let exe = std::fs::read_link(format!("/proc/{}/exe", h.resolver_pid().unwrap_or(0)))
        .expect("the resolver's binary");
    assert!(exe.ends_with("ocinet-dns"), "{exe:?}");
    // It says where it listens: each DNS-enabled network's gateway.
    let state = h.dns_status();
    assert_eq!(
        state["Listening"],
        serde_json::json!(["10.64.0.1", "10.65.0.1"]),
        "{state}"
    );
    let conf = text(&h.in_container_fs(&b.id, &["cat", "/etc/resolv.conf"]));
    assert!(conf.contains("nameserver 10.64.0.1"), "{conf}");
    // Read-only for the container (it lives on the host's /run).
    let w = h.in_container_fs(&b.id, &["sh", "-c", "echo x >> /etc/resolv.conf"]);
    assert!(!w.status.success(), "the container wrote its resolv.conf");
    for name in ["web-1", "app", "db", &a.id[..12]] {
        let out = lookup(&h, &b.id, name);
        assert!(out.contains(&format!("Address: {a_ip}")), "{name}: {out}");
    }
    // Not visible from another network, and NXDOMAIN rather than a timeout.
    let out = lookup(&h, &c.id, "web-1");
    assert!(out.contains("NXDOMAIN"), "{out}");
    // Every other name goes to the network's upstream.
    let out = lookup(&h, &b.id, "outside.test");
    assert!(out.contains("Address: 203.0.113.7"), "{out}");
    // Reverse lookups answer the name.
    let out = lookup(&h, &b.id, &a_ip);
    assert!(out.contains("web-1"), "{out}");
    // Gone at once when it stops.
    h.stop(&mut a);
    let out = lookup(&h, &b.id, "web-1");
    assert!(out.contains("NXDOMAIN"), "{out}");
    h.stop(&mut b);
    h.stop(&mut c);
    // The resolver ends with the last container, and nothing is left.
    assert!(
        h.resolver_ended(),
        "the resolver outlived the last container"
    );
    for id in [&a.id, &b.id, &c.id] {
        ocinet_integration::assert_clean(&h, id);
        assert!(!h.state_dir().join(format!("dns/resolv/{id}.conf")).exists());
    }
}

/// A container on two networks is answered with its address on the
/// network the question came from.
fn two_networks_two_answers(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    for (net, sub) in [("web", "10.64.0.0/24"), ("other", "10.65.0.0/24")] {
        ok(h.ocinet(&[
            "network",
            "create",
            net,
            "--subnet",
            sub,
            "--dns-upstream",
            OUTSIDE_IP,
        ]));
    }
    let spec = |net: &str, name: &str| {
        Spec::default()
            .ann("io.ocinet.network", net)
            .ann("io.ocinet.name", name)
    };
    let mut m = h.started(rt, "multi", &spec("web,other", "both"));
    let mut w = h.started(rt, "w", &spec("web", "w"));
    let mut o = h.started(rt, "o", &spec("other", "o"));
    let atts = h
        .endpoint(&m.id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default();
    let addr = |net: &str| {
        atts.iter()
            .find(|a| a["network"] == net)
            .and_then(|a| a["ip"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let out = lookup(&h, &w.id, "both");
    assert!(
        out.contains(&format!("Address: {}", addr("web"))) && !out.contains(&addr("other")),
        "{out}"
    );
    let out = lookup(&h, &o.id, "both");
    assert!(
        out.contains(&format!("Address: {}", addr("other"))) && !out.contains(&addr("web")),
        "{out}"
    );
    // Its resolv.conf names both networks' resolvers, in interface order.
    let conf = text(&h.in_container_fs(&m.id, &["cat", "/etc/resolv.conf"]));
    let first = conf.find("nameserver 10.64.0.1");
    let second = conf.find("nameserver 10.65.0.1");
    assert!(first.is_some() && second > first, "{conf}");
    for c in [&mut m, &mut w, &mut o] {
        h.stop(c);
    }
}

/// Malformed, oversized and flooding queries: the resolver answers what
/// it can, drops the rest, keeps answering other clients, and lives.
fn bad_queries_and_a_flood(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
        // Low, so the limit trips however few of the flood's packets a slow
        // machine's socket buffer lets through (CI read 3,888 of 20,000,
        // under the default burst of 4,000).
        "--dns-rate-limit",
        "200",
    ]));
    let on = Spec::default().ann("io.ocinet.network", "web");
    let mut a = h.started(rt, "flooder", &on.clone().ann("io.ocinet.name", "flooder"));
    let mut b = h.started(rt, "victim", &on.clone().ann("io.ocinet.name", "victim"));
    let script = r#"import socket, sys, time, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
gw = ("10.64.0.1", 53)
def q(i, name):
    h = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0)
    return h + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
out = []
# Garbage with a header: FORMERR with its id.
s.sendto(b"\x12\x34\x01\x00" + b"\xff" * 28, gw)
r, _ = s.recvfrom(4096)
out.append("formerr" if r[:2] == b"\x12\x34" and r[3] & 15 == 1 else "bad")
# Shorter than a header, and 4 KiB of junk: no answer, no harm.
s.sendto(b"\x01", gw)
s.sendto(b"\x00" * 4096, gw)
# A flood: 20,000 queries as fast as they go.
t = time.time()
for i in range(20000):
    s.sendto(q(i & 0xffff, "victim"), gw)
out.append("flood %.2f s" % (time.time() - t))
print(" ".join(out))
"#;
    let ns = h.netns_of(&a.id);
    let o = std::process::Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(["python3", "-c", script])
        .output()
        .expect("python");
    let out = text(&o);
    assert!(out.contains("formerr"), "{out}");
    // The other container is answered at once, flood or not.
    let t = std::time::Instant::now();
    let got = lookup(&h, &b.id, "flooder");
    assert!(got.contains("Address: 10.64.0."), "{got}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert!(resolver_running(&h));
    // The flood was limited: refusals were counted.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let stats = h.dns_status()["Queries"].clone();
    assert!(stats["refused"].as_u64().unwrap_or(0) > 1000, "{stats}");
    h.stop(&mut a);
    h.stop(&mut b);
}

/// Bad DNS input is refused naming the field and value, leaving nothing.
fn bad_dns_settings_are_refused(rt: Runtime) {
    let h = Host::new();
    for (args, why) in [
        (
            vec!["--dns-upstream", "0.0.0.0"],
            "invalid dns-upstream \"0.0.0.0\"",
        ),
        (
            vec!["--dns-upstream", "10.64.0.1"],
            "is the network's own resolver",
        ),
        (
            vec!["--disable-dns", "--dns-upstream", "10.9.9.9"],
            "does nothing with --disable-dns",
        ),
        (vec!["--dns-upstream", "nope"], "nope"),
    ] {
        let mut all = vec!["network", "create", "bad", "--subnet", "10.64.0.0/24"];
        all.extend(args.iter().copied());
        let o = h.ocinet(&all);
        assert!(
            !o.status.success() && text(&o).contains(why),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert!(!h.config_dir().join("networks/bad.json").exists());
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
    for (k, v, why) in [
        (
            "io.ocinet.aliases",
            "bad/alias",
            "invalid io.ocinet.aliases \"bad/alias\"",
        ),
        (
            "io.ocinet.aliases",
            "a,a",
            "invalid io.ocinet.aliases \"a\": is given twice",
        ),
        ("io.ocinet.dns", "nope", "invalid io.ocinet.dns \"nope\""),
        (
            "io.ocinet.dns",
            "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4",
            "at most three",
        ),
        ("io.ocinet.dns", "224.0.0.1", "not a unicast address"),
        ("io.ocinet.dns", "127.0.0.53", "is the host's own"),
        ("io.ocinet.dns", "10.64.0.9", "is in network web"),
    ] {
        let c = h.start(
            rt,
            "bad",
            &Spec::default().ann("io.ocinet.network", "web").ann(k, v),
        );
        assert!(c.exit.is_some_and(|s| !s.success()), "{k}={v} started");
        let log = h.log();
        assert!(log.contains(why), "{k}={v}: {log}");
        ocinet_integration::assert_clean(&h, &c.id);
    }
    assert!(!resolver_running(&h));
}

/// SIGKILL the resolver: the next hook call, or gc, starts it again, and
/// names answer again. `io.ocinet.dns=off` keeps the container's own file.
fn a_killed_resolver_comes_back(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
    let on = |name: &str| {
        Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.name", name)
    };
    let mut a = h.started(rt, "a", &on("alpha"));
    let pid_of = |h: &Host| -> i64 { h.resolver_pid().unwrap_or(0) };
    let kill = |pid: i64| {
        ok(std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .output()
            .expect("kill"));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let first = pid_of(&h);
    kill(first);
    assert!(!resolver_running(&h));
    // The next hook call starts it again.
    let mut b = h.started(rt, "b", &on("beta"));
    assert!(resolver_running(&h) && pid_of(&h) != first);
    assert!(lookup(&h, &b.id, "alpha").contains("Address: 10.64.0."));
    // And gc does.
    kill(pid_of(&h));
    let out = ok(h.ocinet(&["gc"]));
    assert!(out.contains("started the resolver"), "{out}");
    assert!(lookup(&h, &a.id, "beta").contains("Address: 10.64.0."));
    // A container that keeps its own resolv.conf still has a name.
    let mut c = h.started(rt, "c", &on("gamma").ann("io.ocinet.dns", "off"));
    let conf = text(&h.in_container_fs(&c.id, &["cat", "/etc/resolv.conf"]));
    assert!(!conf.contains("Generated by ocinet"), "{conf}");
    assert!(lookup(&h, &a.id, "gamma").contains("Address: 10.64.0."));
    for x in [&mut a, &mut b, &mut c] {
        h.stop(x);
    }
    assert!(
        h.resolver_ended(),
        "the resolver outlived the last container"
    );
}

/// Per-container upstreams (`io.ocinet.dns`) come first; a network whose
/// upstream never answers gets SERVFAIL quickly; the exporter shows the
/// resolver's figures, and promtool accepts them.
#[test]
fn upstreams_servfail_and_the_exporters_figures() {
    let rt = Runtime::Runc;
    let h = Host::new();
    let out = h.outside();
    let _up = fake_upstream(&h);
    // A second upstream on another address of the outside namespace.
    let link = text(
        &std::process::Command::new("ip")
            .args(["-n", &out, "-o", "link", "show", "type", "veth"])
            .output()
            .expect("ip"),
    );
    let iface = link
        .split(": ")
        .nth(1)
        .and_then(|n| n.split('@').next())
        .unwrap_or("")
        .to_string();
    ok(std::process::Command::new("ip")
        .args(["-n", &out, "addr", "add", "198.51.100.3/24", "dev", &iface])
        .output()
        .expect("ip addr"));
    let _own = fake_upstream_at(&h, "198.51.100.3", [203, 0, 113, 99]);
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
    // An internal network's containers get no way out through the resolver.
    ok(h.ocinet(&[
        "network",
        "create",
        "inner",
        "--internal",
        "--subnet",
        "10.67.0.0/24",
    ]));
    // An upstream nobody answers at (no such host on the segment).
    ok(h.ocinet(&[
        "network",
        "create",
        "dead",
        "--subnet",
        "10.66.0.0/24",
        "--dns-upstream",
        "198.51.100.9",
    ]));
    let mut a = h.started(rt, "a", &Spec::default().ann("io.ocinet.network", "web"));
    let mut b = h.started(
        rt,
        "b",
        &Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.dns", "198.51.100.3"),
    );
    let mut d = h.started(rt, "d", &Spec::default().ann("io.ocinet.network", "dead"));
    assert!(lookup(&h, &a.id, "outside.test").contains("Address: 203.0.113.7"));
    assert!(lookup(&h, &b.id, "outside.test").contains("Address: 203.0.113.99"));
    let t = std::time::Instant::now();
    let got = lookup(&h, &d.id, "outside.test");
    assert!(got.contains("SERVFAIL"), "{got}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
    assert!(lookup(&h, &a.id, "nobody").contains("NXDOMAIN"));
    let mut i = h.started(
        rt,
        "i",
        &Spec::default()
            .ann("io.ocinet.network", "inner")
            .ann("io.ocinet.name", "inside"),
    );
    let got = lookup(&h, &i.id, "outside.test");
    assert!(
        got.contains("REFUSED") && !got.contains("203.0.113"),
        "{got}"
    );
    assert!(lookup(&h, &i.id, "inside").contains("Address: 10.67.0."));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let _e = h.start_exporter(&[]);
    let metrics = ok(h.exec(&[
        "curl",
        "-sf",
        &format!("http://{}/metrics", ocinet_integration::EXPORTER_ADDR),
    ]));
    let value = |needle: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {needle}: {metrics}"))
    };
    assert!(value("ocinet_dns_queries_total{result=\"forwarded\"}") >= 2.0);
    assert!(value("ocinet_dns_queries_total{result=\"servfail\"}") >= 1.0);
    assert!(value("ocinet_dns_queries_total{result=\"nxdomain\"}") >= 1.0);
    assert!(value("ocinet_dns_forward_duration_seconds_count") >= 2.0);
    assert!(
        metrics.contains("# TYPE ocinet_dns_forward_duration_seconds histogram"),
        "{metrics}"
    );
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        let mut si = check.stdin.take().expect("stdin");
        si.write_all(metrics.as_bytes()).expect("write");
    }
    let o = check.wait_with_output().expect("promtool");
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool: {}",
        text(&o)
    );
    for c in [&mut a, &mut b, &mut d, &mut i] {
        h.stop(c);
    }
}

/// macvlan: names resolve through the network's shim (a sub-interface of
/// the parent in the host namespace with the network's DNS address), which
/// also lets the host reach its containers; the shim goes with the network.
fn names_on_a_macvlan_network(rt: Runtime) {
    let h = Host::new();
    h.macvlan_network("mv");
    let _up = fake_upstream(&h);
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "mv"]))).unwrap_or_default();
    assert_eq!(v[0]["DNSEnabled"], true, "{v}");
    assert_eq!(v[0]["DNSAddress"], "198.51.100.254", "{v}");
    let on = |name: &str| {
        Spec::default()
            .ann("io.ocinet.network", "mv")
            .ann("io.ocinet.name", name)
    };
    let mut a = h.started(rt, "mva", &on("web-1"));
    let mut b = h.started(rt, "mvb", &on("web-2"));
    let a_ip = ip_of(&h, &a.id);
    let shims: Vec<String> = h
        .links("macvlan")
        .into_iter()
        .filter(|l| l.starts_with("ocd-"))
        .collect();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let conf = text(&h.in_container_fs(&b.id, &["cat", "/etc/resolv.conf"]));
    assert!(conf.contains("nameserver 198.51.100.254"), "{conf}");
    let out = lookup(&h, &b.id, "web-1");
    assert!(out.contains(&format!("Address: {a_ip}")), "{out}");
    let out = lookup(&h, &b.id, "outside.test");
    assert!(out.contains("Address: 203.0.113.7"), "{out}");
    // Another host of the segment (the outside) is no container: refused,
    // not an open resolver on the LAN.
    let nb = text(&h.exec_outside(&[
        "timeout",
        "3",
        "busybox",
        "nslookup",
        "web-1",
        "198.51.100.254",
    ]));
    assert!(
        !nb.contains(&format!("Address: {a_ip}")),
        "a neighbour was answered: {nb}"
    );
    // The host reaches a macvlan container through the shim's route.
    let routes = ok(h.exec(&["ip", "-4", "route", "show", "dev", &shims[0]]));
    assert!(routes.contains(&a_ip), "{routes}");
    ocinet_integration::answers(h.wget(&format!("http://{a_ip}:80/")), &a.id);
    // A deleted shim (and its routes) comes back with `firewall reload`.
    ok(h.exec(&["ip", "link", "del", &shims[0]]));
    assert!(lookup(&h, &b.id, "web-1").contains("timed out"));
    ok(h.ocinet(&["firewall", "reload"]));
    let out = lookup(&h, &b.id, "web-1");
    assert!(
        out.contains(&format!("Address: {a_ip}")),
        "after reload: {out}"
    );
    h.stop(&mut a);
    let out = lookup(&h, &b.id, "web-1");
    assert!(out.contains("NXDOMAIN"), "{out}");
    let routes = ok(h.exec(&["ip", "-4", "route", "show", "dev", &shims[0]]));
    assert!(!routes.contains(&a_ip), "{routes}");
    h.stop(&mut b);
    assert!(
        h.resolver_ended(),
        "the resolver outlived the last container"
    );
    ok(h.ocinet(&["network", "rm", "mv"]));
    assert!(
        !h.links("macvlan").contains(&shims[0]),
        "network rm left the shim"
    );
    // Other modes cannot reach their containers from a shim: no names
    // unless asked, and asked, refused naming the mode.
    let parent = h.outside_link();
    let mk = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "network",
            "create",
            name,
            "--driver",
            "macvlan",
            "--parent",
            &parent,
            "--subnet",
            "198.51.100.0/24",
            "--gateway",
            OUTSIDE_IP,
        ];
        args.extend_from_slice(extra);
        h.ocinet(&args)
    };
    ok(mk("priv", &["--mode", "private"]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "priv"]))).unwrap_or_default();
    assert_eq!(v[0]["DNSEnabled"], false, "{v}");
    ok(h.ocinet(&["network", "rm", "priv"]));
    for (extra, why) in [
        (
            vec!["--mode", "private", "--dns-upstream", OUTSIDE_IP],
            "invalid mode \"private\": name resolution on a macvlan network needs mode bridge",
        ),
        (
            vec!["--dns-address", OUTSIDE_IP, "--dns-upstream", OUTSIDE_IP],
            "invalid dns-address \"198.51.100.2\": is the gateway address",
        ),
        (
            vec!["--dns-address", "10.1.1.1", "--dns-upstream", OUTSIDE_IP],
            "invalid dns-address \"10.1.1.1\": must be a host address in 198.51.100.0/24",
        ),
    ] {
        let o = mk("bad", &extra);
        assert!(
            !o.status.success() && text(&o).contains(why),
            "{extra:?}: {}",
            text(&o)
        );
    }
    let o = h.ocinet(&[
        "network",
        "create",
        "b2",
        "--subnet",
        "10.64.0.0/24",
        "--dns-address",
        "10.64.0.9",
    ]);
    assert!(
        text(&o).contains("only applies to macvlan networks"),
        "{}",
        text(&o)
    );
    assert!(!h.config_dir().join("networks/bad.json").exists());
}

/// A container run by its runtime in the foreground, as at a shell. With
/// the resolver its hook started, runc returns when the process ends, and
/// crun (a child subreaper, waiting for every descendant) only once the
/// resolver ends too: while another container keeps it serving, it waits.
/// A resolver the host's service manager runs (`ocinet dns-server
/// --persistent`, here this test's own child) is in no runtime's tree:
/// started while the hook's one runs, it waits and takes over when that
/// one ends; hooks then use it, both runtimes return at once, and it stays
/// after the last container, until SIGTERM, which removes its pid file.
fn foreground_runs_and_a_persistent_resolver(rt: Runtime) {
    use std::time::Duration;
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
    let on = |name: &str| {
        Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.name", name)
    };
    let run = |name: &str, cmd: &[&str]| Spec {
        args: Some(cmd.iter().map(|a| a.to_string()).collect()),
        ..on(name)
    };
    // The hook of a foreground run starts the resolver; another container
    // keeps it serving after the first one's process ended.
    // (Its process lives long enough for the other container to be up.)
    let mut a = h.run_in_foreground(rt, "a", &run("fg-a", &["sleep", "5"]));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !resolver_running(&h) {
        assert!(
            std::time::Instant::now() < deadline,
            "no resolver: {}",
            a.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = h.started(rt, "b", &on("fg-b"));
    let on_demand = h.resolver_pid().expect("the hook's resolver");
    // The resolver as a service, started while the hook's one runs: it
    // waits, and takes over when that one ends.
    let bin = ocinet_integration::ocinet_bin();
    let (state, config) = (h.state_dir(), h.config_dir());
    let mut service = h.spawn(&[
        bin.to_str().unwrap_or_default(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--config-dir",
        config.to_str().unwrap_or_default(),
        "dns-server",
        "--persistent",
    ]);
    let pid = i64::from(service.0.id());
    let waited = h.wait_runtime(&mut a, Duration::from_secs(11));
    match rt {
        Runtime::Runc => assert!(waited.is_some_and(|s| s.success()), "{}", a.output()),
        Runtime::Crun => {
            assert!(waited.is_none(), "crun returned with the resolver running");
        }
    }
    assert!(
        matches!(service.0.try_wait(), Ok(None)),
        "the service ended while another resolver ran"
    );
    assert_eq!(h.resolver_pid(), Some(on_demand));
    assert_eq!(h.dns_status()["Persistent"], false, "the hook's resolver");
    // The hook's resolver ends with the last container; crun returns then.
    h.stop(&mut b);
    if rt == Runtime::Crun {
        let st = h.wait_runtime(&mut a, Duration::from_secs(15));
        assert!(st.is_some(), "crun still waits after the resolver ended");
    }
    h.stop(&mut a);
    // Hooks find the service and start none.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while h.resolver_pid() != Some(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the service resolver did not take over"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.dns_status()["Persistent"], true, "the service");
    let mut c = h.started(rt, "c", &on("fg-c"));
    let c_ip = ip_of(&h, &c.id);
    let mut d = h.run_in_foreground(rt, "d", &run("fg-d", &["/bin/busybox", "nslookup", "fg-c"]));
    let st = h.wait_runtime(&mut d, Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "the foreground run did not return: {:?} {}",
        st,
        d.output()
    );
    assert!(
        d.output().contains(&format!("Address: {c_ip}")),
        "{}",
        d.output()
    );
    assert_eq!(
        h.resolver_pid(),
        Some(pid),
        "a hook started another resolver"
    );
    h.stop(&mut d);
    h.stop(&mut c);
    // It stays after the last container, still answering nobody else.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.resolver_pid(), Some(pid), "the persistent resolver ended");
    service.terminate();
    assert!(h.resolver_pid().is_none());
    assert!(
        !h.state_dir().join("dns/resolver.json").exists(),
        "pid file left"
    );
    for id in [&a.id, &b.id, &c.id, &d.id] {
        ocinet_integration::assert_clean(&h, id);
    }
}

ocinet_integration::both_runtimes!(
    foreground_runs_and_a_persistent_resolver,
    names_on_a_macvlan_network,
    containers_resolve_each_other_per_network,
    two_networks_two_answers,
    bad_queries_and_a_flood,
    bad_dns_settings_are_refused,
    a_killed_resolver_comes_back,
);

/// TCP: the resolver answers over TCP, and falls back to TCP upstream
/// when the upstream's UDP answer is truncated. Names follow connect and
/// disconnect.
#[test]
fn tcp_truncation_and_connect_disconnect() {
    let rt = Runtime::Runc;
    let h = Host::new();
    h.outside();
    // An upstream that truncates over UDP and answers in full over TCP.
    let script = r#"import socket, threading
def answer(q, addr):
    end = q.index(b"\0", 12) + 5
    return q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end] + \
        b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes(addr)
def tcp():
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("198.51.100.2", 53)); t.listen(8)
    while True:
        c, _ = t.accept()
        n = int.from_bytes(c.recv(2), "big"); q = b""
        while len(q) < n: q += c.recv(n - len(q))
        r = answer(q, [203, 0, 113, 42]); c.sendall(len(r).to_bytes(2, "big") + r); c.close()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("198.51.100.2", 53))
while True:
    q, peer = u.recvfrom(4096)
    end = q.index(b"\0", 12) + 5
    u.sendto(q[:2] + b"\x83\x80" + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:end], peer)
"#;
    let _up = h.spawn_outside(&["python3", "-c", script]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (net, sub) in [("web", "10.64.0.0/24"), ("other", "10.65.0.0/24")] {
        ok(h.ocinet(&[
            "network",
            "create",
            net,
            "--subnet",
            sub,
            "--dns-upstream",
            OUTSIDE_IP,
        ]));
    }
    // An image with its own resolv.conf: its search and options lines are
    // kept, its servers are not.
    let image = h.state_dir().with_file_name("image-with-resolv-conf");
    ok(std::process::Command::new("cp")
        .arg("-a")
        .arg(ocinet_integration::rootfs::path())
        .arg(&image)
        .output()
        .expect("cp"));
    std::fs::write(
        image.join("etc/resolv.conf"),
        "nameserver 192.0.2.53\nsearch corp.test\noptions ndots:2\n",
    )
    .expect("image resolv.conf");
    let image_path = image.display().to_string();
    let mut a = h.started(
        rt,
        "a",
        &Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.name", "alpha")
            .edit(move |c| c["root"]["path"] = serde_json::json!(image_path)),
    );
    let conf = || text(&h.in_container_fs(&a.id, &["cat", "/etc/resolv.conf"]));
    let first = conf();
    for want in [
        "nameserver 10.64.0.1",
        "search corp.test",
        "options ndots:2",
    ] {
        assert!(first.contains(want), "{want}: {first}");
    }
    assert!(!first.contains("192.0.2.53"), "{first}");
    let mut o = h.started(
        rt,
        "o",
        &Spec::default()
            .ann("io.ocinet.network", "other")
            .ann("io.ocinet.name", "omega"),
    );
    // Truncated over UDP upstream: the TCP answer is the one given.
    let got = lookup(&h, &a.id, "big.test");
    assert!(got.contains("Address: 203.0.113.42"), "{got}");
    // A query over TCP to the resolver, from the container's namespace.
    let tcp_query = r#"import socket, struct, sys
q = struct.pack(">HHHHHH", 77, 0x0100, 1, 0, 0, 0) + b"\x05alpha\x00\x00\x01\x00\x01"
s = socket.create_connection((sys.argv[1], 53), timeout=3)
s.sendall(len(q).to_bytes(2, "big") + q)
n = int.from_bytes(s.recv(2), "big"); r = b""
while len(r) < n: r += s.recv(n - len(r))
print("id", int.from_bytes(r[:2], "big"), "rcode", r[3] & 15, "answers", int.from_bytes(r[6:8], "big"), ".".join(map(str, r[-4:])))
"#;
    let out = text(
        &std::process::Command::new("nsenter")
            .arg(format!("--net={}", h.netns_of(&a.id)))
            .args(["python3", "-c", tcp_query, "10.64.0.1"])
            .output()
            .expect("python"),
    );
    let a_ip = ip_of(&h, &a.id);
    assert!(
        out.contains(&format!("id 77 rcode 0 answers 1 {a_ip}")),
        "{out}"
    );
    // One client holds at most 8 connections: the rest are closed at once.
    // (One look at all of them, well before the 3 s idle close.)
    let hold = r#"import select, socket, sys, time
held = [socket.create_connection((sys.argv[1], 53), timeout=3) for _ in range(12)]
time.sleep(0.5)
ready, _, _ = select.select(held, [], [], 0.2)
closed = 0
for s in ready:
    try:
        closed += s.recv(1) == b""
    except ConnectionResetError:
        closed += 1
print("open", len(held) - closed, "closed", closed)
"#;
    let out = text(
        &std::process::Command::new("nsenter")
            .arg(format!("--net={}", h.netns_of(&a.id)))
            .args(["python3", "-c", hold, "10.64.0.1"])
            .output()
            .expect("python"),
    );
    assert!(out.contains("open 8 closed 4"), "{out}");
    // Connected to other: its name answers there, with its address there;
    // disconnected: gone there at once.
    assert!(lookup(&h, &o.id, "alpha").contains("NXDOMAIN"));
    ok(h.ocinet(&["network", "connect", "other", &a.id, "--alias", "second"]));
    let other_ip = h
        .endpoint(&a.id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .and_then(|v| {
            v.iter()
                .find(|x| x["network"] == "other")
                .and_then(|x| x["ip"].as_str().map(str::to_string))
        })
        .expect("address on other");
    for name in ["alpha", "second"] {
        let got = lookup(&h, &o.id, name);
        assert!(
            got.contains(&format!("Address: {other_ip}")),
            "{name}: {got}"
        );
    }
    // The container's resolv.conf follows connect and disconnect.
    let connected = conf();
    assert!(
        connected.contains("nameserver 10.64.0.1\nnameserver 10.65.0.1\n"),
        "{connected}"
    );
    assert!(connected.contains("search corp.test"), "{connected}");
    ok(h.ocinet(&["network", "disconnect", "other", &a.id]));
    assert!(lookup(&h, &o.id, "alpha").contains("NXDOMAIN"));
    let after = conf();
    assert!(!after.contains("10.65.0.1"), "{after}");
    assert!(after.contains("nameserver 10.64.0.1"), "{after}");
    h.stop(&mut a);
    h.stop(&mut o);
    assert!(h.resolver_ended());
}

/// A network without `--dns-upstream` forwards to the host's
/// /etc/resolv.conf, re-read when it changes. The resolver is started (by
/// `gc`, after the first one is killed before any query) in a mount
/// namespace of the test's own whose /etc/resolv.conf is a file of the
/// test's naming upstreams in the outside namespace: no query reaches the
/// machine's resolvers.
#[test]
fn the_hosts_resolv_conf_is_followed() {
    let h = Host::new();
    let out = h.outside();
    let outside_link = format!("oo{}", &h.outside_link()[2..]);
    ok(std::process::Command::new("ip")
        .args([
            "-n",
            &out,
            "addr",
            "add",
            "198.51.100.3/24",
            "dev",
            &outside_link,
        ])
        .output()
        .expect("ip"));
    let _first = fake_upstream_at(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    let _second = fake_upstream_at(&h, "198.51.100.3", [203, 0, 113, 8]);
    ok(h.ocinet(&["network", "create", "web", "--subnet", "10.64.0.0/24"]));
    let mut a = h.started(
        Runtime::Runc,
        "a",
        &Spec::default().ann("io.ocinet.network", "web"),
    );
    let pid = h.resolver_pid().expect("a resolver");
    ok(h.exec(&["kill", "-9", &pid.to_string()]));
    assert!(h.resolver_ended());
    let fake = h.state_dir().with_file_name("host-resolv.conf");
    std::fs::write(&fake, format!("nameserver {OUTSIDE_IP}\n")).expect("fake resolv.conf");
    let bin = ocinet_integration::ocinet_bin();
    let (state, config) = (h.state_dir(), h.config_dir());
    ok(h.exec_private_mounts(
        r#"mount --bind "$1" /etc/resolv.conf && exec "$2" gc --state-dir "$3" --config-dir "$4""#,
        &[
            fake.to_str().unwrap_or_default(),
            bin.to_str().unwrap_or_default(),
            state.to_str().unwrap_or_default(),
            config.to_str().unwrap_or_default(),
        ],
    ));
    assert!(resolver_running(&h), "gc did not start the resolver");
    let got = lookup(&h, &a.id, "outside.test");
    assert!(got.contains("Address: 203.0.113.7"), "{got}");
    // Rewritten in place (the bind mount holds the inode).
    std::fs::write(&fake, "nameserver 198.51.100.3\n").expect("fake resolv.conf");
    let got = lookup(&h, &a.id, "outside.test");
    assert!(
        got.contains("Address: 203.0.113.8"),
        "after the change: {got}"
    );
    h.stop(&mut a);
    assert!(h.resolver_ended());
}

/// An image whose /etc/resolv.conf is a symlink keeps it: nothing is
/// mounted through it, and the container still starts and is named.
#[test]
fn an_image_resolv_conf_symlink_is_not_followed() {
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
    let image = h.state_dir().with_file_name("image-with-symlink");
    ok(std::process::Command::new("cp")
        .arg("-a")
        .arg(ocinet_integration::rootfs::path())
        .arg(&image)
        .output()
        .expect("cp"));
    let _ = std::fs::remove_file(image.join("etc/resolv.conf"));
    std::os::unix::fs::symlink("/etc/passwd", image.join("etc/resolv.conf")).expect("symlink");
    let image_path = image.display().to_string();
    let on = |name: &str| {
        Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.name", name)
    };
    let mut a = h.started(
        Runtime::Runc,
        "a",
        &on("linked").edit(move |c| c["root"]["path"] = serde_json::json!(image_path)),
    );
    let mut b = h.started(Runtime::Runc, "b", &on("plain"));
    let conf = text(&h.in_container_fs(&a.id, &["cat", "/etc/resolv.conf"]));
    assert!(conf.starts_with("root:x:0:0"), "{conf}");
    let log = h.log();
    assert!(
        log.contains("the container keeps its own resolv.conf"),
        "{log}"
    );
    let a_ip = ip_of(&h, &a.id);
    let out = lookup(&h, &b.id, "linked");
    assert!(out.contains(&format!("Address: {a_ip}")), "{out}");
    h.stop(&mut a);
    h.stop(&mut b);
}
