//! Issue 21, the resolver: what a hostile tester broke, each reproduced
//! and shown mended. Upstreams are fakes in the outside namespace.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocinet_integration::upstream::{in_container_py, Upstream, CLIENT_PY};
use ocinet_integration::{ok, text, Container, Host, Proc, Runtime, Spec, OUTSIDE_IP};

fn started(h: &Host, rt: Runtime, name: &str, network: &str) -> Container {
    let spec = Spec::default()
        .ann("io.ocinet.network", network)
        .ann("io.ocinet.name", name);
    let c = h.start(rt, name, &spec);
    assert!(c.exit.is_none(), "{name}: {}", c.output());
    c
}

fn network(h: &Host, name: &str, subnet: &str, extra: &[&str]) {
    let mut args = vec!["network", "create", name, "--subnet", subnet];
    args.extend_from_slice(extra);
    ok(h.ocinet(&args));
}

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

/// Every query the resolver counted so far (its figures, saved each second).
fn queries_counted(h: &Host) -> u64 {
    std::thread::sleep(Duration::from_millis(1200));
    let s = h.dns_status()["Queries"].clone();
    ["answered", "nxdomain", "forwarded", "servfail", "refused"]
        .iter()
        .map(|k| s[*k].as_u64().unwrap_or(0))
        .sum()
}

/// 21.1: from an internal network nothing reaches an upstream, neither the
/// network's nor the container's own (`io.ocinet.dns`): reverse names of
/// any type included. Its own names are still answered.
fn an_internal_network_sends_nothing_upstream(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    network(&h, "inner", "10.67.0.0/24", &["--internal"]);
    let spec = Spec::default()
        .ann("io.ocinet.network", "inner")
        .ann("io.ocinet.name", "inner-1")
        .ann("io.ocinet.dns", OUTSIDE_IP);
    let mut c = h.start(rt, "inner-1", &spec);
    assert!(c.exit.is_none(), "{}", c.output());
    let out = in_container_py(
        &h,
        &c.id,
        r#"gw = "10.67.0.1"
for name, t in [("4.3.2.1.in-addr.arpa", 12), ("4.3.2.1.in-addr.arpa", 16),
                ("4.3.2.1.in-addr.arpa", 255), ("data.exfil.example", 16),
                ("upstream.test", 1)]:
    print(name, t, *ask(gw, name, t))
print("own", *ask(gw, "inner-1"))
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    for l in &lines[..5] {
        assert!(l.ends_with(" 5 0"), "not REFUSED: {l}\n{out}");
    }
    assert_eq!(lines[5], "own 0 1", "{out}");
    assert_eq!(up.asked(), Vec::<String>::new(), "reached the upstream");
    h.stop(&mut c);
}

/// 21.2: a container asking, ten times a second and more, for names its
/// upstream never answers fails nobody else's forwards: not on its own
/// network, not on another with the same upstream.
fn a_client_asking_for_names_nobody_answers_fails_nobody_else(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    network(&h, "web", "10.64.0.0/24", &["--dns-upstream", OUTSIDE_IP]);
    network(&h, "other", "10.65.0.0/24", &["--dns-upstream", OUTSIDE_IP]);
    let mut flooder = started(&h, rt, "flooder", "web");
    let mut neighbour = started(&h, rt, "neighbour", "web");
    let mut far = started(&h, rt, "far", "other");
    // 100 queries a second for 6 s, none of them ever answered.
    let flood = format!(
        "{CLIENT_PY}\n{}",
        r#"s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, i = time.time() + 6, 0
while time.time() < end:
    s.sendto(q(i & 0xffff, "slow%d.example" % i), ("10.64.0.1", 53))
    i += 1
    time.sleep(0.01)
"#
    );
    let _flood = Proc(
        Command::new("nsenter")
            .arg(format!("--net={}", h.netns_of(&flooder.id)))
            .args(["python3", "-c", &flood])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    // Past the forward timeout: the flood's misses are being counted.
    std::thread::sleep(Duration::from_millis(1500));
    let calm = |id: &str, gw: &str| {
        in_container_py(
            &h,
            id,
            &format!(
                r#"n = 0
for i in range(25):
    n += ask("{gw}", "fast%d.example" % i, 1, i + 1) == (0, 1)
    time.sleep(0.05)
print(n)
"#
            ),
        )
    };
    let near = calm(&neighbour.id, "10.64.0.1");
    let other = calm(&far.id, "10.65.0.1");
    assert_eq!(near.trim(), "25", "answered on the flooder's network");
    assert_eq!(other.trim(), "25", "answered on another network");
    // A container is answered only at its own network's address: asked
    // at the other network's (the host routes it there), REFUSED.
    let elsewhere = in_container_py(&h, &neighbour.id, r#"print(*ask("10.65.0.1", "far"))"#);
    assert_eq!(
        elsewhere.trim(),
        "5 0",
        "answered at another network's address"
    );
    let slow = up.asked().iter().filter(|n| n.starts_with("slow")).count();
    assert!(slow > 20, "the flood hardly reached the upstream: {slow}");
    h.stop(&mut flooder);
    h.stop(&mut neighbour);
    h.stop(&mut far);
}

/// 21.3: queries sent from outside the host with a container's source are
/// dropped: not answered into the container, not spending its rate limit.
fn forged_sources_from_outside_are_dropped(rt: Runtime) {
    let h = Host::new();
    let out = h.outside();
    let _up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    network(
        &h,
        "web",
        "10.64.0.0/24",
        &["--dns-upstream", OUTSIDE_IP, "--dns-rate-limit", "50"],
    );
    let mut victim = started(&h, rt, "victim", "web");
    let ip = ip_of(&h, &victim.id);
    ok(Command::new("ip")
        .args(["-n", &out, "route", "add", "10.64.0.0/24", "via"])
        .arg(ocinet_integration::HOST_LINK_IP)
        .output()
        .expect("ip route"));
    let before = queries_counted(&h);
    let spoof = r#"import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(3000):
    dns = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"\x06victim\x00\x00\x01\x00\x01"
    udp = struct.pack(">HHHH", 5353, 53, 8 + len(dns), 0) + dns
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(hdr + udp, (dst, 0))
print("sent")
"#;
    let sent = text(&h.exec_outside(&["python3", "-c", spoof, &ip, "10.64.0.1"]));
    assert!(sent.contains("sent"), "{sent}");
    // The container's own queries, right after: every one answered.
    let own = in_container_py(
        &h,
        &victim.id,
        r#"print(sum(ask("10.64.0.1", "victim", 1, i + 1) == (0, 1) for i in range(20)))"#,
    );
    assert_eq!(own.trim(), "20", "the container's own queries");
    let counted = queries_counted(&h) - before;
    assert!(
        counted < 100,
        "{counted} queries reached the resolver (3,000 forged, 20 the container's)"
    );
    h.stop(&mut victim);
}

fn gone_within(pid: i64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !ocinet_integration::running(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 21.4: a resolver ends once its state directory is gone (with its
/// containers still running), a persistent one once its namespace is
/// deleted, and `gc` ends a hook-started one that nothing needs.
fn a_resolver_ends_with_what_it_serves(rt: Runtime) {
    // The state directory removed under a running container.
    let h = Host::new();
    h.outside();
    let _up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    network(&h, "web", "10.64.0.0/24", &["--dns-upstream", OUTSIDE_IP]);
    let _c = started(&h, rt, "web-1", "web");
    let pid = h.resolver_pid().expect("a resolver");
    std::fs::remove_dir_all(h.state_dir()).expect("rm state");
    assert!(
        gone_within(pid, Duration::from_secs(3)),
        "the resolver outlived its state directory"
    );

    // A persistent resolver, its namespace deleted.
    let h2 = Host::new();
    let bin = ocinet_integration::ocinet_bin();
    let (state, config) = (h2.state_dir(), h2.config_dir());
    let _service = h2.spawn(&[
        bin.to_str().unwrap_or_default(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--config-dir",
        config.to_str().unwrap_or_default(),
        "dns-server",
        "--persistent",
    ]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while h2.resolver_pid().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = h2.resolver_pid().expect("the persistent resolver");
    ok(Command::new("ip")
        .args(["netns", "del", &h2.name])
        .output()
        .expect("ip netns del"));
    assert!(
        gone_within(pid, Duration::from_secs(3)),
        "the persistent resolver outlived its namespace"
    );

    // One that cannot end by itself (stopped), ended by gc once its last
    // container is gone.
    let h3 = Host::new();
    h3.outside();
    let _up3 = Upstream::start(&h3, OUTSIDE_IP, [203, 0, 113, 7]);
    network(&h3, "web", "10.64.0.0/24", &["--dns-upstream", OUTSIDE_IP]);
    let mut c = started(&h3, rt, "web-2", "web");
    let pid = h3.resolver_pid().expect("a resolver");
    ok(Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .output()
        .expect("kill"));
    h3.stop(&mut c);
    assert_eq!(h3.resolver_pid(), Some(pid), "a stopped resolver ended");
    let gc = ok(h3.ocinet(&["gc"]));
    assert!(
        gc.contains(&format!("ended the resolver (pid {pid})")),
        "{gc}"
    );
    assert!(gone_within(pid, Duration::from_secs(1)));
    assert_eq!(h3.resolver_pid(), None);
    // With nothing to end, gc says nothing of it.
    let gc = ok(h3.ocinet(&["gc"]));
    assert!(!gc.contains("resolver"), "{gc}");
}

ocinet_integration::both_runtimes!(
    an_internal_network_sends_nothing_upstream,
    a_client_asking_for_names_nobody_answers_fails_nobody_else,
    forged_sources_from_outside_are_dropped,
    a_resolver_ends_with_what_it_serves,
);
