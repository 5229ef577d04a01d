//! Issue 14: several networks per container (`io.ocinet.network=a,b`),
//! `ocinet network connect` / `disconnect` of a running container, and
//! what `ps`, `network inspect` and the exporter show of each attachment.
//! Observed through ocinet's own interfaces (`ps --json`, `inspect`).

use std::process::Command;

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Host, Runtime, Spec, EXPORTER_ADDR,
    HOST_LINK_IP, OUTSIDE_IP,
};
use serde_json::Value;

const FRONT: &str = "10.61.0";
const BACK: &str = "10.62.0";

fn networks(h: &Host) {
    ok(h.ocinet(&[
        "network",
        "create",
        "front",
        "--subnet",
        &format!("{FRONT}.0/24"),
    ]));
    ok(h.ocinet(&[
        "network",
        "create",
        "back",
        "--subnet",
        &format!("{BACK}.0/24"),
    ]));
}

/// The attachments `ps --json` shows for `id`.
fn attachments(h: &Host, id: &str) -> Vec<Value> {
    h.endpoint(id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default()
}

fn attachment<'a>(atts: &'a [Value], network: &str) -> &'a Value {
    atts.iter()
        .find(|a| a["network"] == network)
        .unwrap_or_else(|| panic!("no attachment on {network}: {atts:?}"))
}

/// `ip` in the container's namespace (the host's iproute2).
fn ip_in(h: &Host, id: &str, args: &[&str]) -> String {
    ok(Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(id)))
        .arg("ip")
        .args(args)
        .output()
        .expect("ip"))
}

fn pings(h: &Host, from: &str, to: &str) -> bool {
    h.in_container(from, &["ping", "-c", "1", "-W", "1", to])
        .status
        .success()
}

/// The host ends of `id`'s veths, while it runs.
fn host_veths(h: &Host, id: &str) -> Vec<String> {
    attachments(h, id)
        .iter()
        .filter_map(|a| a["host_interface"].as_str().map(str::to_string))
        .collect()
}

/// Nothing of `id` is left, and none of the veths it had (`veths`, taken
/// while it ran) nor firewall elements naming them.
#[track_caller]
fn all_gone(h: &Host, id: &str, veths: &[String]) {
    assert_clean(h, id);
    let links = h.links("veth");
    let elements: Vec<String> = h.nft_elements().iter().map(Value::to_string).collect();
    for v in veths {
        assert!(!links.contains(v), "veth {v} of {id} left: {links:?}");
        let quoted = format!("\"{v}\"");
        assert!(
            !elements.iter().any(|e| e.contains(&quoted)),
            "element of {v} left: {elements:?}"
        );
    }
}

fn scrape(h: &Host) -> String {
    ok(h.exec(&["curl", "-sf", &format!("http://{EXPORTER_ADDR}/metrics")]))
}

/// The exporter's series of `metric` for `id` on `interface`.
fn series(metrics: &str, metric: &str, id: &str, interface: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| l.contains(&format!("container_id=\"{id}\"")))
        .filter(|l| l.contains(&format!("interface=\"{interface}\"")))
        .map(str::to_string)
        .collect()
}

fn eth0_and_eth1_on_two_networks(rt: Runtime) {
    let h = Host::new();
    h.outside();
    networks(&h);
    let two = Spec::default()
        .ann("io.ocinet.network", "front,back")
        .ann("io.ocinet.ip.back", &format!("{BACK}.50"))
        .ann("io.ocinet.ports", "8080:80");
    let mut c = h.started(rt, "two", &two);
    let atts = attachments(&h, &c.id);
    assert_eq!(atts.len(), 2, "{atts:?}");
    let (front, back) = (attachment(&atts, "front"), attachment(&atts, "back"));
    assert_eq!(front["interface"], "eth0");
    assert_eq!(back["interface"], "eth1");
    assert_eq!(back["ip"], format!("{BACK}.50"));
    assert_eq!(
        (
            front["default_route"].as_bool(),
            back["default_route"].as_bool()
        ),
        (Some(true), Some(false)),
        "{atts:?}"
    );
    let front_ip = front["ip"].as_str().unwrap_or_default().to_string();
    assert!(front_ip.starts_with(FRONT), "{front_ip}");
    // Inside: both addresses, one default route (via front's gateway),
    // back's subnet through eth1.
    let addrs = ip_in(&h, &c.id, &["-4", "-o", "addr"]);
    assert!(addrs.contains(&format!("inet {front_ip}/24")), "{addrs}");
    assert!(addrs.contains(&format!("inet {BACK}.50/24")), "{addrs}");
    let routes = ip_in(&h, &c.id, &["-4", "route"]);
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    assert!(
        routes.contains(&format!("default via {FRONT}.1 dev eth0")),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("{BACK}.0/24 dev eth1")),
        "{routes}"
    );
    // Published ports go to the default route's network.
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    // A neighbour on back reaches it there; one on front only cannot reach
    // back's subnet (isolation between networks holds per attachment).
    let b = h.started(
        rt,
        "onback",
        &Spec::default().ann("io.ocinet.network", "back"),
    );
    let f = h.started(
        rt,
        "onfront",
        &Spec::default().ann("io.ocinet.network", "front"),
    );
    answers(h.wget_from(&b.id, &format!("http://{BACK}.50/")), &c.id);
    answers(h.wget_from(&f.id, &format!("http://{front_ip}/")), &c.id);
    let b_ip = h
        .endpoint(&b.id)
        .map(|e| e["ip"].to_string())
        .unwrap_or_default();
    assert!(
        !pings(&h, &f.id, b_ip.trim_matches('"')),
        "front reached back"
    );
    // inspect shows each network's side of it.
    for (net, iface, ip) in [
        ("front", "eth0", front_ip.clone()),
        ("back", "eth1", format!("{BACK}.50")),
    ] {
        let v: Value =
            serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).unwrap_or_default();
        let me = &v[0]["Containers"][&c.id];
        assert_eq!(me["Interface"], iface, "{v}");
        assert_eq!(me["IPv4Address"], format!("{ip}/24"), "{v}");
    }
    let table = ok(h.ocinet(&["ps"]));
    assert!(
        table.contains("front,back") && table.contains(&format!("{front_ip},{BACK}.50")),
        "{table}"
    );
    let veths = host_veths(&h, &c.id);
    assert_eq!(veths.len(), 2, "{veths:?}");
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
    assert!(!h
        .leases("back")
        .iter()
        .any(|(ip, _)| ip == &format!("{BACK}.50")));
}

fn default_route_skips_internal_networks(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "priv",
        "--internal",
        "--subnet",
        "10.63.0.0/24",
    ]));
    networks(&h);
    let c = h.started(
        rt,
        "int",
        &Spec::default().ann("io.ocinet.network", "priv,front"),
    );
    let atts = attachments(&h, &c.id);
    assert_eq!(
        attachment(&atts, "priv")["default_route"],
        false,
        "{atts:?}"
    );
    assert_eq!(
        attachment(&atts, "front")["default_route"],
        true,
        "{atts:?}"
    );
    let routes = ip_in(&h, &c.id, &["-4", "route"]);
    assert!(
        routes.contains(&format!("default via {FRONT}.1 dev eth1")),
        "{routes}"
    );
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    // Ports on a container whose networks are all internal are refused.
    let p = h.start(
        rt,
        "intpub",
        &Spec::default()
            .ann("io.ocinet.network", "priv")
            .ann("io.ocinet.ports", "8080:80"),
    );
    assert!(p.exit.is_some_and(|s| !s.success()));
    assert_clean(&h, &p.id);
}

/// As Docker does: the default route moves to the next network that can
/// carry it when its network is disconnected.
fn disconnecting_the_default_route_hands_it_over(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    let mut c = h.started(
        rt,
        "hand",
        &Spec::default().ann("io.ocinet.network", "front,back"),
    );
    ok(h.ocinet(&["network", "disconnect", "front", &c.id]));
    let routes = ip_in(&h, &c.id, &["-4", "route"]);
    assert!(
        routes.contains(&format!("default via {BACK}.1 dev eth1")),
        "{routes}"
    );
    let atts = attachments(&h, &c.id);
    assert_eq!(attachment(&atts, "back")["default_route"], true, "{atts:?}");
    // Connected again, front comes back as eth0 without the route.
    ok(h.ocinet(&["network", "connect", "front", &c.id]));
    let atts = attachments(&h, &c.id);
    let front = attachment(&atts, "front");
    assert_eq!(
        (
            front["interface"].as_str(),
            front["default_route"].as_bool()
        ),
        (Some("eth0"), Some(false))
    );
    let routes = ip_in(&h, &c.id, &["-4", "route"]);
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    let veths = host_veths(&h, &c.id);
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
}

fn connect_and_disconnect_a_running_container(rt: Runtime) {
    let h = Host::new();
    h.outside();
    networks(&h);
    let spec = Spec::default()
        .ann("io.ocinet.network", "front")
        .ann("io.ocinet.name", "web-1")
        .ann("io.ocinet.ports", "8080:80");
    let mut c = h.started(rt, "conn", &spec);
    let peer = h.started(
        rt,
        "peer",
        &Spec::default().ann("io.ocinet.network", "back"),
    );
    let peer_ip = h
        .endpoint(&peer.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        !pings(&h, &c.id, &peer_ip),
        "reached back before connecting"
    );
    let mut exporter = h.start_exporter(&[]);
    let before = series(&scrape(&h), "ocinet_container_network_info", &c.id, "eth0");
    assert_eq!(before.len(), 1, "{before:?}");

    // By name, with a static address and an alias.
    let out = ok(h.ocinet(&[
        "network",
        "connect",
        "back",
        "web-1",
        "--ip",
        &format!("{BACK}.60"),
        "--alias",
        "app",
    ]));
    assert!(out.starts_with(&format!("eth1 {BACK}.60/24")), "{out}");
    let atts = attachments(&h, &c.id);
    let back = attachment(&atts, "back");
    assert_eq!(
        (back["interface"].as_str(), back["ip"].as_str()),
        (Some("eth1"), Some(&*format!("{BACK}.60")))
    );
    assert_eq!(back["aliases"], serde_json::json!(["app"]));
    assert_eq!(back["default_route"], false);
    let addrs = ip_in(&h, &c.id, &["-4", "-o", "addr", "show", "eth1"]);
    assert!(addrs.contains(&format!("inet {BACK}.60/24")), "{addrs}");
    assert!(
        pings(&h, &c.id, &peer_ip),
        "connected, yet back is unreachable"
    );
    answers(h.wget_from(&peer.id, &format!("http://{BACK}.60/")), &c.id);
    // Still published on front, and the default route has not moved.
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    let routes = ip_in(&h, &c.id, &["-4", "route"]);
    assert!(
        routes.contains(&format!("default via {FRONT}.1 dev eth0")),
        "{routes}"
    );
    let m = scrape(&h);
    let eth1 = series(&m, "ocinet_container_network_info", &c.id, "eth1");
    assert!(
        eth1.len() == 1 && eth1[0].contains("network=\"back\""),
        "{eth1:?}"
    );
    assert_eq!(
        series(&m, "ocinet_container_network_info", &c.id, "eth0"),
        before
    );
    assert_eq!(
        series(
            &m,
            "ocinet_container_network_receive_bytes_total",
            &c.id,
            "eth1"
        )
        .len(),
        1,
        "{m}"
    );
    let insp = ok(h.ocinet(&["network", "inspect", "back"]));
    assert!(insp.contains(&c.id) && insp.contains("\"app\""), "{insp}");

    // Refusals, each naming what is wrong, changing nothing.
    let refused = |args: &[&str], why: &str| {
        let o = h.ocinet(args);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?} succeeded: {t}");
        assert!(t.contains(why), "{args:?}: {t:?} lacks {why:?}");
    };
    refused(
        &["network", "connect", "back", &c.id],
        "already connected to network back",
    );
    refused(&["network", "connect", "nosuch", &c.id], "nosuch");
    refused(
        &["network", "connect", "back", "nobody"],
        "no ocinet container has that id or name",
    );
    refused(
        &["network", "disconnect", "nosuch", &c.id],
        "network \"nosuch\" does not exist",
    );
    refused(
        &["network", "disconnect", "front", &c.id],
        "carries the published ports",
    );
    refused(&["network", "disconnect", "front", &c.id], "8080:80/tcp");
    let f = h.started(
        rt,
        "onfront",
        &Spec::default().ann("io.ocinet.network", "front"),
    );
    refused(
        &[
            "network",
            "connect",
            "back",
            &f.id,
            "--ip",
            &format!("{BACK}.60"),
        ],
        "already in use",
    );
    refused(
        &[
            "network",
            "connect",
            "back",
            &f.id,
            "--ip",
            &format!("{BACK}.1"),
        ],
        "--ip",
    );
    assert_eq!(attachments(&h, &f.id).len(), 1);
    assert!(!h.leases("back").iter().any(|(_, holder)| holder == &f.id));
    refused(
        &["network", "connect", "front", &peer.id, "--ip", "10.99.0.1"],
        "--ip",
    );
    refused(
        &[
            "network",
            "connect",
            "front",
            &peer.id,
            "--alias",
            "bad/alias",
        ],
        "--alias",
    );
    assert_eq!(attachments(&h, &peer.id).len(), 1);
    assert_eq!(attachments(&h, &c.id).len(), 2);

    let eth1_veth = back["host_interface"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ok(h.ocinet(&["network", "disconnect", "back", &c.id]));
    let atts = attachments(&h, &c.id);
    assert_eq!(atts.len(), 1, "{atts:?}");
    let links = ip_in(&h, &c.id, &["-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
    assert!(!h.links("veth").contains(&eth1_veth));
    assert!(!h.leases("back").iter().any(|(_, holder)| holder == &c.id));
    assert!(
        !pings(&h, &c.id, &peer_ip),
        "disconnected, yet back is reachable"
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    refused(
        &["network", "disconnect", "back", &c.id],
        "is not connected to network back",
    );
    let m = scrape(&h);
    assert!(
        series(&m, "ocinet_container_network_info", &c.id, "eth1").is_empty(),
        "{m}"
    );
    assert_eq!(
        series(&m, "ocinet_container_network_info", &c.id, "eth0"),
        before
    );

    // Connected again: eth1 again; poststop removes it with the rest.
    ok(h.ocinet(&["network", "connect", "back", &c.id]));
    let veths = host_veths(&h, &c.id);
    assert_eq!(veths.len(), 2);
    exporter.terminate();
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
}

fn bad_network_lists_are_refused_by_name(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("io.ocinet.network", "front,front")],
            "invalid io.ocinet.network \"front,front\": names network front twice",
        ),
        (
            &[("io.ocinet.network", "front,bad/name")],
            "invalid io.ocinet.network \"bad/name\"",
        ),
        (
            &[("io.ocinet.network", "front,")],
            "invalid io.ocinet.network",
        ),
        (
            &[
                ("io.ocinet.network", "front,back"),
                ("io.ocinet.ip.other", "10.62.0.9"),
            ],
            "invalid annotation \"io.ocinet.ip.other\": names network \"other\"",
        ),
        (
            &[
                ("io.ocinet.network", "front,back"),
                ("io.ocinet.ip.back", "10.62.0.300"),
            ],
            "invalid io.ocinet.ip.back \"10.62.0.300\": not an IPv4 address",
        ),
        (
            &[
                ("io.ocinet.network", "front,back"),
                ("io.ocinet.ip.back", "10.61.0.9"),
            ],
            "invalid io.ocinet.ip.back \"10.61.0.9\"",
        ),
        (&[("io.ocinet.network", "front,nosuch")], "nosuch"),
    ];
    for (anns, why) in cases {
        let spec = anns.iter().fold(Spec::default(), |s, (k, v)| s.ann(k, v));
        let c = h.start(rt, "bad", &spec);
        assert!(c.exit.is_some_and(|s| !s.success()), "{anns:?} started");
        let log = h.log();
        assert!(log.contains(why), "{anns:?}: log lacks {why:?}: {log}");
        assert_clean(&h, &c.id);
    }
    for net in ["front", "back"] {
        assert!(h.leases(net).is_empty(), "{net}: {:?}", h.leases(net));
    }
    assert_eq!(
        h.links("veth")
            .iter()
            .filter(|l| l.starts_with("oc"))
            .count(),
        0
    );
}

/// `ocinet ARGS` is refused (non-zero exit) and its output says `why`.
#[track_caller]
fn refused_with(h: &Host, args: &[&str], why: &str) -> String {
    let o = h.ocinet(args);
    let t = text(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {t}");
    assert!(t.contains(why), "{args:?}: {t:?} lacks {why:?}");
    t
}

/// Whether the lease entry's holder is container `id` (port claims name
/// `<id>@<network>`; a lease names the container only, but either reads
/// as its holder here).
fn held_by(holder: &str, id: &str) -> bool {
    holder == id
        || holder
            .strip_prefix(id)
            .is_some_and(|rest| rest.starts_with('@'))
}

/// The names of the interfaces inside container `id`.
fn ifnames_in(h: &Host, id: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&ip_in(h, id, &["-j", "link"])).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// The MAC `interface` really has inside container `id`.
fn mac_inside(h: &Host, id: &str, interface: &str) -> String {
    let out = ip_in(h, id, &["-j", "link", "show", interface]);
    let v: Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no MAC for {interface} in {id}: {out}"))
}

/// The host namespace's conntrack entries whose original direction has
/// `ip` as its source (`dir` "-s") or destination ("-d").
fn conntrack(h: &Host, dir: &str, ip: &str) -> Vec<String> {
    let o = h.exec(&["conntrack", "-L", dir, ip]);
    assert!(o.status.success(), "conntrack -L {dir} {ip}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// ocinet's nftables elements (as JSON text) that name `what` as a whole
/// string (an address, a MAC, an interface).
fn elements_naming(h: &Host, what: &str) -> Vec<String> {
    let quoted = format!("\"{what}\"");
    h.nft_elements()
        .iter()
        .map(Value::to_string)
        .filter(|e| e.contains(&quoted))
        .collect()
}

/// Whether `network ls` has a row for network `name`.
fn listed(h: &Host, name: &str) -> bool {
    ok(h.ocinet(&["network", "ls"]))
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn host_pings(h: &Host, to: &str) -> bool {
    h.exec(&["ping", "-c", "1", "-W", "1", to]).status.success()
}

fn outside_pings(h: &Host, to: &str) -> bool {
    h.exec_outside(&["ping", "-c", "1", "-W", "1", to])
        .status
        .success()
}

/// Refusals of connect and disconnect name the value that is wrong (the
/// container, the address) and leave nothing behind: no attachment, no
/// interface inside, no veth, no lease.
fn refusals_name_the_container_and_the_address(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    let mut c = h.started(
        rt,
        "refuse",
        &Spec::default()
            .ann("io.ocinet.network", "front")
            .ann("io.ocinet.name", "web-1"),
    );
    // Unknown containers, as a name and as something shaped like an id
    // (the record of `c` does not stand in for either).
    let ghost = format!("{}-ghost", ocinet_integration::unique_hex());
    for who in ["nobody-here", ghost.as_str()] {
        let why = format!("container \"{who}\": no ocinet container has that id or name");
        for args in [
            ["network", "disconnect", "front", who],
            ["network", "connect", "back", who],
        ] {
            let t = refused_with(&h, &args, &why);
            assert!(!t.contains(&c.id), "{args:?} names another container: {t}");
        }
    }
    assert_eq!(attachments(&h, &c.id).len(), 1);

    let veths = h.links("veth");
    let ifnames = ifnames_in(&h, &c.id);
    let front_ip = format!("{FRONT}.9");
    let cases: [(&str, &str, String); 6] = [
        (
            c.id.as_str(),
            "x",
            "invalid value 'x' for '--ip <IP>'".to_string(),
        ),
        (
            c.id.as_str(),
            "10.62.0.300",
            "invalid value '10.62.0.300' for '--ip <IP>'".to_string(),
        ),
        (
            c.id.as_str(),
            "10.99.0.1",
            format!("invalid --ip \"10.99.0.1\": is outside the subnet {BACK}.0/24"),
        ),
        // An address of the container's other network is not one of back's.
        (
            c.id.as_str(),
            &front_ip,
            format!("invalid --ip \"{front_ip}\": is outside the subnet {BACK}.0/24"),
        ),
        // By name, the same.
        (
            "web-1",
            "10.99.0.1",
            format!("invalid --ip \"10.99.0.1\": is outside the subnet {BACK}.0/24"),
        ),
        // An IPv6 address: the network has no IPv6 subnet (yet).
        (
            c.id.as_str(),
            "fd00::5",
            "invalid --ip \"fd00::5\": network back has no IPv6 subnet".to_string(),
        ),
    ];
    for (who, ip, why) in &cases {
        let args = ["network", "connect", "back", who, "--ip", ip];
        refused_with(&h, &args, why);
        let atts = attachments(&h, &c.id);
        assert!(
            atts.len() == 1 && atts[0]["network"] == "front",
            "{args:?} left an attachment: {atts:?}"
        );
        assert!(
            h.leases("back").is_empty(),
            "{args:?} left a lease: {:?}",
            h.leases("back")
        );
        assert_eq!(ifnames_in(&h, &c.id), ifnames, "{args:?} left an interface");
        assert_eq!(h.links("veth"), veths, "{args:?} left a veth");
        let insp: Value = serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "back"])))
            .unwrap_or_default();
        assert_eq!(
            insp[0]["Containers"],
            serde_json::json!({}),
            "{args:?}: {insp}"
        );
    }
    // Nothing was half done: the same connect with a good address works.
    let out = ok(h.ocinet(&[
        "network",
        "connect",
        "back",
        &c.id,
        "--ip",
        &format!("{BACK}.70"),
    ]));
    assert!(out.starts_with(&format!("eth1 {BACK}.70/24")), "{out}");
    let leases = h.leases("back");
    assert!(
        leases.len() == 1 && leases[0].0 == format!("{BACK}.70") && held_by(&leases[0].1, &c.id),
        "{leases:?}"
    );
    let veths = host_veths(&h, &c.id);
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
}

/// `disconnect` takes the attachment's connections with it: the host's
/// conntrack entries of its address (either direction) go, those of the
/// remaining attachment stay; and so for its nftables elements.
fn disconnect_clears_the_attachments_conntrack_and_elements(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    let mut c = h.started(rt, "ct", &Spec::default().ann("io.ocinet.network", "front"));
    let peer = h.started(
        rt,
        "ctpeer",
        &Spec::default().ann("io.ocinet.network", "back"),
    );
    let peer_ip = h
        .endpoint(&peer.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_default();
    let back_ip = format!("{BACK}.60");
    ok(h.ocinet(&["network", "connect", "back", &c.id, "--ip", &back_ip]));
    let atts = attachments(&h, &c.id);
    let field = |net: &str, f: &str| {
        attachment(&atts, net)[f]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{net} has no {f}: {atts:?}"))
    };
    let (front_ip, front_veth, front_mac) = (
        field("front", "ip"),
        field("front", "host_interface"),
        field("front", "mac"),
    );
    let (back_veth, back_mac) = (field("back", "host_interface"), field("back", "mac"));

    // Connections the host namespace tracks: the host to the container on
    // each network, the container to its neighbour on back, and the
    // neighbour's HTTP request to it.
    assert!(
        host_pings(&h, &back_ip),
        "the host does not reach {back_ip}"
    );
    assert!(
        host_pings(&h, &front_ip),
        "the host does not reach {front_ip}"
    );
    assert!(pings(&h, &c.id, &peer_ip), "{peer_ip} is unreachable");
    answers(h.wget_from(&peer.id, &format!("http://{back_ip}/")), &c.id);
    let to_back = conntrack(&h, "-d", &back_ip);
    let from_back = conntrack(&h, "-s", &back_ip);
    assert!(
        to_back.iter().any(|l| l.contains("icmp")) && to_back.iter().any(|l| l.contains("tcp")),
        "no entries to {back_ip}: {to_back:?}"
    );
    assert!(
        from_back.iter().any(|l| l.contains("icmp")),
        "no entries from {back_ip}: {from_back:?}"
    );
    assert!(
        !conntrack(&h, "-d", &front_ip).is_empty(),
        "no entries to {front_ip}"
    );
    for what in [
        &back_ip,
        &back_veth,
        &back_mac,
        &front_ip,
        &front_veth,
        &front_mac,
    ] {
        assert!(
            !elements_naming(&h, what).is_empty(),
            "no element names {what}: {:?}",
            h.nft_elements()
        );
    }

    assert_eq!(
        ok(h.ocinet(&["network", "disconnect", "back", &c.id])),
        "eth1\n"
    );
    let to_back = conntrack(&h, "-d", &back_ip);
    let from_back = conntrack(&h, "-s", &back_ip);
    assert!(
        to_back.is_empty() && from_back.is_empty(),
        "conntrack entries of {back_ip} left: {to_back:?} {from_back:?}"
    );
    // The remaining attachment's connections are its own.
    assert!(
        !conntrack(&h, "-d", &front_ip).is_empty(),
        "the entries of {front_ip} went too"
    );
    for gone in [&back_ip, &back_veth, &back_mac] {
        let left = elements_naming(&h, gone);
        assert!(left.is_empty(), "elements naming {gone} left: {left:?}");
    }
    for kept in [&front_ip, &front_veth, &front_mac, &peer_ip] {
        assert!(
            !elements_naming(&h, kept).is_empty(),
            "the elements of {kept} went too: {:?}",
            h.nft_elements()
        );
    }
    assert!(!h.links("veth").contains(&back_veth));
    let veths = host_veths(&h, &c.id);
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
}

/// A macvlan attachment of a container on a bridge network, disconnected:
/// its interface, address and lease go; the bridge attachment is all
/// that is left, and poststop leaves nothing.
fn macvlan_disconnect_leaves_only_the_bridge(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    let parent = h.macvlan_network("mv");
    let mut c = h.started(
        rt,
        "mvdis",
        &Spec::default().ann("io.ocinet.network", "front"),
    );
    let out = ok(h.ocinet(&["network", "connect", "mv", &c.id]));
    let atts = attachments(&h, &c.id);
    assert_eq!(atts.len(), 2, "{atts:?}");
    let mv = attachment(&atts, "mv");
    assert_eq!(mv["interface"], "eth1", "{atts:?}");
    assert_eq!(mv["parent"], parent.as_str(), "{atts:?}");
    assert_eq!(mv["default_route"], false, "{atts:?}");
    let mv_ip = mv["ip"].as_str().unwrap_or_default().to_string();
    let octets: Vec<u8> = mv_ip.split('.').filter_map(|o| o.parse().ok()).collect();
    assert!(
        octets.len() == 4 && octets[..3] == [198, 51, 100] && octets[3] >= 128,
        "{mv_ip} is not of mv's range"
    );
    assert!(out.starts_with(&format!("eth1 {mv_ip}/24")), "{out}");
    assert!(
        h.leases("mv")
            .iter()
            .any(|(ip, holder)| ip == &mv_ip && held_by(holder, &c.id)),
        "{:?}",
        h.leases("mv")
    );
    let addrs = ip_in(&h, &c.id, &["-4", "-o", "addr", "show", "eth1"]);
    assert!(addrs.contains(&format!("inet {mv_ip}/24")), "{addrs}");
    // A host of the segment: the outside reaches it directly.
    assert!(
        outside_pings(&h, &mv_ip),
        "the outside does not reach {mv_ip}"
    );
    let veths = host_veths(&h, &c.id);
    assert_eq!(veths.len(), 1, "a macvlan has no host end: {veths:?}");

    assert_eq!(
        ok(h.ocinet(&["network", "disconnect", "mv", &c.id])),
        "eth1\n"
    );
    let names = ifnames_in(&h, &c.id);
    assert!(!names.iter().any(|n| n == "eth1"), "{names:?}");
    assert!(names.iter().any(|n| n == "eth0"), "{names:?}");
    let addrs = ip_in(&h, &c.id, &["-4", "-o", "addr"]);
    assert!(!addrs.contains(&format!("inet {mv_ip}/")), "{addrs}");
    assert!(h.leases("mv").is_empty(), "{:?}", h.leases("mv"));
    let ep = h.endpoint(&c.id).expect("still running");
    let atts = ep["attachments"].as_array().cloned().unwrap_or_default();
    assert!(
        atts.len() == 1
            && atts[0]["network"] == "front"
            && atts[0]["interface"] == "eth0"
            && atts[0]["default_route"] == true,
        "{atts:?}"
    );
    assert_eq!(ep["network"], "front", "{ep}");
    let insp: Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "mv"]))).unwrap_or_default();
    assert_eq!(insp[0]["Containers"], serde_json::json!({}), "{insp}");
    assert!(
        !outside_pings(&h, &mv_ip),
        "{mv_ip} still answers on the segment"
    );
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
    assert!(h.leases("mv").is_empty(), "{:?}", h.leases("mv"));
    assert!(h.links("veth").contains(&parent), "the parent went away");
}

/// The MAC `ps --json` and `network inspect` show for each attachment is
/// the one its interface has inside the container (a bridge attachment
/// made at setup, one connected later, a macvlan one).
fn ps_and_inspect_show_the_macs_the_interfaces_have(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    h.macvlan_network("mv");
    let mut c = h.started(
        rt,
        "macs",
        &Spec::default().ann("io.ocinet.network", "front"),
    );
    ok(h.ocinet(&["network", "connect", "back", &c.id]));
    ok(h.ocinet(&["network", "connect", "mv", &c.id]));
    let ep = h.endpoint(&c.id).expect("endpoint");
    let atts = ep["attachments"].as_array().cloned().unwrap_or_default();
    assert_eq!(atts.len(), 3, "{atts:?}");
    let mut real = Vec::new();
    for a in &atts {
        let (net, iface) = (
            a["network"].as_str().unwrap_or_default(),
            a["interface"].as_str().unwrap_or_default(),
        );
        let mac = mac_inside(&h, &c.id, iface);
        assert_eq!(a["mac"], mac.as_str(), "ps --json, {net} ({iface}): {a}");
        let v: Value =
            serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).unwrap_or_default();
        let me = &v[0]["Containers"][&c.id];
        assert_eq!(me["Interface"], iface, "{v}");
        assert_eq!(me["MacAddress"], mac.as_str(), "inspect {net}: {v}");
        real.push((iface.to_string(), mac));
    }
    let eth0 = real
        .iter()
        .find(|(i, _)| i == "eth0")
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    assert_eq!(ep["mac"], eth0.as_str(), "{ep}");
    let mut macs: Vec<&String> = real.iter().map(|(_, m)| m).collect();
    macs.sort();
    macs.dedup();
    assert_eq!(macs.len(), 3, "{real:?}");
    let table = ok(h.ocinet(&["ps"]));
    let in_order: Vec<String> = atts
        .iter()
        .filter_map(|a| a["mac"].as_str().map(str::to_string))
        .collect();
    assert!(table.contains(&in_order.join(",")), "{table}");
    let veths = host_veths(&h, &c.id);
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
}

/// The packets counted so far by the rule of the outside's `watch` chain
/// that matches `selector` (e.g. "ip saddr 10.62.0.0/24").
fn outside_count(h: &Host, selector: &str) -> u64 {
    let rules = ok(h.exec_outside(&["nft", "list", "chain", "ip", "watch", "in"]));
    rules
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(selector))
        .and_then(|l| l.split("packets ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter for {selector}: {rules}"))
}

/// An `--internal` network as a container's second attachment stays
/// closed: the container reaches the outside through its first network,
/// never through the internal one, and a container only on the internal
/// network reaches nothing outside, even with a route of its own. The
/// outside routes the internal subnet back to the host, so only ocinet's
/// firewall stands in the way; a counter there sees nothing of it.
fn an_internal_second_network_stays_closed(rt: Runtime) {
    let h = Host::new();
    h.outside();
    ok(h.ocinet(&[
        "network",
        "create",
        "front",
        "--subnet",
        &format!("{FRONT}.0/24"),
    ]));
    ok(h.ocinet(&[
        "network",
        "create",
        "back",
        "--internal",
        "--subnet",
        &format!("{BACK}.0/24"),
    ]));
    ok(h.exec_outside(&[
        "ip",
        "route",
        "add",
        &format!("{BACK}.0/24"),
        "via",
        HOST_LINK_IP,
    ]));
    for cmd in [
        &["nft", "add", "table", "ip", "watch"][..],
        &[
            "nft",
            "add",
            "chain",
            "ip",
            "watch",
            "in",
            "{",
            "type",
            "filter",
            "hook",
            "prerouting",
            "priority",
            "0",
            ";",
            "}",
        ],
        &[
            "nft",
            "add",
            "rule",
            "ip",
            "watch",
            "in",
            "ip",
            "saddr",
            &format!("{BACK}.0/24"),
            "counter",
        ],
        &[
            "nft",
            "add",
            "rule",
            "ip",
            "watch",
            "in",
            "ip",
            "saddr",
            HOST_LINK_IP,
            "icmp",
            "type",
            "echo-request",
            "counter",
        ],
    ] {
        ok(h.exec_outside(cmd));
    }
    let server = h.spawn_outside(&[
        "python3",
        "-c",
        ocinet_integration::ECHO_CLIENT_PY,
        OUTSIDE_IP,
        "8001",
    ]);
    let url = format!("http://{OUTSIDE_IP}:8001/");
    let up = (0..100).any(|_| {
        let o = h.wget(&url);
        if !o.status.success() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        o.status.success()
    });
    assert!(up, "the outside's server did not start");
    let mut x = h.started(
        rt,
        "twonets",
        &Spec::default().ann("io.ocinet.network", "front,back"),
    );
    // The gateway address is the host's, on back's bridge (made with the
    // first container): a route via it is a real way out, were it open.
    let v: Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "back"]))).unwrap_or_default();
    let bridge = v[0]["Options"]["bridge"].as_str().unwrap_or_default();
    let on_bridge = ok(h.exec(&["ip", "-4", "-o", "addr", "show", "dev", bridge]));
    assert!(
        on_bridge.contains(&format!("inet {BACK}.1/24")),
        "{bridge}: {on_bridge}"
    );

    let atts = attachments(&h, &x.id);
    assert_eq!(attachment(&atts, "back")["interface"], "eth1", "{atts:?}");
    assert_eq!(
        attachment(&atts, "back")["default_route"],
        false,
        "{atts:?}"
    );
    let x_back = attachment(&atts, "back")["ip"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        pings(&h, &x.id, OUTSIDE_IP),
        "front does not reach the outside"
    );
    let out = text(&h.wget_from(&x.id, &url));
    assert!(out.contains(&format!("from {HOST_LINK_IP}")), "{out}");
    // Forced through back's gateway: nothing gets out.
    let via_back = [
        "route",
        "add",
        &format!("{OUTSIDE_IP}/32"),
        "via",
        &format!("{BACK}.1"),
        "dev",
        "eth1",
    ];
    ip_in(&h, &x.id, &via_back);
    assert!(
        !pings(&h, &x.id, OUTSIDE_IP),
        "reached the outside through internal back"
    );
    assert!(
        !h.wget_from(&x.id, &url).status.success(),
        "HTTP to the outside through internal back"
    );
    ip_in(&h, &x.id, &["route", "del", &format!("{OUTSIDE_IP}/32")]);
    assert!(
        pings(&h, &x.id, OUTSIDE_IP),
        "front no longer reaches the outside"
    );

    let mut y = h.started(
        rt,
        "backonly",
        &Spec::default().ann("io.ocinet.network", "back"),
    );
    let y_ip = h
        .endpoint(&y.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_default();
    let routes = ip_in(&h, &y.id, &["-4", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(
        !pings(&h, &y.id, OUTSIDE_IP),
        "a container only on back reached the outside"
    );
    // Even with a default route of its own via back's gateway.
    ip_in(
        &h,
        &y.id,
        &["route", "add", "default", "via", &format!("{BACK}.1")],
    );
    assert!(
        !pings(&h, &y.id, OUTSIDE_IP),
        "a container only on back reached the outside by its own route"
    );
    assert!(
        !h.wget_from(&y.id, &url).status.success(),
        "a container only on back reached the outside's server"
    );
    // Nor does the outside get in.
    for ip in [&y_ip, &x_back] {
        assert!(!outside_pings(&h, ip), "the outside reached {ip} on back");
    }
    assert_eq!(
        outside_count(&h, &format!("ip saddr {BACK}.0/24")),
        0,
        "packets from back reached the outside"
    );
    assert!(
        outside_count(&h, &format!("ip saddr {HOST_LINK_IP}")) > 0,
        "the counter saw not even front's (masqueraded) pings"
    );
    drop(server);
    for c in [&mut x, &mut y] {
        h.stop(c);
        assert_clean(&h, &c.id);
    }
}

/// A refused `network create` (a malformed --host-binding-ip, one that
/// is no address of this host) names the field and the value and leaves
/// no network: not in `ls`, not for `inspect`, no config, no bridge.
fn refused_network_creates_leave_no_network(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let bridges = h.links("bridge");
    let config_of = |name: &str| h.config_dir().join("networks").join(format!("{name}.json"));
    for (ip, why) in [
        (
            "x",
            "invalid value 'x' for '--host-binding-ip <IP>'".to_string(),
        ),
        (
            "198.51.100.300",
            "invalid value '198.51.100.300' for '--host-binding-ip <IP>'".to_string(),
        ),
        (
            "203.0.113.9",
            "invalid host-binding-ip \"203.0.113.9\": is not an address of this host".to_string(),
        ),
        // The machine's own address is not one of the test's host.
        (
            "192.0.2.2",
            "invalid host-binding-ip \"192.0.2.2\": is not an address of this host".to_string(),
        ),
    ] {
        let args = [
            "network",
            "create",
            "bound",
            "--subnet",
            "10.70.0.0/24",
            "--host-binding-ip",
            ip,
        ];
        refused_with(&h, &args, &why);
        assert!(!listed(&h, "bound"), "{args:?} left a network");
        refused_with(
            &h,
            &["network", "inspect", "bound"],
            "network \"bound\" does not exist",
        );
        assert!(!config_of("bound").exists(), "{args:?} left a config");
        assert_eq!(h.links("bridge"), bridges, "{args:?} left a bridge");
        assert!(h.leases("bound").is_empty());
    }
    // With an address of the host it is made, and is seen where the
    // refused ones were not.
    ok(h.ocinet(&[
        "network",
        "create",
        "bound",
        "--subnet",
        "10.70.0.0/24",
        "--host-binding-ip",
        HOST_LINK_IP,
    ]));
    assert!(listed(&h, "bound"), "{}", ok(h.ocinet(&["network", "ls"])));
    assert!(config_of("bound").exists());
    let v: Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "bound"]))).unwrap_or_default();
    assert_eq!(v[0]["Options"]["host_binding_ipv4"], HOST_LINK_IP, "{v}");
    let mut c = h.started(
        rt,
        "bound",
        &Spec::default()
            .ann("io.ocinet.network", "bound")
            .ann("io.ocinet.ports", "8080:80"),
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    h.stop(&mut c);
    assert_clean(&h, &c.id);
}

/// `io.ocinet.interface.<network>` names the interface on that network;
/// the others keep their position's `ethN`, or the first free one when a
/// given name took it. Bad names are refused naming the annotation, and
/// nothing is left.
fn interfaces_named_per_network(rt: Runtime) {
    let h = Host::new();
    networks(&h);
    let mut c = h.started(
        rt,
        "named",
        &Spec::default()
            .ann("io.ocinet.network", "front,back")
            .ann("io.ocinet.interface.back", "backnet"),
    );
    let names = ifnames_in(&h, &c.id);
    assert!(
        names.contains(&"eth0".to_string()) && names.contains(&"backnet".to_string()),
        "{names:?}"
    );
    let atts = attachments(&h, &c.id);
    assert_eq!(
        attachment(&atts, "back")["interface"],
        "backnet",
        "{atts:?}"
    );
    let back_ip = attachment(&atts, "back")["ip"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let inside = ip_in(&h, &c.id, &["-o", "-4", "addr", "show", "backnet"]);
    assert!(inside.contains(&back_ip), "{inside}");
    // eth0 given to the second network: the first takes eth1.
    let mut d = h.started(
        rt,
        "swapped",
        &Spec::default()
            .ann("io.ocinet.network", "front,back")
            .ann("io.ocinet.interface.back", "eth0"),
    );
    let atts = attachments(&h, &d.id);
    assert_eq!(
        (
            attachment(&atts, "front")["interface"].as_str(),
            attachment(&atts, "back")["interface"].as_str()
        ),
        (Some("eth1"), Some("eth0")),
        "{atts:?}"
    );
    let veths = host_veths(&h, &d.id);
    h.stop(&mut d);
    all_gone(&h, &d.id, &veths);
    // Refused, naming the annotation and the value; nothing left.
    for (k, v, why) in [
        (
            "io.ocinet.interface.back",
            "bad/name",
            "invalid io.ocinet.interface.back \"bad/name\"",
        ),
        (
            "io.ocinet.interface.other",
            "x1",
            "invalid annotation \"io.ocinet.interface.other\"",
        ),
    ] {
        let bad = h.start(
            rt,
            "badname",
            &Spec::default()
                .ann("io.ocinet.network", "front,back")
                .ann(k, v),
        );
        assert!(bad.exit.is_some_and(|s| !s.success()), "{k}={v} started");
        let log = h.log();
        assert!(log.contains(why), "{why} not in the log");
        assert!(h.endpoint(&bad.id).is_none(), "{k}={v}: a record left");
        assert_clean(&h, &bad.id);
    }
    let veths = host_veths(&h, &c.id);
    h.stop(&mut c);
    all_gone(&h, &c.id, &veths);
}

both_runtimes!(
    interfaces_named_per_network,
    eth0_and_eth1_on_two_networks,
    default_route_skips_internal_networks,
    connect_and_disconnect_a_running_container,
    disconnecting_the_default_route_hands_it_over,
    bad_network_lists_are_refused_by_name,
    refusals_name_the_container_and_the_address,
    disconnect_clears_the_attachments_conntrack_and_elements,
    macvlan_disconnect_leaves_only_the_bridge,
    ps_and_inspect_show_the_macs_the_interfaces_have,
    an_internal_second_network_stays_closed,
    refused_network_creates_leave_no_network,
);
