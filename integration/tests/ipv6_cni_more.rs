//! Issue 22: the CNI front end's last IPv6 gaps. `portMappings` with an
//! IPv6 `hostIP` (read as the hook reads `[ADDR]:H:C`, through the same
//! parser of port specs), and IPv6 servers in `runtimeConfig.dns.servers`.
//! Every network names its DNS upstream in the outside namespace.

use std::time::Duration;

use ocinet_integration::cni::{self, Call, Pod};
use ocinet_integration::upstream::{Upstream, CLIENT_PY, LOOK_PY};
use ocinet_integration::{text, Host, HOST_LINK_IP, HOST_LINK_IP6, OUTSIDE_IP, OUTSIDE_IP6};
use serde_json::{json, Value};

/// What the outside namespace gets from `url`, retried briefly (a first
/// IPv6 packet may race the neighbour discovery of a new address).
fn fetch_outside(h: &Host, url: &str) -> Option<String> {
    for _ in 0..20 {
        let o = h.wget_outside(url);
        if o.status.success() {
            return Some(text(&o));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn silent(h: &Host, url: &str) {
    let o = h.wget_outside(url);
    assert!(
        !o.status.success(),
        "{url}: expected no answer, got {}",
        text(&o)
    );
}

/// A host IPv6 address as `hostIP` publishes there only, `::` on every
/// address of both families, `0.0.0.0` on IPv4's only, as `[ADDR]:H:C`,
/// `[::]:H:C` and `0.0.0.0:H:C` do through the hook; `ps` shows them in the hook's form; DEL leaves nothing.
#[test]
fn an_ipv6_host_ip_publishes_there() {
    let h = Host::new();
    h.outside();
    let mut pod = Pod::new(&h, "web");
    let conf = cni::single(
        &h,
        "1.0.0",
        "ds",
        cni::dual(
            "10.92.0.0/24",
            "fd92::/64",
            json!({
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [
                    {"hostPort": 8090, "containerPort": 80, "protocol": "tcp", "hostIP": HOST_LINK_IP6},
                    {"hostPort": 8091, "containerPort": 80, "protocol": "tcp", "hostIP": "::"},
                    {"hostPort": 8092, "containerPort": 80, "protocol": "tcp", "hostIP": "0.0.0.0"},
                ]},
            }),
        ),
    );
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    cni::exec(&h, "ocinet", &call, &conf).ok();
    pod.serve(&h, "pod over ipv6\n");
    let six = |port: u16| format!("http://[{HOST_LINK_IP6}]:{port}/");
    let four = |port: u16| format!("http://{HOST_LINK_IP}:{port}/");
    assert_eq!(
        fetch_outside(&h, &six(8090)).as_deref().map(str::trim),
        Some("pod over ipv6"),
        "the IPv6 host address"
    );
    silent(&h, &four(8090));
    assert_eq!(
        fetch_outside(&h, &six(8091)).as_deref().map(str::trim),
        Some("pod over ipv6"),
        ":: over IPv6"
    );
    assert_eq!(
        fetch_outside(&h, &four(8091)).as_deref().map(str::trim),
        Some("pod over ipv6"),
        ":: over IPv4"
    );
    // 0.0.0.0 is every IPv4 address only, as the hook's 0.0.0.0:H:C.
    assert_eq!(
        fetch_outside(&h, &four(8092)).as_deref().map(str::trim),
        Some("pod over ipv6"),
        "0.0.0.0 over IPv4"
    );
    silent(&h, &six(8092));
    let e = h.endpoint(&pod.id).expect("in ps");
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("[{HOST_LINK_IP6}]:8090:80/tcp"))
            && shown.contains("[::]:8091:80/tcp"),
        "{shown}"
    );
    cni::exec(&h, "ocinet", &call.command("CHECK"), &conf).ok();
    cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    ocinet_integration::assert_clean(&h, &pod.id);
    silent(&h, &six(8090));
    assert!(h.port_claims().is_empty(), "{:?}", h.port_claims());
}

/// Bad `hostIP` values of either family are refused with the code the
/// IPv4 path uses (7), naming the key or the entry and the value, and
/// leave nothing behind.
#[test]
fn a_bad_ipv6_host_ip_is_refused_naming_it() {
    let h = Host::new();
    h.outside();
    let conf = |net: &str, v4: &str, v6: Option<&str>, host_ip: &str| {
        let ports = json!({
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": 8093, "containerPort": 80, "protocol": "tcp", "hostIP": host_ip},
            ]},
        });
        let def = match v6 {
            Some(v6) => cni::dual(v4, v6, ports),
            None => cni::inline(json!({"subnet": v4, "dnsUpstreams": [OUTSIDE_IP]}), ports),
        };
        cni::single(&h, "1.0.0", net, def)
    };
    for (net, v4, v6, host_ip, said) in [
        (
            "ds",
            "10.93.0.0/24",
            Some("fd93::/64"),
            "fd93::zz",
            "invalid runtimeConfig.portMappings[0].hostIP \"fd93::zz\": not an IPv4 or IPv6 address",
        ),
        (
            "ds",
            "10.93.0.0/24",
            Some("fd93::/64"),
            "::ffff:10.0.0.1",
            "invalid runtimeConfig.portMappings[0].hostIP \"::ffff:10.0.0.1\": ::ffff:10.0.0.1 is an IPv4-mapped address",
        ),
        // Not the host's: the core's check, as for an IPv4 one.
        (
            "ds",
            "10.93.0.0/24",
            Some("fd93::/64"),
            "2001:db8:ffff::9",
            "invalid runtimeConfig.portMappings \"[2001:db8:ffff::9]:8093:80/tcp\": 2001:db8:ffff::9 is not an address of this host",
        ),
        (
            "ds",
            "10.93.0.0/24",
            Some("fd93::/64"),
            "10.200.0.9",
            "invalid runtimeConfig.portMappings \"10.200.0.9:8093:80/tcp\": 10.200.0.9 is not an address of this host",
        ),
        // The container would have no IPv6 address to send to.
        (
            "four",
            "10.94.0.0/24",
            None,
            HOST_LINK_IP6,
            "network four has no IPv6 subnet",
        ),
        (
            "four",
            "10.94.0.0/24",
            None,
            "::",
            "invalid runtimeConfig.portMappings \"[::]:8093:80/tcp\": network four has no IPv6 subnet",
        ),
    ] {
        let pod = Pod::new(&h, "bad");
        let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
        cni::exec(&h, "ocinet", &call, &conf(net, v4, v6, host_ip)).refused(7, said);
        assert!(h.endpoint(&pod.id).is_none(), "{host_ip}: a record was left");
        ocinet_integration::assert_clean(&h, &pod.id);
        assert!(h.port_claims().is_empty(), "{host_ip}: {:?}", h.port_claims());
        assert!(h.leases(net).is_empty(), "{host_ip}: {:?}", h.leases(net));
    }
}

/// `look(server, name, A)` from inside `pod`: "RCODE:answers".
fn look(pod: &Pod, server: &str, name: &str) -> String {
    let script = format!("{CLIENT_PY}\n{LOOK_PY}\nprint(look({server:?}, {name:?}, 1))\n");
    text(&pod.exec(&["python3", "-c", &script]))
        .trim()
        .to_string()
}

/// An IPv6 server in `runtimeConfig.dns.servers` now takes effect: the
/// pod's other names go to it before the network's upstream (over either
/// gateway), in the order given beside an IPv4 one; one the pod cannot use
/// (`::1`) is still left out and logged; a pod without the capability
/// keeps the network's upstream.
#[test]
fn ipv6_dns_servers_of_the_dns_capability_are_used() {
    let h = Host::new();
    h.outside();
    let net_up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    let own6 = Upstream::start(&h, OUTSIDE_IP6, [203, 0, 113, 66]);
    let plain_conf = cni::single(
        &h,
        "1.0.0",
        "ds",
        cni::dual("10.91.0.0/24", "fd91::/64", json!({})),
    );
    let with_dns = |servers: Value| {
        cni::single(
            &h,
            "1.0.0",
            "ds",
            cni::dual(
                "10.91.0.0/24",
                "fd91::/64",
                json!({"capabilities": {"dns": true}, "runtimeConfig": {"dns": {"servers": servers}}}),
            ),
        )
    };
    let plain = Pod::new(&h, "plain");
    let plain_call = Call::new("ADD", &plain.id, &plain.path(), "eth0");
    cni::exec(&h, "ocinet", &plain_call, &plain_conf).ok();
    let six = Pod::new(&h, "six");
    let six_conf = with_dns(json!(["::1", OUTSIDE_IP6]));
    let six_call = Call::new("ADD", &six.id, &six.path(), "eth0");
    cni::exec(&h, "ocinet", &six_call, &six_conf).ok();
    // Behind an IPv4 server that answers: that one first.
    let mixed = Pod::new(&h, "mixed");
    let mixed_conf = with_dns(json!([OUTSIDE_IP, OUTSIDE_IP6]));
    let mixed_call = Call::new("ADD", &mixed.id, &mixed.path(), "eth0");
    cni::exec(&h, "ocinet", &mixed_call, &mixed_conf).ok();

    assert_eq!(look(&six, "10.91.0.1", "six4.test"), "0:203.0.113.66");
    assert_eq!(look(&six, "fd91::1", "six6.test"), "0:203.0.113.66");
    assert_eq!(look(&mixed, "fd91::1", "mixed.test"), "0:203.0.113.7");
    assert_eq!(look(&plain, "fd91::1", "plain.test"), "0:203.0.113.7");
    let asked6 = own6.asked();
    assert_eq!(
        asked6,
        ["six4.test", "six6.test"],
        "the pod's own IPv6 server"
    );
    let asked = net_up.asked();
    assert_eq!(asked, ["mixed.test", "plain.test"], "{asked:?}");
    let log = h.log();
    assert!(
        log.lines()
            .any(|l| l.contains("::1") && l.contains("not usable from a container")),
        "{log}"
    );

    for (p, call, conf) in [
        (&plain, &plain_call, &plain_conf),
        (&six, &six_call, &six_conf),
        (&mixed, &mixed_call, &mixed_conf),
    ] {
        cni::exec(&h, "ocinet", &call.command("DEL"), conf).ok();
        ocinet_integration::assert_clean(&h, &p.id);
    }
    // More than three of either family: refused, naming the key.
    let many = Pod::new(&h, "many");
    cni::exec(
        &h,
        "ocinet",
        &Call::new("ADD", &many.id, &many.path(), "eth0"),
        &with_dns(json!([OUTSIDE_IP6, OUTSIDE_IP, "fd00::53", "10.0.0.53"])),
    )
    .refused(7, "invalid runtimeConfig.dns.servers");
    ocinet_integration::assert_clean(&h, &many.id);
}

/// The `ipRanges` capability: each family's address is leased from the
/// runtime's range (inside the network's subnet), the next pod's from the
/// rest of it; a range the network cannot honour (outside its subnet,
/// another gateway, a family it lacks) is refused naming the key, with
/// nothing left; a full range is an exhausted pool.
#[test]
fn ip_ranges_narrow_where_addresses_are_leased() {
    let h = Host::new();
    let with = |ranges: Value| {
        cni::single(
            &h,
            "1.0.0",
            "rg",
            cni::dual(
                "10.94.0.0/24",
                "fd94::/64",
                json!({"capabilities": {"ipRanges": true}, "runtimeConfig": {"ipRanges": ranges}}),
            ),
        )
    };
    let good = with(json!([
        [{"subnet": "10.94.0.0/24", "rangeStart": "10.94.0.200", "rangeEnd": "10.94.0.201", "gateway": "10.94.0.1"}],
        [{"subnet": "fd94::/64", "rangeStart": "fd94::a:0", "rangeEnd": "fd94::a:ffff"}],
    ]));
    let mut leased = Vec::new();
    let mut pods = Vec::new();
    for tag in ["r1", "r2"] {
        let pod = Pod::new(&h, tag);
        let r = cni::exec(
            &h,
            "ocinet",
            &Call::new("ADD", &pod.id, &pod.path(), "eth0"),
            &good,
        )
        .ok();
        let ips: Vec<String> = r["ips"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["address"].as_str().map(str::to_string))
            .collect();
        leased.push(ips);
        pods.push(pod);
    }
    assert_eq!(leased[0], ["10.94.0.200/24", "fd94::a:0/64"], "{leased:?}");
    assert_eq!(leased[1], ["10.94.0.201/24", "fd94::a:1/64"], "{leased:?}");
    // The IPv4 range is full now.
    let third = Pod::new(&h, "r3");
    let add3 = Call::new("ADD", &third.id, &third.path(), "eth0");
    let full = cni::exec(&h, "ocinet", &add3, &good);
    assert_ne!(full.code, 0, "{}", full.stdout);
    assert!(
        full.stdout.contains("10.94.0.200-10.94.0.201"),
        "{}",
        full.stdout
    );
    ocinet_integration::assert_clean(&h, &third.id);

    for (ranges, said) in [
        (
            json!([[{"subnet": "10.95.0.0/24"}]]),
            "invalid runtimeConfig.ipRanges \"10.95.0.0/24\": is not inside network rg's subnet 10.94.0.0/24",
        ),
        (
            json!([[{"subnet": "10.94.0.0/25", "gateway": "10.94.0.7"}]]),
            "invalid runtimeConfig.ipRanges \"10.94.0.7\": is not network rg's gateway 10.94.0.1",
        ),
        (
            json!([[{"subnet": "fd95::/64"}]]),
            "invalid runtimeConfig.ipRanges \"fd95::/64\": is not inside network rg's subnet fd94::/64",
        ),
    ] {
        cni::exec(&h, "ocinet", &add3, &with(ranges)).refused(7, said);
        ocinet_integration::assert_clean(&h, &third.id);
    }
    for pod in &pods {
        cni::exec(
            &h,
            "ocinet",
            &Call::new("DEL", &pod.id, &pod.path(), "eth0"),
            &good,
        )
        .ok();
        ocinet_integration::assert_clean(&h, &pod.id);
    }
}

/// `hostIP: "::1"` publishes on the host's IPv6 loopback through the port
/// proxy, as the hook's `[::1]:H:C` does, and a bare mapping of a
/// dual-stack pod answers there too; DEL closes both before it returns.
#[test]
fn ipv6_loopback_host_ip_answers_through_the_proxy() {
    let h = Host::new();
    let mut pod = Pod::new(&h, "lo6");
    let conf = cni::single(
        &h,
        "1.0.0",
        "lo",
        cni::dual(
            "10.97.0.0/24",
            "fd97::/64",
            json!({
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [
                    {"hostPort": 8094, "containerPort": 80, "protocol": "tcp", "hostIP": "::1"},
                    {"hostPort": 8095, "containerPort": 80, "protocol": "tcp"},
                ]},
            }),
        ),
    );
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    cni::exec(&h, "ocinet", &call, &conf).ok();
    pod.serve(&h, "pod on ::1\n");
    let at = |port: u16| {
        let url = format!("http://[::1]:{port}/");
        (0..20)
            .find_map(|_| {
                let o = h.wget(&url);
                if o.status.success() {
                    return Some(text(&o));
                }
                std::thread::sleep(Duration::from_millis(100));
                None
            })
            .unwrap_or_default()
    };
    assert_eq!(at(8094).trim(), "pod on ::1");
    assert_eq!(at(8095).trim(), "pod on ::1");
    let shown = h.endpoint(&pod.id).expect("in ps").to_string();
    assert!(shown.contains("[::1]:8094:80/tcp"), "{shown}");
    cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    ocinet_integration::assert_clean(&h, &pod.id);
    for port in [8094, 8095] {
        let o = h.wget(&format!("http://[::1]:{port}/"));
        assert!(!o.status.success(), "{port} still answers: {}", text(&o));
    }
}
