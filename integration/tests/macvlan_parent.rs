//! Issue 21, items 12 and 13: what a macvlan network may stand on, a
//! definition ocinet cannot read back, and a parent deleted under running
//! containers (seen by `ps`, `gc`, the exporter, the resolver and
//! `firewall reload`, and recovered as docs/operations.md says).

use std::time::{Duration, Instant};

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Host, Proc, Runtime, Spec, EXPORTER_ADDR,
    OUTSIDE_IP,
};

#[track_caller]
fn refused(h: &Host, args: &[&str], why: &[&str]) -> String {
    ocinet_integration::refused(h.ocinet(args), why)
}

fn create_macvlan(h: &Host, name: &str, parent: &str, subnet: &str) -> std::process::Output {
    h.ocinet(&[
        "network",
        "create",
        name,
        "--driver",
        "macvlan",
        "--parent",
        parent,
        "--subnet",
        subnet,
        "--dns-upstream",
        OUTSIDE_IP,
    ])
}

/// A veth pair in the host namespace, both ends up: a parent of a segment
/// of its own that the test can delete and make again.
fn parent_pair(h: &Host, a: &str, b: &str) {
    ok(h.exec(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]));
    ok(h.exec(&["ip", "link", "set", a, "up"]));
    ok(h.exec(&["ip", "link", "set", b, "up"]));
}

/// A resolver in the outside namespace answering every A query with
/// 203.0.113.7: a name forwarded instead of answered locally shows.
fn fake_upstream(h: &Host) -> Proc {
    let script = r#"import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(4096)
    end = q.index(b"\0", 12) + 5
    r = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end]
    r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([203, 0, 113, 7])
    s.sendto(r, peer)
"#;
    let p = h.spawn_outside(&["python3", "-c", script, OUTSIDE_IP]);
    std::thread::sleep(Duration::from_millis(300));
    p
}

/// Whether `text` has `ip` as a whole word (10.76.0.2 is not in 10.76.0.254).
fn has_ip(text: &str, ip: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| w == ip)
}

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

/// (container state, first attachment's state) as `ps --json` says.
fn states(h: &Host, id: &str) -> (String, String) {
    let e = h.endpoint(id).unwrap_or_else(|| panic!("{id} not in ps"));
    (
        e["state"].as_str().unwrap_or_default().to_string(),
        e["attachments"][0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn scrape(h: &Host) -> String {
    ok(h.exec(&["curl", "-sf", &format!("http://{EXPORTER_ADDR}/metrics")]))
}

fn metric(m: &str, labels: &[&str]) -> Option<f64> {
    m.lines()
        .filter(|l| l.starts_with("ocinet_attachment_state{"))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Item 12: a parent that cannot carry macvlan is refused at create,
/// naming `--parent`, the value and why; nothing is written.
fn parents_that_cannot_carry_macvlan_are_refused(rt: Runtime) {
    let h = Host::new();
    // An ocinet bridge, and a container's host veth on it.
    let mut c = h.started(rt, "onbridge", &Spec::default());
    let veth = h
        .endpoint(&c.id)
        .and_then(|e| e["host_interface"].as_str().map(str::to_string))
        .expect("host veth");
    // A shim: a DNS-enabled macvlan network with a container.
    h.macvlan_network("mv");
    let mut m = h.started(rt, "onmv", &Spec::default().ann("io.ocinet.network", "mv"));
    let shim = h
        .links("macvlan")
        .into_iter()
        .find(|l| l.starts_with("ocd-"))
        .expect("shim");
    // A port of a bridge ocinet did not make: the kernel refuses it (EBUSY).
    ok(h.exec(&["ip", "link", "add", "brx9", "type", "bridge"]));
    parent_pair(&h, "bxp0", "bxp1");
    ok(h.exec(&["ip", "link", "set", "bxp0", "master", "brx9"]));
    for (parent, why) in [
        ("lo", "is a loopback interface"),
        (veth.as_str(), "is the host end of a container's veth"),
        (shim.as_str(), "is the DNS shim ocinet made"),
        ("ocinet0", "is a bridge of an ocinet network"),
        ("bxp0", "is a port of bridge brx9"),
    ] {
        let args = [
            "network",
            "create",
            "bad",
            "--driver",
            "macvlan",
            "--parent",
            parent,
            "--subnet",
            "10.74.0.0/24",
        ];
        refused(
            &h,
            &args,
            &[&format!("invalid --parent \"{parent}\": {why}")],
        );
        let ls = text(&h.ocinet(&["network", "ls"]));
        assert!(!ls.contains("bad"), "{parent}: {ls}");
    }
    // A bridge someone else made is an Ethernet device the kernel takes.
    ok(create_macvlan(&h, "onbrx", "brx9", "10.75.0.0/24"));
    ok(h.ocinet(&["network", "rm", "onbrx"]));
    h.stop(&mut m);
    h.stop(&mut c);
    assert_clean(&h, &c.id);
    ok(h.exec(&["ip", "link", "del", "bxp0"]));
    ok(h.exec(&["ip", "link", "del", "brx9"]));
}

/// Item 12: a definition the reader refuses (hand-edited, or written by a
/// version that wrote one) is listed as broken, `inspect` says why, and
/// `rm` removes it with what ocinet made for it, once no container's
/// record names the network.
fn a_broken_definition_is_shown_and_removed(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&["network", "create", "bb", "--subnet", "10.77.0.0/24"]));
    let bridge = {
        let v: serde_json::Value =
            serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "bb"]))).expect("json");
        v[0]["Options"]["bridge"]
            .as_str()
            .expect("bridge")
            .to_string()
    };
    let mut c = h.started(rt, "onbb", &Spec::default().ann("io.ocinet.network", "bb"));
    assert!(h.links("bridge").contains(&bridge));
    // What earlier builds wrote for `--parent lo`: an MTU the reader refuses.
    let file = h.config_dir().join("networks/bb.json");
    let mut def: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("definition")).expect("json");
    def["mtu"] = serde_json::json!(65536);
    std::fs::write(&file, serde_json::to_vec(&def).expect("json")).expect("write");
    // And one that is not JSON at all.
    std::fs::write(h.config_dir().join("networks/junk.json"), b"{not json").expect("write");

    let ls = h.ocinet(&["network", "ls"]);
    let t = text(&ls);
    assert!(ls.status.success(), "{t}");
    let row = |name: &str| {
        String::from_utf8_lossy(&ls.stdout)
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{name} not listed: {t}"))
    };
    assert!(row("bb").contains("broken"), "{t}");
    assert!(row("junk").contains("broken"), "{t}");
    assert!(t.contains("invalid mtu \"65536\""), "{t}");
    assert!(t.contains("`ocinet network rm bb` removes it"), "{t}");
    refused(
        &h,
        &["network", "inspect", "bb"],
        &["bb.json", "invalid mtu \"65536\"", "network rm bb"],
    );
    // Still in use, by the records' say: refused.
    refused(
        &h,
        &["network", "rm", "bb"],
        &["network bb has 1 attached container(s)", &c.id],
    );
    h.stop(&mut c);
    assert_clean(&h, &c.id);
    let o = h.ocinet(&["network", "rm", "bb"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("warning: network bb") && t.contains("removing it anyway"),
        "{t}"
    );
    assert!(!h.links("bridge").contains(&bridge), "the bridge stayed");
    assert!(!file.exists());
    ok(h.ocinet(&["network", "rm", "junk"]));
    let ls = text(&h.ocinet(&["network", "ls"]));
    assert!(!ls.contains("bb") && !ls.contains("junk"), "{ls}");
    // The rebuilt table is whole: a new container on the default network works.
    let mut d = h.started(rt, "after", &Spec::default());
    h.stop(&mut d);
    assert_clean(&h, &d.id);
}

/// Item 13: the parent of a macvlan network deleted under a running
/// container, then made again; the container recovered as docs/operations.md says.
fn a_deleted_parent_is_seen_and_recovered(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let _up = fake_upstream(&h);
    parent_pair(&h, "mgp0", "mgp1");
    ok(create_macvlan(&h, "mvg", "mgp0", "10.76.0.0/24"));
    let on = |name: &str| {
        Spec::default()
            .ann("io.ocinet.network", "mvg")
            .ann("io.ocinet.name", name)
    };
    let mut a = h.started(rt, "pga", &on("web-1"));
    let a_ip = ip_of(&h, &a.id);
    assert_eq!(states(&h, &a.id), ("ready".into(), "ready".into()));
    let _exporter = h.start_exporter(&["--no-collector.portmap", "--no-collector.conntrack"]);
    let id_label = format!("container_id=\"{}\"", a.id);
    let wait_metric = |state: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = scrape(&h);
            if metric(&m, &[&id_label, &format!("state=\"{state}\"")]) == Some(1.0) {
                return;
            }
            assert!(Instant::now() < deadline, "no {state} for {}: {m}", a.id);
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_metric("ok");

    ok(h.exec(&["ip", "link", "del", "mgp0"]));
    assert_eq!(
        states(&h, &a.id),
        ("parent-gone".into(), "parent-gone".into())
    );
    let table = ok(h.ocinet(&["ps"]));
    assert!(table.contains("parent-gone"), "{table}");
    wait_metric("parent-gone");
    let gc = ok(h.ocinet(&["gc"]));
    assert!(
        gc.contains(&format!(
            "parent-gone: container {} lost eth0 on network mvg (parent mgp0)",
            a.id
        )),
        "{gc}"
    );
    // The record and lease stay for the recovery.
    assert!(h.endpoint(&a.id).is_some());
    // The resolver, serving no one now, ends (by itself, or by that gc),
    // and gc does not start it again for a container it cannot serve.
    assert!(h.resolver_ended(), "the resolver serves no one and runs on");
    let again = ok(h.ocinet(&["gc"]));
    assert!(!again.contains("started the resolver"), "{again}");
    assert!(h.resolver_ended());
    let reload = h.ocinet(&["firewall", "reload"]);
    assert!(reload.status.success(), "{}", text(&reload));
    let routes = ok(h.exec(&["ip", "-4", "route", "show"]));
    assert!(!has_ip(&routes, &a_ip), "{routes}");

    // The parent made again: the container's interface is still gone.
    parent_pair(&h, "mgp0", "mgp1");
    assert_eq!(states(&h, &a.id).1, "interface-gone");
    wait_metric("interface-gone");
    ok(h.ocinet(&["firewall", "reload"]));
    let routes = ok(h.exec(&["ip", "-4", "route", "show"]));
    assert!(!has_ip(&routes, &a_ip), "reload put back a route: {routes}");
    // A new container's resolver does not answer the lost one's name.
    let mut b = h.started(rt, "pgb", &on("web-2"));
    let out = text(&h.in_container_fs(&b.id, &["nslookup", "web-2"]));
    assert!(
        out.contains(&format!("Address: {}", ip_of(&h, &b.id))),
        "{out}"
    );
    let out = text(&h.in_container_fs(&b.id, &["nslookup", "web-1"]));
    assert!(
        !has_ip(&out, &a_ip),
        "the lost container's name answered: {out}"
    );

    // Recovery, as docs/operations.md says: disconnect and connect again.
    ok(h.ocinet(&["network", "disconnect", "mvg", &a.id]));
    ok(h.ocinet(&["network", "connect", "mvg", &a.id]));
    assert_eq!(states(&h, &a.id), ("ready".into(), "ready".into()));
    wait_metric("ok");
    let a_ip = ip_of(&h, &a.id);
    answers(h.wget(&format!("http://{a_ip}:80/")), &a.id);
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let out = text(&h.in_container_fs(&b.id, &["nslookup", "web-1"]));
        if out.contains(&format!("Address: {a_ip}")) {
            break;
        }
        assert!(Instant::now() < deadline, "web-1 not answered again: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    h.stop(&mut a);
    h.stop(&mut b);
    assert_clean(&h, &a.id);
    assert_clean(&h, &b.id);
    ok(h.ocinet(&["network", "rm", "mvg"]));
    ok(h.exec(&["ip", "link", "del", "mgp0"]));
}

both_runtimes!(
    parents_that_cannot_carry_macvlan_are_refused,
    a_broken_definition_is_shown_and_removed,
    a_deleted_parent_is_seen_and_recovered,
);
