//! Issue 22: a container's own DNS servers (`io.ocinet.dns`) of either
//! family. The resolver forwards the container's other names to them
//! first, in the order given, as it does IPv4 ones; loopback, link-local,
//! IPv4-mapped and non-unicast ones, servers inside a network, and more
//! than three are refused naming the annotation and the value. Every
//! upstream is a fake resolver this test runs in the outside namespace
//! (2001:db8:100::2, 198.51.100.2 and 198.51.100.3); no query reaches the
//! machine's resolvers.

use ocinet_integration::upstream::{ask, Upstream, A, AAAA};
use ocinet_integration::{
    assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, OUTSIDE_IP, OUTSIDE_IP6,
};

/// A second IPv4 address of the outside namespace, for a second upstream.
const OUTSIDE_IP_2: &str = "198.51.100.3";
/// An address on the outside's segment nobody has: an upstream that never
/// answers.
const NOBODY: &str = "198.51.100.9";

fn create(h: &Host, args: &[&str]) {
    ok(h.ocinet(&[&["network", "create"], args].concat()));
}

/// `OUTSIDE_IP_2` on the outside namespace's veth.
fn second_outside_address(h: &Host) {
    let out = h.outside();
    let link = text(
        &std::process::Command::new("ip")
            .args(["-n", &out, "-o", "link", "show", "type", "veth"])
            .output()
            .expect("ip"),
    );
    let iface = link
        .split(": ")
        .nth(1)
        .and_then(|n| n.split('@').next())
        .unwrap_or("")
        .to_string();
    ok(std::process::Command::new("ip")
        .args([
            "-n",
            &out,
            "addr",
            "add",
            &format!("{OUTSIDE_IP_2}/24"),
            "dev",
            &iface,
        ])
        .output()
        .expect("ip addr"));
}

/// Container `id`'s address on `net` (`ip` or `ip6`).
fn addr(h: &Host, id: &str, net: &str, key: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .find(|a| a["network"] == net)
        .and_then(|a| a[key].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {key} for {id} on {net}"))
}

/// `io.ocinet.dns` naming an IPv6 server sends the container's other
/// names there (over either gateway, from a dual-stack or an IPv4-only
/// network) instead of to the network's upstream; its own network's names
/// are still answered by the resolver; a mixed list is tried in its
/// order, the next server taking over from one that does not answer; a
/// container without the annotation keeps the network's upstream.
fn own_ipv6_servers_come_first(rt: Runtime) {
    let h = Host::new();
    h.outside();
    second_outside_address(&h);
    let net_up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    let own6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 66]);
    let own4 = Upstream::start(&h, OUTSIDE_IP_2, [203, 0, 113, 44]);
    create(
        &h,
        &[
            "ds",
            "--subnet",
            "10.74.0.0/24",
            "--subnet",
            "fd74::/64",
            "--dns-upstream",
            OUTSIDE_IP,
        ],
    );
    create(
        &h,
        &[
            "v4",
            "--subnet",
            "10.75.0.0/24",
            "--dns-upstream",
            OUTSIDE_IP,
        ],
    );
    let mut plain = h.started(rt, "plain", &Spec::on("ds", "plain"));
    let mut six = h.started(
        rt,
        "six",
        &Spec::on("ds", "six").ann("io.ocinet.dns", OUTSIDE_IP6),
    );
    let mut four = h.started(
        rt,
        "four",
        &Spec::on("v4", "four").ann("io.ocinet.dns", OUTSIDE_IP6),
    );
    let mut v6_first = h.started(
        rt,
        "m1",
        &Spec::on("ds", "m1").ann("io.ocinet.dns", &format!("{OUTSIDE_IP6},{OUTSIDE_IP_2}")),
    );
    let mut v4_first = h.started(
        rt,
        "m2",
        &Spec::on("ds", "m2").ann("io.ocinet.dns", &format!("{OUTSIDE_IP_2}, {OUTSIDE_IP6}")),
    );
    let mut dead_first = h.started(
        rt,
        "m3",
        &Spec::on("ds", "m3").ann("io.ocinet.dns", &format!("{NOBODY},{OUTSIDE_IP6}")),
    );
    let plain6 = addr(&h, &plain.id, "ds", "ip6");

    let r = ask(
        &h,
        &six.id,
        &[
            ("v4gw", "10.74.0.1", "six4.test", A, false),
            ("v6gw", "fd74::1", "six6.test", A, false),
            ("tcp", "fd74::1", "sixtcp.test", A, true),
            ("own", "fd74::1", "plain", AAAA, false),
        ],
    );
    assert_eq!(r["v4gw"], "0:203.0.113.66", "{r:?}");
    assert_eq!(r["v6gw"], "0:203.0.113.66", "{r:?}");
    assert_eq!(r["tcp"], "0:203.0.113.66", "{r:?}");
    assert_eq!(r["own"], format!("0:{plain6}"), "{r:?}");
    let r = ask(&h, &four.id, &[("fwd", "10.75.0.1", "four.test", A, false)]);
    assert_eq!(
        r["fwd"], "0:203.0.113.66",
        "from an IPv4-only network: {r:?}"
    );
    let r = ask(&h, &plain.id, &[("fwd", "fd74::1", "plain.test", A, false)]);
    assert_eq!(r["fwd"], "0:203.0.113.7", "no annotation: {r:?}");
    let r = ask(&h, &v6_first.id, &[("fwd", "fd74::1", "m1.test", A, false)]);
    assert_eq!(r["fwd"], "0:203.0.113.66", "IPv6 first: {r:?}");
    let r = ask(&h, &v4_first.id, &[("fwd", "fd74::1", "m2.test", A, false)]);
    assert_eq!(r["fwd"], "0:203.0.113.44", "IPv4 first: {r:?}");
    let r = ask(
        &h,
        &dead_first.id,
        &[("fwd", "10.74.0.1", "m3.test", A, false)],
    );
    assert_eq!(
        r["fwd"], "0:203.0.113.66",
        "after one that never answers: {r:?}"
    );

    let asked6 = own6.asked();
    for name in [
        "six4.test",
        "six6.test",
        "sixtcp.test",
        "four.test",
        "m1.test",
        "m3.test",
    ] {
        assert!(asked6.iter().any(|n| n == name), "{name}: {asked6:?}");
    }
    assert!(
        !asked6.iter().any(|n| n == "m2.test" || n == "plain.test"),
        "{asked6:?}"
    );
    assert_eq!(own4.asked(), ["m2.test"]);
    let asked_net = net_up.asked();
    assert_eq!(asked_net, ["plain.test"], "the network's upstream");

    for c in [
        &mut plain,
        &mut six,
        &mut four,
        &mut v6_first,
        &mut v4_first,
        &mut dead_first,
    ] {
        h.stop(c);
        assert_clean(&h, &c.id);
    }
}

/// Bad `io.ocinet.dns` values of the IPv6 family are refused naming the
/// annotation and the value, and the container leaves nothing.
fn bad_ipv6_servers_are_refused(rt: Runtime) {
    let h = Host::new();
    h.outside();
    create(
        &h,
        &[
            "ds",
            "--subnet",
            "10.76.0.0/24",
            "--subnet",
            "fd76::/64",
            "--dns-upstream",
            OUTSIDE_IP6,
        ],
    );
    for (v, why) in [
        ("::1", "invalid io.ocinet.dns \"::1\": is the host's own (loopback or link-local)"),
        (
            "fe80::1",
            "invalid io.ocinet.dns \"fe80::1\": is the host's own (loopback or link-local)",
        ),
        (
            "2001:db8:100::2,::1",
            "invalid io.ocinet.dns \"::1\": is the host's own",
        ),
        ("ff02::1", "invalid io.ocinet.dns \"ff02::1\": is not a unicast address"),
        ("::", "invalid io.ocinet.dns \"::\": is not a unicast address"),
        (
            "::ffff:127.0.0.1",
            "invalid io.ocinet.dns \"::ffff:127.0.0.1\": is an IPv4-mapped address",
        ),
        (
            "fd76::9",
            "invalid io.ocinet.dns \"fd76::9\": is in network ds",
        ),
        (
            "fd00::zz",
            "invalid io.ocinet.dns \"fd00::zz\": not an IPv4 or IPv6 address, nor off",
        ),
        (
            "2001:db8:100::2,198.51.100.2,fd00::53,10.0.0.53",
            "invalid io.ocinet.dns \"2001:db8:100::2,198.51.100.2,fd00::53,10.0.0.53\": at most three servers",
        ),
    ] {
        let c = h.start(
            rt,
            "bad",
            &Spec::default()
                .ann("io.ocinet.network", "ds")
                .ann("io.ocinet.dns", v),
        );
        assert!(c.exit.is_some_and(|s| !s.success()), "{v} started");
        let log = h.log();
        assert!(log.contains(why), "{v}: {log}");
        assert!(h.endpoint(&c.id).is_none(), "{v}: a record was left");
        assert_clean(&h, &c.id);
        assert!(h.leases("ds").is_empty(), "{v}: {:?}", h.leases("ds"));
    }
}

both_runtimes!(own_ipv6_servers_come_first, bad_ipv6_servers_are_refused);
