//! Issue 22: IPv6. Dual-stack bridge networks end to end, with real runc
//! and crun, each test in its own throwaway host namespace; the outside
//! namespace has an IPv6 address on its link to the test host
//! (2001:db8:100::2) and no other.

use ocinet_integration::{assert_clean, both_runtimes, ok, text, Host, Runtime, Spec};

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

both_runtimes!(dual_stack_container_gets_both_families,);
