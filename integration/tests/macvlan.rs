//! Issue 14: the macvlan driver. The parent is the host's veth to the
//! "outside" namespace, which holds the gateway address: containers are
//! hosts of that segment with their own addresses (not masqueraded), reach
//! each other, and leave nothing behind.

use std::process::Command;

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Host, Proc, Runtime, Spec, EXPORTER_ADDR,
    OUTSIDE_IP,
};

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

#[track_caller]
fn refused(h: &Host, args: &[&str], why: &str) {
    let o = h.ocinet(args);
    let t = text(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {t}");
    assert!(t.contains(why), "{args:?}: {t:?} lacks {why:?}");
}

/// An HTTP server in the outside namespace that answers with the address
/// the request came from.
fn echo_client_address(h: &Host) -> Proc {
    let server = h.spawn_outside(&[
        "python3",
        "-c",
        ocinet_integration::ECHO_CLIENT_PY,
        OUTSIDE_IP,
        "8001",
    ]);
    for _ in 0..100 {
        if h.wget(&format!("http://{OUTSIDE_IP}:8001/"))
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

fn containers_are_hosts_of_the_parents_segment(rt: Runtime) {
    let h = Host::new();
    let parent = h.macvlan_network("mv");
    let _server = echo_client_address(&h);
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "mv"]))).unwrap_or_default();
    assert_eq!(v[0]["Driver"], "macvlan", "{v}");
    assert_eq!(v[0]["Options"]["parent"], parent.as_str(), "{v}");
    assert_eq!(v[0]["Options"]["macvlan_mode"], "bridge", "{v}");
    let on_mv = Spec::default().ann("io.ocinet.network", "mv");
    let mut a = h.start(rt, "mva", &on_mv);
    assert!(a.exit.is_none(), "{}", a.output());
    let mut b = h.start(rt, "mvb", &on_mv);
    assert!(b.exit.is_none(), "{}", b.output());
    let (aip, bip) = (ip_of(&h, &a.id), ip_of(&h, &b.id));
    assert!(aip.starts_with("198.51.100.1"), "{aip}");
    // The outside reaches the container directly, and sees its own
    // address when the container connects out: no NAT.
    answers(
        h.exec_outside(&[
            "timeout",
            "3",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{aip}:80/"),
        ]),
        &a.id,
    );
    let out = text(&h.wget_from(&a.id, &format!("http://{OUTSIDE_IP}:8001/")));
    assert!(out.contains(&format!("from {aip}")), "{out}");
    // Two containers on one parent reach each other (mode bridge).
    answers(h.wget_from(&a.id, &format!("http://{bip}:80/")), &b.id);
    let route = ok(Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(&a.id)))
        .args(["ip", "-4", "route", "show", "default"])
        .output()
        .expect("ip route"));
    assert!(
        route.contains(&format!("via {OUTSIDE_IP} dev eth0")),
        "{route}"
    );
    let ps = ok(h.ocinet(&["ps"]));
    assert!(ps.contains(&aip), "{ps}");
    // No host end to count on: the exporter reads the container's own
    // interface, from the container's point of view as for veths.
    let mut exporter = h.start_exporter(&[]);
    let metrics = ok(h.exec(&["curl", "-s", &format!("http://{EXPORTER_ADDR}/metrics")]));
    for dir in ["receive", "transmit"] {
        let value = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!("ocinet_container_network_{dir}_bytes_total{{"))
                    && l.contains(&format!("container_id=\"{}\"", a.id))
                    && l.contains("interface=\"eth0\"")
                    && l.contains("network=\"mv\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {dir} bytes for {}: {metrics}", a.id));
        assert!(
            value > 1000.0,
            "{dir} bytes {value}: the HTTP exchanges above count"
        );
    }
    exporter.terminate();
    // Published ports are refused: nothing is NATed.
    let pubd = h.start(
        rt,
        "mvpub",
        &on_mv.clone().ann("io.ocinet.ports", "8080:80"),
    );
    assert!(pubd.exit.is_some_and(|s| !s.success()));
    let log = h.log();
    assert!(
        log.contains("invalid io.ocinet.ports \"8080:80/tcp\": network mv uses the macvlan driver"),
        "{log}"
    );
    assert_clean(&h, &pubd.id);
    h.stop(&mut a);
    h.stop(&mut b);
    assert_clean(&h, &a.id);
    assert_clean(&h, &b.id);
    assert!(h.leases("mv").is_empty(), "{:?}", h.leases("mv"));
    // The parent is the host's, and stays.
    assert!(h.links("veth").contains(&parent), "the parent went away");
    ok(h.ocinet(&["network", "rm", "mv"]));
    assert!(
        h.links("veth").contains(&parent),
        "network rm took the parent"
    );
}

fn bad_macvlan_networks_are_refused(rt: Runtime) {
    let h = Host::new();
    let parent = h.outside_link();
    let create = |extra: &[&str]| -> Vec<String> {
        ["network", "create", "bad"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    for (extra, why) in [
        (
            vec!["--driver", "macvlan", "--subnet", "10.74.0.0/24"],
            "--driver macvlan needs --parent IFNAME",
        ),
        (
            vec![
                "--driver",
                "macvlan",
                "--parent",
                "nosuch0",
                "--subnet",
                "10.74.0.0/24",
            ],
            "parent interface nosuch0 does not exist",
        ),
        (
            vec!["--driver", "macvlan", "--parent", &parent],
            "invalid subnet \"none\": --driver macvlan needs --subnet",
        ),
        (
            vec![
                "--driver",
                "macvlan",
                "--parent",
                &parent,
                "--subnet",
                "10.74.0.0/24",
                "--internal",
            ],
            "invalid internal \"true\": only applies to bridge networks",
        ),
        (
            vec![
                "--driver",
                "macvlan",
                "--parent",
                &parent,
                "--subnet",
                "10.74.0.0/24",
                "--bridge",
                "brx",
            ],
            "invalid bridge \"brx\": only applies to bridge networks",
        ),
        (
            vec![
                "--driver",
                "macvlan",
                "--parent",
                &parent,
                "--subnet",
                "10.74.0.0/24",
                "--mode",
                "weird",
            ],
            "weird",
        ),
        (
            vec!["--driver", "ipvlan", "--subnet", "10.74.0.0/24"],
            "ipvlan",
        ),
        (
            vec!["--parent", &parent, "--subnet", "10.74.0.0/24"],
            "invalid parent",
        ),
    ] {
        let args = create(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&h, &args, why);
    }
    // An ocinet bridge is no parent.
    let c = h.start(rt, "onbridge", &Spec::default());
    assert!(c.exit.is_none(), "{}", c.output());
    refused(
        &h,
        &[
            "network",
            "create",
            "bad",
            "--driver",
            "macvlan",
            "--parent",
            "ocinet0",
            "--subnet",
            "10.74.0.0/24",
        ],
        "invalid --parent \"ocinet0\": is a bridge of an ocinet network",
    );
    // A parent that went away after the network was made: setup says so.
    // (This kernel has no dummy driver: a veth pair stands in.)
    ok(h.exec(&[
        "ip", "link", "add", "mvd0", "type", "veth", "peer", "name", "mvd1",
    ]));
    ok(h.ocinet(&[
        "network",
        "create",
        "gone",
        "--driver",
        "macvlan",
        "--parent",
        "mvd0",
        "--subnet",
        "10.75.0.0/24",
    ]));
    ok(h.exec(&["ip", "link", "del", "mvd0"]));
    let g = h.start(
        rt,
        "noparent",
        &Spec::default().ann("io.ocinet.network", "gone"),
    );
    assert!(g.exit.is_some_and(|s| !s.success()));
    let log = h.log();
    assert!(
        log.contains("network gone: parent interface mvd0 does not exist"),
        "{log}"
    );
    assert_clean(&h, &g.id);
    assert!(!ok(h.ocinet(&["network", "ls"])).contains("bad"));

    // The parent's MTU unless one is given, never more than it.
    refused(
        &h,
        &[
            "network",
            "create",
            "bad",
            "--driver",
            "macvlan",
            "--parent",
            &parent,
            "--subnet",
            "10.74.0.0/24",
            "--mtu",
            "9000",
        ],
        &format!("invalid mtu \"9000\": is larger than the MTU 1500 of parent {parent}"),
    );
    ok(h.exec(&["ip", "link", "set", &parent, "mtu", "1400"]));
    ok(h.ocinet(&[
        "network",
        "create",
        "small",
        "--driver",
        "macvlan",
        "--parent",
        &parent,
        "--subnet",
        "10.78.0.0/24",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "small"]))).unwrap_or_default();
    assert_eq!(v[0]["Options"]["mtu"], "1400", "{v}");

    // passthru gives the interface the parent's MAC, whatever was asked:
    // the record says the MAC it has, and teardown finds it by that.
    ok(h.exec(&[
        "ip", "link", "add", "ptp0", "type", "veth", "peer", "name", "ptp1",
    ]));
    ok(h.exec(&["ip", "link", "set", "ptp0", "up"]));
    ok(h.ocinet(&[
        "network",
        "create",
        "pt",
        "--driver",
        "macvlan",
        "--parent",
        "ptp0",
        "--mode",
        "passthru",
        "--subnet",
        "10.79.0.0/24",
    ]));
    let mut p = h.start(
        rt,
        "passthru",
        &Spec::default().ann("io.ocinet.network", "pt"),
    );
    assert!(p.exit.is_none(), "{}", p.output());
    let inside = ok(Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(&p.id)))
        .args(["ip", "-j", "link", "show", "eth0"])
        .output()
        .expect("ip link"));
    let inside: serde_json::Value = serde_json::from_str(&inside).unwrap_or_default();
    let recorded = h
        .endpoint(&p.id)
        .map(|e| e["mac"].clone())
        .unwrap_or_default();
    assert_eq!(recorded, inside[0]["address"], "{inside}");
    h.stop(&mut p);
    assert_clean(&h, &p.id);
    assert!(h.leases("pt").is_empty());
    ok(h.exec(&["ip", "link", "del", "ptp0"]));
}

both_runtimes!(
    containers_are_hosts_of_the_parents_segment,
    bad_macvlan_networks_are_refused,
);
