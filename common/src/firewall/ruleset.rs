//! The table's fixed skeleton and the per-network elements, as nftables JSON.
//! Written as JSON rather than through expression builders because it reads
//! like the nft rules it stands for; it is still checked against the
//! `nftables` crate's schema before it reaches `nft`.

use serde_json::{json, Value};

use crate::model::Network;

pub const TABLE: &str = "ocinet";
/// Bumped whenever the skeleton changes: its marker set is named after it,
/// so a table made by another version fails the fast path and is rebuilt.
pub const SCHEMA_MARKER: &str = "schema_v8";

/// The marker set's one element: touched by every batch, put in by every
/// rebuild, looked up by `Firewall::may_have_dnated`.
pub fn marker_key() -> Value {
    json!(1)
}
pub const FAMILY: &str = "inet";
/// Anti-spoofing lives in a table of the `bridge` family: only there are
/// the bridge port a frame came in by and its Ethernet and ARP headers
/// visible (bridge netfilter shows the inet hooks the bridge, not the port).
pub const BRIDGE_FAMILY: &str = "bridge";

/// The tables ocinet owns, as (family, name).
pub const TABLES: [(&str, &str); 2] = [(FAMILY, TABLE), (BRIDGE_FAMILY, TABLE)];

/// Bridge ports of containers: frames entering by one of these must carry
/// the container's own MAC and IPv4 address.
pub const SET_GUARDED_PORTS: &str = "guarded_ports";
/// port . MAC and port . address pairs a guarded port may send from.
pub const SET_PORT_MAC: &str = "port_mac";
pub const SET_PORT_IP: &str = "port_ip";
/// port . IPv6 address: the one IPv6 source a dual-stack container's
/// port may send from (its leased address; it has no link-local).
pub const SET_PORT_IP6: &str = "port_ip6";
/// bridge . MAC -> the one port that may use it. No rule reads it: it is
/// the kernel's guarantee that a MAC belongs to one port of a bridge, as
/// adding a key that is there with another port fails the transaction
/// (EEXIST), so `port_mac` can never pair one MAC with two ports.
pub const MAP_MAC_OWNER: &str = "mac_owner";

/// Sets the rules consult. Every network adds elements to these.
pub const SET_BRIDGES: &str = "bridges";
pub const SET_INTERNAL_BRIDGES: &str = "internal_bridges";
pub const SET_BRIDGE_SELF: &str = "bridge_self";
pub const SET_MASQ_SUBNETS: &str = "masq_subnets";
/// The IPv6 subnets of networks that are not internal: masqueraded on
/// the way out, and on a hairpin to a published port, as `masq_subnets`
/// is for IPv4.
pub const SET_MASQ_SUBNETS6: &str = "masq_subnets6";
/// subnet . CIDR: a network's traffic to and from those CIDRs is neither
/// masqueraded nor kept out (`--no-masquerade`, Kubernetes'
/// non-masquerade cluster CIDR: pods of other nodes reach these
/// containers at their own addresses, and are reached so).
pub const SET_NO_MASQ: &str = "no_masq";
/// Sources only ocinet's own interfaces lead to: each bridge network's
/// subnet. A packet from one of them that did not come in by an ocinet
/// bridge is forged: the port guards stop forgeries from containers,
/// this stops them from the uplink, where `rp_filter` is off in a new namespace and loose on
/// Debian (issue 21: 150,000 queries sent from outside with a
/// container's source spent its resolver rate limit and were answered
/// into it). Not macvlan containers: they are hosts of their segment,
/// whose traffic may reach the host by any route (and a network without
/// name resolution has no shim route to them at all).
pub const SET_OWN_SOURCES: &str = "own_sources";
/// `own_sources` for the IPv6 subnets of dual-stack bridge networks.
pub const SET_OWN_SOURCES6: &str = "own_sources6";
/// Bridges of `gateway_mode: nat` networks: nothing from outside reaches
/// their containers but replies and published ports.
pub const SET_PROTECTED_BRIDGES: &str = "protected_bridges";
/// The same for IPv6, whose gateway mode may differ from IPv4's
/// (`--gateway-mode-ipv6`).
pub const SET_PROTECTED_BRIDGES6: &str = "protected_bridges6";
/// address . protocol . port: the published container ports of
/// containers on a `routed` network (of that family), which answer from
/// outside at the container's own address, before the protected
/// bridges' drop.
pub const SET_ROUTED_PORTS: &str = "routed_ports";
pub const SET_ROUTED_PORTS6: &str = "routed_ports6";
/// Container addresses that some connection was DNATed to, filled from the
/// packet path. Teardown deletes conntrack entries (a filtered flush, or a
/// walk of the whole table on kernels before 6.5) only for an address
/// found here: a container nobody reached through a published port has no
/// entry to clear.
pub const SET_DNAT_SEEN: &str = "dnat_seen";
/// Its IPv6 twin (a set holds one address family).
pub const SET_DNAT_SEEN6: &str = "dnat_seen6";
/// Published ports on every local address, keyed proto . port: the
/// container address in one map, its port in the other. (nft 1.0.6's JSON
/// cannot declare a map with concatenated data, so no single
/// `: ipv4_addr . inet_service` map.)
pub const MAP_PUB_ANY_ADDR: &str = "pub_any_addr";
pub const MAP_PUB_ANY_PORT: &str = "pub_any_port";
/// Published ports bound to one host address, keyed daddr . proto . port.
pub const MAP_PUB_IP_ADDR: &str = "pub_ip_addr";
pub const MAP_PUB_IP_PORT: &str = "pub_ip_port";
/// The IPv6 twins: published ports of containers with an IPv6 address,
/// on every host IPv6 address (bare, `[::]`) or on one (`[fd00::1]`).
pub const MAP_PUB_ANY_ADDR6: &str = "pub_any_addr6";
pub const MAP_PUB_ANY_PORT6: &str = "pub_any_port6";
pub const MAP_PUB_IP_ADDR6: &str = "pub_ip_addr6";
pub const MAP_PUB_IP_PORT6: &str = "pub_ip_port6";

/// The family of the table a set lives in.
pub fn family_of(set: &str) -> &'static str {
    spec(set).map_or(FAMILY, |s| s.family)
}

/// The type of one field of a set's key, or of a map's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Mark,
    Ifname,
    Ipv4,
    Ipv6,
    EtherAddr,
    InetProto,
    InetService,
}

impl Field {
    pub fn nft_type(self) -> &'static str {
        match self {
            Field::Mark => "mark",
            Field::Ifname => "ifname",
            Field::Ipv4 => "ipv4_addr",
            Field::Ipv6 => "ipv6_addr",
            Field::EtherAddr => "ether_addr",
            Field::InetProto => "inet_proto",
            Field::InetService => "inet_service",
        }
    }
}

/// One set or map of the skeleton: declared from this table, and its
/// elements encoded from it (`elements.rs`), so the two cannot disagree.
#[derive(Debug)]
pub struct SetSpec {
    pub name: &'static str,
    /// The family of the table it lives in.
    pub family: &'static str,
    pub key: &'static [Field],
    pub data: Option<Field>,
    pub interval: bool,
}

const fn set_spec(name: &'static str, key: &'static [Field]) -> SetSpec {
    SetSpec {
        name,
        family: FAMILY,
        key,
        data: None,
        interval: false,
    }
}

const fn map_spec(name: &'static str, key: &'static [Field], data: Field) -> SetSpec {
    SetSpec {
        name,
        family: FAMILY,
        key,
        data: Some(data),
        interval: false,
    }
}

use Field::*;
const PROTO_PORT: &[Field] = &[InetProto, InetService];
const ADDR_PROTO_PORT: &[Field] = &[Ipv4, InetProto, InetService];
const ADDR6_PROTO_PORT: &[Field] = &[Ipv6, InetProto, InetService];

pub const SETS: &[SetSpec] = &[
    set_spec(SCHEMA_MARKER, &[Mark]),
    set_spec(SET_BRIDGES, &[Ifname]),
    set_spec(SET_INTERNAL_BRIDGES, &[Ifname]),
    set_spec(SET_BRIDGE_SELF, &[Ifname, Ifname]),
    SetSpec {
        interval: true,
        ..set_spec(SET_MASQ_SUBNETS, &[Ipv4])
    },
    SetSpec {
        interval: true,
        ..set_spec(SET_MASQ_SUBNETS6, &[Ipv6])
    },
    SetSpec {
        interval: true,
        ..set_spec(SET_NO_MASQ, &[Ipv4, Ipv4])
    },
    set_spec(SET_DNAT_SEEN, &[Ipv4]),
    set_spec(SET_DNAT_SEEN6, &[Ipv6]),
    SetSpec {
        interval: true,
        ..set_spec(SET_OWN_SOURCES, &[Ipv4])
    },
    SetSpec {
        interval: true,
        ..set_spec(SET_OWN_SOURCES6, &[Ipv6])
    },
    set_spec(SET_PROTECTED_BRIDGES, &[Ifname]),
    set_spec(SET_PROTECTED_BRIDGES6, &[Ifname]),
    set_spec(SET_ROUTED_PORTS, ADDR_PROTO_PORT),
    set_spec(SET_ROUTED_PORTS6, ADDR6_PROTO_PORT),
    map_spec(MAP_PUB_ANY_ADDR, PROTO_PORT, Ipv4),
    map_spec(MAP_PUB_ANY_PORT, PROTO_PORT, InetService),
    map_spec(MAP_PUB_IP_ADDR, ADDR_PROTO_PORT, Ipv4),
    map_spec(MAP_PUB_IP_PORT, ADDR_PROTO_PORT, InetService),
    map_spec(MAP_PUB_ANY_ADDR6, PROTO_PORT, Ipv6),
    map_spec(MAP_PUB_ANY_PORT6, PROTO_PORT, InetService),
    map_spec(MAP_PUB_IP_ADDR6, ADDR6_PROTO_PORT, Ipv6),
    map_spec(MAP_PUB_IP_PORT6, ADDR6_PROTO_PORT, InetService),
    in_bridge_table(set_spec(SET_GUARDED_PORTS, &[Ifname])),
    in_bridge_table(set_spec(SET_PORT_MAC, &[Ifname, EtherAddr])),
    in_bridge_table(set_spec(SET_PORT_IP, &[Ifname, Ipv4])),
    in_bridge_table(set_spec(SET_PORT_IP6, &[Ifname, Ipv6])),
    in_bridge_table(map_spec(MAP_MAC_OWNER, &[Ifname, EtherAddr], Ifname)),
];

const fn in_bridge_table(s: SetSpec) -> SetSpec {
    SetSpec {
        family: BRIDGE_FAMILY,
        ..s
    }
}

pub fn spec(set: &str) -> Option<&'static SetSpec> {
    SETS.iter().find(|s| s.name == set)
}

/// Declarations of the sets and maps in `family`'s table.
fn declare_sets(family: &str) -> Vec<Value> {
    SETS.iter()
        .filter(|s| s.family == family)
        .map(|s| {
            let ty = match s.key {
                [one] => json!(one.nft_type()),
                many => json!(many.iter().map(|f| f.nft_type()).collect::<Vec<_>>()),
            };
            let mut decl = json!({"family": family, "table": TABLE, "name": s.name, "type": ty});
            // A set the rules add to (dnat_seen) is flagged dynamic by nft
            // itself; nft 1.0.6's JSON refuses the flag by name.
            if s.interval {
                decl["flags"] = json!(["interval"]);
            }
            match s.data {
                Some(d) => {
                    decl["map"] = json!(d.nft_type());
                    json!({"add": {"map": decl}})
                }
                None => json!({"add": {"set": decl}}),
            }
        })
        .collect()
}

/// `dnat ip to KEY map @ADDR : KEY map @PORT` (`ip6` for `family` "ip6")
fn dnat_via(family: &str, key: Value, addr_map: &str, port_map: &str) -> Value {
    json!({"dnat": {"family": family,
        "addr": {"map": {"key": key.clone(), "data": set_ref(addr_map)}},
        "port": {"map": {"key": key, "data": set_ref(port_map)}}}})
}

fn chain(family: &str, name: &str, ty: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": family, "table": TABLE, "name": name,
        "type": ty, "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn flush_chain(family: &str, name: &str) -> Value {
    json!({"flush": {"chain": {"family": family, "table": TABLE, "name": name}}})
}

fn rule(chain: &str, expr: Value) -> Value {
    rule_in(FAMILY, chain, expr)
}

fn rule_in(family: &str, chain: &str, expr: Value) -> Value {
    json!({"add": {"rule": {"family": family, "table": TABLE, "chain": chain, "expr": expr}}})
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
    let dport = json!({"payload": {"protocol": "th", "field": "dport"}});
    let dnat_ip = dnat_via(
        "ip",
        json!({"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, meta("l4proto"), dport.clone()]}),
        MAP_PUB_IP_ADDR,
        MAP_PUB_IP_PORT,
    );
    let dnat_any = dnat_via(
        "ip",
        json!({"concat": [meta("l4proto"), dport.clone()]}),
        MAP_PUB_ANY_ADDR,
        MAP_PUB_ANY_PORT,
    );
    let daddr6 = json!({"payload": {"protocol": "ip6", "field": "daddr"}});
    let saddr6 = json!({"payload": {"protocol": "ip6", "field": "saddr"}});
    let dnat_ip6 = dnat_via(
        "ip6",
        json!({"concat": [daddr6.clone(), meta("l4proto"), dport.clone()]}),
        MAP_PUB_IP_ADDR6,
        MAP_PUB_IP_PORT6,
    );
    let dnat_any6 = dnat_via(
        "ip6",
        json!({"concat": [meta("l4proto"), dport]}),
        MAP_PUB_ANY_ADDR6,
        MAP_PUB_ANY_PORT6,
    );
    // DNAT only what is addressed to this host, never traffic passing through.
    let local = is(
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    );
    let dnat_status =
        json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}});
    let saddr = json!({"payload": {"protocol": "ip", "field": "saddr"}});
    let daddr = json!({"payload": {"protocol": "ip", "field": "daddr"}});
    let mut out = vec![json!({"add": {"table": {"family": FAMILY, "name": TABLE}}})];
    out.extend(declare_sets(FAMILY));
    out.extend([
        chain(FAMILY, "forward", "filter", "forward", 0),
        chain(FAMILY, "prerouting_guard", "filter", "prerouting", -150),
        chain(FAMILY, "prerouting", "nat", "prerouting", -100),
        chain(FAMILY, "output", "nat", "output", -100),
        chain(FAMILY, "postrouting", "nat", "postrouting", 100),
        chain(FAMILY, "track_dnat", "filter", "postrouting", 0),
        flush_chain(FAMILY, "forward"),
        flush_chain(FAMILY, "prerouting_guard"),
        flush_chain(FAMILY, "prerouting"),
        flush_chain(FAMILY, "output"),
        flush_chain(FAMILY, "postrouting"),
        flush_chain(FAMILY, "track_dnat"),
        // Remember which containers were reached through a DNAT (ours or
        // anyone's), on a connection's first packet only. A filter chain
        // rather than the nat one: nat chains stop at the first table that
        // binds the connection, so another table's SNAT would hide it.
        rule(
            "track_dnat",
            json!([
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
                dnat_status.clone(),
                is(meta("oifname"), set_ref(SET_BRIDGES)),
                {"set": {"op": "add",
                    "elem": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "set": set_ref(SET_DNAT_SEEN)}}
            ]),
        ),
        rule(
            "track_dnat",
            json!([
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
                dnat_status.clone(),
                is(meta("oifname"), set_ref(SET_BRIDGES)),
                {"set": {"op": "add", "elem": daddr6.clone(), "set": set_ref(SET_DNAT_SEEN6)}}
            ]),
        ),
        // Loopback destinations only ever come from lo. Without this, a
        // neighbour could reach a 127.0.0.1-bound published port (DNAT runs
        // before routing would drop the martian), and a container could
        // reach the host's loopback services through route_localnet on the
        // bridge (the CVE-2020-8558 class).
        rule(
            "prerouting_guard",
            json!([
                is_not(meta("iifname"), json!("lo")),
                is(
                    json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                    json!({"prefix": {"addr": "127.0.0.0", "len": 8}})
                ),
                drop.clone()
            ]),
        ),
        // Its IPv6 twin: ::1 only ever comes from lo.
        rule(
            "prerouting_guard",
            json!([
                is_not(meta("iifname"), json!("lo")),
                is(daddr6.clone(), json!("::1")),
                drop.clone()
            ]),
        ),
        // A source of ours comes in by an ocinet bridge, or it is forged
        // (for these sources only: the host's other traffic is none of
        // ocinet's business). Which bridge, and which port of it, the
        // port guards pin already, so no route lookup is needed: container
        // traffic stops at the bridge set, one hash lookup (a FIB lookup
        // per packet measured 95-96% of the rule-less throughput, this
        // one within the noise: BENCHMARKS.md section 13). From lo come the host's
        // own packets, sent from its gateway addresses.
        rule(
            "prerouting_guard",
            json!([
                is_not(meta("iifname"), json!("lo")),
                is_not(meta("iifname"), set_ref(SET_BRIDGES)),
                is(saddr.clone(), set_ref(SET_OWN_SOURCES)),
                drop.clone()
            ]),
        ),
        rule(
            "prerouting_guard",
            json!([
                is_not(meta("iifname"), json!("lo")),
                is_not(meta("iifname"), set_ref(SET_BRIDGES)),
                is(saddr6.clone(), set_ref(SET_OWN_SOURCES6)),
                drop.clone()
            ]),
        ),
        // Replies to connections that were allowed.
        rule(
            "forward",
            json!([
            {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
            accept.clone()]),
        ),
        // Within one network (bridged frames pass here because bridge
        // netfilter is on, with the bridge as both in and out interface).
        rule(
            "forward",
            json!([
                is(
                    json!({"concat": [meta("iifname"), meta("oifname")]}),
                    set_ref(SET_BRIDGE_SELF)
                ),
                accept.clone()
            ]),
        ),
        // --internal networks: nothing in or out beyond their own bridge.
        rule(
            "forward",
            json!([
                is(meta("iifname"), set_ref(SET_INTERNAL_BRIDGES)),
                drop.clone()
            ]),
        ),
        rule(
            "forward",
            json!([
                is(meta("oifname"), set_ref(SET_INTERNAL_BRIDGES)),
                drop.clone()
            ]),
        ),
        // Published ports, also across networks (as through the host).
        rule("forward", json!([dnat_status.clone(), accept.clone()])),
        // Isolation: one ocinet network never forwards to another.
        rule(
            "forward",
            json!([
                is(meta("iifname"), set_ref(SET_BRIDGES)),
                is(meta("oifname"), set_ref(SET_BRIDGES)),
                drop.clone()
            ]),
        ),
        // The network's --no-masquerade CIDRs (another node's pods) reach
        // its containers directly, protected or not.
        rule(
            "forward",
            json!([
                is(json!({"concat": [daddr.clone(), saddr.clone()]}), set_ref(SET_NO_MASQ)),
                accept.clone()
            ]),
        ),
        // Routed mode: a published container port answers at the
        // container's own address (no DNAT on the way).
        rule(
            "forward",
            json!([
                is(
                    json!({"concat": [daddr.clone(), meta("l4proto"), dport.clone()]}),
                    set_ref(SET_ROUTED_PORTS)
                ),
                accept.clone()
            ]),
        ),
        rule(
            "forward",
            json!([
                is(
                    json!({"concat": [daddr6.clone(), meta("l4proto"), dport.clone()]}),
                    set_ref(SET_ROUTED_PORTS6)
                ),
                accept.clone()
            ]),
        ),
        // Direct routing: a neighbour that routes a protected network's
        // subnet via this host reaches none of its ports (moby #48724),
        // per family, as each has its own gateway mode. Replies, the
        // network's own traffic and published ports were accepted above.
        rule(
            "forward",
            json!([
                is(meta("nfproto"), json!("ipv4")),
                is(meta("oifname"), set_ref(SET_PROTECTED_BRIDGES)),
                drop.clone()
            ]),
        ),
        rule(
            "forward",
            json!([
                is(meta("nfproto"), json!("ipv6")),
                is(meta("oifname"), set_ref(SET_PROTECTED_BRIDGES6)),
                drop.clone()
            ]),
        ),
        // Not masqueraded to the network's --no-masquerade CIDRs (leaving
        // the host; the hairpin below still applies on a bridge).
        rule(
            "postrouting",
            json!([
                is(json!({"concat": [saddr.clone(), daddr.clone()]}), set_ref(SET_NO_MASQ)),
                is_not(meta("oifname"), set_ref(SET_BRIDGES)),
                accept.clone()
            ]),
        ),
        // Outbound masquerade, not for traffic staying on an ocinet bridge.
        rule(
            "postrouting",
            json!([
            is(saddr.clone(), set_ref(SET_MASQ_SUBNETS)),
            is_not(meta("oifname"), set_ref(SET_BRIDGES)),
            {"masquerade": null}]),
        ),
        // Its IPv6 twin, for dual-stack networks (a ULA subnet is not
        // routed beyond the host, as Docker's default for IPv6 nat).
        rule(
            "postrouting",
            json!([
            is(saddr6.clone(), set_ref(SET_MASQ_SUBNETS6)),
            is_not(meta("oifname"), set_ref(SET_BRIDGES)),
            {"masquerade": null}]),
        ),
        // Hairpin: a container reaching a published port through a host
        // address must see the reply come back through the host.
        rule(
            "postrouting",
            json!([
            dnat_status.clone(),
            is(meta("oifname"), set_ref(SET_BRIDGES)),
            is(saddr.clone(), set_ref(SET_MASQ_SUBNETS)),
            {"masquerade": null}]),
        ),
        // The hairpin's IPv6 twin.
        rule(
            "postrouting",
            json!([
            dnat_status.clone(),
            is(meta("oifname"), set_ref(SET_BRIDGES)),
            is(saddr6, set_ref(SET_MASQ_SUBNETS6)),
            {"masquerade": null}]),
        ),
        // 127.0.0.1:PORT from the host: loopback sources cannot leave on a
        // bridge (route_localnet lets them be routed there at all).
        rule(
            "postrouting",
            json!([
            dnat_status,
            is(meta("oifname"), set_ref(SET_BRIDGES)),
            is(saddr, json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
            {"masquerade": null}]),
        ),
    ]);
    // IPv6 loopback is left to the host: no route_localnet for IPv6, so a
    // packet from ::1 DNATed to a container would be lost (netavark#790);
    // not DNATed, a connection to ::1:PORT is refused at once (or reaches
    // a host service there) instead of hanging.
    let not_loopback6 = is_not(daddr6, json!("::1"));
    for chain in ["prerouting", "output"] {
        out.push(rule(chain, json!([local.clone(), dnat_ip.clone()])));
        out.push(rule(chain, json!([local.clone(), dnat_any.clone()])));
        out.push(rule(
            chain,
            json!([local.clone(), not_loopback6.clone(), dnat_ip6.clone()]),
        ));
        out.push(rule(
            chain,
            json!([local.clone(), not_loopback6.clone(), dnat_any6.clone()]),
        ));
    }
    out.extend(anti_spoofing());
    out
}

/// A container may only send from its own MAC and addresses, in IPv4,
/// ARP or IPv6 frames (no VLAN tags to smuggle another header past the
/// checks), and never as a router: no router advertisement, redirect or
/// DHCPv6 server reply. Eight rules here and one written over netlink
/// (`elements::nd_target_guard`), whatever the container count:
/// containers add elements.
///
/// IPv6 sources are pinned like IPv4 ones, to the leased address alone: a
/// container's interface has no link-local (addrgenmode none) and its
/// address no duplicate address detection, so everything it sends (its
/// neighbour solicitations and advertisements included) comes from that
/// address. Not `::` either: what a container would send from it is only
/// MLD reports (the kernel's source without a link-local), which the
/// bridge does not need (no querier: it floods multicast) and a container
/// must not steer. A port of an IPv4-only network has no `port_ip6`
/// element, so it sends no IPv6 at all (its interface has none).
/// A neighbour advertisement must also name that address as its target;
/// that rule is not here because nft 1.0.6 cannot write it (a raw payload,
/// the target, looked up in an `ipv6_addr` set).
fn anti_spoofing() -> Vec<Value> {
    let drop = json!({"drop": null});
    let port = meta("iifname");
    let guarded = is(port.clone(), set_ref(SET_GUARDED_PORTS));
    let ether_type = json!({"payload": {"protocol": "ether", "field": "type"}});
    let pair = |field: Value| json!({"concat": [port.clone(), field]});
    let not_in = |left: Value, set: &str| is_not(left, set_ref(set));
    let arp = is(ether_type.clone(), json!("arp"));
    let ip = is(ether_type.clone(), json!("ip"));
    let ip6 = is(ether_type.clone(), json!("ip6"));
    let mut out = vec![json!({"add": {"table": {"family": BRIDGE_FAMILY, "name": TABLE}}})];
    out.extend(declare_sets(BRIDGE_FAMILY));
    out.extend([
        // Before bridge netfilter (priority 0) hands IPv4 to the inet hooks.
        chain(BRIDGE_FAMILY, "port_guard", "filter", "prerouting", -200),
        flush_chain(BRIDGE_FAMILY, "port_guard"),
    ]);
    let rules = [
        json!([
            guarded.clone(),
            is_not(ether_type, json!({"set": ["ip", "arp", "ip6"]})),
            drop.clone()
        ]),
        json!([
            guarded.clone(),
            not_in(
                pair(json!({"payload": {"protocol": "ether", "field": "saddr"}})),
                SET_PORT_MAC
            ),
            drop.clone()
        ]),
        json!([
            guarded.clone(),
            arp.clone(),
            not_in(
                pair(json!({"payload": {"protocol": "arp", "field": "saddr ether"}})),
                SET_PORT_MAC
            ),
            drop.clone()
        ]),
        json!([
            guarded.clone(),
            arp,
            not_in(
                pair(json!({"payload": {"protocol": "arp", "field": "saddr ip"}})),
                SET_PORT_IP
            ),
            drop.clone()
        ]),
        json!([
            guarded.clone(),
            ip,
            not_in(
                pair(json!({"payload": {"protocol": "ip", "field": "saddr"}})),
                SET_PORT_IP
            ),
            drop.clone()
        ]),
        json!([
            guarded.clone(),
            ip6.clone(),
            not_in(
                pair(json!({"payload": {"protocol": "ip6", "field": "saddr"}})),
                SET_PORT_IP6
            ),
            drop.clone()
        ]),
        // RA guard (RFC 6105): routers and redirects are the host's alone.
        json!([
            guarded.clone(),
            ip6.clone(),
            is(
                json!({"payload": {"protocol": "icmpv6", "field": "type"}}),
                json!({"set": ["nd-router-advert", "nd-redirect"]})
            ),
            drop.clone()
        ]),
        // No DHCPv6 server (or relay) answers from a container.
        json!([
            guarded,
            ip6,
            is(
                json!({"payload": {"protocol": "udp", "field": "sport"}}),
                json!(547)
            ),
            drop
        ]),
    ];
    out.extend(
        rules
            .into_iter()
            .map(|r| rule_in(BRIDGE_FAMILY, "port_guard", r)),
    );
    out
}

/// The elements that pin a container's bridge port to its MAC and address,
/// and that MAC to that port of `bridge`.
pub fn guard_elements(
    port: &str,
    mac: &str,
    ip: Option<std::net::Ipv4Addr>,
    ip6: Option<std::net::Ipv6Addr>,
    bridge: &str,
) -> Vec<crate::model::FirewallElement> {
    let elem = |set: &str, key: Value| crate::model::FirewallElement {
        set: set.into(),
        key,
        value: None,
    };
    // The order (port, MAC, IPv4, owner, IPv6) is what records have always
    // listed. A port of an IPv6-only container has no IPv4 pair, so it
    // sends no IPv4 or ARP at all.
    let mut out = vec![
        elem(SET_GUARDED_PORTS, json!(port)),
        elem(SET_PORT_MAC, json!({"concat": [port, mac]})),
    ];
    out.extend(ip.map(|ip| elem(SET_PORT_IP, json!({"concat": [port, ip.to_string()]}))));
    out.push(mac_owner_element(bridge, mac, port));
    if let Some(ip6) = ip6 {
        out.push(elem(
            SET_PORT_IP6,
            json!({"concat": [port, ip6.to_string()]}),
        ));
    }
    out
}

/// The elements an attachment stands for: derived from what it records
/// (its bridge port's identity, its published ports). A record of 0.1.0
/// keeps the elements it listed, and for one saved before `mac_owner`
/// existed, the MAC owner it implies (a rebuild adds it, so teardown must
/// delete it too, or the next container given that address, and so that
/// MAC, would be refused by the kernel).
pub fn elements_of_attachment(a: &crate::model::Attachment) -> Vec<crate::model::FirewallElement> {
    if !a.legacy_firewall.is_empty() {
        let mut out = a.legacy_firewall.clone();
        let has_owner = out.iter().any(|f| f.set == MAP_MAC_OWNER);
        if let (false, Some(port), Some(mac), Some(bridge)) =
            (has_owner, &a.host_veth, &a.mac, &a.bridge)
        {
            out.push(mac_owner_element(bridge, mac, port));
        }
        return out;
    }
    let (ip, ip6) = (a.ipv4(), a.ipv6());
    if ip.is_none() && ip6.is_none() {
        return Vec::new();
    }
    let mut out = match (&a.host_veth, &a.mac, &a.bridge) {
        (Some(port), Some(mac), Some(bridge)) => guard_elements(port, mac, ip, ip6, bridge),
        _ => Vec::new(),
    };
    if let Some(ip) = ip {
        out.extend(port_elements(ip.into(), &a.ports));
        if a.routed_ipv4 {
            out.extend(routed_elements(SET_ROUTED_PORTS, ip.into(), &a.ports));
        }
    }
    if let Some(ip6) = ip6.filter(|_| a.routed_ipv6) {
        out.extend(routed_elements(SET_ROUTED_PORTS6, ip6.into(), &a.ports));
    }
    if let Some(ip6) = ip6 {
        out.extend(port_elements(ip6.into(), &a.ports));
    }
    out
}

/// The published container ports of a container on a routed network,
/// at its address `ip`.
fn routed_elements(
    set: &str,
    ip: std::net::IpAddr,
    ports: &[crate::model::PortSpec],
) -> Vec<crate::model::FirewallElement> {
    ports
        .iter()
        .flat_map(|s| s.mappings())
        .map(|m| crate::model::FirewallElement {
            set: set.into(),
            key: json!({"concat": [ip.to_string(), m.protocol.name(), m.container_port]}),
            value: None,
        })
        .collect()
}

/// Every attachment's elements.
pub fn elements_of_record(e: &crate::model::Endpoint) -> Vec<crate::model::FirewallElement> {
    e.attachments
        .iter()
        .flat_map(elements_of_attachment)
        .collect()
}

/// `mac` on `bridge` belongs to `port`.
pub fn mac_owner_element(bridge: &str, mac: &str, port: &str) -> crate::model::FirewallElement {
    crate::model::FirewallElement {
        set: MAP_MAC_OWNER.into(),
        key: json!({"concat": [bridge, mac]}),
        value: Some(json!(port)),
    }
}

/// The record that a connection may have been DNATed to `ip`: put back for
/// every publishing container when the table is rebuilt, since the
/// packet path's records went with the old table.
pub fn dnat_seen_element(ip: impl Into<std::net::IpAddr>) -> crate::model::FirewallElement {
    let ip: std::net::IpAddr = ip.into();
    crate::model::FirewallElement {
        set: if ip.is_ipv6() {
            SET_DNAT_SEEN6
        } else {
            SET_DNAT_SEEN
        }
        .into(),
        key: json!(ip.to_string()),
        value: None,
    }
}

/// The map elements that publish `ports` to the container at `ip`, in
/// the maps of `ip`'s family: the mappings that answer in that family
/// (bare ones in both; `0.0.0.0` and IPv4 host addresses in IPv4's, `[::]`
/// and IPv6 host addresses in IPv6's).
pub fn port_elements(
    ip: std::net::IpAddr,
    ports: &[crate::model::PortSpec],
) -> Vec<crate::model::FirewallElement> {
    let (answers, maps): (fn(Option<std::net::IpAddr>) -> bool, _) = if ip.is_ipv4() {
        (
            crate::model::ports::answers_ipv4,
            [
                MAP_PUB_IP_ADDR,
                MAP_PUB_IP_PORT,
                MAP_PUB_ANY_ADDR,
                MAP_PUB_ANY_PORT,
            ],
        )
    } else {
        (
            crate::model::ports::answers_ipv6,
            [
                MAP_PUB_IP_ADDR6,
                MAP_PUB_IP_PORT6,
                MAP_PUB_ANY_ADDR6,
                MAP_PUB_ANY_PORT6,
            ],
        )
    };
    ports
        .iter()
        .flat_map(|s| s.mappings())
        .filter(|m| answers(m.host_ip))
        .flat_map(|m| {
            let host_ip = m.host_ip.filter(|h| !h.is_unspecified());
            map_elements(maps, host_ip, &m, ip.to_string())
        })
        .collect()
}

/// One mapping's address and port elements in one family's maps:
/// `[ip_addr, ip_port, any_addr, any_port]`.
fn map_elements(
    maps: [&str; 4],
    host_ip: Option<std::net::IpAddr>,
    m: &crate::model::PortMapping,
    container: String,
) -> [crate::model::FirewallElement; 2] {
    let proto = m.protocol.name();
    let (addr_map, port_map, key) = match host_ip {
        Some(hip) => (
            maps[0],
            maps[1],
            json!({"concat": [hip.to_string(), proto, m.host_port]}),
        ),
        None => (maps[2], maps[3], json!({"concat": [proto, m.host_port]})),
    };
    let elem = |set: &str, value: Value| crate::model::FirewallElement {
        set: set.into(),
        key: key.clone(),
        value: Some(value),
    };
    [
        elem(addr_map, json!(container)),
        elem(port_map, json!(m.container_port)),
    ]
}

/// The elements a network contributes: (set name, element).
pub fn network_elements(n: &Network) -> Vec<(&'static str, Value)> {
    // A macvlan network's traffic never crosses the host's forwarding path:
    // nothing to masquerade, publish or isolate.
    let Some(b) = n.bridge() else {
        return Vec::new();
    };
    let prefix = |net: ipnet::IpNet| json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}});
    let subnet6 = n.subnet6();
    let mut out = vec![
        (SET_BRIDGES, json!(b.bridge)),
        (SET_BRIDGE_SELF, json!({"concat": [b.bridge, b.bridge]})),
    ];
    // An overlay network's VXLAN device is the rest of its network: in
    // the bridges (never masqueraded to, its subnet's sources are not
    // forged when they come in by it, no other network forwards to it)
    // and forwarding between it and the bridge is the network's own.
    if let Some(o) = n.overlay() {
        let dev = o.device();
        out.push((SET_BRIDGES, json!(dev)));
        out.push((SET_BRIDGE_SELF, json!({"concat": [b.bridge, dev]})));
        out.push((SET_BRIDGE_SELF, json!({"concat": [dev, b.bridge]})));
    }
    // An IPv6-only network has no IPv4 subnet to name.
    let v4 = n.v4().map(|v| v.subnet);
    out.extend(v4.map(|s| (SET_OWN_SOURCES, prefix(s.into()))));
    out.extend(subnet6.map(|s| (SET_OWN_SOURCES6, prefix(s.into()))));
    if n.internal {
        out.push((SET_INTERNAL_BRIDGES, json!(b.bridge)));
    } else {
        let (mode4, mode6) = (b.gateway_mode, b.gateway_mode_v6());
        if mode4.protects() {
            out.push((SET_PROTECTED_BRIDGES, json!(b.bridge)));
        }
        if subnet6.is_some() && mode6.protects() {
            out.push((SET_PROTECTED_BRIDGES6, json!(b.bridge)));
        }
        if let Some(v4) = v4.filter(|_| mode4.masquerades()) {
            out.push((SET_MASQ_SUBNETS, prefix(v4.into())));
            for cidr in &b.no_masquerade {
                out.push((
                    SET_NO_MASQ,
                    json!({"concat": [prefix(v4.into()), prefix((*cidr).into())]}),
                ));
            }
        }
        if mode6.masquerades() {
            out.extend(subnet6.map(|s| (SET_MASQ_SUBNETS6, prefix(s.into()))));
        }
    }
    out
}

pub fn element(verb: &str, set: &str, key: &Value, value: Option<&Value>) -> Value {
    let elem = match value {
        Some(v) => json!([key, v]),
        None => key.clone(),
    };
    json!({verb: {"element": {"family": family_of(set), "table": TABLE, "name": set, "elem": [elem]}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(internal: bool, v6: bool) -> Network {
        let n = Network::new(
            "n",
            "10.9.0.0/24".parse().unwrap(),
            None,
            None,
            Some("br-n"),
            None,
            internal,
        )
        .unwrap();
        if v6 {
            n.with_ipv6("fd09::/64".parse().unwrap(), None, None)
        } else {
            n
        }
    }

    fn sets(elements: &[(&'static str, Value)]) -> Vec<&'static str> {
        elements.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn an_ipv4_network_has_no_ipv6_elements() {
        assert_eq!(
            sets(&network_elements(&net(false, false))),
            [
                SET_BRIDGES,
                SET_BRIDGE_SELF,
                SET_OWN_SOURCES,
                SET_PROTECTED_BRIDGES,
                SET_MASQ_SUBNETS
            ]
        );
        let ip = "10.9.0.2".parse().unwrap();
        let guard = guard_elements("oc1", "02:00:00:00:00:01", Some(ip), None, "br-n");
        assert_eq!(guard.len(), 4);
        assert!(guard.iter().all(|e| e.set != SET_PORT_IP6));
    }

    #[test]
    fn a_dual_stack_network_adds_its_ipv6_subnet() {
        let all = network_elements(&net(false, true));
        let six = json!({"prefix": {"addr": "fd09::", "len": 64}});
        assert!(all.contains(&(SET_OWN_SOURCES6, six.clone())), "{all:?}");
        assert!(all.contains(&(SET_MASQ_SUBNETS6, six.clone())), "{all:?}");
        // Internal: never masqueraded, still its own sources.
        let internal = network_elements(&net(true, true));
        assert!(internal.contains(&(SET_OWN_SOURCES6, six)), "{internal:?}");
        assert!(!sets(&internal).contains(&SET_MASQ_SUBNETS6));
        let ip = "10.9.0.2".parse().unwrap();
        let guard = guard_elements(
            "oc1",
            "02:00:00:00:00:01",
            Some(ip),
            Some("fd09::2".parse().unwrap()),
            "br-n",
        );
        assert_eq!(guard.len(), 5);
        assert_eq!(guard[4].key, json!({"concat": ["oc1", "fd09::2"]}));
    }
}
