//! Issue 22: published ports over IPv6, with real runc and crun, each test
//! in its own throwaway host namespace. The outside namespace has
//! 2001:db8:100::2 on its link to the test host (2001:db8:100::1) and no
//! other address; nothing is sent anywhere else.

use std::time::Duration;

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Host, Proc, Runtime, Spec, HOST_LINK_IP,
    HOST_LINK_IP6, OUTSIDE_IP, OUTSIDE_IP6,
};

fn dual(h: &Host, name: &str, v4: &str, v6: &str) {
    ok(h.ocinet(&["network", "create", name, "--subnet", v4, "--subnet", v6]));
}

fn ip6_of(h: &Host, id: &str) -> String {
    h.endpoint(id).expect("endpoint")["attachments"][0]["ip6"]
        .as_str()
        .unwrap_or_else(|| panic!("no ip6 for {id}"))
        .to_string()
}

fn published(
    h: &Host,
    rt: Runtime,
    tag: &str,
    net: &str,
    ports: &str,
) -> ocinet_integration::Container {
    let spec = Spec::default()
        .ann("io.ocinet.network", net)
        .ann("io.ocinet.ports", ports);
    let c = h.start(rt, tag, &spec);
    assert!(c.exit.is_none(), "{tag} failed: {}", c.output());
    c
}

#[track_caller]
fn silent(o: std::process::Output) {
    assert!(!o.status.success(), "expected no answer, got: {}", text(&o));
}

fn url6(ip: &str, port: u16) -> String {
    format!("http://[{ip}]:{port}/")
}

/// The container's own answer, retried briefly (a first packet may race
/// the neighbour discovery of a new address).
#[track_caller]
fn answers_soon(get: impl Fn() -> std::process::Output, id: &str) {
    let mut last = None;
    for _ in 0..20 {
        let o = get();
        if o.status.success() {
            return answers(o, id);
        }
        last = Some(o);
        std::thread::sleep(Duration::from_millis(100));
    }
    answers(last.expect("tried"), id);
}

fn log_of(h: &Host) -> String {
    h.log()
}

fn bare_and_any_ports_answer_over_both_families(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "ds", "10.71.0.0/24", "fd71::/64");
    let c = published(&h, rt, "pub", "ds", "8080:80,[::]:8081:80,0.0.0.0:8082:80");
    let rules_one = ok(h.ocinet(&["firewall", "rules"]));
    // Bare: every address of both families.
    answers_soon(|| h.wget_outside(&url6(HOST_LINK_IP6, 8080)), &c.id);
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    answers(h.wget(&url6(HOST_LINK_IP6, 8080)), &c.id);
    // [::]: the same, as a socket bound to :: is.
    answers(h.wget_outside(&url6(HOST_LINK_IP6, 8081)), &c.id);
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8081/")),
        &c.id,
    );
    // 0.0.0.0: IPv4 only.
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8082/")),
        &c.id,
    );
    silent(h.wget_outside(&url6(HOST_LINK_IP6, 8082)));
    // IPv6 loopback is not DNATed (the kernel would drop it): the port
    // proxy answers there for a container with IPv6 (ipv6_loopback_ports.rs),
    // and a 0.0.0.0 port is refused at once rather than hanging.
    answers(h.wget(&url6("::1", 8080)), &c.id);
    let t = std::time::Instant::now();
    silent(h.wget(&url6("::1", 8082)));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let ps = ok(h.ocinet(&["ps"]));
    assert!(
        ps.contains("[::]:8081:80/tcp") && ps.contains("0.0.0.0:8082:80/tcp"),
        "{ps}"
    );
    // Elements, not rules: a second dual-stack publisher adds none.
    let d = published(&h, rt, "pub2", "ds", "9080:80");
    answers_soon(|| h.wget_outside(&url6(HOST_LINK_IP6, 9080)), &d.id);
    assert_eq!(ok(h.ocinet(&["firewall", "rules"])), rules_one);
    // An IPv4-only network's container is published over IPv4 only.
    let v4 = h.start(rt, "v4", &Spec::default().ann("io.ocinet.ports", "7080:80"));
    assert!(v4.exit.is_none(), "{}", v4.output());
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:7080/")),
        &v4.id,
    );
    silent(h.wget_outside(&url6(HOST_LINK_IP6, 7080)));
    assert_eq!(ok(h.ocinet(&["firewall", "rules"])), rules_one);
}

fn host_ipv6_binding_answers_only_there(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "ds", "10.72.0.0/24", "fd72::/64");
    let c = published(&h, rt, "one", "ds", &format!("[{HOST_LINK_IP6}]:8083:80"));
    answers_soon(|| h.wget_outside(&url6(HOST_LINK_IP6, 8083)), &c.id);
    silent(h.wget_outside(&format!("http://{HOST_LINK_IP}:8083/")));
    let ps = ok(h.ocinet(&["ps"]));
    assert!(
        ps.contains(&format!("[{HOST_LINK_IP6}]:8083:80/tcp")),
        "{ps}"
    );
    // 0.0.0.0 of the same port is free (IPv4 only); a bare one is not.
    let v4 = published(&h, rt, "v4", "ds", "0.0.0.0:8083:80");
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8083/")),
        &v4.id,
    );
    answers(h.wget_outside(&url6(HOST_LINK_IP6, 8083)), &c.id);
    let bare = h.start(
        rt,
        "bare",
        &Spec::default()
            .ann("io.ocinet.network", "ds")
            .ann("io.ocinet.ports", "8083:80"),
    );
    assert!(bare.exit.is_some_and(|s| !s.success()));
    assert!(log_of(&h).contains("already published"), "{}", log_of(&h));
    assert!(h.leftovers(&bare.id).is_empty());
    // Refused, naming the entry: an address that is not the host's, an
    // IPv6 address or [::] for a container without IPv6, sctp on [::1]
    // (the port proxy carries tcp and udp).
    for (tag, net, ports, why) in [
        (
            "notmine",
            "ds",
            "[2001:db8:ffff::9]:8084:80",
            "not an address of this host",
        ),
        ("any6v4", "ocinet", "[::]:8085:80", "has no IPv6 subnet"),
        (
            "one6v4",
            "ocinet",
            &format!("[{HOST_LINK_IP6}]:8086:80"),
            "has no IPv6 subnet",
        ),
        (
            "loop6",
            "ds",
            "[::1]:8087:80/sctp",
            "sctp cannot be published on [::1]",
        ),
        ("bracket", "ds", "[::1:8088:80", "bracket is not closed"),
    ] {
        let bad = h.start(
            rt,
            tag,
            &Spec::default()
                .ann("io.ocinet.network", net)
                .ann("io.ocinet.ports", ports),
        );
        assert!(bad.exit.is_some_and(|s| !s.success()), "{tag}");
        let log = log_of(&h);
        // The entry as written (a valid one is shown with its /tcp).
        assert!(
            log.contains("io.ocinet.ports") && log.contains(why) && log.contains(ports),
            "{tag}: {log}"
        );
        assert!(h.leftovers(&bad.id).is_empty(), "{tag}");
    }
}

/// The echo server in container `id`'s network namespace, on `port`.
fn echo_in(h: &Host, id: &str, port: u16) -> Proc {
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(id)))
        .args([
            "timeout",
            "60",
            "python3",
            "-c",
            ocinet_integration::ECHO_CLIENT6_PY,
            "::",
            &port.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("echo server");
    std::thread::sleep(Duration::from_millis(400));
    Proc(child)
}

fn container_sees_the_clients_ipv6_address(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "ds", "10.73.0.0/24", "fd73::/64");
    let c = published(&h, rt, "echo", "ds", "8080:8080");
    let _echo = echo_in(&h, &c.id, 8080);
    let mut got = String::new();
    for _ in 0..20 {
        let o = h.wget_outside(&url6(HOST_LINK_IP6, 8080));
        if o.status.success() {
            got = text(&o);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got.trim(), format!("from {OUTSIDE_IP6}"));
    // The same socket over IPv4 sees the IPv4 client (mapped).
    let got = text(&h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")));
    assert_eq!(got.trim(), format!("from ::ffff:{OUTSIDE_IP}"));
}

fn hairpin_over_ipv6(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "ds", "10.74.0.0/24", "fd74::/64");
    dual(&h, "other", "10.75.0.0/24", "fd75::/64");
    let a = published(&h, rt, "hpa", "ds", "8080:80");
    let b = h.start(rt, "hpb", &Spec::default().ann("io.ocinet.network", "ds"));
    let o = h.start(
        rt,
        "hpo",
        &Spec::default().ann("io.ocinet.network", "other"),
    );
    let url = url6(HOST_LINK_IP6, 8080);
    // Its own port, a neighbour's, and from another network (as through
    // the host).
    answers_soon(|| h.wget_from(&a.id, &url), &a.id);
    answers_soon(|| h.wget_from(&b.id, &url), &a.id);
    answers_soon(|| h.wget_from(&o.id, &url), &a.id);
    // Also through the bridge's own IPv6 address.
    answers(h.wget_from(&b.id, &url6("fd74::1", 8080)), &a.id);
}

fn teardown_removes_the_ipv6_conntrack_entries(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "ds", "10.76.0.0/24", "fd76::/64");
    let mut c = published(&h, rt, "ct", "ds", "8080:80,5353:53/udp");
    let ip6 = ip6_of(&h, &c.id);
    answers_soon(|| h.wget_outside(&url6(HOST_LINK_IP6, 8080)), &c.id);
    // A UDP flow too: it is the one that would keep going to a dead
    // address.
    let send = format!(
        "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n\
         s.sendto(b'x',('{HOST_LINK_IP6}',5353))\n"
    );
    ok(h.exec_outside(&["python3", "-c", &send]));
    let entries = || text(&h.exec(&["conntrack", "-L", "-f", "ipv6"]));
    let before = entries();
    assert!(
        before
            .lines()
            .any(|l| l.contains(&ip6) && l.contains("tcp")),
        "no conntrack entry DNATed to {ip6}: {before}"
    );
    assert!(
        before
            .lines()
            .any(|l| l.contains(&ip6) && l.contains("udp")),
        "no UDP entry DNATed to {ip6}: {before}"
    );
    // The packet path recorded it, in the IPv6 set.
    let seen = h.nft_elements();
    assert!(
        seen.iter().any(|e| e.as_str() == Some(ip6.as_str())),
        "{ip6} not in dnat_seen6: {seen:?}"
    );
    h.stop(&mut c);
    let after = entries();
    assert!(
        !after.lines().any(|l| l.contains(&ip6)),
        "conntrack entries left for {ip6}: {after}"
    );
    let left: Vec<String> = h
        .nft_elements()
        .iter()
        .map(|e| e.to_string())
        .filter(|e| e.contains(&ip6))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_clean(&h, &c.id);
}

/// The port elements of both families for 8080 and 8081 (bare and `[::]`
/// each publish in both).
fn port_elements(h: &Host) -> Vec<String> {
    h.nft_elements()
        .iter()
        .map(|e| e.to_string())
        .filter(|e| e.contains("8080") || e.contains("8081"))
        .collect()
}

/// The hook SIGKILLed at each step of a dual-stack publishing setup, and of
/// its teardown: gc or the next call leaves no IPv6 element, lease or claim.
#[test]
fn a_dual_stack_publisher_killed_at_any_step_is_recovered() {
    use std::os::unix::process::ExitStatusExt;
    let h = Host::new();
    dual(&h, "ds", "10.77.0.0/24", "fd77::/64");
    let ann =
        serde_json::json!({"io.ocinet.network": "ds", "io.ocinet.ports": "8080:80,[::]:8081:80"});
    let clean = |id: &str, when: &str| {
        let left = h.leftovers(id);
        assert!(left.is_empty(), "{when}: {left:?}");
        assert!(h.leases("ds").is_empty(), "{when}: {:?}", h.leases("ds"));
        assert!(h.port_claims().is_empty(), "{when}: {:?}", h.port_claims());
        assert!(
            port_elements(&h).is_empty(),
            "{when}: {:?}",
            port_elements(&h)
        );
    };
    let kill = |stage: &str, state: &str, step: &str| {
        let o = h.hook_with_env(stage, state, &[], &[("OCINET_TEST_KILL_AT", step)]);
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{stage} at {step}: {}",
            text(&o)
        );
    };
    let steps = [
        "leased",
        "recorded",
        "bridge",
        "firewall-started",
        "veth",
        "firewall",
        "pinned",
    ];
    for (n, step) in steps.iter().enumerate() {
        for gc in [true, false] {
            let when = format!(
                "killed at {step}, recovered by {}",
                if gc { "gc" } else { "the next hook" }
            );
            let v = h.bare_container(&format!("k{n}{gc}"), ann.clone());
            kill("createRuntime", &v.state, step);
            if gc {
                ok(h.ocinet(&["gc"]));
                clean(&v.id, &when);
            }
            ok(h.hook("createRuntime", &v.state, &[]));
            let ip6 = ip6_of(&h, &v.id);
            // Both ports in both families: four maps' two elements each.
            let mine: Vec<String> = port_elements(&h);
            assert_eq!(mine.len(), 8, "{when}: {mine:?}");
            assert_eq!(
                mine.iter()
                    .filter(|e| e.contains(&format!("\"{ip6}\"")))
                    .count(),
                2,
                "{when}: {mine:?}"
            );
            ok(h.hook("poststop", &v.stopped_state(), &[]));
            clean(&v.id, &when);
        }
    }
    for (n, step) in ["teardown-unwired", "teardown-unleased"].iter().enumerate() {
        for gc in [true, false] {
            let when = format!("poststop killed at {step}, gc {gc}");
            let mut v = h.bare_container(&format!("t{n}{gc}"), ann.clone());
            ok(h.hook("createRuntime", &v.state, &[]));
            v.kill();
            let stop = v.stopped_state();
            kill("poststop", &stop, step);
            if gc {
                ok(h.ocinet(&["gc"]));
            } else {
                ok(h.hook("poststop", &stop, &[]));
            }
            clean(&v.id, &when);
        }
    }
}

both_runtimes!(
    bare_and_any_ports_answer_over_both_families,
    host_ipv6_binding_answers_only_there,
    container_sees_the_clients_ipv6_address,
    hairpin_over_ipv6,
    teardown_removes_the_ipv6_conntrack_entries,
);
