//! Issue 22: bad IPv6 input, refused naming the field and the value, with
//! nothing left behind (no network, no lease, no interface).

use ocinet_integration::{both_runtimes, ok, text, Host, Runtime, Spec};

fn refused(h: &Host, args: &[&str], field: &str, value: &str) {
    let o = h.ocinet(args);
    let err = text(&o);
    assert!(!o.status.success(), "{args:?} was accepted: {err}");
    assert!(
        err.contains(field) && err.contains(value),
        "{args:?}: the error should name {field} and {value}: {err}"
    );
}

/// Why `c`'s setup failed: the hook's log line (crun discards a failing
/// hook's stderr; runc shows it too).
fn failure(h: &Host, c: &ocinet_integration::Container) -> String {
    let log = h.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&c.id) && l.contains("ERROR"))
        .unwrap_or("")
        .to_string();
    if c.runtime == Runtime::Runc {
        let out = c.output();
        assert!(out.contains("ocinet hook createRuntime"), "{out}");
    }
    line
}

fn networks(h: &Host) -> String {
    ok(h.ocinet(&["network", "ls"]))
}

#[test]
fn malformed_ipv6_networks_are_refused_by_name() {
    let h = Host::new();
    let create = |extra: &[&str]| {
        let mut a = vec!["network", "create", "n6"];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--subnet", "10.70.0.0/24", "--subnet", "fd70::/64x"],
            "subnet",
            "fd70::/64x",
        ),
        (
            &["--subnet", "10.70.0.0/24", "--subnet", "fd70::/121"],
            "subnet",
            "fd70::/121",
        ),
        (
            &["--subnet", "10.70.0.0/24", "--subnet", "fe80::/64"],
            "subnet",
            "fe80::/64",
        ),
        (
            &["--subnet", "10.70.0.0/24", "--subnet", "ff05::/64"],
            "subnet",
            "ff05::/64",
        ),
        (
            &["--subnet", "10.70.0.0/24", "--subnet", "::ffff:0:0/96"],
            "subnet",
            "::ffff:0:0/96",
        ),
        (
            &[
                "--subnet",
                "10.70.0.0/24",
                "--subnet",
                "fd70::/64",
                "--subnet",
                "fd71::/64",
            ],
            "subnet",
            "fd71::/64",
        ),
        (
            &[
                "--subnet",
                "10.70.0.0/24",
                "--subnet",
                "fd70::/64",
                "--gateway",
                "fd71::1",
            ],
            "gateway",
            "fd71::1",
        ),
        (
            &[
                "--subnet",
                "10.70.0.0/24",
                "--subnet",
                "fd70::/64",
                "--gateway",
                "fd70::",
            ],
            "gateway",
            "fd70::",
        ),
        (
            &[
                "--subnet",
                "10.70.0.0/24",
                "--subnet",
                "fd70::/64",
                "--ip-range",
                "fd71::/80",
            ],
            "ip-range",
            "fd71::/80",
        ),
        (
            &["--subnet", "10.70.0.0/24", "--gateway", "fd70::1"],
            "gateway",
            "fd70::1",
        ),
        (&["--ipv4=false"], "ipv4", "false"),
        (
            &["--ipv4=false", "--subnet", "10.70.0.0/24", "--ipv6"],
            "subnet",
            "10.70.0.0/24",
        ),
        (
            &["--subnet", "fd70::/64", "--gateway", "10.70.0.1"],
            "gateway",
            "10.70.0.1",
        ),
        (
            &[
                "--subnet",
                "10.70.0.0/24",
                "--ipv6",
                "--aux-address",
                "r=fd71::5",
            ],
            "aux-address",
            "r=fd71::5",
        ),
        (
            &["--subnet", "10.70.0.0/24", "--aux-address", "r=fd70::5"],
            "aux-address",
            "r=fd70::5",
        ),
    ];
    for (extra, field, value) in cases {
        let args = create(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&h, &args, field, value);
        assert!(!networks(&h).contains("n6"), "{args:?} left a network");
    }
    // Overlaps with another network's IPv6 subnet, and with a host route,
    // are named.
    ok(h.ocinet(&[
        "network",
        "create",
        "a6",
        "--subnet",
        "10.71.0.0/24",
        "--subnet",
        "fd72::/64",
    ]));
    refused(
        &h,
        &[
            "network",
            "create",
            "b6",
            "--subnet",
            "10.72.0.0/24",
            "--subnet",
            "fd72::/48",
        ],
        "network a6",
        "fd72::/48",
    );
    // (This kernel has no dummy interfaces: a veth pair carries the route.)
    ok(h.exec(&[
        "ip", "link", "add", "rt6a", "type", "veth", "peer", "name", "rt6b",
    ]));
    ok(h.exec(&["ip", "link", "set", "rt6a", "up"]));
    ok(h.exec(&["ip", "-6", "route", "add", "fd73::/64", "dev", "rt6a"]));
    refused(
        &h,
        &[
            "network",
            "create",
            "c6",
            "--subnet",
            "10.73.0.0/24",
            "--subnet",
            "fd73::/64",
        ],
        "host route fd73::/64 on rt6a",
        "fd73::/64",
    );
    // --ipv6 alone takes a free /64 of ocinet's ULA pool, a second one the next.
    ok(h.ocinet(&["network", "create", "d6", "--ipv6"]));
    ok(h.ocinet(&["network", "create", "e6", "--ipv6"]));
    let inspect = |n: &str| -> serde_json::Value {
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", n]))).expect("json")
    };
    let (d, e) = (inspect("d6"), inspect("e6"));
    assert_eq!(d[0]["EnableIPv6"], true);
    let (sd, se) = (
        d[0]["IPAM"]["Config"][1]["Subnet"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
        e[0]["IPAM"]["Config"][1]["Subnet"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
    );
    assert!(
        sd.starts_with("fd87:6f63:6900:") && sd.ends_with("/64"),
        "{sd}"
    );
    assert_ne!(sd, se);
    // The default network stays IPv4-only.
    let o = h.ocinet(&["network", "inspect", "a6"]);
    assert!(text(&o).contains("\"EnableIPv6\": true"), "{}", text(&o));
}

fn bad_static_ipv6_addresses_are_refused_and_leave_nothing(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "ds",
        "--subnet",
        "10.74.0.0/24",
        "--subnet",
        "fd74::/64",
        "--aux-address",
        "r6=fd74::9",
    ]));
    ok(h.ocinet(&["network", "create", "v4", "--subnet", "10.75.0.0/24"]));
    for (net, key, value, why) in [
        ("ds", "io.ocinet.ip6", "fd75::5", "outside the subnet"),
        ("ds", "io.ocinet.ip6", "fd74::1", "gateway"),
        ("ds", "io.ocinet.ip6", "fd74::9", "auxiliary address r6"),
        ("ds", "io.ocinet.ip6", "10.74.0.9", "not an IPv6 address"),
        ("ds", "io.ocinet.ip6.ds", "fd74::zz", "not an IPv6 address"),
        ("v4", "io.ocinet.ip6", "fd74::5", "no IPv6 subnet"),
    ] {
        let spec = Spec::default()
            .ann("io.ocinet.network", net)
            .ann(key, value);
        let c = h.start(rt, "bad", &spec);
        let out = failure(&h, &c);
        assert!(c.exit.is_some(), "{key}={value} was accepted");
        assert!(
            out.contains(key) && out.contains(value) && out.contains(why),
            "{key}={value}: {out}"
        );
        assert!(h.ps().is_empty(), "{:?}", h.ps());
        assert!(h.all_leases().is_empty(), "{:?}", h.all_leases());
        assert!(h.links("veth").is_empty(), "{:?}", h.links("veth"));
    }
    // A good static one is taken, and refused to the next container.
    let spec = Spec::default()
        .ann("io.ocinet.network", "ds")
        .ann("io.ocinet.ip6", "fd74::42");
    let mut a = h.start(rt, "a", &spec);
    assert!(a.exit.is_none(), "{}", a.output());
    let ep = h.endpoint(&a.id).expect("endpoint");
    assert_eq!(ep["attachments"][0]["ip6"], "fd74::42");
    let b = h.start(rt, "b", &spec);
    assert!(b.exit.is_some());
    let why = failure(&h, &b);
    assert!(why.contains("fd74::42") && why.contains(&a.id), "{why}");
    h.stop(&mut a);
    assert!(h.all_leases().is_empty(), "{:?}", h.all_leases());
}

both_runtimes!(bad_static_ipv6_addresses_are_refused_and_leave_nothing);
