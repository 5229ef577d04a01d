//! Issue 14 (Docker's `network create` options): auxiliary addresses that
//! IPAM never hands out, and a network's default host address for
//! published ports.

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, HOST_LINK_IP,
};

fn inspect(h: &Host, net: &str) -> serde_json::Value {
    serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).unwrap_or_default()
}

#[track_caller]
fn refused(h: &Host, args: &[&str], why: &[&str]) {
    ocinet_integration::refused(h.ocinet(args), why);
}

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

fn aux_addresses_are_never_handed_out(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "aux",
        "--subnet",
        "10.68.0.0/24",
        "--aux-address",
        "router=10.68.0.2",
        "--aux-address",
        "dns=10.68.0.3",
    ]));
    let cfg = &inspect(&h, "aux")[0]["IPAM"]["Config"][0]["AuxiliaryAddresses"];
    assert_eq!(cfg["router"], "10.68.0.2", "{cfg}");
    assert_eq!(cfg["dns"], "10.68.0.3", "{cfg}");
    let on_aux = Spec::default().ann("io.ocinet.network", "aux");
    let c = h.start(rt, "first", &on_aux);
    assert!(c.exit.is_none(), "{}", c.output());
    assert_eq!(ip_of(&h, &c.id), "10.68.0.4");
    let bad = h.start(
        rt,
        "onaux",
        &on_aux.clone().ann("io.ocinet.ip", "10.68.0.2"),
    );
    assert!(bad.exit.is_some_and(|s| !s.success()));
    let log = h.log();
    assert!(
        log.contains(
            "invalid io.ocinet.ip \"10.68.0.2\": is the network's auxiliary address router"
        ),
        "{log}"
    );
    assert_clean(&h, &bad.id);

    let create = |aux: &str| {
        vec![
            "network",
            "create",
            "bad",
            "--subnet",
            "10.69.0.0/24",
            "--aux-address",
        ]
        .into_iter()
        .chain([aux])
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    for (aux, why) in [
        ("router", "invalid aux-address \"router\": must be NAME=IP"),
        (
            "router=10.69.0.x",
            "\"router=10.69.0.x\": not an IPv4 address",
        ),
        (
            "far=10.70.0.2",
            "\"far=10.70.0.2\": is outside the subnet 10.69.0.0/24",
        ),
        ("gw=10.69.0.1", "\"gw=10.69.0.1\": is the gateway address"),
        ("a/b=10.69.0.5", "invalid aux-address name \"a/b\""),
    ] {
        let args = create(aux);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&h, &args, &[why]);
    }
    refused(
        &h,
        &[
            "network",
            "create",
            "bad",
            "--subnet",
            "10.69.0.0/24",
            "--aux-address",
            "a=10.69.0.5",
            "--aux-address",
            "b=10.69.0.5",
        ],
        &["10.69.0.5 is already given as a"],
    );
    assert!(!ok(h.ocinet(&["network", "ls"])).contains("bad"));
    refused(
        &h,
        &[
            "network",
            "create",
            "bad",
            "--subnet",
            "10.69.0.0/24",
            "--internal",
            "--host-binding-ip",
            "127.0.0.1",
        ],
        &["invalid host-binding-ip \"127.0.0.1\": does nothing on an --internal network"],
    );
    refused(
        &h,
        &[
            "network",
            "create",
            "bad",
            "--subnet",
            "10.69.0.0/24",
            "--internal",
            "--gateway-mode",
            "nat-unprotected",
        ],
        &["invalid gateway-mode \"nat-unprotected\": does nothing on an --internal network"],
    );
}

fn host_binding_ip_is_the_default_host_address(rt: Runtime) {
    let h = Host::new();
    h.outside();
    ok(h.ocinet(&[
        "network",
        "create",
        "local",
        "--subnet",
        "10.71.0.0/24",
        "--host-binding-ip",
        "127.0.0.1",
    ]));
    assert_eq!(
        inspect(&h, "local")[0]["Options"]["host_binding_ipv4"],
        "127.0.0.1"
    );
    let c = h.start(
        rt,
        "bound",
        &Spec::default()
            .ann("io.ocinet.network", "local")
            .ann("io.ocinet.ports", "8080:80,127.0.0.1:8081:80"),
    );
    assert!(c.exit.is_none(), "{}", c.output());
    answers(h.wget("http://127.0.0.1:8080/"), &c.id);
    let o = h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/"));
    assert!(!o.status.success(), "answered from outside: {}", text(&o));
    // The claim is on that address only: the port stays free elsewhere.
    let other = h.start(
        rt,
        "elsewhere",
        &Spec::default().ann("io.ocinet.ports", &format!("{HOST_LINK_IP}:8080:80")),
    );
    assert!(other.exit.is_none(), "{}", other.output());
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &other.id,
    );
    assert_eq!(
        inspect(&h, "ocinet")[0]["Options"]["host_binding_ipv4"],
        "0.0.0.0"
    );
    let ps = ok(h.ocinet(&["ps"]));
    assert!(ps.contains("127.0.0.1:8080:80/tcp"), "{ps}");
    refused(
        &h,
        &[
            "network",
            "create",
            "far",
            "--subnet",
            "10.72.0.0/24",
            "--host-binding-ip",
            "192.0.2.99",
        ],
        &["invalid host-binding-ip \"192.0.2.99\": is not an address of this host"],
    );
}

/// Configuration management links files into /etc: a network definition
/// may be a symlink (the state directory's files may not).
fn a_symlinked_network_definition_is_read(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&["network", "create", "linked", "--subnet", "10.73.0.0/24"]));
    let def = h.config_dir().join("networks").join("linked.json");
    let kept = h.dir.join("linked-definition.json");
    std::fs::rename(&def, &kept).expect("move");
    std::os::unix::fs::symlink(&kept, &def).expect("symlink");
    let c = h.start(
        rt,
        "linked",
        &Spec::default().ann("io.ocinet.network", "linked"),
    );
    assert!(c.exit.is_none(), "{}", c.output());
    assert!(ip_of(&h, &c.id).starts_with("10.73.0."));
}

both_runtimes!(
    a_symlinked_network_definition_is_read,
    aux_addresses_are_never_handed_out,
    host_binding_ip_is_the_default_host_address,
);
