//! Issue 22: IPv6 through the CNI front end. A dual-stack network defined
//! inline (`subnet` with one value per family), results laid out as the
//! reference bridge plugin lays its own dual-stack ones (checked against
//! Debian's real `bridge` + `host-local` in the same run), the `ips`
//! capability for IPv6, CHECK of the IPv6 address and route, and podman
//! with its CNI backend on a dual-stack ocinet network. Every network
//! names its DNS upstream in the outside namespace.

use ocinet_integration::cni::{self, Call, Pod};
use ocinet_integration::{ok, text, Host, OUTSIDE_IP, OUTSIDE_IP6};
use serde_json::{json, Value};

/// What a result says, without the values that differ between plugins
/// (MACs, names, addresses): the address families in order, the keys of
/// each `ips` entry, the interface each points at, the routes' families.
fn shape(r: &Value) -> Value {
    let ips: Vec<Value> = r["ips"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|ip| {
            let mut keys: Vec<&String> = ip.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            keys.sort();
            let family = if ip["address"].as_str().unwrap_or_default().contains(':') {
                6
            } else {
                4
            };
            json!({"family": family, "keys": keys, "interface": ip["interface"], "version": ip["version"]})
        })
        .collect();
    let routes: Vec<Value> = r["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|x| x["dst"].clone())
        .collect();
    let sandboxed: Vec<bool> = r["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| i.get("sandbox").is_some())
        .collect();
    json!({"ips": ips, "routes": routes, "interfaces": sandboxed})
}

/// Debian's reference bridge + host-local, dual stack, in a pod of `h`:
/// the layout ocinet's results are held to.
fn reference_result(h: &Host, version: &str, tag: &str) -> Value {
    let pod = Pod::new(h, tag);
    let conf = json!({
        "cniVersion": version, "name": "ref", "type": "bridge", "bridge": "refbr0",
        "isGateway": true, "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "dataDir": h.dir.join("ref-ipam").display().to_string(),
            "ranges": [[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd99::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        },
    });
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    let r = cni::exec(h, "bridge", &call, &conf).ok();
    cni::exec(h, "bridge", &call.command("DEL"), &conf).ok();
    r
}

/// ADD at every version returns both families as the reference bridge
/// plugin does (same shape as Debian's bridge + host-local in this run);
/// the pod has both addresses and both default routes, reaches another
/// pod and its gateway over IPv6; CHECK passes; DEL leaves nothing.
#[test]
fn dual_stack_results_at_every_version() {
    let h = Host::new();
    let mut peer = Pod::new(&h, "peer");
    let conf_of = |v: &str| {
        cni::single(
            &h,
            v,
            "ds",
            cni::dual("10.95.0.0/24", "fd95::/64", json!({})),
        )
    };
    let peer_call = Call::new("ADD", &peer.id, &peer.path(), "eth0");
    let r = cni::exec(&h, "ocinet", &peer_call, &conf_of("1.0.0")).ok();
    let peer6 = r["ips"][1]["address"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches("/64")
        .to_string();
    assert_eq!(peer6, "fd95::2", "{r}");
    peer.serve(&h, "peer over ipv6\n");
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let pod = Pod::new(&h, &format!("v{i}"));
        let conf = conf_of(v);
        let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
        let r = cni::exec(&h, "ocinet", &call, &conf).ok();
        assert_eq!(r["cniVersion"], *v, "{r}");
        let ips = r["ips"].as_array().cloned().unwrap_or_default();
        assert_eq!(ips.len(), 2, "one address per family: {r}");
        assert!(
            ips[0]["address"]
                .as_str()
                .unwrap_or_default()
                .starts_with("10.95.0."),
            "{r}"
        );
        assert_eq!(ips[0]["gateway"], "10.95.0.1", "{r}");
        let a6 = ips[1]["address"].as_str().unwrap_or_default().to_string();
        assert!(a6.starts_with("fd95::") && a6.ends_with("/64"), "{r}");
        assert_eq!(ips[1]["gateway"], "fd95::1", "{r}");
        assert_eq!(ips[1]["interface"], 2, "{r}");
        if v.starts_with("0.") {
            assert_eq!(ips[0]["version"], "4", "{r}");
            assert_eq!(ips[1]["version"], "6", "{r}");
        }
        assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0", "{r}");
        assert_eq!(r["routes"][0]["gw"], "10.95.0.1", "{r}");
        assert_eq!(r["routes"][1]["dst"], "::/0", "{r}");
        assert_eq!(r["routes"][1]["gw"], "fd95::1", "{r}");
        // The reference plugins' own layout, where Debian's support the
        // version (their 1.1.1 predates spec 1.1.0).
        if *v == "0.4.0" || *v == "1.0.0" {
            let reference = reference_result(&h, v, &format!("r{i}"));
            assert_eq!(
                shape(&r),
                shape(&reference),
                "ocinet {r}\nreference {reference}"
            );
        }
        let shown = ok(pod.exec(&["ip", "-6", "addr", "show", "eth0"]));
        assert!(shown.contains(&format!("inet6 {a6}")), "{shown}");
        assert!(!shown.contains("tentative"), "{shown}");
        let routes = ok(pod.exec(&["ip", "-6", "route"]));
        assert!(routes.contains("default via fd95::1 dev eth0"), "{routes}");
        // ocinet's own view has it too.
        let e = h.endpoint(&pod.id).expect("in ps");
        assert_eq!(e["attachments"][0]["address6"], a6, "{e}");
        // Over IPv6 to the other pod, and to the gateway.
        let got = ok(pod.exec(&[
            "timeout",
            "3",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://[{peer6}]/"),
        ]));
        assert_eq!(got.trim(), "peer over ipv6");
        ok(pod.exec(&["ping", "-6", "-c", "1", "-W", "2", "fd95::1"]));
        if *v != "0.3.1" {
            cni::exec(&h, "ocinet", &call.command("CHECK"), &conf).ok();
        }
        // ADD again answers with what was made.
        let again = cni::exec(&h, "ocinet", &call, &conf).ok();
        assert_eq!(again["ips"][1]["address"], a6.as_str(), "{again}");
        cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
        ocinet_integration::assert_clean(&h, &pod.id);
        let plain = a6.trim_end_matches("/64");
        assert!(
            !h.leases("ds").iter().any(|(ip, _)| ip == plain),
            "{:?}",
            h.leases("ds")
        );
    }
    cni::exec(&h, "ocinet", &peer_call.command("DEL"), &conf_of("1.0.0")).ok();
    assert!(h.leases("ds").is_empty(), "{:?}", h.leases("ds"));
}

/// `runtimeConfig.ips` with an IPv6 address gives that address (beside a
/// static IPv4 one, in either order); a bad one is refused naming
/// `runtimeConfig.ips` and leaves nothing; CHECK reports a missing IPv6
/// address and a missing IPv6 default route.
#[test]
fn ips_capability_sets_a_static_ipv6_and_check_sees_it_go() {
    let h = Host::new();
    let conf = |ips: Value| {
        cni::single(
            &h,
            "1.0.0",
            "ds",
            cni::dual(
                "10.96.0.0/24",
                "fd96::/64",
                json!({"capabilities": {"ips": true}, "runtimeConfig": {"ips": ips}}),
            ),
        )
    };
    let pod = Pod::new(&h, "st");
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    let good = conf(json!(["fd96::42/64", "10.96.0.42/24"]));
    let r = cni::exec(&h, "ocinet", &call, &good).ok();
    assert_eq!(r["ips"][0]["address"], "10.96.0.42/24", "{r}");
    assert_eq!(r["ips"][1]["address"], "fd96::42/64", "{r}");
    let shown = ok(pod.exec(&["ip", "-6", "addr", "show", "eth0"]));
    assert!(shown.contains("inet6 fd96::42/64"), "{shown}");
    cni::exec(&h, "ocinet", &call.command("CHECK"), &good).ok();
    // The route goes: CHECK names it.
    ok(pod.exec(&["ip", "-6", "route", "del", "default"]));
    cni::exec(&h, "ocinet", &call.command("CHECK"), &good)
        .refused(100, "no IPv6 default route via fd96::1 through eth0");
    // The address goes: CHECK names it.
    ok(pod.exec(&["ip", "-6", "addr", "del", "fd96::42/64", "dev", "eth0"]));
    cni::exec(&h, "ocinet", &call.command("CHECK"), &good)
        .refused(100, "interface eth0 lacks address fd96::42/64");
    cni::exec(&h, "ocinet", &call.command("DEL"), &good).ok();
    ocinet_integration::assert_clean(&h, &pod.id);

    // Bad static IPv6 addresses: refused naming the field and the value,
    // nothing leased or left.
    for (ips, text) in [
        (json!(["fd97::5"]), "fd97::5"),
        (json!(["fd96::1"]), "fd96::1"),
        (
            json!(["fd96::5", "fd96::6"]),
            "one IPv6 address per attachment",
        ),
        (json!(["fd96::zz"]), "not an address"),
    ] {
        let bad = Pod::new(&h, "bad");
        let call = Call::new("ADD", &bad.id, &bad.path(), "eth0");
        let r = cni::exec(&h, "ocinet", &call, &conf(ips.clone()));
        assert_ne!(r.code, 0, "{ips}: {}", r.stdout);
        let said = r.stdout.clone();
        assert!(
            said.contains("runtimeConfig.ips") && said.contains(text),
            "{ips}: {said}"
        );
        assert!(h.endpoint(&bad.id).is_none(), "{ips}: a record was left");
        ocinet_integration::assert_clean(&h, &bad.id);
        assert!(h.leases("ds").is_empty(), "{ips}: {:?}", h.leases("ds"));
    }

    // CNI_ARGS IP (host-local's form, one per family; what podman 4.3
    // sends for --ip/--ip6), named as such when refused.
    let plain = cni::single(
        &h,
        "1.0.0",
        "ds",
        cni::dual("10.96.0.0/24", "fd96::/64", json!({})),
    );
    let p = Pod::new(&h, "ar");
    let mut call = Call::new("ADD", &p.id, &p.path(), "eth0");
    call.args = "IP=10.96.0.50,fd96::50".into();
    let r = cni::exec(&h, "ocinet", &call, &plain).ok();
    assert_eq!(r["ips"][0]["address"], "10.96.0.50/24", "{r}");
    assert_eq!(r["ips"][1]["address"], "fd96::50/64", "{r}");
    cni::exec(&h, "ocinet", &call.command("DEL"), &plain).ok();
    call.args = "IP=fd97::50".into();
    cni::exec(&h, "ocinet", &call, &plain)
        .refused(4, "invalid CNI_ARGS IP \"fd97::50\": is outside the subnet");
    call.args = "IP=fd96::50,fd96::51".into();
    cni::exec(&h, "ocinet", &call, &plain).refused(4, "one address per family");
    ocinet_integration::assert_clean(&h, &p.id);

    // An IPv6 address on an IPv4-only network.
    let v4 = cni::single(
        &h,
        "1.0.0",
        "v4only",
        json!({"subnet": "10.98.0.0/24", "dnsUpstreams": [OUTSIDE_IP],
               "capabilities": {"ips": true}, "runtimeConfig": {"ips": ["fd98::5"]}}),
    );
    let p = Pod::new(&h, "v4");
    let r = cni::exec(
        &h,
        "ocinet",
        &Call::new("ADD", &p.id, &p.path(), "eth0"),
        &v4,
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("runtimeConfig.ips") && r.stdout.contains("has no IPv6 subnet"),
        "{}",
        r.stdout
    );
    ocinet_integration::assert_clean(&h, &p.id);

    // ipRanges of the network's own IPv6 subnet: honoured (narrower
    // ranges and refusals: ipv6_cni_more.rs).
    let ranges = cni::single(
        &h,
        "1.0.0",
        "ds",
        cni::dual(
            "10.96.0.0/24",
            "fd96::/64",
            json!({"capabilities": {"ipRanges": true},
                   "runtimeConfig": {"ipRanges": [[{"subnet": "fd96::/64"}]]}}),
        ),
    );
    let p = Pod::new(&h, "rg");
    let add = Call::new("ADD", &p.id, &p.path(), "eth0");
    let r = cni::exec(&h, "ocinet", &add, &ranges).ok();
    assert_eq!(r["ips"][1]["address"], "fd96::2/64", "{r}");
    cni::exec(&h, "ocinet", &add.command("DEL"), &ranges).ok();
    ocinet_integration::assert_clean(&h, &p.id);
}

/// An inline definition is compared with the network of its name per
/// family: an IPv6 subnet the network lacks, or lacks when it has one,
/// or another IPv6 gateway, is refused naming it; malformed or
/// duplicated values are refused naming the key.
#[test]
fn inline_definitions_are_compared_per_family() {
    let h = Host::new();
    let pod = Pod::new(&h, "a");
    let add = |conf: &Value| {
        cni::exec(
            &h,
            "ocinet",
            &Call::new("ADD", &pod.id, &pod.path(), "eth0"),
            conf,
        )
    };
    let v4only = cni::single(
        &h,
        "1.0.0",
        "n4",
        json!({"subnet": "10.97.0.0/24", "dnsUpstreams": [OUTSIDE_IP]}),
    );
    add(&v4only).ok();
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &pod.id, &pod.path(), "eth0"),
        &v4only,
    )
    .ok();
    let now_dual = cni::single(
        &h,
        "1.0.0",
        "n4",
        cni::dual("10.97.0.0/24", "fd97::/64", json!({})),
    );
    add(&now_dual).refused(
        7,
        "invalid subnet \"fd97::/64\": network n4 exists with subnet \"no IPv6 subnet\"",
    );

    // An IPv6 subnet alone makes an IPv6-only network: the result has
    // its address and route only.
    let six = cni::single(
        &h,
        "1.0.0",
        "only6",
        json!({"subnet": "fd93::/64", "dnsUpstreams": [OUTSIDE_IP6]}),
    );
    let r = add(&six).ok();
    let ips = r["ips"].as_array().cloned().unwrap_or_default();
    assert_eq!(ips.len(), 1, "{r}");
    assert_eq!(ips[0]["address"], "fd93::2/64", "{r}");
    assert_eq!(r["routes"][0]["dst"], "::/0", "{r}");
    assert_eq!(r["dns"]["nameservers"], json!(["fd93::1"]), "{r}");
    // STATUS judges the IPv6 pool (it once took the missing IPv4 subnet
    // for 0.0.0.0/0 and walked it).
    let mut six11 = six.clone();
    six11["cniVersion"] = json!("1.1.0");
    cni::exec(&h, "ocinet", &Call::new("STATUS", "", "", ""), &six11).ok();
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &pod.id, &pod.path(), "eth0"),
        &six,
    )
    .ok();

    let ds = cni::single(
        &h,
        "1.0.0",
        "n6",
        cni::dual(
            "10.94.0.0/24",
            "fd94::/64",
            json!({"gateway": ["fd94::fe"]}),
        ),
    );
    add(&ds).ok();
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &pod.id, &pod.path(), "eth0"),
        &ds,
    )
    .ok();
    let v = ok(h.ocinet(&["network", "inspect", "n6"]));
    assert!(
        v.contains("fd94::fe") && v.contains("\"EnableIPv6\": true"),
        "{v}"
    );
    for (conf, said) in [
        (
            json!({"subnet": "10.94.0.0/24", "dnsUpstreams": [OUTSIDE_IP]}),
            "invalid subnet \"no IPv6 subnet\": network n6 exists with subnet \"fd94::/64\"",
        ),
        (
            cni::dual("10.94.0.0/24", "fd93::/64", json!({})),
            "invalid subnet \"fd93::/64\"",
        ),
        (
            json!({"gateway": ["fd94::1"]}),
            "invalid gateway \"fd94::1\": network n6 exists with gateway \"fd94::fe\"",
        ),
        (json!({"ipv6": false}), "invalid ipv6 \"false\""),
    ] {
        add(&cni::single(&h, "1.0.0", "n6", conf.clone())).refused(7, said);
    }
    // `ipv6: true` without an IPv6 subnet: a free /64 of the ULA pool,
    // as --ipv6 takes.
    let auto = cni::single(
        &h,
        "1.0.0",
        "auto6",
        json!({"subnet": "10.85.0.0/24", "ipv6": true, "dnsUpstreams": [OUTSIDE_IP]}),
    );
    let r = add(&auto).ok();
    assert!(
        r["ips"][1]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("fd87:6f63:6900:") && a.ends_with("/64")),
        "{r}"
    );
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &pod.id, &pod.path(), "eth0"),
        &auto,
    )
    .ok();
    // New networks: the CLI's rules, naming the key.
    for (conf, said) in [
        (
            json!({"subnet": ["10.93.0.0/24", "fd93::/64", "fd92::/64"]}),
            "one IPv6 subnet per network",
        ),
        (
            json!({"subnet": ["10.93.0.0/24", "fd93::/6x"]}),
            "invalid subnet \"fd93::/6x\"",
        ),
        (
            json!({"subnet": ["10.93.0.0/24", "fe80::/64"]}),
            "fe80::/64",
        ),
        (
            json!({"subnet": ["10.93.0.0/24", "fd93::/64"], "gateway": ["fd92::1"]}),
            "fd92::1",
        ),
    ] {
        let r = add(&cni::single(&h, "1.0.0", "fresh", conf.clone()));
        assert_ne!(r.code, 0, "{conf}: {}", r.stdout);
        let details = r.json()["details"].as_str().unwrap_or_default().to_string();
        assert!(details.contains(said), "{conf}: {}", r.stdout);
        let o = h.ocinet(&["network", "inspect", "fresh"]);
        assert!(!o.status.success(), "{conf}: network made: {}", text(&o));
    }
    ocinet_integration::assert_clean(&h, &pod.id);
}

/// podman 4.3 with its CNI backend on a dual-stack ocinet conflist: the
/// container has both addresses (its IPv6 one from `--ip6`, which podman
/// passes as `CNI_ARGS IP=`) and its IPv6 default route, and `podman rm`
/// leaves nothing.
#[test]
fn podman_cni_backend_dual_stack() {
    let h = Host::new();
    let conflists = h.dir.join("cni-net.d");
    std::fs::create_dir_all(&conflists).expect("conflist dir");
    let list = json!({
        "cniVersion": "0.4.0",
        "name": "ocds",
        "plugins": [cni::ocinet_entry(&h, cni::dual("10.92.0.0/24", "fd92::/64", json!({
            "capabilities": {"portMappings": true, "aliases": true, "ips": true},
        })))],
    });
    std::fs::write(conflists.join("ocds.conflist"), list.to_string()).expect("conflist");
    let root = ocinet_integration::rootfs::path().display().to_string();
    let run = [
        "run",
        "-d",
        "--name",
        "ds",
        "--network",
        "ocds",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--ip6",
        "fd92::42",
        "--rootfs",
        &root,
        "httpd",
        "-f",
        "-p",
        "80",
    ];
    let id = ok(h.podman_cni(&conflists, &run)).trim().to_string();
    let ep = h
        .endpoint(&id)
        .unwrap_or_else(|| panic!("no ocinet record for {id}: {:?}", h.ps()));
    let a6 = ep["attachments"][0]["address6"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // podman 4.3 hands --ip6 over as CNI_ARGS IP (host-local's form).
    assert_eq!(a6, "fd92::42/64", "{ep}");
    let inside = ok(h.podman_cni(
        &conflists,
        &[
            "exec",
            "ds",
            "/bin/busybox",
            "ip",
            "-6",
            "addr",
            "show",
            "eth0",
        ],
    ));
    assert!(inside.contains(&format!("inet6 {a6}")), "{inside}");
    let routes = ok(h.podman_cni(
        &conflists,
        &["exec", "ds", "/bin/busybox", "ip", "-6", "route"],
    ));
    assert!(routes.contains("default via fd92::1"), "{routes}");
    // The host reaches it over IPv6.
    let plain = a6.trim_end_matches("/64");
    ok(h.exec(&["ping", "-6", "-c", "1", "-W", "2", plain]));
    ok(h.podman_cni(&conflists, &["stop", "--time", "1", "ds"]));
    ok(h.podman_cni(&conflists, &["rm", "ds"]));
    ocinet_integration::assert_clean(&h, &id);
    assert!(h.ps().is_empty(), "{:?}", h.ps());
}

/// podman through hooks.d (`--network none`, crun) on a dual-stack
/// ocinet network: each container gets both addresses and its IPv6
/// default route, one reaches the other over IPv6, and `podman rm`
/// leaves nothing.
#[test]
fn podman_hooks_d_dual_stack() {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "pds",
        "--subnet",
        "10.91.0.0/24",
        "--subnet",
        "fd91::/64",
    ]));
    let www = h.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello over ipv6\n").expect("index");
    let vol = format!("{}:/www:ro", www.display());
    let root = ocinet_integration::rootfs::path().display().to_string();
    let mut ids = Vec::new();
    for name in ["pa", "pb"] {
        let run = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--annotation",
            "io.ocinet.network=pds",
            "-v",
            &vol,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--rootfs",
            &root,
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ];
        ids.push(ok(h.podman(&run)).trim().to_string());
    }
    let a6 = |id: &str| {
        let ep = h
            .endpoint(id)
            .unwrap_or_else(|| panic!("no endpoint for {id}"));
        assert!(
            ep["ip"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.91.0.")),
            "{ep}"
        );
        ep["attachments"][0]["ip6"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (ipa, ipb) = (a6(&ids[0]), a6(&ids[1]));
    assert!(
        ipa.starts_with("fd91::") && ipb.starts_with("fd91::") && ipa != ipb,
        "{ipa} {ipb}"
    );
    let inside = ok(h.podman(&[
        "exec",
        "pa",
        "/bin/busybox",
        "ip",
        "-6",
        "addr",
        "show",
        "eth0",
    ]));
    assert!(inside.contains(&format!("inet6 {ipa}/64")), "{inside}");
    let routes = ok(h.podman(&["exec", "pa", "/bin/busybox", "ip", "-6", "route"]));
    assert!(routes.contains("default via fd91::1 dev eth0"), "{routes}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = ok(h.podman(&[
        "exec",
        "pa",
        "/bin/busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://[{ipb}]/"),
    ]));
    assert_eq!(got.trim(), "hello over ipv6");
    for (name, id) in ["pa", "pb"].iter().zip(&ids) {
        ok(h.podman(&["stop", "--time", "1", name]));
        ok(h.podman(&["rm", name]));
        ocinet_integration::assert_clean(&h, id);
    }
    assert!(h.leases("pds").is_empty(), "{:?}", h.leases("pds"));
}

/// A second attachment (another network, another CNI_IFNAME: a connect)
/// on a dual-stack network takes its static IPv6 address from
/// `runtimeConfig.ips` too, and a bad one is refused naming that field
/// (not the CLI's `--ip6`), leaving the first attachment alone.
#[test]
fn a_second_attachment_takes_a_static_ipv6() {
    let h = Host::new();
    let pod = Pod::new(&h, "two");
    let front = cni::single(
        &h,
        "1.0.0",
        "front",
        json!({"subnet": "10.89.0.0/24", "dnsUpstreams": [OUTSIDE_IP]}),
    );
    let back = |ips: Value| {
        cni::single(
            &h,
            "1.0.0",
            "back",
            cni::dual(
                "10.88.0.0/24",
                "fd88::/64",
                json!({"capabilities": {"ips": true}, "runtimeConfig": {"ips": ips}}),
            ),
        )
    };
    let add = |ifname: &str, conf: &Value| {
        cni::exec(
            &h,
            "ocinet",
            &Call::new("ADD", &pod.id, &pod.path(), ifname),
            conf,
        )
    };
    let r = add("eth0", &front).ok();
    assert_eq!(r["ips"].as_array().map(Vec::len), Some(1), "IPv4 only: {r}");
    let r = add("net1", &back(json!(["fd87::1"])));
    r.refused(7, "runtimeConfig.ips");
    assert!(!r.stdout.contains("--ip6"), "{}", r.stdout);
    assert!(!pod.exec(&["ip", "link", "show", "net1"]).status.success());
    let r = add("net1", &back(json!(["fd88::77"]))).ok();
    assert_eq!(r["ips"][1]["address"], "fd88::77/64", "{r}");
    // The default routes stay on eth0: no IPv6 default route is added by
    // the second attachment.
    assert!(r["routes"].as_array().is_none_or(|a| a.is_empty()), "{r}");
    let shown = ok(pod.exec(&["ip", "-6", "addr", "show", "net1"]));
    assert!(shown.contains("inet6 fd88::77/64"), "{shown}");
    cni::exec(
        &h,
        "ocinet",
        &Call::new("CHECK", &pod.id, &pod.path(), "net1"),
        &back(json!(["fd88::77"])),
    )
    .ok();
    for (ifname, conf) in [("net1", back(json!(["fd88::77"]))), ("eth0", front.clone())] {
        cni::exec(
            &h,
            "ocinet",
            &Call::new("DEL", &pod.id, &pod.path(), ifname),
            &conf,
        )
        .ok();
    }
    ocinet_integration::assert_clean(&h, &pod.id);
    assert!(h.leases("back").is_empty(), "{:?}", h.leases("back"));
}
