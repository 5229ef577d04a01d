//! Issue 22: name resolution on macvlan networks over IPv6. The resolver
//! is reached on the parent's segment at an address of its own there (a
//! bridge-mode shim of the parent in the host namespace): an IPv6-only
//! macvlan network has name resolution at an IPv6 address of the segment
//! (the highest free one of its range by default), a dual-stack one at
//! one address of each family; AAAA answers, resolv.conf names the IPv6
//! address, and nothing stays on the host after the last container and
//! `network rm`. Every network names its upstream: a fake resolver in the
//! outside namespace; no query reaches the machine's resolvers.

use ocinet_integration::upstream::{ask, Upstream, A, AAAA};
use ocinet_integration::{
    assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, OUTSIDE_IP, OUTSIDE_IP6,
};
use serde_json::Value;

fn inspect(h: &Host, net: &str) -> Value {
    serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).expect("inspect json")
}

/// Container `id`'s address on `net` (`ip` or `ip6`), if it has one.
fn addr(h: &Host, id: &str, net: &str, key: &str) -> Option<String> {
    h.endpoint(id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .find(|a| a["network"] == net)
        .and_then(|a| a[key].as_str().map(str::to_string))
}

fn nameservers(h: &Host, id: &str) -> Vec<String> {
    text(&h.in_container_fs(id, &["cat", "/etc/resolv.conf"]))
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::to_string)
        .collect()
}

/// The host's IPv6 routes (the shim's among them).
fn shim_routes6(h: &Host) -> String {
    text(&h.exec(&["ip", "-6", "route", "show", "table", "main"]))
}

/// An IPv6-only macvlan network on the outside's segment has name
/// resolution by default, at the highest free address of its IPv6 range;
/// two containers resolve each other's names to their IPv6 addresses,
/// other names go to the IPv6 upstream, resolv.conf names the resolver's
/// IPv6 address alone; the routes to the containers through the shim go
/// with them, the shim with `network rm`.
fn names_on_an_ipv6_only_macvlan_network(rt: Runtime) {
    let h = Host::new();
    let parent = h.outside_link();
    let up6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 9]);
    ok(h.ocinet(&[
        "network",
        "create",
        "mv6",
        "--driver",
        "macvlan",
        "--parent",
        &parent,
        "--subnet",
        "2001:db8:100::/64",
        "--gateway",
        OUTSIDE_IP6,
        "--ip-range",
        "2001:db8:100::8000/113",
        "--dns-upstream",
        OUTSIDE_IP6,
    ]));
    let v = inspect(&h, "mv6");
    assert_eq!(v[0]["DNSEnabled"], true, "{v}");
    assert!(v[0]["DNSAddress"].is_null(), "{v}");
    // The range's last address.
    assert_eq!(v[0]["DNSAddress6"], "2001:db8:100::ffff", "{v}");
    let dns6 = "2001:db8:100::ffff";

    let mut a = h.started(rt, "a", &Spec::on("mv6", "web-1"));
    let mut b = h.started(rt, "b", &Spec::on("mv6", "web-2"));
    let a6 = addr(&h, &a.id, "mv6", "ip6").expect("a's IPv6 address");
    let b6 = addr(&h, &b.id, "mv6", "ip6").expect("b's IPv6 address");
    assert_ne!(a6, dns6);
    assert_eq!(nameservers(&h, &a.id), [dns6]);
    // The first packet to a freshly made address may wait on neighbour
    // discovery: prime the paths, the resolver's to the upstream too (a
    // forward that waited 1 s on it came back SERVFAIL once in CI-like
    // runs).
    for _ in 0..5 {
        if h.exec(&["ping", "-6", "-c", "1", "-W", "1", OUTSIDE_IP6])
            .status
            .success()
        {
            break;
        }
    }
    for _ in 0..20 {
        if h.in_container(&b.id, &["ping", "-6", "-c", "1", "-W", "1", dns6])
            .status
            .success()
        {
            break;
        }
    }
    let r = ask(
        &h,
        &b.id,
        &[
            ("aaaa", dns6, "web-1", AAAA, false),
            ("tcp", dns6, "web-1", AAAA, true),
            ("a", dns6, "web-1", A, false),
            ("fwd", dns6, "outside.test", A, false),
        ],
    );
    assert_eq!(r["aaaa"], format!("0:{a6}"), "{r:?}");
    assert_eq!(r["tcp"], format!("0:{a6}"), "{r:?}");
    assert_eq!(r["a"], "0:", "{r:?}");
    assert_eq!(r["fwd"], "0:203.0.113.9", "{r:?}");
    let r = ask(&h, &a.id, &[("b", dns6, "web-2", AAAA, false)]);
    assert_eq!(r["b"], format!("0:{b6}"), "{r:?}");
    assert!(
        up6.asked().iter().any(|n| n == "outside.test"),
        "{:?}",
        up6.asked()
    );
    // The host routes each container's address through the shim, from
    // the resolver's address.
    let routes = shim_routes6(&h);
    for ip in [&a6, &b6] {
        assert!(
            routes
                .lines()
                .any(|l| l.starts_with(ip.as_str()) && l.contains(&format!("src {dns6}"))),
            "{ip}: {routes}"
        );
    }

    h.stop(&mut a);
    let routes = shim_routes6(&h);
    assert!(!routes.contains(&a6), "{routes}");
    h.stop(&mut b);
    for id in [&a.id, &b.id] {
        assert_clean(&h, id);
    }
    ok(h.ocinet(&["network", "rm", "mv6"]));
    let links = text(&h.exec(&["ip", "-o", "link", "show"]));
    assert!(!links.contains(" ocd-"), "the shim stayed: {links}");
    assert!(
        h.links("veth").contains(&parent),
        "network rm took the parent"
    );
}

/// A dual-stack macvlan network has its resolver at one address of each
/// family (`--dns-address` once per family); resolv.conf names both, and
/// each answers both record types. Two IPv6 addresses are refused naming
/// the second.
fn names_on_a_dual_stack_macvlan_network(rt: Runtime) {
    let h = Host::new();
    let parent = h.outside_link();
    let _up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    let base = [
        "network",
        "create",
        "mvd",
        "--driver",
        "macvlan",
        "--parent",
        &parent,
        "--subnet",
        "198.51.100.0/24",
        "--gateway",
        OUTSIDE_IP,
        "--ip-range",
        "198.51.100.128/25",
        "--subnet",
        "2001:db8:100::/64",
        "--gateway",
        OUTSIDE_IP6,
        "--ip-range",
        "2001:db8:100::8000/113",
        "--dns-upstream",
        OUTSIDE_IP,
        "--dns-address",
        "198.51.100.250",
    ];
    let twice = h.ocinet(
        &[
            &base[..],
            &[
                "--dns-address",
                "2001:db8:100::53",
                "--dns-address",
                "2001:db8:100::54",
            ],
        ]
        .concat(),
    );
    assert!(!twice.status.success());
    let err = text(&twice);
    assert!(
        err.contains("dns-address") && err.contains("2001:db8:100::54"),
        "{err}"
    );
    ok(h.ocinet(&[&base[..], &["--dns-address", "2001:db8:100::53"]].concat()));
    let v = inspect(&h, "mvd");
    assert_eq!(v[0]["DNSAddress"], "198.51.100.250", "{v}");
    assert_eq!(v[0]["DNSAddress6"], "2001:db8:100::53", "{v}");

    let mut a = h.started(rt, "a", &Spec::on("mvd", "web-1"));
    let mut b = h.started(rt, "b", &Spec::on("mvd", "web-2"));
    let a4 = addr(&h, &a.id, "mvd", "ip").expect("a's IPv4 address");
    let a6 = addr(&h, &a.id, "mvd", "ip6").expect("a's IPv6 address");
    assert_eq!(
        nameservers(&h, &b.id),
        ["198.51.100.250", "2001:db8:100::53"]
    );
    for _ in 0..20 {
        if h.in_container(
            &b.id,
            &["ping", "-6", "-c", "1", "-W", "1", "2001:db8:100::53"],
        )
        .status
        .success()
        {
            break;
        }
    }
    let r = ask(
        &h,
        &b.id,
        &[
            ("a4", "198.51.100.250", "web-1", A, false),
            ("aaaa4", "198.51.100.250", "web-1", AAAA, false),
            ("a6", "2001:db8:100::53", "web-1", A, false),
            ("aaaa6", "2001:db8:100::53", "web-1", AAAA, false),
        ],
    );
    for (k, want) in [("a4", &a4), ("aaaa4", &a6), ("a6", &a4), ("aaaa6", &a6)] {
        assert_eq!(r[k], format!("0:{want}"), "{k}: {r:?}");
    }
    h.stop(&mut a);
    h.stop(&mut b);
    for id in [&a.id, &b.id] {
        assert_clean(&h, id);
    }
    ok(h.ocinet(&["network", "rm", "mvd"]));
}

both_runtimes!(
    names_on_an_ipv6_only_macvlan_network,
    names_on_a_dual_stack_macvlan_network
);
