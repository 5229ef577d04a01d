//! Issue 5: podman through hooks.d, with crun and `--network none`, the
//! container networked by the ocinet hook.

use ocinet_integration::{ok, text, Host, HOST_LINK_IP};

const ULIMITS: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn rootfs() -> String {
    ocinet_integration::rootfs::path().display().to_string()
}

#[test]
fn install_podman_hook_writes_hooks_d_files_with_every_setting_in_args() {
    let h = Host::new();
    let dir = h.dir.join("hooks");
    ok(h.ocinet(&[
        "install-podman-hook",
        "--hooks-dir",
        dir.to_str().unwrap_or(""),
        "--network",
        "web",
        "--publish",
        "8080:80",
    ]));
    for stage in ["prestart", "poststop"] {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("ocinet-{stage}.json"))).expect("file"),
        )
        .expect("json");
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["stages"], serde_json::json!([stage]));
        assert!(
            v["when"]["annotations"]["^io\\.ocinet\\..*$"].is_string(),
            "{v}"
        );
        let args: Vec<String> = serde_json::from_value(v["hook"]["args"].clone()).expect("args");
        assert_eq!(&args[..3], &["ocinet", "hook", stage]);
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--state-dir" && w[1] == h.state_dir().display().to_string()),
            "{args:?}"
        );
        assert!(args.windows(2).any(|w| w[0] == "--config-dir"), "{args:?}");
        assert_eq!(
            stage == "prestart",
            args.windows(2)
                .any(|w| w[0] == "--publish" && w[1] == "8080:80"),
            "{args:?}"
        );
        assert!(std::path::Path::new(v["hook"]["path"].as_str().unwrap_or("")).is_absolute());
    }
    let o = h.ocinet(&["install-podman-hook", "--hooks-dir", "relative/dir"]);
    assert!(
        !o.status.success() && text(&o).contains("--hooks-dir"),
        "{}",
        text(&o)
    );
}

#[test]
fn podman_container_gets_an_address_and_its_published_port_answers() {
    let h = Host::new();
    h.outside();
    let www = h.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello from podman\n").expect("index");
    let vol = format!("{}:/www:ro", www.display());
    let root = rootfs();
    let args = [
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "none",
            "--annotation",
            "io.ocinet.ports=8080:80",
            "--annotation",
            "io.ocinet.name=pweb",
            "-v",
            &vol,
        ],
        ULIMITS,
        &["--rootfs", &root, "httpd", "-f", "-p", "80", "-h", "/www"],
    ]
    .concat();
    let id = ok(h.podman(&args)).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ep = h
        .endpoint(&id)
        .unwrap_or_else(|| panic!("no endpoint for {id}"));
    assert_eq!(ep["name"], "pweb");
    assert!(ep["ip"].as_str().is_some_and(|ip| ip.starts_with("10.87.")));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = ok(h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")));
    assert_eq!(got.trim(), "hello from podman");
    ok(h.podman(&["stop", "--time", "1", "web"]));
    ok(h.podman(&["rm", "web"]));
    let left = h.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
    assert!(h.ps().is_empty());
    let o = h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/"));
    assert!(!o.status.success(), "port still answers: {}", text(&o));
}

#[test]
fn eight_podman_run_rm_at_once() {
    let h = Host::new();
    // Warm the storage once so eight first-time initialisations do not race.
    let root = rootfs();
    ok(h.podman(
        &[
            &["run", "--rm", "--network", "none"],
            ULIMITS,
            &["--rootfs", &root, "true"],
        ]
        .concat(),
    ));
    let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
        let hs = &h;
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    let name = format!("io.ocinet.name=par{i}");
                    let root = rootfs();
                    hs.podman(
                        &[
                            &["run", "--rm", "--network", "none", "--annotation", &name],
                            ULIMITS,
                            &["--rootfs", &root, "sh", "-c", "ip -4 -o addr show eth0"],
                        ]
                        .concat(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    let mut ips = Vec::new();
    for o in &outputs {
        let out = ok(o.clone());
        let ip = out
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or("")
            .to_string();
        assert!(ip.starts_with("10.87."), "{out}");
        ips.push(ip);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8, "{ips:?}");
    assert!(h.ps().is_empty(), "{:?}", h.ps());
    assert!(h.links("veth").is_empty(), "{:?}", h.links("veth"));
    assert!(h.leases("ocinet").is_empty(), "{:?}", h.leases("ocinet"));
    assert!(h.port_claims().is_empty(), "{:?}", h.port_claims());
}

/// Issue 14: a podman container (hooks.d, crun) on a macvlan network is a
/// host of the parent's segment, and `podman rm` leaves nothing.
#[test]
fn podman_container_on_a_macvlan_network() {
    let h = Host::new();
    h.macvlan_network("mv");
    let www = h.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello from macvlan\n").expect("index");
    let vol = format!("{}:/www:ro", www.display());
    let root = rootfs();
    let args = [
        &[
            "run",
            "-d",
            "--name",
            "mvweb",
            "--network",
            "none",
            "--annotation",
            "io.ocinet.network=mv",
            "-v",
            &vol,
        ],
        ULIMITS,
        &["--rootfs", &root, "httpd", "-f", "-p", "80", "-h", "/www"],
    ]
    .concat();
    let id = ok(h.podman(&args)).trim().to_string();
    let ep = h
        .endpoint(&id)
        .unwrap_or_else(|| panic!("no endpoint for {id}"));
    let ip = ep["ip"].as_str().unwrap_or_default().to_string();
    assert!(ip.starts_with("198.51.100.1"), "{ep}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = ok(h.exec_outside(&[
        "timeout",
        "3",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{ip}/"),
    ]));
    assert_eq!(got.trim(), "hello from macvlan");
    ok(h.podman(&["stop", "--time", "1", "mvweb"]));
    ok(h.podman(&["rm", "mvweb"]));
    let left = h.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
    assert!(h.leases("mv").is_empty(), "{:?}", h.leases("mv"));
    assert!(h.ps().is_empty());
}

/// Issue 14 through podman: a container on two bridge networks (its
/// published port on eth0's), connected to a macvlan network while it
/// runs (reached there directly from the parent's segment), and nothing
/// left after `podman rm`. (Not macvlan first with a published port on the
/// bridge: the outside's replies would leave by the macvlan's subnet
/// route, bypassing the DNAT, as they would with Docker.)
#[test]
fn podman_container_on_two_networks_and_a_connected_third() {
    let h = Host::new();
    h.outside();
    h.macvlan_network("mv");
    ok(h.ocinet(&["network", "create", "front", "--subnet", "10.61.0.0/24"]));
    ok(h.ocinet(&["network", "create", "back", "--subnet", "10.62.0.0/24"]));
    let www = h.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), "hello from two\n").expect("index");
    let vol = format!("{}:/www:ro", www.display());
    let root = rootfs();
    let args = [
        &[
            "run",
            "-d",
            "--name",
            "twoweb",
            "--network",
            "none",
            "--annotation",
            // podman splits --annotation values at commas (a CSV
            // string slice): quoted, the comma list stays one value.
            "\"io.ocinet.network=front,back\"",
            "--annotation",
            "io.ocinet.ports=8080:80",
            "-v",
            &vol,
        ],
        ULIMITS,
        &["--rootfs", &root, "httpd", "-f", "-p", "80", "-h", "/www"],
    ]
    .concat();
    let id = ok(h.podman(&args)).trim().to_string();
    let atts = |h: &Host| {
        h.endpoint(&id)
            .and_then(|e| e["attachments"].as_array().cloned())
            .unwrap_or_default()
    };
    let a = atts(&h);
    let got: Vec<(&str, &str)> = a
        .iter()
        .map(|x| {
            (
                x["network"].as_str().unwrap_or(""),
                x["interface"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(got, [("front", "eth0"), ("back", "eth1")], "{a:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let via_port = ok(h.exec_outside(&[
        "timeout",
        "3",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{HOST_LINK_IP}:8080/"),
    ]));
    assert_eq!(via_port.trim(), "hello from two");
    let out = ok(h.ocinet(&["network", "connect", "mv", &id]));
    assert!(out.starts_with("eth2 198.51.100."), "{out}");
    let mv_ip = atts(&h)[2]["ip"].as_str().unwrap_or_default().to_string();
    let direct = ok(h.exec_outside(&[
        "timeout",
        "3",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{mv_ip}/"),
    ]));
    assert_eq!(direct.trim(), "hello from two");
    assert_eq!(atts(&h).len(), 3);
    ok(h.podman(&["stop", "--time", "1", "twoweb"]));
    ok(h.podman(&["rm", "twoweb"]));
    let left = h.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
    for net in ["front", "back", "mv"] {
        assert!(h.leases(net).is_empty(), "{net}: {:?}", h.leases(net));
    }
    // Retired by poststop, the pairs go with the container's namespace, in
    // the kernel's own worker: after `podman rm`, not necessarily before.
    assert!(h.reaped(), "retired veths left: {:?}", h.retired_links());
    assert_eq!(
        h.links("veth")
            .iter()
            .filter(|l| l.starts_with("oc"))
            .count(),
        0,
        "{:?}",
        h.links("veth")
    );
    assert!(h.ps().is_empty());
}

/// Issue 15 through podman (hooks.d, crun): two containers on a
/// DNS-enabled network resolve each other by name through the resolv.conf
/// the hook puts in each; `podman rm` leaves nothing, and the resolver ends.
#[test]
fn podman_containers_resolve_each_other_by_name() {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "named",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        "198.51.100.2",
    ]));
    let root = rootfs();
    let run = |name: &str| {
        let ann = format!("io.ocinet.name={name}");
        let args = [
            &["run", "-d", "--name", name, "--network", "none"][..],
            &[
                "--annotation",
                "io.ocinet.network=named",
                "--annotation",
                &ann,
            ],
            ULIMITS,
            &["--rootfs", &root, "sleep", "60"],
        ]
        .concat();
        ok(h.podman(&args)).trim().to_string()
    };
    let a = run("dns-a");
    let _b = run("dns-b");
    let a_ip = h
        .endpoint(&a)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .expect("a's address");
    let out = text(&h.podman(&["exec", "dns-b", "/bin/busybox", "nslookup", "dns-a"]));
    assert!(out.contains(&format!("Address: {a_ip}")), "{out}");
    let conf = text(&h.podman(&["exec", "dns-b", "/bin/busybox", "cat", "/etc/resolv.conf"]));
    assert!(conf.contains("nameserver 10.64.0.1"), "{conf}");
    for n in ["dns-a", "dns-b"] {
        ok(h.podman(&["rm", "--force", "--time", "0", n]));
    }
    assert!(h.ps().is_empty(), "{:?}", h.ps());
    assert!(h.resolver_ended(), "resolver outlived the containers");
}
