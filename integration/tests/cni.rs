//! Issue 16: ocinet as a CNI plugin, executed by the tests' own runtime
//! (`ocinet_integration::cni`) exactly as the spec says, alone and chained
//! with Debian's reference plugins. Every network names its DNS upstream in
//! the outside namespace (nothing reaches the machine's resolvers).

use ocinet_integration::cni::{self, Call, Chain, Pod};
use ocinet_integration::{ok, text, Host, ECHO_CLIENT_PY, HOST_LINK_IP, OUTSIDE_IP, WGET};
use serde_json::{json, Value};

fn pods_network(extra: Value) -> Value {
    cni::inline(
        json!({"subnet": "10.90.0.0/24", "dnsUpstreams": [OUTSIDE_IP]}),
        extra,
    )
}

/// DEL hands the host veth's deletion (which waits for an RCU grace
/// period) to a detached reaper: it is gone soon after, marked retired
/// until then.
#[track_caller]
fn retired_veths_go(h: &Host) {
    assert!(h.reaped(), "retired veths left: {:?}", h.links_now("veth"));
}

fn from_outside(h: &Host, port: u16) -> String {
    text(&h.exec_outside(&[WGET, &[&format!("http://{HOST_LINK_IP}:{port}/")]].concat()))
}

/// ADD, CHECK, ADD again, DEL, DEL again, at every version; the result is
/// laid out as the reference bridge plugin's, and the published port
/// answers from the outside.
#[test]
fn every_verb_at_every_version() {
    let h = Host::new();
    h.outside();
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let mut pod = Pod::new(&h, &format!("v{i}"));
        let port = 8080 + i as u16;
        let conf = cni::single(
            &h,
            v,
            "pods",
            pods_network(json!({
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]},
            })),
        );
        let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
        let r = cni::exec(&h, "ocinet", &call, &conf).ok();
        assert_eq!(r["cniVersion"], *v, "{r}");
        let ifs = r["interfaces"].as_array().cloned().unwrap_or_default();
        let inside = ifs
            .iter()
            .position(|x| x["name"] == "eth0" && x["sandbox"] == pod.path())
            .unwrap_or_else(|| panic!("no eth0 with its sandbox: {r}"));
        assert_eq!(inside, 2, "bridge, host veth, then the container's: {r}");
        assert!(
            ifs.iter()
                .all(|x| x["mac"].as_str().is_some_and(|m| m.len() == 17)),
            "{r}"
        );
        let ip = &r["ips"][0];
        assert_eq!(ip["interface"], 2, "{r}");
        let addr = ip["address"].as_str().unwrap_or_default().to_string();
        assert!(addr.starts_with("10.90.0.") && addr.ends_with("/24"), "{r}");
        assert_eq!(ip["gateway"], "10.90.0.1", "{r}");
        if v.starts_with("0.") {
            assert_eq!(ip["version"], "4", "0.x results say the family: {r}");
        } else {
            assert!(ip.get("version").is_none(), "{r}");
        }
        assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0", "{r}");
        assert_eq!(r["dns"]["nameservers"][0], "10.90.0.1", "{r}");
        let plain = addr.trim_end_matches("/24");
        let shown = ok(pod.exec(&["ip", "-4", "addr", "show", "eth0"]));
        assert!(shown.contains(&addr), "{shown}");
        // ocinet's own view: the container is in `ps` like a hook's.
        let e = h
            .endpoint(&pod.id)
            .unwrap_or_else(|| panic!("not in ps: {:?}", h.ps()));
        assert_eq!(e["ip"], plain, "{e}");
        pod.serve(&h, &format!("pod {v}\n"));
        assert!(
            from_outside(&h, port).contains(&format!("pod {v}")),
            "port {port}"
        );
        if *v != "0.3.1" {
            cni::exec(&h, "ocinet", &call.command("CHECK"), &conf).ok();
        }
        // ADD again for the same container, interface and network: what
        // was made, not a second one.
        let again = cni::exec(&h, "ocinet", &call, &conf).ok();
        assert_eq!(again["ips"][0]["address"], addr, "{again}");
        cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
        cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
        ocinet_integration::assert_clean(&h, &pod.id);
        assert!(h.leases("pods").is_empty(), "{:?}", h.leases("pods"));
        // The pod's namespace stays (the runtime removes it after DEL):
        // the reaper deletes the pair.
        retired_veths_go(&h);
        assert!(
            !pod.exec(&["ip", "link", "show", "eth0"]).status.success(),
            "eth0 outlived DEL"
        );
        if *v != "0.3.1" {
            cni::exec(&h, "ocinet", &call.command("CHECK"), &conf).refused(3, "no ocinet record");
        }
        assert!(
            !from_outside(&h, port).contains("pod "),
            "the port outlived DEL"
        );
    }
    let ver = cni::exec(
        &h,
        "ocinet",
        &Call::new("VERSION", "", "", ""),
        &json!({"cniVersion": "1.0.0"}),
    )
    .ok();
    assert_eq!(ver["cniVersion"], "1.0.0");
    assert!(ver["supportedVersions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "1.1.0")));
}

/// DEL with nothing set up, without CNI_NETNS, and after the namespace
/// went: success, and nothing left.
#[test]
fn del_always_succeeds_and_leaves_nothing() {
    let h = Host::new();
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    let r = cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", "never-added", "", "eth0"),
        &conf,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let mut pod = Pod::new(&h, "gone");
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    cni::exec(&h, "ocinet", &call, &conf).ok();
    let veth = h
        .endpoint(&pod.id)
        .and_then(|e| e["host_veth"].as_str().map(str::to_string));
    pod.remove();
    let del = Call {
        netns: String::new(),
        ..call.command("DEL")
    };
    cni::exec(&h, "ocinet", &del, &conf).ok();
    ocinet_integration::assert_clean(&h, &pod.id);
    if let Some(v) = veth {
        assert!(!h.links("veth").contains(&v), "{v} left");
    }
    retired_veths_go(&h);
    // A retired veth whose reaper was killed (marked, or moved aside under
    // an `ocx-` name, as older versions named every one): `ocinet gc`
    // deletes both, and a veth that only looks like one stays.
    for (name, peer) in [
        ("ocx-00000000001", "ocxpeer1"),
        ("ocmarked", "ocxpeer2"),
        ("notours", "ocxpeer3"),
    ] {
        ok(h.exec(&[
            "ip", "link", "add", name, "type", "veth", "peer", "name", peer,
        ]));
    }
    ok(h.exec(&[
        "ip",
        "link",
        "set",
        "ocmarked",
        "alias",
        ocinet_integration::RETIRED_ALIAS,
    ]));
    ok(h.exec(&["ip", "link", "set", "notours", "alias", "ocinet: retired?"]));
    ok(h.ocinet(&["gc"]));
    let left = h.links_now("veth");
    assert!(left.contains(&"notours".to_string()), "{left:?}");
    ok(h.exec(&["ip", "link", "del", "notours"]));
    let left = h.links_now("veth");
    assert!(
        !left
            .iter()
            .any(|l| l == "ocmarked" || l.starts_with("ocx-")),
        "{left:?}"
    );
}

/// Bad input gets the spec's error object with the right code, naming the
/// field or variable, and leaves nothing.
#[test]
fn bad_input_is_refused_with_the_specs_codes() {
    let h = Host::new();
    let pod = Pod::new(&h, "bad");
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    let good = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    for (conf, call, code, text) in [
        (
            good.clone(),
            Call {
                container_id: String::new(),
                ..call.clone()
            },
            4,
            "CNI_CONTAINERID",
        ),
        (
            good.clone(),
            Call {
                ifname: "far-too-long-ifname".into(),
                ..call.clone()
            },
            4,
            "CNI_IFNAME",
        ),
        (
            good.clone(),
            Call {
                args: "Unknown=1".into(),
                ..call.clone()
            },
            2,
            "Unknown",
        ),
        (with("cniVersion", json!("2.0.0")), call.clone(), 1, "2.0.0"),
        (
            with("subnet", json!("nope")),
            call.clone(),
            7,
            "invalid subnet",
        ),
        (
            with("stateDir", json!("relative")),
            call.clone(),
            7,
            "invalid stateDir",
        ),
        (
            with(
                "runtimeConfig",
                json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}),
            ),
            call.clone(),
            2,
            "sctp",
        ),
        (
            with("runtimeConfig", json!({"ips": ["10.99.0.5/24"]})),
            call.clone(),
            7,
            "10.99.0.5",
        ),
    ] {
        cni::exec(&h, "ocinet", &call, &conf).refused(code, text);
        assert!(h.endpoint(&pod.id).is_none(), "{text}: a record was left");
    }
    let r = cni::exec_raw(&h, "ocinet", &call, b"{not json");
    r.refused(6, "network configuration");
    // Nothing of the refused configurations was saved.
    assert!(!h.config_dir().join("networks/pods.json").exists() || h.leases("pods").is_empty());
    // A second definition of an existing network must agree with it.
    cni::exec(&h, "ocinet", &call, &good).ok();
    let other = Pod::new(&h, "bad2");
    let call2 = Call::new("ADD", &other.id, &other.path(), "eth0");
    cni::exec(&h, "ocinet", &call2, &with("subnet", json!("10.91.0.0/24")))
        .refused(7, "network pods exists with subnet \"10.90.0.0/24\"");
    assert!(h.endpoint(&other.id).is_none());
    cni::exec(&h, "ocinet", &call.command("DEL"), &good).ok();
    ocinet_integration::assert_clean(&h, &pod.id);
    ocinet_integration::assert_clean(&h, &other.id);
}

/// GC releases every attachment of the network that the runtime does not
/// list (either key the spec's history used), and nothing else.
#[test]
fn gc_releases_what_the_runtime_no_longer_lists() {
    let h = Host::new();
    let conf = cni::single(&h, "1.1.0", "pods", pods_network(json!({})));
    let (a, b) = (Pod::new(&h, "gca"), Pod::new(&h, "gcb"));
    for p in [&a, &b] {
        cni::exec(
            &h,
            "ocinet",
            &Call::new("ADD", &p.id, &p.path(), "eth0"),
            &conf,
        )
        .ok();
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": a.id, "ifname": "eth0"}]);
    let r = cni::exec(&h, "ocinet", &Call::new("GC", "", "", ""), &gc);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        h.endpoint(&a.id).is_some(),
        "a listed attachment was released"
    );
    ocinet_integration::assert_clean(&h, &b.id);
    let mut gc = conf.clone();
    gc["cni.dev/attachments"] = json!([]);
    cni::exec(&h, "ocinet", &Call::new("GC", "", "", ""), &gc).ok();
    ocinet_integration::assert_clean(&h, &a.id);
}

/// STATUS: available, then not once the pool is full (code 50), then
/// available again after DEL.
#[test]
fn status_says_whether_an_add_could_be_served() {
    let h = Host::new();
    // A /30: one address besides the gateway.
    let conf = cni::single(
        &h,
        "1.1.0",
        "tiny",
        json!({"subnet": "10.92.0.0/30", "dnsUpstreams": [OUTSIDE_IP]}),
    );
    let status = Call::new("STATUS", "", "", "");
    assert_eq!(cni::exec(&h, "ocinet", &status, &conf).code, 0);
    let pod = Pod::new(&h, "full");
    let add = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    cni::exec(&h, "ocinet", &add, &conf).ok();
    cni::exec(&h, "ocinet", &status, &conf).refused(50, "every address");
    cni::exec(&h, "ocinet", &add.command("DEL"), &conf).ok();
    assert_eq!(cni::exec(&h, "ocinet", &status, &conf).code, 0);
}

/// First in a conflist followed by Debian's `tuning`, which reads ocinet's
/// result as its prevResult and changes the interface it names; CHECK and
/// DEL run the chain in reverse with the cached result.
#[test]
fn chained_with_debian_tuning() {
    let h = Host::new();
    let pod = Pod::new(&h, "tun");
    let mut chain = Chain::new(json!({
        "cniVersion": "1.0.0",
        "name": "pods",
        "plugins": [
            cni::ocinet_entry(&h, pods_network(json!({}))),
            {"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
        ],
    }));
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    let r = chain.add(&h, &call, &json!({})).ok();
    assert_eq!(
        r["interfaces"][2]["name"], "eth0",
        "tuning passed ocinet's result on: {r}"
    );
    let link = ok(pod.exec(&["ip", "link", "show", "eth0"]));
    assert!(
        link.contains("mtu 1400"),
        "tuning did not act on eth0: {link}"
    );
    let notify = ok(pod.exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]));
    assert_eq!(notify.trim(), "1");
    let c = chain.reverse(&h, "CHECK", &call, &json!({}));
    assert_eq!(c.code, 0, "{c:?}");
    let d = chain.reverse(&h, "DEL", &call, &json!({}));
    assert_eq!(d.code, 0, "{d:?}");
    ocinet_integration::assert_clean(&h, &pod.id);
}

/// A second network for the same container (another conflist, another
/// interface) is a connect; DEL of one leaves the other.
#[test]
fn two_networks_for_one_container() {
    let h = Host::new();
    let pod = Pod::new(&h, "two");
    let front = cni::single(&h, "1.0.0", "front", pods_network(json!({})));
    let back = cni::single(
        &h,
        "1.0.0",
        "back",
        json!({"subnet": "10.93.0.0/24", "dnsUpstreams": [OUTSIDE_IP]}),
    );
    cni::exec(
        &h,
        "ocinet",
        &Call::new("ADD", &pod.id, &pod.path(), "eth0"),
        &front,
    )
    .ok();
    let r = cni::exec(
        &h,
        "ocinet",
        &Call::new("ADD", &pod.id, &pod.path(), "net1"),
        &back,
    )
    .ok();
    assert!(
        r["ips"][0]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.93.0.")),
        "{r}"
    );
    assert!(ok(pod.exec(&["ip", "-4", "addr", "show", "net1"])).contains("10.93.0."));
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &pod.id, &pod.path(), "net1"),
        &back,
    )
    .ok();
    assert!(
        !pod.exec(&["ip", "link", "show", "net1"]).status.success(),
        "net1 outlived its DEL"
    );
    assert!(
        h.endpoint(&pod.id).is_some(),
        "eth0's attachment went with net1's"
    );
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &pod.id, &pod.path(), "eth0"),
        &front,
    )
    .ok();
    ocinet_integration::assert_clean(&h, &pod.id);
}

/// A plugin SIGKILLed at each step of ADD: DEL afterwards leaves nothing,
/// and the next ADD works.
#[test]
fn a_killed_add_is_undone_by_del() {
    let h = Host::new();
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    for step in ["leased", "recorded", "bridge", "veth", "firewall", "pinned"] {
        let pod = Pod::new(&h, &format!("k{}", &step[..3]));
        let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
        let r = cni::exec_with_env(&h, "ocinet", &call, &conf, &[("OCINET_TEST_KILL_AT", step)]);
        assert_ne!(r.code, 0, "{step}: not killed");
        cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
        ocinet_integration::assert_clean(&h, &pod.id);
        // Killed again, then the next ADD without a DEL between.
        let r = cni::exec_with_env(&h, "ocinet", &call, &conf, &[("OCINET_TEST_KILL_AT", step)]);
        assert_ne!(r.code, 0, "{step}: not killed");
        cni::exec(&h, "ocinet", &call, &conf).ok();
        cni::exec(&h, "ocinet", &call.command("CHECK"), &conf).ok();
        cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
        ocinet_integration::assert_clean(&h, &pod.id);
        // Killed, then GC with nothing listed.
        let r = cni::exec_with_env(&h, "ocinet", &call, &conf, &[("OCINET_TEST_KILL_AT", step)]);
        assert_ne!(r.code, 0, "{step}: not killed");
        let mut gc = conf.clone();
        gc["cniVersion"] = json!("1.1.0");
        gc["cni.dev/valid-attachments"] = json!([]);
        cni::exec(&h, "ocinet", &Call::new("GC", "", "", ""), &gc).ok();
        ocinet_integration::assert_clean(&h, &pod.id);
    }
    assert!(h.leases("pods").is_empty(), "{:?}", h.leases("pods"));
}

/// podman 4.3 with its CNI backend and an ocinet conflist: `podman run
/// --network NAME -p 8080:80` gets its address and published port from
/// ocinet (with crun), and `podman rm` leaves nothing.
#[test]
fn podman_cni_backend() {
    let h = Host::new();
    h.outside();
    let conflists = h.dir.join("cni-net.d");
    std::fs::create_dir_all(&conflists).expect("conflist dir");
    let list = json!({
        "cniVersion": "0.4.0",
        "name": "ocnet",
        "plugins": [cni::ocinet_entry(&h, json!({
            "subnet": "10.94.0.0/24",
            "dnsUpstreams": [OUTSIDE_IP],
            "capabilities": {"portMappings": true, "aliases": true},
        }))],
    });
    std::fs::write(conflists.join("ocnet.conflist"), list.to_string()).expect("conflist");
    let www = h.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello through cni\n").expect("index");
    let vol = format!("{}:/www:ro", www.display());
    let root = ocinet_integration::rootfs::path().display().to_string();
    let run = [
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "ocnet",
        "-p",
        "8080:80",
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
    let id = ok(h.podman_cni(&conflists, &run)).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ep = h
        .endpoint(&id)
        .unwrap_or_else(|| panic!("no ocinet record for {id}: {:?}", h.ps()));
    let ip = ep["ip"].as_str().unwrap_or_default().to_string();
    assert!(ip.starts_with("10.94.0."), "{ep}");
    // The container's eth0 has it. (podman's own inspect shows no
    // address here: each podman call runs in a mount namespace of its own,
    // where the previous call's /run/netns entry is not, so podman finds
    // no network namespace to report on.)
    let inside = ok(h.podman_cni(
        &conflists,
        &[
            "exec",
            "web",
            "/bin/busybox",
            "ip",
            "-4",
            "addr",
            "show",
            "eth0",
        ],
    ));
    assert!(inside.contains(&format!("inet {ip}/24")), "{inside}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(from_outside(&h, 8080).trim(), "hello through cni");
    ok(h.podman_cni(&conflists, &["stop", "--time", "1", "web"]));
    ok(h.podman_cni(&conflists, &["rm", "web"]));
    ocinet_integration::assert_clean(&h, &id);
    assert!(h.ps().is_empty(), "{:?}", h.ps());
    assert!(
        !from_outside(&h, 8080).contains("hello"),
        "the port outlived podman rm"
    );
}

/// Two simulated nodes: two host namespaces joined by a veth (the wire),
/// each running ocinet through CNI with its own pod subnet of one cluster
/// CIDR, and a route on each to the other's pod subnet. Pods reach each
/// other with their own addresses (`noMasquerade` the cluster CIDR), and
/// are still masqueraded to the outside.
#[test]
fn two_nodes_route_pods_without_masquerade() {
    let (a, b) = (Host::new(), Host::new());
    a.outside();
    let wire = |h: &Host, args: &[&str]| ok(h.exec(args));
    ok(std::process::Command::new("ip")
        .args([
            "-n", &a.name, "link", "add", "wa", "type", "veth", "peer", "name", "wb", "netns",
            &b.name,
        ])
        .output()
        .expect("ip"));
    wire(&a, &["ip", "addr", "add", "192.0.2.1/24", "dev", "wa"]);
    wire(&b, &["ip", "addr", "add", "192.0.2.2/24", "dev", "wb"]);
    wire(&a, &["ip", "link", "set", "wa", "up"]);
    wire(&b, &["ip", "link", "set", "wb", "up"]);
    // What a cloud or a routing daemon installs: each node's pod subnet
    // via that node.
    wire(
        &a,
        &["ip", "route", "add", "10.100.2.0/24", "via", "192.0.2.2"],
    );
    wire(
        &b,
        &["ip", "route", "add", "10.100.1.0/24", "via", "192.0.2.1"],
    );
    let node = |h: &Host, subnet: &str| {
        cni::single(
            h,
            "1.0.0",
            "pods",
            json!({"subnet": subnet, "noMasquerade": ["10.100.0.0/16"], "disableDns": true}),
        )
    };
    let (conf_a, conf_b) = (node(&a, "10.100.1.0/24"), node(&b, "10.100.2.0/24"));
    let mut pa = Pod::new(&a, "na");
    let mut pb = Pod::new(&b, "nb");
    let ra = cni::exec(
        &a,
        "ocinet",
        &Call::new("ADD", &pa.id, &pa.path(), "eth0"),
        &conf_a,
    )
    .ok();
    let rb = cni::exec(
        &b,
        "ocinet",
        &Call::new("ADD", &pb.id, &pb.path(), "eth0"),
        &conf_b,
    )
    .ok();
    let ip = |r: &Value| {
        r["ips"][0]["address"]
            .as_str()
            .and_then(|s| s.split('/').next())
            .unwrap_or_default()
            .to_string()
    };
    let (ip_a, ip_b) = (ip(&ra), ip(&rb));
    pb.spawn(&["python3", "-c", ECHO_CLIENT_PY, "0.0.0.0", "8001"]);
    pa.spawn(&["python3", "-c", ECHO_CLIENT_PY, "0.0.0.0", "8001"]);
    let _outside = a.spawn_outside(&["python3", "-c", ECHO_CLIENT_PY, OUTSIDE_IP, "8001"]);
    // Until the servers listen (python starts slowly on a loaded machine:
    // a fixed half second was once too short under the full suite).
    let get = |pod: &Pod, url: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = text(&pod.exec(&[WGET, &[url]].concat()));
            if !got.contains("Connection refused") || std::time::Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    // Pod to pod across the nodes, both ways: their own addresses.
    let got = get(&pa, &format!("http://{ip_b}:8001/"));
    assert!(got.contains(&format!("from {ip_a}")), "a to b: {got}");
    let got = get(&pb, &format!("http://{ip_a}:8001/"));
    assert!(got.contains(&format!("from {ip_b}")), "b to a: {got}");
    // To the outside: masqueraded to the node's address.
    let got = get(&pa, &format!("http://{OUTSIDE_IP}:8001/"));
    assert!(
        got.contains(&format!("from {HOST_LINK_IP}")),
        "to the outside: {got}"
    );
    let v: Value =
        serde_json::from_str(&ok(a.ocinet(&["network", "inspect", "pods"]))).unwrap_or_default();
    assert_eq!(v[0]["NoMasquerade"][0], "10.100.0.0/16", "{v}");
    cni::exec(
        &a,
        "ocinet",
        &Call::new("DEL", &pa.id, &pa.path(), "eth0"),
        &conf_a,
    )
    .ok();
    cni::exec(
        &b,
        "ocinet",
        &Call::new("DEL", &pb.id, &pb.path(), "eth0"),
        &conf_b,
    )
    .ok();
    ocinet_integration::assert_clean(&a, &pa.id);
    ocinet_integration::assert_clean(&b, &pb.id);
}

/// Chained before Debian's `portmap`, which reads the container's address
/// from ocinet's result (the interface entry named CNI_IFNAME with its
/// sandbox) and publishes the port with its own iptables rules; ocinet's
/// forward rules let the DNATed traffic through. DEL removes both.
#[test]
fn chained_with_debian_portmap() {
    let h = Host::new();
    h.outside();
    let mut pod = Pod::new(&h, "pm");
    let mut chain = Chain::new(json!({
        "cniVersion": "1.0.0",
        "name": "pods",
        "plugins": [
            cni::ocinet_entry(&h, pods_network(json!({}))),
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        ],
    }));
    let caps =
        json!({"portMappings": [{"hostPort": 8095, "containerPort": 80, "protocol": "tcp"}]});
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    chain.add(&h, &call, &caps).ok();
    pod.serve(&h, "published by portmap\n");
    assert_eq!(from_outside(&h, 8095).trim(), "published by portmap");
    let d = chain.reverse(&h, "DEL", &call, &caps);
    assert_eq!(d.code, 0, "{d:?}");
    assert!(
        !from_outside(&h, 8095).contains("portmap"),
        "the port outlived DEL"
    );
    ocinet_integration::assert_clean(&h, &pod.id);
}

/// containerd 1.6 (Debian's) with `ctr run --cni`: its own root, state,
/// socket and shim directory, and go-cni's fixed directories (/opt/cni/bin,
/// /etc/cni/net.d) replaced in a private mount namespace by the test's.
/// The container gets its address from ocinet; ctr's DEL at exit (with no
/// CNI_NETNS) leaves nothing.
#[test]
fn containerd_ctr_run_cni() {
    let h = Host::new();
    let w = h.dir.join("containerd");
    let net_d = w.join("net.d");
    std::fs::create_dir_all(&net_d).expect("net.d");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "ctrnet",
        "plugins": [cni::ocinet_entry(&h, json!({"subnet": "10.96.0.0/24", "disableDns": true}))],
    });
    std::fs::write(net_d.join("10-ocinet.conflist"), list.to_string()).expect("conflist");
    std::fs::write(
        w.join("config.toml"),
        format!(
            "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n",
            w.join("root").display().to_string(),
            w.join("state").display().to_string(),
            w.join("containerd.sock").display().to_string(),
        ),
    )
    .expect("config.toml");
    let script = r#"set -e
W="$1"; OCINET="$2"; ROOTFS="$3"
mount -t tmpfs tmpfs /run/containerd 2>/dev/null || { mkdir -p /run/containerd; mount -t tmpfs tmpfs /run/containerd; }
mount -t tmpfs tmpfs /opt
mkdir -p /opt/cni/bin
ln -s "$OCINET" /opt/cni/bin/ocinet
ln -s /usr/lib/cni/loopback /opt/cni/bin/loopback
mount --bind "$W/net.d" /etc/cni/net.d
containerd --config "$W/config.toml" > "$W/containerd.log" 2>&1 &
CPID=$!
trap 'kill $CPID; wait $CPID' EXIT
for i in $(seq 100); do [ -S "$W/containerd.sock" ] && break; sleep 0.05; done
ctr --address "$W/containerd.sock" run --rm --cni --rootfs "$ROOTFS" ctrtest /bin/busybox ip -4 addr show eth0
"#;
    let bin = ocinet_integration::ocinet_bin();
    let root = ocinet_integration::rootfs::path();
    let o = h.exec_private_mounts(
        script,
        &[
            w.to_str().unwrap_or_default(),
            bin.to_str().unwrap_or_default(),
            root.to_str().unwrap_or_default(),
        ],
    );
    let out = text(&o);
    assert!(
        o.status.success(),
        "{out}\n{}",
        std::fs::read_to_string(w.join("containerd.log")).unwrap_or_default()
    );
    assert!(out.contains("inet 10.96.0."), "{out}");
    // ctr's container id is namespaced: <namespace>-<id>.
    ocinet_integration::assert_clean(&h, "default-ctrtest");
    assert!(h.ps().is_empty(), "{:?}", h.ps());
    retired_veths_go(&h);
}

/// Pods attached through CNI resolve each other by name (`K8S_POD_NAME`)
/// through the network's resolver, which the plugin starts; it ends with
/// the last pod.
#[test]
fn cni_pods_resolve_each_other() {
    let h = Host::new();
    h.outside();
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    let (a, b) = (Pod::new(&h, "dna"), Pod::new(&h, "dnb"));
    let add = |p: &Pod, name: &str| {
        let call = Call {
            args: format!("IgnoreUnknown=1;K8S_POD_NAME={name}"),
            ..Call::new("ADD", &p.id, &p.path(), "eth0")
        };
        cni::exec(&h, "ocinet", &call, &conf).ok()
    };
    add(&a, "alpha");
    let rb = add(&b, "beta");
    // The dns capability: the runtime's search domains and options come
    // back in the result (which the runtime writes into resolv.conf).
    let mut with_dns = conf.clone();
    with_dns["capabilities"] = json!({"dns": true});
    with_dns["runtimeConfig"] = json!({"dns": {"servers": [OUTSIDE_IP, "127.0.0.53"], "searches": ["corp.test"], "options": ["ndots:2"]}});
    let c = Pod::new(&h, "dnc");
    let rc = cni::exec(
        &h,
        "ocinet",
        &Call::new("ADD", &c.id, &c.path(), "eth0"),
        &with_dns,
    )
    .ok();
    assert_eq!(rc["dns"]["nameservers"][0], "10.90.0.1", "{rc}");
    assert_eq!(rc["dns"]["search"][0], "corp.test", "{rc}");
    assert_eq!(rc["dns"]["options"][0], "ndots:2", "{rc}");
    cni::exec(
        &h,
        "ocinet",
        &Call::new("DEL", &c.id, &c.path(), "eth0"),
        &with_dns,
    )
    .ok();
    let b_ip = rb["ips"][0]["address"]
        .as_str()
        .and_then(|s| s.split('/').next())
        .unwrap_or_default()
        .to_string();
    let got = text(&a.exec(&["timeout", "3", "busybox", "nslookup", "beta", "10.90.0.1"]));
    assert!(got.contains(&format!("Address: {b_ip}")), "{got}");
    for p in [&a, &b] {
        cni::exec(
            &h,
            "ocinet",
            &Call::new("DEL", &p.id, &p.path(), "eth0"),
            &conf,
        )
        .ok();
    }
    assert!(h.resolver_ended(), "the resolver outlived the last pod");
}
