//! Issue 13: what a hostile tester broke. A container taking another's
//! MAC (or the bridge's), neighbours routing a network's subnet via the
//! host to reach unpublished ports, and networks meeting interfaces that
//! ocinet did not create.

use std::process::Command;

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, run_cmd, text, Host, Proc, Runtime, Spec,
    HOST_LINK_IP, OUTSIDE_IP,
};

fn field(h: &Host, id: &str, k: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e[k].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {k} for {id}"))
}

fn log(h: &Host) -> String {
    h.log()
}

/// Start a container that must be refused; the hook's log must say `why`
/// and nothing of it may be left.
#[track_caller]
fn refused(h: &Host, rt: Runtime, tag: &str, spec: &Spec, why: &[&str]) {
    let c = h.start(rt, tag, spec);
    assert!(c.exit.is_some_and(|s| !s.success()), "{tag} was started");
    let l = log(h);
    for w in why {
        assert!(l.contains(w), "{tag}: log lacks {w:?}: {l}");
    }
    assert_clean(h, &c.id);
}

#[track_caller]
fn silent(o: std::process::Output) {
    assert!(!o.status.success(), "expected no answer, got: {}", text(&o));
}

fn pings(h: &Host, ip: &str) -> usize {
    let o = h.exec(&["ping", "-c", "5", "-i", "0.2", "-W", "1", ip]);
    let t = text(&o);
    t.split(" received")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn mac_of_bridge(h: &Host, bridge: &str) -> String {
    let o = ok(h.exec(&["ip", "-j", "link", "show", bridge]));
    let v: serde_json::Value = serde_json::from_str(&o).unwrap_or_default();
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

fn a_mac_belongs_to_one_container(rt: Runtime) {
    let h = Host::new();
    let victim = h.start(rt, "victim", &Spec::default());
    assert!(victim.exit.is_none(), "{}", victim.output());
    let vmac = field(&h, &victim.id, "mac");
    let vip = field(&h, &victim.id, "ip");
    refused(
        &h,
        rt,
        "thief",
        &Spec::default().ann("io.ocinet.mac", &vmac),
        &[
            &format!("invalid io.ocinet.mac \"{vmac}\""),
            &format!("container {}", victim.id),
        ],
    );
    let bmac = mac_of_bridge(&h, "ocinet0");
    refused(
        &h,
        rt,
        "asbridge",
        &Spec::default().ann("io.ocinet.mac", &bmac),
        &[&format!("\"{bmac}\": is the MAC of bridge ocinet0")],
    );
    // A MAC ocinet would derive for an address nobody holds yet.
    refused(
        &h,
        rt,
        "future",
        &Spec::default().ann("io.ocinet.mac", "02:6f:0a:57:00:c8"),
        &["derived from 10.87.0.200 and kept for the container"],
    );
    let fixed = h.start(
        rt,
        "fixed",
        &Spec::default().ann("io.ocinet.mac", "02:42:ac:11:00:09"),
    );
    assert!(fixed.exit.is_none(), "{}", fixed.output());
    refused(
        &h,
        rt,
        "twin",
        &Spec::default().ann("io.ocinet.mac", "02:42:ac:11:00:09"),
        &[&format!(
            "is already the MAC of container {} ({}) on network ocinet",
            fixed.id, fixed.id
        )],
    );
    // Its own derived MAC, asked for explicitly, is fine.
    let own = h.start(
        rt,
        "own",
        &Spec::default()
            .ann("io.ocinet.ip", "10.87.0.77")
            .ann("io.ocinet.mac", "02:6f:0a:57:00:4d"),
    );
    assert!(own.exit.is_none(), "{}", own.output());

    // From inside: a neighbour that takes the victim's MAC on its own eth0
    // and sends with it must not move the MAC to its port.
    let t = h.start(rt, "inside", &Spec::default());
    assert!(t.exit.is_none(), "{}", t.output());
    let in_t = |args: &[&str]| {
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net={}", h.netns_of(&t.id)))
                .args(args),
        )
    };
    ok(in_t(&["ip", "link", "set", "eth0", "address", &vmac]));
    let _ = in_t(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.87.0.1"]);
    assert_eq!(pings(&h, &vip), 5, "the victim lost its traffic");
    let fdb = ok(h.exec(&["bridge", "fdb", "show", "br", "ocinet0"]));
    let vport = h.host_veth(&victim.id);
    let line = fdb
        .lines()
        .find(|l| l.starts_with(&vmac))
        .unwrap_or_else(|| panic!("{vmac} not in the fdb: {fdb}"));
    assert!(line.contains(&format!("dev {vport} ")), "{line}");
}

/// `busybox httpd` in the outside namespace, answering "hello from outside".
fn outside_server(h: &Host) -> Proc {
    let www = h.dir.join("outside-www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello from outside\n").expect("index");
    let server = h.spawn_outside(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8000",
        "-h",
        &www.display().to_string(),
    ]);
    for _ in 0..50 {
        if h.exec_outside(&["busybox", "nc", "-z", "127.0.0.1", "8000"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

fn unpublished_ports_are_closed_to_direct_routing(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let _server = outside_server(&h);
    let a = h.start(rt, "closed", &Spec::default());
    assert!(a.exit.is_none(), "{}", a.output());
    let b = h.start(
        rt,
        "pub",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    assert!(b.exit.is_none(), "{}", b.output());
    let (aip, bip) = (field(&h, &a.id, "ip"), field(&h, &b.id, "ip"));
    // The neighbour routes the default network via this host.
    ok(h.exec_outside(&["ip", "route", "add", "10.87.0.0/16", "via", HOST_LINK_IP]));
    silent(h.wget_outside(&format!("http://{aip}:80/")));
    silent(h.wget_outside(&format!("http://{bip}:80/")));
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &b.id,
    );
    // Outbound connections and their replies, the host itself, neighbours
    // on the network and hairpin through the host address still work.
    let out = h.wget_from(&a.id, &format!("http://{OUTSIDE_IP}:8000/"));
    assert!(text(&out).contains("hello from outside"), "{}", text(&out));
    answers(h.wget(&format!("http://{aip}:80/")), &a.id);
    answers(h.wget_from(&a.id, &format!("http://{bip}:80/")), &b.id);
    answers(
        h.wget_from(&a.id, &format!("http://{HOST_LINK_IP}:8080/")),
        &b.id,
    );

    // A network that keeps Docker's pre-28 behaviour.
    ok(h.ocinet(&[
        "network",
        "create",
        "open",
        "--subnet",
        "10.66.0.0/24",
        "--gateway-mode",
        "nat-unprotected",
    ]));
    let c = h.start(
        rt,
        "open",
        &Spec::default().ann("io.ocinet.network", "open"),
    );
    assert!(c.exit.is_none(), "{}", c.output());
    let cip = field(&h, &c.id, "ip");
    ok(h.exec_outside(&["ip", "route", "add", "10.66.0.0/24", "via", HOST_LINK_IP]));
    answers(h.wget_outside(&format!("http://{cip}:80/")), &c.id);
    let out = h.wget_from(&c.id, &format!("http://{OUTSIDE_IP}:8000/"));
    assert!(text(&out).contains("hello from outside"), "{}", text(&out));
    // Still isolated from the other network.
    silent(h.wget_from(&c.id, &format!("http://{aip}:80/")));
    let mode = |net: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).unwrap_or_default();
        v[0]["Options"]["gateway_mode"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(mode("ocinet"), "nat");
    assert_eq!(mode("open"), "nat-unprotected");
    // (routed is a mode since issue 22: gateway_modes.rs.)
    let bad = h.ocinet(&["network", "create", "x", "--gateway-mode", "bogus"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("bogus"), "{}", text(&bad));
}

fn addresses_of(h: &Host, ifname: &str) -> String {
    ok(h.exec(&["ip", "-o", "-4", "addr", "show", "dev", ifname]))
}

#[track_caller]
fn cli_refused(h: &Host, args: &[&str], why: &[&str]) {
    let o = h.ocinet(args);
    let t = text(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {t}");
    for w in why {
        assert!(t.contains(w), "{args:?}: {t:?} lacks {w:?}");
    }
}

fn foreign_interfaces_are_left_alone(rt: Runtime) {
    let h = Host::new();
    // A veth that took the name of a network's bridge after the network
    // was made: setup refuses it, rm leaves it.
    ok(h.ocinet(&[
        "network",
        "create",
        "fx",
        "--subnet",
        "10.61.0.0/24",
        "--bridge",
        "brfx",
    ]));
    ok(h.exec(&[
        "ip", "link", "add", "brfx", "type", "veth", "peer", "name", "brfxp",
    ]));
    refused(
        &h,
        rt,
        "onveth",
        &Spec::default().ann("io.ocinet.network", "fx"),
        &[
            "interface brfx",
            "is a veth interface, not a bridge",
            "leaves it alone",
        ],
    );
    ok(h.ocinet(&["network", "rm", "fx"]));
    assert!(
        h.links("veth").contains(&"brfx".to_string()),
        "the veth was deleted"
    );

    // A bridge of someone else's, with an address of its own.
    ok(h.ocinet(&[
        "network",
        "create",
        "fy",
        "--subnet",
        "10.62.0.0/24",
        "--bridge",
        "brfy",
    ]));
    ok(h.exec(&["ip", "link", "add", "brfy", "type", "bridge"]));
    ok(h.exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", "brfy"]));
    refused(
        &h,
        rt,
        "onbridge",
        &Spec::default().ann("io.ocinet.network", "fy"),
        &["interface brfy", "is a bridge ocinet did not create"],
    );
    let addrs = addresses_of(&h, "brfy");
    assert!(
        !addrs.contains("10.62.0.1"),
        "the foreign bridge was configured: {addrs}"
    );
    ok(h.ocinet(&["network", "rm", "fy"]));
    assert!(
        addresses_of(&h, "brfy").contains("10.99.0.1/24"),
        "the foreign bridge was deleted"
    );
    // ... and a network cannot be made on top of it.
    cli_refused(
        &h,
        &[
            "network",
            "create",
            "fz",
            "--subnet",
            "10.63.0.0/24",
            "--bridge",
            "brfy",
        ],
        &["interface brfy", "already exists"],
    );

    // rm while an attached container's record cannot be read.
    ok(h.ocinet(&["network", "create", "fw", "--subnet", "10.64.0.0/24"]));
    let mut c = h.start(
        rt,
        "attached",
        &Spec::default().ann("io.ocinet.network", "fw"),
    );
    assert!(c.exit.is_none(), "{}", c.output());
    let record = h
        .state_dir()
        .join("endpoints")
        .join(format!("{}.json", c.id));
    let saved = std::fs::read(&record).expect("record");
    std::fs::write(&record, b"{\"id\": tr").expect("corrupt");
    cli_refused(
        &h,
        &["network", "rm", "fw"],
        &[
            "cannot tell whether every container has left it",
            &format!("{}.json", c.id),
        ],
    );
    std::fs::write(&record, saved).expect("restore");
    answers(
        h.wget_eventually(&format!("http://{}:80/", field(&h, &c.id, "ip"))),
        &c.id,
    );
    h.stop(&mut c);
    ok(h.ocinet(&["network", "rm", "fw"]));

    // Subnets no container can use, and what the default network needs.
    for bad in [
        "224.1.0.0/16",
        "127.1.0.0/16",
        "0.0.0.0/8",
        "255.0.0.0/8",
        "169.254.0.0/16",
    ] {
        cli_refused(
            &h,
            &["network", "create", "bad", "--subnet", bad],
            &[&format!("invalid subnet \"{bad}\""), "cannot use it"],
        );
    }
    cli_refused(
        &h,
        &["network", "create", "taker", "--subnet", "10.87.3.0/24"],
        &["overlaps the default network ocinet (reserved for it)"],
    );
    cli_refused(
        &h,
        &[
            "network",
            "create",
            "taker",
            "--subnet",
            "10.65.0.0/24",
            "--bridge",
            "ocinet0",
        ],
        &["bridge ocinet0", "reserved"],
    );
    let d = h.start(rt, "default", &Spec::default());
    assert!(d.exit.is_none(), "{}", d.output());
}

/// A record the previous version saved names no MAC owner; the rebuild an
/// upgrade makes adds one for it, and its teardown must take it out again,
/// or the next container given that address (so that MAC) is refused.
fn an_old_records_mac_owner_goes_with_it(rt: Runtime) {
    let h = Host::new();
    let spec = Spec::default().ann("io.ocinet.ip", "10.87.0.50");
    let mut c = h.start(rt, "old", &spec);
    assert!(c.exit.is_none(), "{}", c.output());
    h.rewrite_record_as_0_1_0(&c.id);
    h.edit_record(&c.id, |v| {
        v["firewall"]
            .as_array_mut()
            .expect("firewall")
            .retain(|e| e["set"] != "mac_owner")
    });
    ok(h.ocinet(&["firewall", "reload"]));
    let owners = |h: &Host| {
        h.nft_elements()
            .iter()
            .map(|e| e.to_string())
            .filter(|e| e.contains("02:6f:0a:57:00:32"))
            .count()
    };
    assert_eq!(owners(&h), 2, "port_mac and the rebuilt mac_owner");
    h.stop(&mut c);
    assert_eq!(owners(&h), 0, "the old record's MAC owner outlived it");
    let again = h.start(rt, "again", &spec);
    assert!(again.exit.is_none(), "{}", again.output());
}

/// A network namespace path that blocks when opened (a FIFO in
/// config.json) holds up its own hook only: the namespace is opened
/// before the state lock is taken, so every other call (here `gc`, which
/// takes the lock) goes on.
#[test]
fn a_namespace_path_that_blocks_holds_up_only_its_own_hook() {
    use std::io::Write;
    let h = Host::new();
    let fifo = h.dir.join("netns-fifo");
    ok(run_cmd(Command::new("mkfifo").arg(&fifo)));
    let bundle = h.dir.join("bundles/fifo");
    std::fs::create_dir_all(bundle.join("rootfs/etc")).expect("bundle");
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "annotations": {"io.ocinet.network": "ocinet"},
        "linux": {"namespaces": [{"type": "network", "path": fifo}]}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).expect("config");
    let state = serde_json::json!({
        "ociVersion": "1.0", "id": format!("{}-fifo", ocinet_integration::unique_hex()),
        "status": "creating", "pid": std::process::id(), "bundle": bundle,
    });
    let spawn = |args: &[&str]| {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.name))
            .arg(ocinet_integration::ocinet_bin())
            .arg("--state-dir")
            .arg(h.state_dir())
            .arg("--config-dir")
            .arg(h.config_dir())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ocinet")
    };
    let mut hook = Proc(spawn(&["hook", "createRuntime"]));
    if let Some(mut i) = hook.0.stdin.take() {
        let _ = i.write_all(state.to_string().as_bytes());
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        matches!(hook.0.try_wait(), Ok(None)),
        "the hook did not block on the FIFO"
    );
    let mut gc = Proc(spawn(&["gc"]));
    drop(gc.0.stdin.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let done = loop {
        if let Ok(Some(s)) = gc.0.try_wait() {
            break Some(s);
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        done.is_some_and(|s| s.success()),
        "gc waited behind a hook blocked on its namespace path: {done:?}"
    );
}

both_runtimes!(
    an_old_records_mac_owner_goes_with_it,
    a_mac_belongs_to_one_container,
    unpublished_ports_are_closed_to_direct_routing,
    foreign_interfaces_are_left_alone,
);
