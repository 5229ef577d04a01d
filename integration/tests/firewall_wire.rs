//! Elements reach the kernel two ways: a hook call sends them over nf_tables
//! netlink (its own encoding), `ocinet firewall reload` declares them
//! through `nft`. Both must leave exactly the same elements, as `nft` lists
//! them, for every kind of set and map: otherwise the fast path's encoding
//! is wrong somewhere `nft` would have got it right.

use std::collections::BTreeMap;

use ocinet_integration::{ok, Host};
use serde_json::{json, Value};

/// Every set and map in ocinet's tables, element lists as `nft` shows them.
fn elements_by_set(h: &Host) -> BTreeMap<String, Vec<String>> {
    let o = h.exec(&["nft", "-j", "list", "ruleset"]);
    assert!(o.status.success(), "nft list ruleset");
    let v: Value = serde_json::from_slice(&o.stdout).expect("nft json");
    let mut out = BTreeMap::new();
    for s in v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("set").or_else(|| o.get("map")))
        .filter(|s| s["table"] == "ocinet")
        // The layout marker: every hook call touches it, a rebuild does not.
        .filter(|s| !s["name"].as_str().unwrap_or("").starts_with("schema_"))
    {
        let mut elems: Vec<String> = s["elem"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        elems.sort();
        out.insert(
            format!(
                "{} {}",
                s["family"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or("")
            ),
            elems,
        );
    }
    out
}

#[test]
fn netlink_elements_match_what_nft_declares() {
    let h = Host::new();
    // A second network (its own subnet: masq_subnets interval elements,
    // bridge_self pairs) and an internal one (internal_bridges).
    ok(h.ocinet(&["network", "create", "wire2", "--subnet", "10.123.0.0/24"]));
    ok(h.ocinet(&[
        "network",
        "create",
        "wire3",
        "--subnet",
        "10.124.0.0/25",
        "--internal",
    ]));
    let a = h.bare_container(
        "wire-a",
        json!({"io.ocinet.ports": "8080:80,127.0.0.1:5353:53/udp,9000-9001:9000-9001/tcp"}),
    );
    let b = h.bare_container(
        "wire-b",
        json!({"io.ocinet.network": "wire2", "io.ocinet.ports": "8443:443"}),
    );
    let c = h.bare_container("wire-c", json!({"io.ocinet.network": "wire3"}));
    // The skeleton first, so that every element below comes over netlink
    // (the first hook call would otherwise build the table through nft).
    ok(h.ocinet(&["firewall", "reload"]));
    for x in [&a, &b, &c] {
        ok(h.hook("createRuntime", &x.state, &[]));
    }
    let by_netlink = elements_by_set(&h);
    // Something of every kind is there, so the comparison covers it.
    for set in [
        "inet bridges",
        "inet internal_bridges",
        "inet bridge_self",
        "inet masq_subnets",
        "inet pub_any_addr",
        "inet pub_any_port",
        "inet pub_ip_addr",
        "inet pub_ip_port",
        "bridge guarded_ports",
        "bridge port_mac",
        "bridge port_ip",
    ] {
        assert!(
            by_netlink.get(set).is_some_and(|e| !e.is_empty()),
            "no elements in {set}: {by_netlink:#?}"
        );
    }
    assert_eq!(by_netlink["inet masq_subnets"].len(), 2, "{by_netlink:#?}");

    ok(h.ocinet(&["firewall", "reload"]));
    let mut by_netlink = by_netlink;
    let mut by_nft = elements_by_set(&h);
    // dnat_seen is the packet path's: no connection yet, so empty; a rebuild
    // cannot know, so it assumes one for each publishing container.
    let seen_by_hooks = by_netlink.remove("inet dnat_seen");
    assert_eq!(seen_by_hooks, Some(vec![]), "{by_netlink:#?}");
    let mut publishing: Vec<String> = [&a, &b]
        .iter()
        .map(|x| json!(h.endpoint(&x.id).expect("record")["ip"]).to_string())
        .collect();
    publishing.sort();
    assert_eq!(
        by_nft.remove("inet dnat_seen"),
        Some(publishing),
        "a rebuild records every publishing container"
    );
    assert_eq!(
        by_netlink, by_nft,
        "netlink-made elements differ from nft's"
    );

    // Deletion over netlink takes away exactly what nft would not have
    // declared for the remaining containers.
    let veth = h.host_veth(&a.id);
    ok(h.hook("poststop", &a.stopped_state(), &[]));
    let after_delete = elements_by_set(&h);
    ok(h.ocinet(&["firewall", "reload"]));
    assert_eq!(after_delete, elements_by_set(&h), "after a teardown");
    assert!(
        !after_delete.values().flatten().any(|e| e.contains(&veth)),
        "{veth} left in {after_delete:#?}"
    );
    // Its dnat_seen record went over netlink too, after the conntrack walk.
    assert_eq!(after_delete["inet dnat_seen"].len(), 1, "{after_delete:#?}");

    // Removing a network takes its interval out of masq_subnets.
    ok(h.hook("poststop", &b.stopped_state(), &[]));
    ok(h.ocinet(&["network", "rm", "wire2"]));
    let gone = elements_by_set(&h);
    assert!(
        !gone["inet masq_subnets"]
            .iter()
            .any(|e| e.contains("10.123.0.0")),
        "{gone:#?}"
    );
    ok(h.hook("poststop", &c.stopped_state(), &[]));
}
