//! Issue 14: several networks per container (`io.ocinet.network=a,b`),
//! `ocinet network connect` / `disconnect` of a running container, and
//! what `ps`, `network inspect` and the exporter show of each attachment.
//! Observed through ocinet's own interfaces (`ps --json`, `inspect`).

use std::process::Command;

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Container, Host, Runtime, Spec, EXPORTER_ADDR,
    HOST_LINK_IP,
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

fn started(h: &Host, rt: Runtime, tag: &str, spec: &Spec) -> Container {
    let c = h.start(rt, tag, spec);
    assert!(c.exit.is_none(), "{tag}: {}", c.output());
    c
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
    let mut c = started(&h, rt, "two", &two);
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
    let b = started(
        &h,
        rt,
        "onback",
        &Spec::default().ann("io.ocinet.network", "back"),
    );
    let f = started(
        &h,
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
    let c = started(
        &h,
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
    let mut c = started(
        &h,
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
    let mut c = started(&h, rt, "conn", &spec);
    let peer = started(
        &h,
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
    let f = started(
        &h,
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
        let log = std::fs::read_to_string(h.state_dir().join("ocinet.log")).unwrap_or_default();
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

both_runtimes!(
    eth0_and_eth1_on_two_networks,
    default_route_skips_internal_networks,
    connect_and_disconnect_a_running_container,
    disconnecting_the_default_route_hands_it_over,
    bad_network_lists_are_refused_by_name,
);
