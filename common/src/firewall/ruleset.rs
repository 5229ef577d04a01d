//! The table's fixed skeleton and the per-network elements, as nftables JSON.
//! Written as JSON rather than through expression builders because it reads
//! like the nft rules it stands for; it is still checked against the
//! `nftables` crate's schema before it reaches `nft`.

use serde_json::{json, Value};

use crate::model::Network;

pub const TABLE: &str = "ocinet";
pub const FAMILY: &str = "inet";

/// Sets the rules consult. Every network adds elements to these.
pub const SET_BRIDGES: &str = "bridges";
pub const SET_INTERNAL_BRIDGES: &str = "internal_bridges";
pub const SET_BRIDGE_SELF: &str = "bridge_self";
pub const SET_MASQ_SUBNETS: &str = "masq_subnets";

fn set(name: &str, ty: Value, interval: bool) -> Value {
    let mut s = json!({"family": FAMILY, "table": TABLE, "name": name, "type": ty});
    if interval {
        s["flags"] = json!(["interval"]);
    }
    json!({"add": {"set": s}})
}

fn chain(name: &str, ty: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name,
        "type": ty, "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn flush_chain(name: &str) -> Value {
    json!({"flush": {"chain": {"family": FAMILY, "table": TABLE, "name": name}}})
}

fn rule(chain: &str, expr: Value) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn is(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn is_not(left: Value, right: Value) -> Value {
    json!({"match": {"op": "!=", "left": left, "right": right}})
}

fn set_ref(name: &str) -> Value {
    Value::String(format!("@{name}"))
}

/// The table, its sets and chains, and the fixed rules. Chains are flushed
/// and refilled in the same transaction, so the rules are always exactly
/// these, whatever was there before, and no packet sees a half state.
pub fn skeleton() -> Vec<Value> {
    let accept = json!({"accept": null});
    let drop = json!({"drop": null});
    vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        set(SET_BRIDGES, json!("ifname"), false),
        set(SET_INTERNAL_BRIDGES, json!("ifname"), false),
        set(SET_BRIDGE_SELF, json!(["ifname", "ifname"]), false),
        set(SET_MASQ_SUBNETS, json!("ipv4_addr"), true),
        chain("forward", "filter", "forward", 0),
        chain("postrouting", "nat", "postrouting", 100),
        flush_chain("forward"),
        flush_chain("postrouting"),
        // Replies to connections that were allowed.
        rule("forward", json!([
            {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
            accept.clone()])),
        // Within one network (bridged frames pass here because bridge
        // netfilter is on, with the bridge as both in and out interface).
        rule("forward", json!([
            is(json!({"concat": [meta("iifname"), meta("oifname")]}), set_ref(SET_BRIDGE_SELF)),
            accept.clone()])),
        // --internal networks: nothing in or out beyond their own bridge.
        rule("forward", json!([is(meta("iifname"), set_ref(SET_INTERNAL_BRIDGES)), drop.clone()])),
        rule("forward", json!([is(meta("oifname"), set_ref(SET_INTERNAL_BRIDGES)), drop.clone()])),
        // Isolation: one ocinet network never forwards to another.
        rule("forward", json!([
            is(meta("iifname"), set_ref(SET_BRIDGES)),
            is(meta("oifname"), set_ref(SET_BRIDGES)),
            drop])),
        // Outbound masquerade, not for traffic staying on an ocinet bridge.
        rule("postrouting", json!([
            is(json!({"payload": {"protocol": "ip", "field": "saddr"}}), set_ref(SET_MASQ_SUBNETS)),
            is_not(meta("oifname"), set_ref(SET_BRIDGES)),
            {"masquerade": null}])),
    ]
}

/// The elements a network contributes: (set name, element).
pub fn network_elements(n: &Network) -> Vec<(&'static str, Value)> {
    let mut out = vec![
        (SET_BRIDGES, json!(n.bridge)),
        (SET_BRIDGE_SELF, json!({"concat": [n.bridge, n.bridge]})),
    ];
    if n.internal {
        out.push((SET_INTERNAL_BRIDGES, json!(n.bridge)));
    } else {
        out.push((
            SET_MASQ_SUBNETS,
            json!({"prefix": {"addr": n.subnet.network().to_string(), "len": n.subnet.prefix_len()}}),
        ));
    }
    out
}

pub fn element(verb: &str, set: &str, elem: &Value) -> Value {
    json!({verb: {"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": [elem]}}})
}
