//! Issue 2: bridge networking end to end, with real runc and crun, each test
//! in its own throwaway host namespace.

use ocinet_integration::{
    assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, EXPORTER_ADDR, HOST_LINK_IP,
    OUTSIDE_IP,
};

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

fn eth0_has_address_and_default_route(rt: Runtime) {
    let h = Host::new();
    let mut c = h.start(rt, "addr", &Spec::default().ann("io.ocinet.name", "web"));
    assert!(c.exit.is_none(), "container exited: {}", c.output());
    let ep = h.endpoint(&c.id).expect("endpoint");
    assert_eq!(ep["name"], "web");
    assert_eq!(ep["network"], "ocinet");
    let ip = ip_of(&h, &c.id);
    assert!(ip.starts_with("10.87."), "{ip}");
    let addr = ok(h.in_container(&c.id, &["ip", "addr", "show", "dev", "eth0"]));
    assert!(addr.contains(&format!("inet {ip}/16")), "{addr}");
    assert!(addr.contains(ep["mac"].as_str().unwrap_or("?")), "{addr}");
    // IPv4-only: no IPv6 link-local on either end, so no DAD, router or
    // MLD solicitation of a new container is flooded to every port.
    assert!(!addr.contains("inet6"), "{addr}");
    // One queue each way (made so: cutting the kernel's default down
    // after registration waits for RCU), on both ends.
    // (The host's ip in the container's namespace: busybox's has no -d.)
    let details = ok(ocinet_integration::run_cmd(
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", h.netns_of(&c.id)))
            .args(["ip", "-d", "link", "show", "dev", "eth0"]),
    ));
    assert!(details.contains("numtxqueues 1 numrxqueues 1"), "{details}");
    let host_end = ok(h.exec(&["ip", "-d", "link", "show", "dev", &h.host_veth(&c.id)]));
    assert!(
        host_end.contains("numtxqueues 1 numrxqueues 1"),
        "{host_end}"
    );
    // The bridge port has no IPv6 of its own, so no route of its own in
    // the host's IPv6 table (an `ff00::/8` one per port otherwise, which
    // every carrier change walks under the RTNL lock).
    let port6 = ok(h.exec(&[
        "ip",
        "-6",
        "route",
        "show",
        "table",
        "all",
        "dev",
        &h.host_veth(&c.id),
    ]));
    assert!(port6.trim().is_empty(), "{port6}");
    let lo = ok(h.in_container(&c.id, &["ip", "link", "show", "lo"]));
    assert!(lo.contains("UP"), "{lo}");
    let routes = ok(h.in_container(&c.id, &["ip", "route"]));
    assert!(
        routes.contains("default via 10.87.0.1 dev eth0"),
        "{routes}"
    );
    // The bridge carries the gateway; the host end is attached to it.
    let br = ok(h.exec(&["ip", "-4", "addr", "show", "dev", "ocinet0"]));
    assert!(br.contains("inet 10.87.0.1/16"), "{br}");
    // Made without multicast snooping (each new port would otherwise re-arm
    // every port's multicast timers).
    let details = ok(h.exec(&["ip", "-d", "link", "show", "ocinet0"]));
    assert!(details.contains("mcast_snooping 0"), "{details}");
    let veth = ep["host_interface"].as_str().expect("veth").to_string();
    let link = ok(h.exec(&["ip", "link", "show", &veth]));
    assert!(
        link.contains("master ocinet0") && link.contains("UP"),
        "{link}"
    );
    let v6 = ok(h.exec(&["ip", "-6", "addr", "show", "dev", &veth]));
    assert!(!v6.contains("inet6"), "{v6}");
    // ip netns sees the container (runc: the hook runs in the host's mount
    // namespace; crun here runs in a private one, see ENVIRONMENT.md).
    if rt == Runtime::Runc {
        let ns = ep["netns"].as_str().expect("netns entry").to_string();
        let name = ns.trim_start_matches("/run/netns/");
        let o = ok(h.exec(&[
            "ip", "netns", "exec", name, "ip", "-4", "-o", "addr", "show", "eth0",
        ]));
        assert!(o.contains(&ip), "{o}");
    }
    h.stop(&mut c);
    assert_clean(&h, &c.id);
    // The second poststop finds nothing and succeeds.
    let st = format!(
        r#"{{"ociVersion":"1.0","id":"{}","status":"stopped","bundle":"{}"}}"#,
        c.id,
        c.bundle.display()
    );
    ok(h.hook("poststop", &st, &[]));
}

fn two_containers_reach_each_other(rt: Runtime) {
    let h = Host::new();
    let a = h.start(rt, "a", &Spec::default());
    let b = h.start(rt, "b", &Spec::default());
    let (ipa, ipb) = (ip_of(&h, &a.id), ip_of(&h, &b.id));
    assert_ne!(ipa, ipb);
    let got = ok(h.wget_from(&b.id, &format!("http://{ipa}/")));
    assert_eq!(got.trim(), format!("hello from {}", a.id));
    let got = ok(h.wget_from(&a.id, &format!("http://{ipb}/")));
    assert_eq!(got.trim(), format!("hello from {}", b.id));
}

/// The outside namespace runs a CGI that prints the peer address it sees.
fn start_outside_echo(h: &Host) -> ocinet_integration::Proc {
    let www = h.dir.join("outside-www");
    std::fs::create_dir_all(www.join("cgi-bin")).expect("cgi dir");
    let script = www.join("cgi-bin/peer");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
    )
    .expect("cgi");
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).expect("md").permissions(),
        0o755,
    );
    ok(ocinet_integration::run_cmd(
        std::process::Command::new("chmod").arg("755").arg(&script),
    ));
    let server = h.spawn_outside(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8000",
        "-h",
        &www.display().to_string(),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    server
}

fn outside_sees_the_host_address(rt: Runtime) {
    let h = Host::new();
    let _echo = start_outside_echo(&h);
    let c = h.start(rt, "out", &Spec::default());
    let seen = ok(h.wget_from(&c.id, &format!("http://{OUTSIDE_IP}:8000/cgi-bin/peer")));
    // busybox httpd listens on v6 and reports a v4-mapped peer.
    let seen = seen
        .trim()
        .trim_start_matches("[::ffff:")
        .trim_end_matches(']');
    assert_eq!(
        seen, HOST_LINK_IP,
        "masquerade should show the host's address"
    );
}

fn internal_network_has_no_way_out(rt: Runtime) {
    let h = Host::new();
    let _echo = start_outside_echo(&h);
    ok(h.ocinet(&[
        "network",
        "create",
        "sealed",
        "--subnet",
        "10.60.0.0/24",
        "--internal",
    ]));
    let a = h.start(
        rt,
        "in1",
        &Spec::default().ann("io.ocinet.network", "sealed"),
    );
    let b = h.start(
        rt,
        "in2",
        &Spec::default().ann("io.ocinet.network", "sealed"),
    );
    let routes = ok(h.in_container(&a.id, &["ip", "route"]));
    assert!(!routes.contains("default"), "{routes}");
    // Even with a route added by hand inside, the host forwards nothing.
    ok(h.in_container(
        &a.id,
        &["ip", "route", "add", "default", "via", "10.60.0.1"],
    ));
    let o = h.wget_from(&a.id, &format!("http://{OUTSIDE_IP}:8000/cgi-bin/peer"));
    assert!(
        !o.status.success(),
        "internal container reached outside: {}",
        text(&o)
    );
    // Within the network, traffic flows.
    let got = ok(h.wget_from(&a.id, &format!("http://{}/", ip_of(&h, &b.id))));
    assert!(got.contains(&b.id));
    // And the outside cannot come in either.
    let o = h.exec_outside(&["ip", "route", "add", "10.60.0.0/24", "via", HOST_LINK_IP]);
    assert!(o.status.success(), "{}", text(&o));
    let o = h.exec_outside(
        &[
            ocinet_integration::WGET,
            &[format!("http://{}/", ip_of(&h, &b.id)).as_str()],
        ]
        .concat(),
    );
    assert!(
        !o.status.success(),
        "outside reached an internal container: {}",
        text(&o)
    );
}

fn none_mode_has_only_lo(rt: Runtime) {
    let h = Host::new();
    let mut c = h.start(
        rt,
        "none",
        &Spec::default().ann("io.ocinet.network", "none"),
    );
    let ep = h.endpoint(&c.id).expect("endpoint");
    assert_eq!(ep["network"], "none");
    assert!(ep["ip"].is_null());
    let links = ok(h.in_container(&c.id, &["ip", "-o", "link"]));
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    assert!(h.links("veth").iter().all(|v| !v.starts_with("oc")));
    h.stop(&mut c);
    assert_clean(&h, &c.id);
}

fn host_mode_needs_nothing(rt: Runtime) {
    let h = Host::new();
    let spec = Spec {
        host_netns: true,
        args: Some(vec!["sleep".into(), "60".into()]),
        ..Default::default()
    }
    .ann("io.ocinet.network", "host");
    let mut c = h.start(rt, "host", &spec);
    assert_eq!(h.endpoint(&c.id).expect("endpoint")["network"], "host");
    assert!(h.links("veth").is_empty() && h.links("bridge").is_empty());
    h.stop(&mut c);
    assert_clean(&h, &c.id);
}

fn container_mode_shares_the_namespace(rt: Runtime) {
    let h = Host::new();
    let mut a = h.start(rt, "owner", &Spec::default());
    let ns = h.netns_of(&a.id);
    let spec = Spec {
        netns_path: Some(ns.clone()),
        args: Some(vec!["sleep".into(), "60".into()]),
        ..Default::default()
    }
    .ann("io.ocinet.network", &format!("container:{}", a.id));
    let mut b = h.start(rt, "joiner", &spec);
    assert!(b.exit.is_none(), "{}", b.output());
    let ep = h.endpoint(&b.id).expect("endpoint");
    assert_eq!(ep["network"], format!("container:{}", a.id));
    assert_eq!(ep["ip"], h.endpoint(&a.id).expect("owner")["ip"]);
    // Same namespace: b's process sees a's eth0.
    let pid = ep["pid"].as_i64().expect("pid");
    let o = ok(ocinet_integration::run_cmd(
        std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["busybox", "ip", "-4", "addr", "show", "eth0"]),
    ));
    assert!(o.contains(&ip_of(&h, &a.id)), "{o}");
    // Refused when the container does not really share it.
    let bad = h.start(
        rt,
        "liar",
        &Spec::default().ann("io.ocinet.network", &format!("container:{}", a.id)),
    );
    assert!(
        bad.exit.is_some_and(|s| !s.success()),
        "a container in its own namespace was accepted"
    );
    assert_clean(&h, &bad.id);
    let log = h.log();
    assert!(log.contains("does not share container"), "{log}");
    h.stop(&mut b);
    assert_clean(&h, &b.id);
    h.stop(&mut a);
    assert_clean(&h, &a.id);
}

/// Once the target stopped and its address was freed, a sharer shows no
/// address: ps and the exporter call it detached instead of showing what
/// may be another container's address by now.
fn a_sharer_is_detached_once_its_target_stops(rt: Runtime) {
    let h = Host::new();
    let mut a = h.start(rt, "target", &Spec::default());
    let a_ip = ip_of(&h, &a.id);
    let spec = Spec {
        netns_path: Some(h.netns_of(&a.id)),
        args: Some(vec!["sleep".into(), "60".into()]),
        ..Default::default()
    }
    .ann("io.ocinet.network", &format!("container:{}", a.id));
    let mut b = h.start(rt, "sharer", &spec);
    assert!(b.exit.is_none(), "{}", b.output());
    let ep = h.endpoint(&b.id).expect("sharer");
    assert_eq!(
        (ep["ip"].as_str(), ep["state"].as_str()),
        (Some(a_ip.as_str()), Some("ready"))
    );
    assert_eq!(ep["detached"], false);
    let _e = h.start_exporter(&[]);
    let scrape = || ok(h.exec(&["curl", "-sf", &format!("http://{EXPORTER_ADDR}/metrics")]));
    let info_of = |m: &str, id: &str| {
        m.lines()
            .find(|l| {
                l.starts_with("ocinet_container_network_info{")
                    && l.contains(&format!("container_id=\"{id}\""))
            })
            .unwrap_or_else(|| panic!("no info for {id}: {m}"))
            .to_string()
    };
    let before = info_of(&scrape(), &b.id);
    assert!(before.contains(&format!("ip=\"{a_ip}\"")), "{before}");

    h.stop(&mut a);
    assert_clean(&h, &a.id);
    let ep = h
        .endpoint(&b.id)
        .expect("sharer record stays while it runs");
    assert!(ep["ip"].is_null() && ep["mac"].is_null(), "{ep}");
    assert_eq!(ep["state"], "detached");
    assert_eq!(ep["detached"], true);
    let ps = ok(h.ocinet(&["ps"]));
    let line = ps
        .lines()
        .find(|l| l.starts_with(&b.id[..12]))
        .unwrap_or_else(|| panic!("no {} in {ps}", b.id));
    assert!(line.contains("detached") && !line.contains(&a_ip), "{ps}");
    let after = info_of(&scrape(), &b.id);
    assert!(
        after.contains("ip=\"\"") && !after.contains(&a_ip),
        "{after}"
    );
    h.stop(&mut b);
    assert_clean(&h, &b.id);
}

/// A failed setup exits non-zero, says why (in the log, and on stderr where
/// the runtime shows it) and leaves nothing.
fn assert_failed_clean(h: &Host, c: &ocinet_integration::Container, why: &[&str]) {
    assert!(
        c.exit.is_some_and(|s| !s.success()),
        "setup should fail: {}",
        c.output()
    );
    let log = h.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&c.id) && l.contains("ERROR"))
        .unwrap_or("")
        .to_string();
    for w in why {
        assert!(line.contains(w), "log line {line:?} should contain {w:?}");
    }
    if c.runtime == Runtime::Runc {
        // runc shows the failing hook's stderr; crun discards it.
        for w in why {
            assert!(
                c.output().contains(w),
                "runc output should contain {w:?}: {}",
                c.output()
            );
        }
    }
    assert_clean(h, &c.id);
}

fn failing_setups_leave_nothing(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&["network", "create", "tiny", "--subnet", "10.61.0.0/30"]));
    // Bad annotation.
    let c = h.start(
        rt,
        "badmac",
        &Spec::default().ann("io.ocinet.mac", "01:00:5e:00:00:01"),
    );
    assert_failed_clean(&h, &c, &["io.ocinet.mac", "01:00:5e:00:00:01", "multicast"]);
    let c = h.start(
        rt,
        "badnet",
        &Spec::default().ann("io.ocinet.network", "no/such"),
    );
    assert_failed_clean(&h, &c, &["io.ocinet.network", "no/such"]);
    let c = h.start(
        rt,
        "nonet",
        &Spec::default().ann("io.ocinet.network", "missing"),
    );
    assert_failed_clean(&h, &c, &["missing", "does not exist"]);
    // Static address already taken.
    let first = h.start(
        rt,
        "static1",
        &Spec::default().ann("io.ocinet.ip", "10.87.0.77"),
    );
    assert_eq!(ip_of(&h, &first.id), "10.87.0.77");
    let c = h.start(
        rt,
        "static2",
        &Spec::default().ann("io.ocinet.ip", "10.87.0.77"),
    );
    assert_failed_clean(&h, &c, &["10.87.0.77", "in use by container", &first.id]);
    let c = h.start(
        rt,
        "outofnet",
        &Spec::default().ann("io.ocinet.ip", "10.99.0.5"),
    );
    assert_failed_clean(&h, &c, &["io.ocinet.ip", "10.99.0.5", "outside the subnet"]);
    // Exhausted pool: a /30 has one address besides the gateway.
    let only = h.start(
        rt,
        "tiny1",
        &Spec::default().ann("io.ocinet.network", "tiny"),
    );
    assert_eq!(ip_of(&h, &only.id), "10.61.0.2");
    let c = h.start(
        rt,
        "tiny2",
        &Spec::default().ann("io.ocinet.network", "tiny"),
    );
    assert_failed_clean(&h, &c, &["no address left in network tiny"]);
    // The survivors still work.
    let got = ok(h.wget_from(&first.id, &format!("http://{}/", ip_of(&h, &first.id))));
    assert!(got.contains(&first.id), "{got}");
    assert_eq!(h.ps().len(), 2);
}

fn sixteen_at_once(rt: Runtime) {
    let h = Host::new();
    let containers: Vec<_> = std::thread::scope(|s| {
        let hs = &h;
        let handles: Vec<_> = (0..16)
            .map(|i| s.spawn(move || hs.start(rt, &format!("par{i}"), &Spec::default())))
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("start thread"))
            .collect()
    });
    for c in &containers {
        assert!(c.exit.is_none(), "{} failed: {}", c.id, c.output());
    }
    let mut ips: Vec<String> = containers.iter().map(|c| ip_of(&h, &c.id)).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 16, "duplicate addresses: {ips:?}");
    assert_eq!(
        h.links("veth")
            .iter()
            .filter(|v| v.starts_with("oc"))
            .count(),
        16
    );
    std::thread::scope(|s| {
        let hs = &h;
        for mut c in containers {
            s.spawn(move || {
                hs.stop(&mut c);
                assert_clean(hs, &c.id);
            });
        }
    });
    assert!(h.ps().is_empty());
    let leases = h.leases("ocinet");
    assert!(
        !leases.iter().any(|(_, holder)| holder.contains("-par")),
        "{leases:?}"
    );
}

/// A Linux bridge takes at most 1023 ports: the container that would be
/// one more is refused naming its network and the limit, and nothing of it
/// is left. (The other ports are veths the test makes itself in its own
/// host namespace: 1022 containers would take minutes.)
#[test]
fn a_full_bridge_is_refused_by_name_and_leaves_nothing() {
    let h = Host::new();
    ok(h.ocinet(&["network", "create", "full", "--subnet", "10.77.0.0/20"]));
    let spec = Spec::default().ann("io.ocinet.network", "full");
    let mut first = h.started(Runtime::Runc, "first", &spec);
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "full"]))).expect("json");
    let bridge = v[0]["Options"]["bridge"]
        .as_str()
        .expect("bridge")
        .to_string();
    let batch = std::env::temp_dir().join(format!("ocinet-fill-{}", std::process::id()));
    let fill = |verb: &dyn Fn(usize) -> String| {
        let lines: String = (0..1022).map(|n| verb(n) + "\n").collect();
        std::fs::write(&batch, lines).expect("batch file");
        let out = h.exec(&["ip", "-batch", batch.to_str().unwrap_or_default()]);
        let _ = std::fs::remove_file(&batch);
        ok(out);
    };
    fill(&|n| format!("link add ocfill{n} master {bridge} type veth peer name ocfillp{n}"));
    let c = h.start(Runtime::Runc, "one-more", &spec);
    assert_failed_clean(&h, &c, &["full", &bridge, "1023"]);
    fill(&|n| format!("link del ocfill{n}"));
    h.stop(&mut first);
    assert_clean(&h, &first.id);
}

/// The id the host's namespace knows container `veth`'s namespace by
/// (`IFLA_LINK_NETNSID` on its host end). `ip` names a namespace it finds
/// under /run/netns instead of giving its id (every pin is there), so it
/// looks with that directory empty, in a mount namespace of its own.
fn link_netnsid(h: &Host, veth: &str) -> i64 {
    let out = ok(h.exec(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs none /run/netns && exec ip -j link show dev \"$0\"",
        veth,
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["link_netnsid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{veth} names no namespace id: {out}"))
}

/// Issue 24: the kernel finds a namespace's id by walking the host's ids
/// in increasing order, once per link notification; ocinet gives each
/// container's namespace its id from the top down before making its veth,
/// so the newest comes first in the walk. A namespace the host knows by an
/// id already keeps it, and its container is set up all the same.
#[test]
fn container_namespaces_get_ids_counted_down_from_the_top() {
    let h = Host::new();
    let a = h.bare_container("nsid-a", serde_json::json!({}));
    let b = h.bare_container("nsid-b", serde_json::json!({}));
    let known = h.bare_container("nsid-known", serde_json::json!({}));
    // A veth into `known`'s namespace made from the host: the kernel gives
    // the namespace the lowest free id, which stays after the veth goes.
    let pid = known.proc.0.id().to_string();
    ok(h.exec(&[
        "ip", "link", "add", "ocnsid0", "type", "veth", "peer", "name", "ocnsid1", "netns", &pid,
    ]));
    let given = link_netnsid(&h, "ocnsid0");
    ok(h.exec(&["ip", "link", "del", "ocnsid0"]));
    for c in [&a, &b, &known] {
        ok(h.hook("createRuntime", &c.state, &[]));
    }
    let (id_a, id_b) = (
        link_netnsid(&h, &h.host_veth(&a.id)),
        link_netnsid(&h, &h.host_veth(&b.id)),
    );
    assert!(
        id_a >= 1 << 30 && id_b >= 1 << 30,
        "ids {id_a}, {id_b} are not from the top"
    );
    assert!(
        id_b < id_a,
        "the later namespace's id {id_b} is not below {id_a}"
    );
    assert!(given < 1 << 30, "the kernel's own id {given}");
    assert_eq!(
        link_netnsid(&h, &h.host_veth(&known.id)),
        given,
        "an existing id was replaced"
    );
    // Connected to a second network, `a` keeps its id (its second host end
    // names it too) and uses up no number: the next container's id is the
    // second below `b`'s (the one right below was `known`'s turn, spent
    // although it kept its own).
    ok(h.ocinet(&["network", "create", "nsid2", "--subnet", "10.62.0.0/24"]));
    ok(h.ocinet(&["network", "connect", "nsid2", &a.id]));
    let second = h
        .endpoint(&a.id)
        .and_then(|e| {
            e["attachments"]
                .as_array()?
                .iter()
                .find(|x| x["network"] == "nsid2")?["host_interface"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no second host interface for a: {:?}", h.ps()));
    assert_eq!(link_netnsid(&h, &second), id_a, "a's second veth");
    let c = h.bare_container("nsid-c", serde_json::json!({}));
    ok(h.hook("createRuntime", &c.state, &[]));
    assert_eq!(
        link_netnsid(&h, &h.host_veth(&c.id)),
        id_b - 2,
        "the id after a connect"
    );
    // Their veths carry traffic: `a` reaches the others over the bridge.
    for c in [&b, &known, &c] {
        ok(h.in_container(&a.id, &["ping", "-c", "1", "-W", "2", &ip_of(&h, &c.id)]));
    }
    for c in [&a, &b, &known, &c] {
        ok(h.hook("poststop", &c.stopped_state(), &[]));
        assert_clean(&h, &c.id);
    }
}

both_runtimes!(
    eth0_has_address_and_default_route,
    two_containers_reach_each_other,
    outside_sees_the_host_address,
    internal_network_has_no_way_out,
    none_mode_has_only_lo,
    host_mode_needs_nothing,
    container_mode_shares_the_namespace,
    a_sharer_is_detached_once_its_target_stops,
    failing_setups_leave_nothing,
    sixteen_at_once,
);
