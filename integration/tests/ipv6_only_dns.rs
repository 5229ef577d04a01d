//! Issue 22: name resolution on IPv6-only networks. Their containers'
//! names have AAAA records and no A (NOERROR, empty), PTR under ip6.arpa,
//! the resolver listens on the network's IPv6 gateway alone (never on an
//! IPv4 or unspecified address for it) and resolv.conf names only that;
//! other names go to the network's upstream, none from an internal
//! network. Every test network names its upstream: a fake resolver this
//! test runs in the outside namespace; no query reaches the machine's
//! resolvers.

use ocinet_integration::cni::{self, Call, Pod};
use ocinet_integration::upstream::{arpa6, ask, Upstream, A, AAAA, PTR};
use ocinet_integration::{
    assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, OUTSIDE_IP, OUTSIDE_IP6,
};
use serde_json::{json, Value};

/// Container `id`'s address on `net` (`ip` or `ip6`), if it has one.
fn addr(h: &Host, id: &str, net: &str, key: &str) -> Option<String> {
    h.endpoint(id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .find(|a| a["network"] == net)
        .and_then(|a| a[key].as_str().map(str::to_string))
}

fn ip6(h: &Host, id: &str, net: &str) -> String {
    addr(h, id, net, "ip6").unwrap_or_else(|| panic!("no IPv6 address for {id} on {net}"))
}

fn create(h: &Host, args: &[&str]) {
    ok(h.ocinet(&[&["network", "create"], args].concat()));
}

fn inspect(h: &Host, net: &str) -> Value {
    serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).expect("inspect json")
}

/// The nameserver lines of container `id`'s resolv.conf.
fn nameservers(h: &Host, id: &str) -> Vec<String> {
    text(&h.in_container_fs(id, &["cat", "/etc/resolv.conf"]))
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::to_string)
        .collect()
}

/// Where the resolver says it listens.
fn listening(h: &Host) -> Vec<String> {
    let state = h.dns_status();
    state["Listening"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `network create six --ipv4=false --ipv6` has name resolution (the
/// default), with its resolver at the IPv6 gateway alone. Two containers
/// on it resolve each other's names, aliases and short ids to their IPv6
/// addresses (AAAA) over UDP and TCP, and A is NOERROR with no answer;
/// PTR under ip6.arpa; NXDOMAIN for a free address of the subnet; other
/// names, reverse ones of either family too, go to the IPv6 upstream;
/// resolv.conf names only the IPv6 gateway, and busybox's nslookup
/// resolves through it.
fn names_on_an_ipv6_only_network(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let up6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 9]);
    let up4 = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    create(
        &h,
        &[
            "six",
            "--ipv4=false",
            "--ipv6",
            "--dns-upstream",
            OUTSIDE_IP6,
        ],
    );
    let v = inspect(&h, "six");
    assert_eq!(v[0]["EnableIPv4"], false, "{v}");
    assert_eq!(v[0]["DNSEnabled"], true, "{v}");
    assert!(
        v[0]["DNSAddress"].is_null(),
        "no IPv4 resolver address: {v}"
    );
    let gw = v[0]["DNSAddress6"]
        .as_str()
        .unwrap_or_else(|| panic!("no DNSAddress6: {v}"))
        .to_string();
    let subnet = v[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], gw.as_str(), "{v}");

    let mut a = h.started(
        rt,
        "a",
        &Spec::on("six", "web-1").ann("io.ocinet.aliases", "app"),
    );
    let mut b = h.started(rt, "b", &Spec::on("six", "web-2"));
    assert!(addr(&h, &a.id, "six", "ip").is_none(), "{:?}", h.ps());
    let (a6, b6) = (ip6(&h, &a.id, "six"), ip6(&h, &b.id, "six"));

    // Its IPv6 gateway, and nothing of IPv4 for it (0.0.0.0 least of all).
    let l = listening(&h);
    assert_eq!(l, [gw.as_str()], "{}", h.dns_status());
    assert_eq!(nameservers(&h, &a.id), [gw.as_str()]);
    assert_eq!(nameservers(&h, &b.id), [gw.as_str()]);

    // A free address of the subnet: the gateway's next but a hundred.
    let base: std::net::Ipv6Addr = gw.parse().expect("gateway");
    let free = std::net::Ipv6Addr::from(u128::from(base) + 0x99).to_string();
    let short = &a.id[..12];
    let r = ask(
        &h,
        &b.id,
        &[
            ("aaaa", &gw, "web-1", AAAA, false),
            ("alias", &gw, "app", AAAA, false),
            ("short", &gw, short, AAAA, false),
            ("upper", &gw, "WEB-1", AAAA, false),
            ("tcp", &gw, "web-1", AAAA, true),
            ("a", &gw, "web-1", A, false),
            ("atcp", &gw, "app", A, true),
            ("ptr", &gw, &arpa6(&a6), PTR, false),
            ("ptrtcp", &gw, &arpa6(&a6), PTR, true),
            ("free", &gw, &arpa6(&free), PTR, false),
            ("nobody", &gw, "nobody", AAAA, false),
            ("nobody4", &gw, "nobody", A, false),
            ("fwd", &gw, "outside.test", A, false),
            ("fwdptr6", &gw, &arpa6(OUTSIDE_IP6), PTR, false),
            ("fwdptr4", &gw, "2.100.51.198.in-addr.arpa", PTR, false),
        ],
    );
    let is = |k: &str, want: &str| assert_eq!(r[k], want, "{k}: {r:?}");
    is("aaaa", &format!("0:{a6}"));
    is("alias", &format!("0:{a6}"));
    is("short", &format!("0:{a6}"));
    is("upper", &format!("0:{a6}"));
    is("tcp", &format!("0:{a6}"));
    is("a", "0:");
    is("atcp", "0:");
    is("ptr", "0:web-1");
    is("ptrtcp", "0:web-1");
    is("free", "3:");
    is("nobody", "3:");
    is("nobody4", "3:");
    is("fwd", "0:203.0.113.9");
    assert!(r["fwdptr6"].starts_with("0:"), "{r:?}");
    assert!(r["fwdptr4"].starts_with("0:"), "{r:?}");
    // And the other way round.
    let r = ask(&h, &a.id, &[("b", &gw, "web-2", AAAA, false)]);
    assert_eq!(r["b"], format!("0:{b6}"), "{r:?}");

    // Through the container's own resolv.conf.
    let out = text(&h.in_container_fs(&b.id, &["nslookup", "web-1"]));
    assert!(out.contains(&format!("Address: {a6}")), "{out}");

    // The IPv6 upstream got what was forwarded and no name of the
    // network's own (its reverse names included); the IPv4 one nothing.
    let asked = up6.asked();
    for want in ["outside.test", "2.100.51.198.in-addr.arpa"] {
        assert!(asked.iter().any(|n| n == want), "{want}: {asked:?}");
    }
    assert!(asked.contains(&arpa6(OUTSIDE_IP6)), "{asked:?}");
    let own_zone = arpa6(&gw)[32..].to_string();
    assert!(
        !asked.iter().any(|n| n.ends_with(&own_zone)
            || n.starts_with("web-")
            || n.starts_with("app")
            || n.starts_with("nobody")),
        "{subnet}: {asked:?}"
    );
    assert!(up4.asked().is_empty(), "{:?}", up4.asked());

    for x in [&mut a, &mut b] {
        h.stop(x);
    }
    assert!(
        h.resolver_ended(),
        "the resolver outlived the last container"
    );
    for id in [&a.id, &b.id] {
        assert_clean(&h, id);
    }
}

/// A container on an IPv6-only network and an IPv4-only one: its
/// resolv.conf names each network's resolver once, in interface order
/// (the IPv6-only one at its IPv6 gateway); each network answers its own
/// names in its own family only (the container's IPv4 address on the
/// other network is no A record on the IPv6-only one), isolation holds
/// at either address, and each network forwards to its own upstream.
fn an_ipv6_only_network_beside_an_ipv4_only_one(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let up6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 9]);
    let up4 = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    create(
        &h,
        &[
            "six",
            "--subnet",
            "fd82::/64",
            "--dns-upstream",
            OUTSIDE_IP6,
        ],
    );
    create(
        &h,
        &[
            "four",
            "--subnet",
            "10.82.0.0/24",
            "--dns-upstream",
            OUTSIDE_IP,
        ],
    );
    let mut m = h.started(rt, "m", &Spec::on("six,four", "both"));
    let mut s = h.started(rt, "s", &Spec::on("six", "s6"));
    let mut c = h.started(rt, "c", &Spec::on("four", "c4"));
    let m6 = ip6(&h, &m.id, "six");
    let m4 = addr(&h, &m.id, "four", "ip").expect("m's IPv4 address");
    let s6 = ip6(&h, &s.id, "six");
    let c4 = addr(&h, &c.id, "four", "ip").expect("c's IPv4 address");

    let mut l = listening(&h);
    l.sort();
    assert_eq!(l, ["10.82.0.1", "fd82::1"], "{}", h.dns_status());
    assert_eq!(nameservers(&h, &m.id), ["fd82::1", "10.82.0.1"]);
    assert_eq!(nameservers(&h, &s.id), ["fd82::1"]);
    assert_eq!(nameservers(&h, &c.id), ["10.82.0.1"]);

    let r = ask(
        &h,
        &m.id,
        &[
            ("s6", "fd82::1", "s6", AAAA, false),
            ("s6a", "fd82::1", "s6", A, false),
            ("self6", "fd82::1", "both", AAAA, false),
            ("self6a", "fd82::1", "both", A, false),
            ("c4at6", "fd82::1", "c4", A, false),
            ("c4", "10.82.0.1", "c4", A, false),
            ("self4", "10.82.0.1", "both", A, false),
            ("self4aaaa", "10.82.0.1", "both", AAAA, false),
            ("s6at4", "10.82.0.1", "s6", AAAA, false),
            ("fwd6", "fd82::1", "six.test", A, false),
            ("fwd4", "10.82.0.1", "four.test", A, false),
        ],
    );
    let is = |k: &str, want: &str| assert_eq!(r[k], want, "{k}: {r:?}");
    is("s6", &format!("0:{s6}"));
    is("s6a", "0:");
    is("self6", &format!("0:{m6}"));
    is("self6a", "0:");
    is("c4at6", "3:");
    is("c4", &format!("0:{c4}"));
    is("self4", &format!("0:{m4}"));
    is("self4aaaa", "0:");
    is("s6at4", "3:");
    is("fwd6", "0:203.0.113.9");
    is("fwd4", "0:203.0.113.7");
    let r = ask(
        &h,
        &s.id,
        &[
            ("both", "fd82::1", "both", AAAA, false),
            ("both4", "fd82::1", "both", A, false),
            ("c4", "fd82::1", "c4", A, false),
            // The IPv4-only network's resolver address is another
            // network's: s has no route there (no IPv4 at all).
            ("other", "10.82.0.1", "c4", A, false),
        ],
    );
    let is = |k: &str, want: &str| assert_eq!(r[k], want, "{k}: {r:?}");
    is("both", &format!("0:{m6}"));
    is("both4", "0:");
    is("c4", "3:");
    assert!(!r["other"].starts_with("0:"), "{r:?}");
    let r = ask(
        &h,
        &c.id,
        &[
            ("both", "10.82.0.1", "both", A, false),
            ("both6", "10.82.0.1", "both", AAAA, false),
            ("s6", "10.82.0.1", "s6", AAAA, false),
        ],
    );
    let is = |k: &str, want: &str| assert_eq!(r[k], want, "{k}: {r:?}");
    is("both", &format!("0:{m4}"));
    is("both6", "0:");
    is("s6", "3:");

    let (asked6, asked4) = (up6.asked(), up4.asked());
    assert_eq!(asked6, ["six.test"], "{asked6:?}");
    assert_eq!(asked4, ["four.test"], "{asked4:?}");

    for x in [&mut m, &mut s, &mut c] {
        h.stop(x);
    }
    assert!(h.resolver_ended());
    for id in [&m.id, &s.id, &c.id] {
        assert_clean(&h, id);
    }
}

/// An internal IPv6-only network: its own names and reverse names are
/// answered; nothing is forwarded (reverse names of either family
/// included), to its IPv6 upstream either.
fn an_internal_ipv6_only_network_forwards_nothing(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let up6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 9]);
    create(
        &h,
        &[
            "int",
            "--internal",
            "--subnet",
            "fd83::/64",
            "--dns-upstream",
            OUTSIDE_IP6,
        ],
    );
    let mut x = h.started(rt, "x", &Spec::on("int", "x"));
    let x6 = ip6(&h, &x.id, "int");
    let r = ask(
        &h,
        &x.id,
        &[
            ("own", "fd83::1", "x", AAAA, false),
            ("own4", "fd83::1", "x", A, false),
            ("ptr", "fd83::1", &arpa6(&x6), PTR, false),
            ("free", "fd83::1", &arpa6("fd83::99"), PTR, false),
            ("out6", "fd83::1", &arpa6(OUTSIDE_IP6), PTR, false),
            ("out4", "fd83::1", "2.100.51.198.in-addr.arpa", PTR, false),
            ("fwd", "fd83::1", "outside.test", AAAA, false),
        ],
    );
    let is = |k: &str, want: &str| assert_eq!(r[k], want, "{k}: {r:?}");
    is("own", &format!("0:{x6}"));
    is("own4", "0:");
    is("ptr", "0:x");
    is("free", "3:");
    is("out6", "5:");
    is("out4", "5:");
    is("fwd", "5:");
    assert!(up6.asked().is_empty(), "{:?}", up6.asked());
    h.stop(&mut x);
    assert!(h.resolver_ended());
    assert_clean(&h, &x.id);
}

both_runtimes!(
    names_on_an_ipv6_only_network,
    an_ipv6_only_network_beside_an_ipv4_only_one,
    an_internal_ipv6_only_network_forwards_nothing,
);

/// Through the CNI front end: a pod on an IPv6-only network with name
/// resolution gets the resolver's IPv6 address as its result's only
/// nameserver (a runtime writes the pod's resolv.conf from it), and it
/// answers there; a dual-stack network's result names both resolver
/// addresses, IPv4 first.
#[test]
fn cni_results_name_the_ipv6_resolver() {
    let h = Host::new();
    h.outside();
    let _up6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 9]);
    create(
        &h,
        &[
            "six",
            "--subnet",
            "fd84::/64",
            "--dns-upstream",
            OUTSIDE_IP6,
        ],
    );
    create(
        &h,
        &[
            "ds",
            "--subnet",
            "10.85.0.0/24",
            "--subnet",
            "fd85::/64",
            "--dns-upstream",
            OUTSIDE_IP6,
        ],
    );
    let mut pods = Vec::new();
    for (net, want) in [
        ("six", json!(["fd84::1"])),
        ("ds", json!(["10.85.0.1", "fd85::1"])),
    ] {
        let pod = Pod::new(&h, net);
        let conf = cni::single(&h, "1.0.0", net, json!({}));
        let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
        let r = cni::exec(&h, "ocinet", &call, &conf).ok();
        assert_eq!(r["dns"]["nameservers"], want, "{net}: {r}");
        pods.push((pod, conf, call));
    }
    let (pod, _, _) = &pods[0];
    // Its short id is one of its names: one AAAA record.
    let py = format!(
        "{}\nprint(ask('fd84::1', '{}', 28))\n",
        ocinet_integration::upstream::CLIENT_PY,
        pod.id.get(..12).unwrap_or(&pod.id)
    );
    let out = text(&pod.exec(&["python3", "-c", &py]));
    assert_eq!(out.trim(), "(0, 1)", "{out}");
    for (pod, conf, call) in &mut pods {
        cni::exec(&h, "ocinet", &call.command("DEL"), conf).ok();
        pod.remove();
    }
    assert!(h.resolver_ended());
}
