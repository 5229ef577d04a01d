//! Issue 14: a host upgraded with containers running. A record in the
//! layout ocinet 0.1.0 wrote (one network's fields flat on it, its
//! nftables elements listed) is converted by the next hook call; the
//! container keeps working (its published ports, also after a firewall
//! rebuild), nothing it holds is handed out twice, and its teardown
//! leaves nothing.

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, Host, Runtime, Spec, HOST_LINK_IP,
};

fn log(h: &Host) -> String {
    h.log()
}

fn a_running_container_of_0_1_0_is_converted_and_keeps_working(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let spec = Spec::default()
        .ann("io.ocinet.name", "web-1")
        .ann("io.ocinet.ports", "8080:80,5353:53/udp");
    let mut c = h.start(rt, "old", &spec);
    assert!(c.exit.is_none(), "{}", c.output());
    let ip = h
        .endpoint(&c.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .expect("ip");
    h.rewrite_record_as_0_1_0(&c.id);
    assert!(h.record_is_0_1_0(&c.id));
    // Read as it is by what takes no lock.
    let ep = h.endpoint(&c.id).expect("listed");
    assert_eq!(ep["ip"], ip.as_str());
    assert_eq!(ep["attachments"][0]["interface"], "eth0");
    assert_eq!(
        ep["ports"],
        serde_json::json!(["8080:80/tcp", "5353:53/udp"])
    );

    // The next hook call converts it.
    let mut d = h.start(rt, "new", &Spec::default());
    assert!(d.exit.is_none(), "{}", d.output());
    assert!(
        !h.record_is_0_1_0(&c.id),
        "not converted by the next hook call"
    );
    assert!(log(&h).contains("record converted to one with attachments"));
    let d_ip = h
        .endpoint(&d.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string));
    assert_ne!(d_ip.as_deref(), Some(ip.as_str()));
    // Nothing it holds is handed out again: its port, its address.
    let dup = h.start(
        rt,
        "dupport",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    assert!(dup.exit.is_some_and(|s| !s.success()));
    assert!(
        log(&h).contains(&format!("already published by container {}", c.id)),
        "{}",
        log(&h)
    );
    assert_clean(&h, &dup.id);
    let dup = h.start(rt, "dupip", &Spec::default().ann("io.ocinet.ip", &ip));
    assert!(dup.exit.is_some_and(|s| !s.success()));
    assert_clean(&h, &dup.id);

    // It keeps working, also once the firewall is rebuilt from its record.
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    ok(h.exec(&["nft", "flush", "ruleset"]));
    ok(h.ocinet(&["firewall", "reload"]));
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );

    h.stop(&mut c);
    assert_clean(&h, &c.id);
    let left: Vec<String> = h
        .nft_elements()
        .iter()
        .map(|e| e.to_string())
        .filter(|e| e.contains("8080") || e.contains("5353") || e.contains(&format!("\"{ip}\"")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    h.stop(&mut d);
    assert_clean(&h, &d.id);
}

/// Torn down by the first hook call after the upgrade (its poststop).
fn a_container_of_0_1_0_stopped_first_leaves_nothing(rt: Runtime) {
    let h = Host::new();
    let mut c = h.start(
        rt,
        "old",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    assert!(c.exit.is_none(), "{}", c.output());
    h.rewrite_record_as_0_1_0(&c.id);
    h.stop(&mut c);
    assert_clean(&h, &c.id);
    assert!(
        !h.nft_elements()
            .iter()
            .any(|e| e.to_string().contains("8080")),
        "{:?}",
        h.nft_elements()
    );
}

both_runtimes!(
    a_running_container_of_0_1_0_is_converted_and_keeps_working,
    a_container_of_0_1_0_stopped_first_leaves_nothing,
);
