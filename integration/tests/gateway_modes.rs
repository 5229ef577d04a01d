//! Issue 22: gateway modes per family (`--gateway-mode-ipv4`,
//! `--gateway-mode-ipv6`, Docker's names): `nat`, `nat-unprotected` and
//! `routed` (no masquerade; from outside only published container ports
//! answer, at the container's own address).

use ocinet_integration::{
    both_runtimes, ok, text, Host, Runtime, Spec, ECHO_CLIENT6_PY, ECHO_CLIENT_PY, HOST_LINK_IP,
    HOST_LINK_IP6, OUTSIDE_IP, OUTSIDE_IP6,
};

fn attachment(h: &Host, id: &str) -> serde_json::Value {
    h.endpoint(id).expect("endpoint")["attachments"][0].clone()
}

/// The first successful GET of `url` from container `id` within 3 s.
fn get_from(h: &Host, id: &str, url: &str) -> String {
    for _ in 0..30 {
        let o = h.wget_from(id, url);
        if o.status.success() {
            return text(&o);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    String::new()
}

fn outside_get(h: &Host, url: &str) -> std::process::Output {
    h.exec_outside(&["timeout", "3", "busybox", "wget", "-q", "-O", "-", url])
}

fn ipv4_nat_and_ipv6_routed_on_one_network(rt: Runtime) {
    let h = Host::new();
    h.outside();
    ok(h.ocinet(&[
        "network",
        "create",
        "mixed",
        "--subnet",
        "10.66.0.0/24",
        "--subnet",
        "fd66::/64",
        "--gateway-mode-ipv6",
        "routed",
        "--disable-dns",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "mixed"]))).expect("json");
    assert_eq!(v[0]["Options"]["gateway_mode_ipv4"], "nat", "{v}");
    assert_eq!(v[0]["Options"]["gateway_mode_ipv6"], "routed", "{v}");
    let on = Spec::default().ann("io.ocinet.network", "mixed");
    let mut p = h.start(rt, "pub", &on.clone().ann("io.ocinet.ports", "8080:80"));
    assert!(p.exit.is_none(), "{}", p.output());
    let q = h.start(rt, "quiet", &on);
    let (p6, q6) = (
        attachment(&h, &p.id)["ip6"]
            .as_str()
            .expect("ip6")
            .to_string(),
        attachment(&h, &q.id)["ip6"]
            .as_str()
            .expect("ip6")
            .to_string(),
    );
    let p4 = attachment(&h, &p.id)["ip"]
        .as_str()
        .expect("ip")
        .to_string();
    // The outside routes both subnets via the host, as a neighbour that
    // knows them would.
    ok(h.exec_outside(&["ip", "route", "add", "10.66.0.0/24", "via", HOST_LINK_IP]));
    ok(h.exec_outside(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd66::/64",
        "via",
        HOST_LINK_IP6,
    ]));
    // IPv6 routed: the published container port answers at the
    // container's own address; an unpublished one does not, nor a
    // container that publishes nothing.
    let got = text(&outside_get(&h, &format!("http://[{p6}]:80/")));
    assert_eq!(got.trim(), format!("hello from {}", p.id));
    assert!(!outside_get(&h, &format!("http://[{q6}]:80/"))
        .status
        .success());
    // IPv4 nat: protected, even with the route.
    assert!(!outside_get(&h, &format!("http://{p4}:80/"))
        .status
        .success());
    // Outbound: IPv6 leaves with the container's own address, IPv4
    // masqueraded.
    let mut s6 = h.spawn_outside(&["python3", "-c", ECHO_CLIENT6_PY, "::", "8086"]);
    let mut s4 = h.spawn_outside(&["python3", "-c", ECHO_CLIENT_PY, OUTSIDE_IP, "8084"]);
    let got6 = get_from(&h, &p.id, &format!("http://[{OUTSIDE_IP6}]:8086/"));
    assert_eq!(got6.trim(), format!("from {p6}"));
    let got4 = get_from(&h, &p.id, &format!("http://{OUTSIDE_IP}:8084/"));
    assert_eq!(got4.trim(), format!("from {HOST_LINK_IP}"));
    s6.terminate();
    s4.terminate();
    // Nothing of the routed port is left once the container is gone.
    h.stop(&mut p);
    let left: Vec<String> = h
        .nft_elements()
        .iter()
        .map(|e| e.to_string())
        .filter(|e| e.contains(&format!("\"{p6}\"")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(h.leftovers(&p.id).is_empty(), "{:?}", h.leftovers(&p.id));
}

fn routed_ipv4_is_not_masqueraded_and_answers_only_published_ports(rt: Runtime) {
    let h = Host::new();
    h.outside();
    ok(h.ocinet(&[
        "network",
        "create",
        "r4",
        "--subnet",
        "10.67.0.0/24",
        "--gateway-mode",
        "routed",
        "--disable-dns",
    ]));
    let on = Spec::default().ann("io.ocinet.network", "r4");
    let p = h.start(rt, "pub", &on.clone().ann("io.ocinet.ports", "8080:80"));
    let q = h.start(rt, "quiet", &on);
    let p4 = attachment(&h, &p.id)["ip"]
        .as_str()
        .expect("ip")
        .to_string();
    let q4 = attachment(&h, &q.id)["ip"]
        .as_str()
        .expect("ip")
        .to_string();
    ok(h.exec_outside(&["ip", "route", "add", "10.67.0.0/24", "via", HOST_LINK_IP]));
    let got = text(&outside_get(&h, &format!("http://{p4}:80/")));
    assert_eq!(got.trim(), format!("hello from {}", p.id));
    assert!(!outside_get(&h, &format!("http://{q4}:80/"))
        .status
        .success());
    let mut s4 = h.spawn_outside(&["python3", "-c", ECHO_CLIENT_PY, OUTSIDE_IP, "8084"]);
    let got4 = get_from(&h, &q.id, &format!("http://{OUTSIDE_IP}:8084/"));
    assert_eq!(got4.trim(), format!("from {q4}"));
    s4.terminate();
}

#[test]
fn gateway_modes_are_checked_by_family() {
    let h = Host::new();
    for (args, field, value) in [
        (
            vec!["--subnet", "10.68.0.0/24", "--gateway-mode-ipv6", "routed"],
            "gateway-mode-ipv6",
            "routed",
        ),
        (
            vec![
                "--subnet",
                "10.68.0.0/24",
                "--internal",
                "--gateway-mode-ipv4",
                "routed",
            ],
            "gateway-mode",
            "routed",
        ),
        (
            vec!["--subnet", "10.68.0.0/24", "--gateway-mode", "bogus"],
            "gateway-mode",
            "bogus",
        ),
    ] {
        let mut a = vec!["network", "create", "gm"];
        a.extend(args.iter().copied());
        let o = h.ocinet(&a);
        let err = text(&o);
        assert!(!o.status.success(), "{a:?} accepted");
        assert!(err.contains(field) && err.contains(value), "{a:?}: {err}");
    }
    // The IPv4 flag alone on an IPv4-only network, and the old
    // --gateway-mode, are as before.
    ok(h.ocinet(&[
        "network",
        "create",
        "ok4",
        "--subnet",
        "10.69.0.0/24",
        "--gateway-mode",
        "nat-unprotected",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "ok4"]))).expect("json");
    assert_eq!(v[0]["Options"]["gateway_mode"], "nat-unprotected", "{v}");
    assert!(v[0]["Options"]["gateway_mode_ipv6"].is_null(), "{v}");
    // --gateway-mode is for every family the network has: with IPv4's
    // set apart on an IPv4-only network, it names no IPv6 mode to refuse.
    ok(h.ocinet(&[
        "network",
        "create",
        "ok4b",
        "--subnet",
        "10.70.0.0/24",
        "--gateway-mode",
        "routed",
        "--gateway-mode-ipv4",
        "nat-unprotected",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "ok4b"]))).expect("json");
    assert_eq!(
        v[0]["Options"]["gateway_mode_ipv4"], "nat-unprotected",
        "{v}"
    );
    assert!(v[0]["Options"]["gateway_mode_ipv6"].is_null(), "{v}");
}

both_runtimes!(
    ipv4_nat_and_ipv6_routed_on_one_network,
    routed_ipv4_is_not_masqueraded_and_answers_only_published_ports,
);
