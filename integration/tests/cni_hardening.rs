//! Issue 21, items 7-11: what a hostile tester broke where CNI and the CLI
//! meet one container. Driven by the tests' own CNI runtime
//! (`ocinet_integration::cni`), and for the host-namespace refusal also by
//! runc and crun. Every network names its DNS upstream in the outside
//! namespace, or has none (nothing reaches the machine's resolvers).

use ocinet_integration::cni::{self, Call, Pod};
use ocinet_integration::{assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, OUTSIDE_IP};
use serde_json::{json, Value};

fn pods_network(extra: Value) -> Value {
    let mut v = json!({"subnet": "10.90.0.0/24", "dnsUpstreams": [OUTSIDE_IP]});
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    v
}

fn log(h: &Host) -> String {
    h.log()
}

fn attachments(h: &Host, id: &str) -> Vec<Value> {
    h.endpoint(id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default()
}

/// Nothing of a container was put into the host namespace itself: no
/// `eth0`, and no address or route of `subnet_prefix` ("10.90.0.").
#[track_caller]
fn host_untouched(h: &Host, subnet_prefix: &str) {
    assert!(
        !h.exec(&["ip", "link", "show", "eth0"]).status.success(),
        "eth0 in the host: {}",
        ok(h.exec(&["ip", "link"]))
    );
    let addrs = ok(h.exec(&["ip", "-4", "addr"]));
    let routes = ok(h.exec(&["ip", "-4", "route"]));
    for (what, t) in [("address", &addrs), ("route", &routes)] {
        // The network's own bridge holds its gateway address and route
        // (when the network was made); nothing else of it may be there.
        for line in t.lines().filter(|l| l.contains(subnet_prefix)) {
            assert!(
                line.contains("ocibr") || line.contains("ocinet"),
                "a container's {what} in the host: {line}\n{t}"
            );
        }
    }
}

// ---- item 7 -------------------------------------------------------------

/// `ocinet network connect` and `disconnect` refuse a container a CNI
/// runtime attached (its DEL would not know what they changed), naming
/// it and saying who manages it; nothing changes; DEL then leaves nothing,
/// its /run/netns pin included.
#[test]
fn connect_and_disconnect_refuse_a_cni_container() {
    let h = Host::new();
    h.outside();
    ok(h.ocinet(&[
        "network",
        "create",
        "extra",
        "--subnet",
        "10.94.0.0/24",
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
    let pod = Pod::new(&h, "cn");
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    let call = Call {
        args: "IgnoreUnknown=1;K8S_POD_NAME=web".into(),
        ..Call::new("ADD", &pod.id, &pod.path(), "eth0")
    };
    cni::exec(&h, "ocinet", &call, &conf).ok();
    let before = attachments(&h, &pod.id);
    assert_eq!(before.len(), 1, "{before:?}");
    for who in [pod.id.as_str(), "web"] {
        for args in [
            vec!["network", "connect", "extra", who],
            vec!["network", "connect", "extra", who, "--ip", "10.94.0.9"],
            vec!["network", "disconnect", "pods", who],
        ] {
            let o = h.ocinet(&args);
            let t = text(&o);
            assert!(!o.status.success(), "{args:?} succeeded: {t}");
            assert!(
                t.contains(&pod.id) && t.contains("managed by its CNI runtime"),
                "{args:?}: {t}"
            );
        }
    }
    assert_eq!(attachments(&h, &pod.id), before, "the record changed");
    assert!(h.leases("extra").is_empty(), "{:?}", h.leases("extra"));
    let links = ok(pod.exec(&["ip", "-o", "link"]));
    assert!(
        !links.contains("eth1") && links.contains("eth0"),
        "the pod's links changed: {links}"
    );
    cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    assert_clean(&h, &pod.id);
    assert!(h.leases("pods").is_empty(), "{:?}", h.leases("pods"));
}

// ---- item 8 -------------------------------------------------------------

/// CNI_NETNS naming the namespace the plugin runs in (a /run/netns entry
/// of it, or /proc/self/ns/net) is refused with code 4 naming the path,
/// before anything is made: nothing in the host, nothing in the state.
#[test]
fn cni_refuses_the_hosts_own_namespace() {
    let h = Host::new();
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    let host_ns = format!("/run/netns/{}", h.name);
    for (i, path) in [host_ns.as_str(), "/proc/self/ns/net"].iter().enumerate() {
        let id = format!("hostns{i}{}", &h.name[3..]);
        let call = Call::new("ADD", &id, path, "eth0");
        let r = cni::exec(&h, "ocinet", &call, &conf);
        r.refused(4, &format!("invalid CNI_NETNS \"{path}\""));
        r.refused(4, "is the network namespace ocinet runs in (the host's)");
        host_untouched(&h, "10.90.0.");
        assert_clean(&h, &id);
        assert!(h.leases("pods").is_empty(), "{:?}", h.leases("pods"));
        // DEL of what was refused succeeds (the runtime calls it).
        cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    }
    assert!(h.ps().is_empty(), "{:?}", h.ps());
}

/// A bundle whose network namespace path is the host's own namespace: the
/// hook refuses it naming the path, the container does not start, and
/// nothing is configured in the host or left in the state.
fn hook_refuses_the_hosts_own_namespace(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "web",
        "--subnet",
        "10.71.0.0/24",
        "--disable-dns",
    ]));
    let host_ns = format!("/run/netns/{}", h.name);
    let spec = Spec {
        netns_path: Some(host_ns.clone()),
        ..Spec::default()
    }
    .ann("io.ocinet.network", "web");
    let c = h.start(rt, "hostns", &spec);
    assert!(
        c.exit.is_some_and(|s| !s.success()),
        "started in the host's namespace: {}",
        c.output()
    );
    let l = log(&h);
    assert!(
        l.contains(&format!(
            "invalid config.json linux.namespaces network path \"{host_ns}\""
        )) && l.contains("the network namespace ocinet runs in"),
        "{l}"
    );
    host_untouched(&h, "10.71.0.");
    assert_clean(&h, &c.id);
    assert!(h.leases("web").is_empty(), "{:?}", h.leases("web"));
    assert!(h.ps().is_empty(), "{:?}", h.ps());
}

both_runtimes!(hook_refuses_the_hosts_own_namespace);

// ---- item 9 -------------------------------------------------------------

/// CHECK holds the kernel to ocinet's record, not to the prevResult: a
/// MAC changed inside the container (which the anti-spoofing guard then
/// drops) fails it whatever the prevResult says, and a prevResult that
/// disagrees with the record (another MAC, another sandbox, another
/// address) fails it too; so does a CNI_NETNS that is not the container's.
#[test]
fn check_holds_the_kernel_to_the_record() {
    let h = Host::new();
    let pod = Pod::new(&h, "chk");
    let other = Pod::new(&h, "chk2");
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    let added = cni::exec(&h, "ocinet", &call, &conf).ok();
    let mac = added["interfaces"][2]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let with_prev = |prev: &Value| {
        let mut c = conf.clone();
        c["prevResult"] = prev.clone();
        c
    };
    let check = call.command("CHECK");
    // As ADD left it: fine.
    cni::exec(&h, "ocinet", &check, &with_prev(&added)).ok();

    // The prevResult lies about the MAC and the sandbox; the kernel is as
    // recorded.
    let mut lying = added.clone();
    lying["interfaces"][2]["mac"] = json!("02:11:22:33:44:55");
    lying["interfaces"][2]["sandbox"] = json!(other.path());
    let r = cni::exec(&h, "ocinet", &check, &with_prev(&lying));
    r.refused(100, "prevResult gives interface eth0 MAC 02:11:22:33:44:55");
    r.refused(100, &format!("sandbox \"{}\"", other.path()));

    // Another address in the prevResult.
    let mut lying = added.clone();
    lying["ips"][0]["address"] = json!("10.90.0.250/24");
    cni::exec(&h, "ocinet", &check, &with_prev(&lying)).refused(100, "address 10.90.0.250/24");

    // CNI_NETNS of another namespace than the container's.
    let elsewhere = Call {
        netns: other.path(),
        ..check.clone()
    };
    cni::exec(&h, "ocinet", &elsewhere, &with_prev(&added)).refused(
        100,
        &format!("CNI_NETNS {} is not the network namespace", other.path()),
    );

    // The host end out of its bridge, or down: cut off as well.
    let veth = added["interfaces"][1]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bridge = added["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ok(h.exec(&["ip", "link", "set", &veth, "nomaster"]));
    cni::exec(&h, "ocinet", &check, &with_prev(&added)).refused(
        100,
        &format!("host end {veth} of the veth is not a port of {bridge}"),
    );
    ok(h.exec(&["ip", "link", "set", &veth, "master", &bridge]));
    ok(h.exec(&["ip", "link", "set", &veth, "down"]));
    cni::exec(&h, "ocinet", &check, &with_prev(&added))
        .refused(100, &format!("host end {veth} of the veth is down"));
    ok(h.exec(&["ip", "link", "set", &veth, "up"]));
    cni::exec(&h, "ocinet", &check, &with_prev(&added)).ok();
    // A sandbox that is a FIFO is looked at, not opened (an open would
    // wait for a writer for good).
    let fifo = h.dir.join("sandbox-fifo");
    ok(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .output()
        .expect("mkfifo"));
    let mut lying = added.clone();
    lying["interfaces"][2]["sandbox"] = json!(fifo.to_str().unwrap_or_default());
    let t = std::time::Instant::now();
    cni::exec(&h, "ocinet", &check, &with_prev(&lying)).refused(100, "sandbox");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );

    // The container's MAC changed inside: cut off by the anti-spoofing
    // guard, so CHECK fails, with the ADD's result and with a prevResult
    // naming the new MAC alike.
    ok(pod.exec(&["ip", "link", "set", "eth0", "address", "02:11:22:33:44:55"]));
    let r = cni::exec(&h, "ocinet", &check, &with_prev(&added));
    r.refused(100, &format!("has MAC 02:11:22:33:44:55, not {mac}"));
    let mut follows = added.clone();
    follows["interfaces"][2]["mac"] = json!("02:11:22:33:44:55");
    let r = cni::exec(&h, "ocinet", &check, &with_prev(&follows));
    r.refused(100, &format!("has MAC 02:11:22:33:44:55, not {mac}"));
    follows["interfaces"][2]["sandbox"] = json!(other.path());
    cni::exec(&h, "ocinet", &check, &with_prev(&follows)).refused(100, "sandbox");

    cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    assert_clean(&h, &pod.id);
}

// ---- item 10 ------------------------------------------------------------

/// One host port twice in one request: the spec's code 7 naming the
/// entry, from CNI as from the hook (one check in the core), and nothing
/// left (no claim, no element).
#[test]
fn duplicate_host_ports_are_refused_alike_by_both_front_ends() {
    let h = Host::new();
    let pod = Pod::new(&h, "dup");
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    for (maps, entry) in [
        (
            json!([
                {"hostPort": 8081, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 8081, "containerPort": 81, "protocol": "tcp"},
            ]),
            "\"8081:81/tcp\": host port 8081/tcp is published twice, also by 8081:80/tcp",
        ),
        (
            json!([
                {"hostPort": 8081, "containerPort": 80},
                {"hostPort": 8081, "containerPort": 80, "hostIP": "127.0.0.1"},
            ]),
            "\"127.0.0.1:8081:80/tcp\": host port 8081/tcp is published twice, also by 8081:80/tcp",
        ),
    ] {
        let conf = cni::single(
            &h,
            "1.0.0",
            "pods",
            pods_network(json!({
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": maps},
            })),
        );
        cni::exec(&h, "ocinet", &call, &conf)
            .refused(7, &format!("invalid runtimeConfig.portMappings {entry}"));
        assert_clean(&h, &pod.id);
        assert!(h.port_claims().is_empty(), "{:?}", h.port_claims());
        assert!(h.leases("pods").is_empty(), "{:?}", h.leases("pods"));
    }
    // The hook, given the same ports, says the same.
    let bc = h.bare_container(
        "dup",
        json!({"io.ocinet.ports": "8081:80,127.0.0.1:8081:80"}),
    );
    let o = h.hook("createRuntime", &bc.state, &[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("invalid io.ocinet.ports \"127.0.0.1:8081:80/tcp\": host port 8081/tcp is published twice, also by 8081:80/tcp"),
        "{t}"
    );
    assert_clean(&h, &bc.id);
}

// ---- item 11 ------------------------------------------------------------

/// CNI_IFNAME values the kernel keeps or refuses are code 4 naming the
/// value; a configuration without `name` is code 7 naming the field;
/// nothing is left.
#[test]
fn bad_ifnames_and_a_missing_name_are_refused() {
    let h = Host::new();
    let pod = Pod::new(&h, "ifn");
    let conf = cni::single(&h, "1.0.0", "pods", pods_network(json!({})));
    for bad in [
        "all",
        "default",
        ".",
        "..",
        "a/b",
        "a:b",
        "a b",
        "sixteen-chars-xx",
    ] {
        let call = Call::new("ADD", &pod.id, &pod.path(), bad);
        cni::exec(&h, "ocinet", &call, &conf).refused(4, &format!("invalid CNI_IFNAME \"{bad}\""));
        assert_clean(&h, &pod.id);
    }
    let mut nameless = conf.clone();
    if let Some(o) = nameless.as_object_mut() {
        o.remove("name");
    }
    nameless["network"] = json!("pods");
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    cni::exec(&h, "ocinet", &call, &nameless).refused(7, "invalid name \"\"");
    assert_clean(&h, &pod.id);
    assert!(
        !h.exec(&["ip", "link", "show", "all"]).status.success()
            && !pod.exec(&["ip", "link", "show", "all"]).status.success()
    );
}

/// What is ignored is said in the log: a K8S_POD_NAME that cannot be a
/// name (the container is named by its id), and servers of the `dns`
/// capability a container cannot use (link-local), each naming the value.
#[test]
fn what_is_ignored_is_logged() {
    let h = Host::new();
    h.outside();
    let pod = Pod::new(&h, "ign");
    let conf = cni::single(
        &h,
        "1.0.0",
        "pods",
        pods_network(json!({
            "capabilities": {"dns": true},
            "runtimeConfig": {"dns": {"servers": [OUTSIDE_IP, "fe80::53"]}},
        })),
    );
    let call = Call {
        args: "IgnoreUnknown=1;K8S_POD_NAME=-not_a.name!".into(),
        ..Call::new("ADD", &pod.id, &pod.path(), "eth0")
    };
    cni::exec(&h, "ocinet", &call, &conf).ok();
    let l = log(&h);
    assert!(
        l.contains("WARN")
            && l.contains("invalid CNI_ARGS K8S_POD_NAME \"-not_a.name!\"")
            && l.contains("ignored"),
        "{l}"
    );
    assert!(
        l.contains("fe80::53") && l.contains("not usable from a container"),
        "{l}"
    );
    let e = h.endpoint(&pod.id).expect("recorded");
    assert_eq!(
        e["name"],
        pod.id.chars().take(12).collect::<String>(),
        "{e}"
    );
    cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    assert_clean(&h, &pod.id);
}
