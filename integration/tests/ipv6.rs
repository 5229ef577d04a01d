//! Issue 22: IPv6. Dual-stack bridge networks end to end, with real runc
//! and crun, each test in its own throwaway host namespace; the outside
//! namespace has an IPv6 address on its link to the test host
//! (2001:db8:100::2) and no other.

use ocinet_integration::{assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, OUTSIDE_IP6};

fn attachment(h: &Host, id: &str) -> serde_json::Value {
    h.endpoint(id).expect("endpoint")["attachments"][0].clone()
}

fn ip6_of(h: &Host, id: &str) -> String {
    attachment(h, id)["ip6"]
        .as_str()
        .unwrap_or_else(|| panic!("no ip6 for {id}"))
        .to_string()
}

fn dual(h: &Host, name: &str, v4: &str, v6: &str) {
    ok(h.ocinet(&["network", "create", name, "--subnet", v4, "--subnet", v6]));
}

fn dual_stack_container_gets_both_families(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.61.0.0/24", "fd61::/64");
    let spec = Spec::default().ann("io.ocinet.network", "ds");
    let mut a = h.start(rt, "a", &spec);
    let b = h.start(rt, "b", &spec);
    let att = attachment(&h, &a.id);
    assert_eq!(att["address6"], "fd61::2/64", "{att}");
    assert_eq!(att["ip"], "10.61.0.2", "{att}");
    let addr = ok(h.in_container(&a.id, &["ip", "-6", "addr", "show", "dev", "eth0"]));
    // Leased, not SLAAC, and usable at once: no tentative state, and no
    // link-local (no DAD, router or MLD solicitations flooded).
    assert!(addr.contains("inet6 fd61::2/64"), "{addr}");
    assert!(
        !addr.contains("tentative") && !addr.contains("fe80"),
        "{addr}"
    );
    let routes = ok(h.in_container(&a.id, &["ip", "-6", "route"]));
    assert!(routes.contains("default via fd61::1 dev eth0"), "{routes}");
    let br = ok(h.exec(&["ip", "-6", "addr", "show", "dev", &bridge_of(&h, "ds")]));
    assert!(br.contains("inet6 fd61::1/64"), "{br}");
    // Container to container, and container to host, over IPv6.
    let ipb = ip6_of(&h, &b.id);
    let got = ok(h.wget_from(&a.id, &format!("http://[{ipb}]/")));
    assert_eq!(got.trim(), format!("hello from {}", b.id));
    ok(h.in_container(&a.id, &["ping", "-6", "-c", "1", "-W", "2", "fd61::1"]));
    // The host reaches the container directly.
    let got = ok(h.wget(&format!("http://[{}]/", ip6_of(&h, &a.id))));
    assert_eq!(got.trim(), format!("hello from {}", a.id));
    h.stop(&mut a);
    assert_clean(&h, &a.id);
    // Its IPv6 address is free again, and no neighbour entry is left for it.
    let neigh = text(&h.exec(&["ip", "-6", "neigh", "show", "fd61::2"]));
    assert!(
        !neigh.contains("lladdr") || neigh.contains("FAILED"),
        "{neigh}"
    );
}

fn bridge_of(h: &Host, net: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).expect("json");
    v[0]["Options"]["bridge"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no bridge in {v}"))
}

/// A dual-stack macvlan network on the outside's segment: containers are
/// hosts there with both families, the outside their IPv6 router.
fn macvlan_carries_both_families(rt: Runtime) {
    let h = Host::new();
    let parent = h.outside_link();
    ok(h.ocinet(&[
        "network",
        "create",
        "mv6",
        "--driver",
        "macvlan",
        "--parent",
        &parent,
        "--subnet",
        "198.51.100.0/24",
        "--gateway",
        ocinet_integration::OUTSIDE_IP,
        "--ip-range",
        "198.51.100.128/25",
        "--subnet",
        "2001:db8:100::/64",
        "--gateway",
        OUTSIDE_IP6,
        "--ip-range",
        "2001:db8:100::8000/113",
        "--disable-dns",
    ]));
    let mut server = h.spawn_outside(&[
        "python3",
        "-c",
        ocinet_integration::ECHO_CLIENT6_PY,
        "::",
        "8081",
    ]);
    let spec = Spec::default().ann("io.ocinet.network", "mv6");
    let mut a = h.start(rt, "a", &spec);
    assert!(a.exit.is_none(), "{}", a.output());
    let ip6 = ip6_of(&h, &a.id);
    assert!(ip6.starts_with("2001:db8:100::8"), "{ip6}");
    let routes = ok(h.in_container(&a.id, &["ip", "-6", "route"]));
    assert!(
        routes.contains(&format!("default via {OUTSIDE_IP6} dev eth0")),
        "{routes}"
    );
    // No NAT: the outside sees the container's own IPv6 address, and
    // reaches it directly.
    let url = format!("http://[{OUTSIDE_IP6}]:8081/");
    let mut got = String::new();
    for _ in 0..30 {
        let o = h.wget_from(&a.id, &url);
        if o.status.success() {
            got = text(&o);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got.trim(), format!("from {ip6}"));
    let direct = ok(h.exec_outside(&[
        "timeout",
        "3",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://[{ip6}]:80/"),
    ]));
    assert_eq!(direct.trim(), format!("hello from {}", a.id));
    h.stop(&mut a);
    assert_clean(&h, &a.id);
    server.terminate();
}

/// A dual-stack network's deleted bridge comes back with both gateway
/// addresses (`firewall reload`), and its containers reach each other over
/// IPv6 again.
fn a_deleted_dual_stack_bridge_is_restored_by_firewall_reload(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.63.0.0/24", "fd63::/64");
    let spec = Spec::default().ann("io.ocinet.network", "ds");
    let a = h.start(rt, "a", &spec);
    let b = h.start(rt, "b", &spec);
    let url = format!("http://[{}]/", ip6_of(&h, &a.id));
    ok(h.wget_from(&b.id, &url));
    let bridge = bridge_of(&h, "ds");
    ok(h.exec(&["ip", "link", "del", &bridge]));
    assert!(!h.wget_from(&b.id, &url).status.success());
    let out = ok(h.ocinet(&["firewall", "reload"]));
    assert!(out.contains("bridges made again: 1"), "{out}");
    let br = ok(h.exec(&["ip", "addr", "show", "dev", &bridge]));
    assert!(
        br.contains("inet6 fd63::1/64") && br.contains("inet 10.63.0.1/24"),
        "{br}"
    );
    let mut got = h.wget_from(&b.id, &url);
    for _ in 0..30 {
        if got.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        got = h.wget_from(&b.id, &url);
    }
    assert_eq!(text(&got).trim(), format!("hello from {}", a.id));
}

/// IPv6-only networks: `--ipv4=false --ipv6`, or only an IPv6 subnet.
/// Containers have no IPv4 address at all, and reach each other and the
/// host over IPv6.
fn ipv6_only_containers_have_no_ipv4(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "six",
        "--ipv4=false",
        "--ipv6",
        "--disable-dns",
    ]));
    ok(h.ocinet(&[
        "network",
        "create",
        "six2",
        "--subnet",
        "fd65::/64",
        "--disable-dns",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "six2"]))).expect("json");
    assert_eq!(v[0]["EnableIPv4"], false, "{v}");
    assert_eq!(v[0]["EnableIPv6"], true, "{v}");
    assert_eq!(
        v[0]["IPAM"]["Config"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    let spec = Spec::default().ann("io.ocinet.network", "six2");
    let mut a = h.start(rt, "a", &spec);
    assert!(a.exit.is_none(), "{}", a.output());
    let b = h.start(rt, "b", &spec);
    let att = attachment(&h, &a.id);
    assert!(att["ip"].is_null(), "{att}");
    assert_eq!(att["address6"], "fd65::2/64", "{att}");
    assert_eq!(att["default_route"], true, "{att}");
    let v4 = ok(h.in_container(&a.id, &["ip", "-4", "addr", "show", "dev", "eth0"]));
    assert!(!v4.contains("inet "), "{v4}");
    let routes = ok(h.in_container(&a.id, &["ip", "-6", "route"]));
    assert!(routes.contains("default via fd65::1 dev eth0"), "{routes}");
    let got = ok(h.wget_from(&b.id, &format!("http://[{}]/", ip6_of(&h, &a.id))));
    assert_eq!(got.trim(), format!("hello from {}", a.id));
    let br = ok(h.exec(&["ip", "-4", "addr", "show", "dev", &bridge_of(&h, "six2")]));
    assert!(!br.contains("inet "), "{br}");
    // Its port is guarded like any other: a second IPv6 address does
    // not get out, its own does.
    ok(std::process::Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(&b.id)))
        .args([
            "ip",
            "-6",
            "addr",
            "add",
            "fd65::99/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .output()
        .expect("ip"));
    let forged = h.in_container(
        &b.id,
        &[
            "ping", "-6", "-c", "1", "-W", "1", "-I", "fd65::99", "fd65::1",
        ],
    );
    assert!(!forged.status.success(), "a forged source got an answer");
    let own = ip6_of(&h, &b.id);
    ok(h.in_container(
        &b.id,
        &["ping", "-6", "-c", "1", "-W", "2", "-I", &own, "fd65::1"],
    ));
    // Static addresses: an IPv4 one is refused naming the network.
    let bad = h.start(
        rt,
        "bad",
        &Spec::default()
            .ann("io.ocinet.network", "six2")
            .ann("io.ocinet.ip", "10.65.0.5"),
    );
    assert!(bad.exit.is_some());
    // Published ports answer over IPv6; an IPv4 host address is refused.
    let mut p = h.start(
        rt,
        "pub",
        &Spec::default()
            .ann("io.ocinet.network", "six2")
            .ann("io.ocinet.ports", "8080:80"),
    );
    assert!(p.exit.is_none(), "{}", p.output());
    let url = format!("http://[{}]:8080/", ip6_of(&h, &a.id).replace("::2", "::1"));
    // (From A: B now has a forged address its packets may leave from.)
    let got = ok(h.wget_from(&a.id, &url));
    assert_eq!(got.trim(), format!("hello from {}", p.id));
    let refused = h.start(
        rt,
        "pub4",
        &Spec::default()
            .ann("io.ocinet.network", "six2")
            .ann("io.ocinet.ports", "0.0.0.0:8081:80"),
    );
    assert!(refused.exit.is_some(), "an IPv4 host address was taken");
    h.stop(&mut p);
    h.stop(&mut a);
    assert_clean(&h, &a.id);
    assert_clean(&h, &p.id);
}

both_runtimes!(
    ipv6_only_containers_have_no_ipv4,
    a_deleted_dual_stack_bridge_is_restored_by_firewall_reload,
    macvlan_carries_both_families,
    dual_stack_container_gets_both_families,
);
