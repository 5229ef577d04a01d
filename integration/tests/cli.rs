//! Issue 2: the admin CLI (network create/ls/inspect/rm, ps, gc), state
//! file hygiene, and recovery from a runtime that died without poststop.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use ocinet_integration::{ok, run_cmd, text, Host, Runtime, Spec};

fn fails_with(o: std::process::Output, words: &[&str]) {
    assert!(!o.status.success(), "should fail: {}", text(&o));
    let t = text(&o);
    for w in words {
        assert!(t.contains(w), "{t:?} should mention {w:?}");
    }
}

#[test]
fn network_create_ls_inspect_rm() {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.70.0.0/24",
        "--mtu",
        "1400",
    ]));
    let ls = ok(h.ocinet(&["network", "ls"]));
    assert!(
        ls.lines().any(|l| l.starts_with("web ")
            && l.contains("10.70.0.0/24")
            && l.contains("10.70.0.1")),
        "{ls}"
    );
    // Conflicts: name, overlapping network, overlapping host route, bad input.
    fails_with(
        h.ocinet(&["network", "create", "web", "--subnet", "10.72.0.0/24"]),
        &["web", "already exists"],
    );
    fails_with(
        h.ocinet(&["network", "create", "web2", "--subnet", "10.70.0.0/16"]),
        &["10.70.0.0/16", "overlaps network web"],
    );
    // No dummy driver in this kernel: a veth carries the route.
    ok(h.exec(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]));
    ok(h.exec(&["ip", "addr", "add", "10.71.0.1/24", "dev", "d0"]));
    ok(h.exec(&["ip", "link", "set", "d0", "up"]));
    fails_with(
        h.ocinet(&["network", "create", "web3", "--subnet", "10.71.0.0/25"]),
        &["host route 10.71.0.0/24 on d0"],
    );
    fails_with(
        h.ocinet(&["network", "create", "bad/name", "--subnet", "10.73.0.0/24"]),
        &["network name", "bad/name"],
    );
    fails_with(
        h.ocinet(&["network", "create", "none", "--subnet", "10.73.0.0/24"]),
        &["reserved"],
    );
    fails_with(
        h.ocinet(&[
            "network",
            "create",
            "gw",
            "--subnet",
            "10.73.0.0/24",
            "--gateway",
            "10.74.0.1",
        ]),
        &["gateway", "10.74.0.1"],
    );
    // Without --subnet a free one is picked.
    ok(h.ocinet(&["network", "create", "auto"]));
    let auto = ok(h.ocinet(&["network", "inspect", "auto"]));
    assert!(auto.contains("10.90.0.0/24"), "{auto}");

    let mut c = h.start(
        Runtime::Runc,
        "insp",
        &Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.name", "frontend"),
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "web"]))).expect("json");
    let net = &v[0];
    assert_eq!(net["Name"], "web");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.70.0.0/24");
    assert_eq!(net["Options"]["mtu"], "1400");
    let ctr = &net["Containers"][&c.id];
    assert_eq!(ctr["Name"], "frontend");
    assert_eq!(ctr["IPv4Address"], "10.70.0.2/24");
    assert!(ctr["MacAddress"].as_str().is_some_and(|m| m.len() == 17));
    let mtu = ok(h.in_container(&c.id, &["ip", "link", "show", "eth0"]));
    assert!(mtu.contains("mtu 1400"), "{mtu}");
    let ps = ok(h.ocinet(&["ps"]));
    assert!(
        ps.contains("frontend") && ps.contains("10.70.0.2") && ps.contains("web"),
        "{ps}"
    );

    fails_with(
        h.ocinet(&["network", "rm", "web"]),
        &["web", "attached", &c.id],
    );
    h.stop(&mut c);
    let bridge = net["Options"]["bridge"]
        .as_str()
        .expect("bridge")
        .to_string();
    assert!(h.links("bridge").contains(&bridge));
    ok(h.ocinet(&["network", "rm", "web"]));
    assert!(
        !h.links("bridge").contains(&bridge),
        "bridge {bridge} survived network rm"
    );
    assert!(
        h.nft_elements()
            .iter()
            .all(|e| !e.to_string().contains(&bridge)),
        "{:?}",
        h.nft_elements()
    );
    fails_with(
        h.ocinet(&["network", "inspect", "web"]),
        &["does not exist"],
    );
}

/// A container whose runtime died without running poststop: its process
/// is gone, the record stays; gc finds and undoes it.
/// Column widths follow the content: a long name or a wide subnet does not
/// push the later columns out of line.
#[test]
fn network_ls_columns_line_up_with_long_names_and_wide_subnets() {
    let h = Host::new();
    ok(h.ocinet(&["network", "create", "a", "--subnet", "10.9.0.0/24"]));
    let long = "frontend-services-long-name";
    ok(h.ocinet(&["network", "create", long, "--subnet", "10.200.100.0/24"]));
    let ls = ok(h.ocinet(&["network", "ls"]));
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines.len() >= 3, "{ls}");
    assert!(lines.iter().any(|l| l.starts_with(long)), "{ls}");
    // Where each column starts, from the header; every row has a cell
    // starting there, after a space.
    let header = lines[0];
    let starts: Vec<usize> = [
        "NAME",
        "DRIVER",
        "SCOPE",
        "BRIDGE",
        "SUBNET",
        "GATEWAY",
        "INTERNAL",
        "CONTAINERS",
    ]
    .iter()
    .map(|c| {
        header
            .find(c)
            .unwrap_or_else(|| panic!("{c} not in {header:?}"))
    })
    .collect();
    for l in &lines[1..] {
        for &at in &starts[1..] {
            let (before, cell) = (l.as_bytes().get(at - 1), l.as_bytes().get(at));
            assert!(
                before == Some(&b' ') && cell.is_some_and(|c| *c != b' '),
                "column at {at} out of line:\n{ls}"
            );
        }
    }
    let row = lines.iter().find(|l| l.starts_with(long)).unwrap_or(&"");
    assert_eq!(
        row.get(starts[4]..starts[4] + 15),
        Some("10.200.100.0/24"),
        "{ls}"
    );
}

/// An annotation key in another case is not ocinet's: the container
/// starts as if it were absent, and the log names the key.
#[test]
fn annotation_keys_in_another_case_are_named_in_the_log() {
    let h = Host::new();
    for rt in [Runtime::Runc, Runtime::Crun] {
        let mut c = h.start(
            rt,
            "case",
            &Spec::default().ann("IO.OCINET.NETWORK", "none"),
        );
        assert!(c.exit.is_none(), "{}: {}", rt.name(), c.output());
        let ep = h.endpoint(&c.id).expect("endpoint");
        assert_eq!(ep["network"], "ocinet", "{ep}");
        let ip = ep["ip"].as_str().expect("bridge address").to_string();
        let reply = text(&h.wget(&format!("http://{ip}/")));
        assert!(reply.contains(&format!("hello from {}", c.id)), "{reply}");
        let log = h.log();
        assert!(
            log.lines().any(|l| l.contains(&c.id)
                && l.contains("WARN")
                && l.contains("\"IO.OCINET.NETWORK\"")),
            "{}: no warning naming the key in\n{log}",
            rt.name()
        );
        h.stop(&mut c);
        assert!(h.leftovers(&c.id).is_empty(), "{:?}", h.leftovers(&c.id));
    }
}

/// `--log-level debug` is the cheapest profile of a slow hook: each kernel
/// operation's and state file's span logs its duration. (The subscriber
/// builder's own INFO ceiling once swallowed them silently.)
#[test]
fn log_level_debug_logs_the_spans_and_info_does_not() {
    let h = Host::new();
    let log = || h.log();
    ok(h.ocinet(&["network", "create", "quiet", "--subnet", "10.71.0.0/24"]));
    assert!(!log().contains("close time.busy="), "{}", log());
    ok(h.ocinet(&[
        "--log-level",
        "debug",
        "network",
        "create",
        "loud",
        "--subnet",
        "10.71.1.0/24",
    ]));
    let l = log();
    assert!(
        l.lines().any(|l| l.contains("close time.busy=")),
        "no span timing in\n{l}"
    );
}

#[test]
fn state_files_are_private_and_global_flags_go_anywhere() {
    let h = Host::new();
    let c = h.start(Runtime::Runc, "perm", &Spec::default());
    for dir in ["", "endpoints", "ipam", "ipam/ocinet"] {
        let md = std::fs::metadata(h.state_dir().join(dir)).expect("dir");
        assert_eq!(md.mode() & 0o777, 0o700, "{dir}");
    }
    for f in [
        format!("endpoints/{}.json", c.id),
        "ipam/ocinet/last".into(),
        "ocinet.log".into(),
    ] {
        let md = std::fs::metadata(h.state_dir().join(&f)).expect("file");
        assert_eq!(md.mode() & 0o777, 0o600, "{f}");
    }
    // --state-dir before the subcommand works like after it.
    let bin = ocinet_integration::ocinet_bin();
    let o = ok(h.exec(&[
        bin.to_str().unwrap_or(""),
        "--state-dir",
        h.state_dir().to_str().unwrap_or(""),
        "ps",
    ]));
    assert!(o.contains("10.87.0.2"), "{o}");
    // A state dir others can write to is refused.
    let loose = h.dir.join("loose");
    std::fs::create_dir_all(&loose).expect("loose");
    ok(run_cmd(Command::new("chmod").arg("777").arg(&loose)));
    let o = h.exec(&[
        bin.to_str().unwrap_or(""),
        "ps",
        "--state-dir",
        loose.to_str().unwrap_or(""),
    ]);
    fails_with(o, &["writable by group or others"]);
}

/// A container whose runtime died without poststop must not keep its
/// published port: the next container asking for it gets it.
#[test]
fn a_dead_holder_does_not_keep_its_port() {
    let h = Host::new();
    let bundle = h.dir.join("dead-bundle");
    std::fs::create_dir_all(&bundle).expect("bundle");
    std::fs::write(bundle.join("config.json"), r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"annotations":{"io.ocinet.ports":"8080:80"},"linux":{"namespaces":[{"type":"network"}]}}"#).expect("config");
    let mut dead = Command::new("unshare")
        .args(["-n", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("sleeper");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let dead_id = format!("{}-dead", ocinet_integration::unique_hex());
    let state = format!(
        r#"{{"ociVersion":"1.0","id":"{dead_id}","status":"creating","pid":{},"bundle":"{}"}}"#,
        dead.id(),
        bundle.display()
    );
    ok(h.hook("createRuntime", &state, &[]));
    dead.kill().expect("kill");
    dead.wait().expect("reap");
    let c = h.start(
        Runtime::Runc,
        "heir",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    assert!(
        c.exit.is_none(),
        "port still held by a dead container: {}",
        c.output()
    );
    assert!(
        h.endpoint(&dead_id).is_none(),
        "the dead holder's endpoint should be gone"
    );
    assert!(
        h.leftovers(&dead_id).is_empty(),
        "{:?}",
        h.leftovers(&dead_id)
    );
}

/// A host upgraded from the one-file-per-network layout with containers
/// running: their leases and port claims are kept (converted under the lock
/// by the next hook call), so no address or port is handed out twice, and
/// their teardown still frees them.
#[test]
fn leases_and_claims_of_the_old_layout_are_converted() {
    let h = Host::new();
    let old = h.bare_container("old", serde_json::json!({"io.ocinet.ports": "8080:80"}));
    ok(h.hook("createRuntime", &old.state, &[]));
    let ip = h.endpoint(&old.id).expect("endpoint")["ip"]
        .as_str()
        .expect("ip")
        .to_string();
    // Put the running container's lease and claim back the way the previous
    // version kept them.
    let state = h.state_dir();
    std::fs::remove_dir_all(state.join("ipam/ocinet")).expect("remove pool");
    std::fs::remove_dir_all(state.join("ports")).expect("remove claims");
    let leases = serde_json::json!({"leases": {&ip: &old.id}, "last": &ip});
    std::fs::write(state.join("ipam/ocinet.json"), leases.to_string()).expect("old leases");
    let ports = serde_json::json!({"claims": [{"id": &old.id, "name": "old", "ports": [
        {"host_port": 8080, "container_port": 80, "protocol": "tcp", "count": 1}
    ]}]});
    std::fs::write(state.join("ports.json"), ports.to_string()).expect("old claims");

    // The next container neither gets the address nor the port.
    let new = h.bare_container("new", serde_json::json!({"io.ocinet.ports": "8080:80"}));
    let o = h.hook("createRuntime", &new.state, &[]);
    assert!(!o.status.success(), "port 8080 was handed out twice");
    assert!(
        text(&o).contains("8080") && text(&o).contains(&old.id),
        "{}",
        text(&o)
    );
    assert!(!state.join("ipam/ocinet.json").exists());
    assert!(!state.join("ports.json").exists());
    assert_eq!(h.leases("ocinet"), vec![(ip.clone(), old.id.clone())]);
    assert_eq!(
        h.port_claims(),
        vec![("tcp-8080".to_string(), old.id.clone())]
    );
    let other = h.bare_container("other", serde_json::json!({}));
    ok(h.hook("createRuntime", &other.state, &[]));
    let other_ip = h.endpoint(&other.id).expect("endpoint")["ip"].clone();
    assert_ne!(other_ip, ip.as_str(), "address handed out twice");

    for c in [&old, &other] {
        ok(h.hook("poststop", &c.stopped_state(), &[]));
        assert!(h.leftovers(&c.id).is_empty(), "{:?}", h.leftovers(&c.id));
    }
    assert!(h.port_claims().is_empty(), "{:?}", h.port_claims());
}
