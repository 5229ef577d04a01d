//! Issue 22: the firewall of dual-stack networks. IPv6 is masqueraded
//! like IPv4, networks stay isolated from each other, internal networks
//! closed and `nat` networks closed to direct routing over IPv6 too;
//! forged IPv6 sources from the uplink and `::1` from anywhere but lo are
//! dropped; a container sends IPv6 only from its own address, advertises
//! no neighbour's address as its own and never acts as a router. Each test in its own throwaway host namespace, with real runc
//! and crun; the outside namespace has 2001:db8:100::2 and nothing else
//! of the Internet's.

use std::process::{Command, Output};

use ocinet_integration::{
    both_runtimes, ok, run_cmd, text, Host, Runtime, Spec, HOST_LINK_IP6, OUTSIDE_IP6, WGET,
};
use serde_json::Value;

fn dual(h: &Host, name: &str, v4: &str, v6: &str, extra: &[&str]) {
    let mut args = vec!["network", "create", name, "--subnet", v4, "--subnet", v6];
    args.extend_from_slice(extra);
    ok(h.ocinet(&args));
}

fn on(net: &str) -> Spec {
    Spec::default().ann("io.ocinet.network", net)
}

fn attachment(h: &Host, id: &str) -> Value {
    h.endpoint(id).expect("endpoint")["attachments"][0].clone()
}

fn ip6_of(h: &Host, id: &str) -> String {
    attachment(h, id)["ip6"]
        .as_str()
        .unwrap_or_else(|| panic!("no ip6 for {id}"))
        .to_string()
}

fn mac_of(h: &Host, id: &str) -> String {
    h.endpoint(id).expect("endpoint")["mac"]
        .as_str()
        .unwrap_or_else(|| panic!("no mac for {id}"))
        .to_string()
}

fn bridge_of(h: &Host, net: &str) -> String {
    let v: Value = serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).expect("json");
    v[0]["Options"]["bridge"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no bridge in {v}"))
}

/// The MAC of a host interface.
fn mac_of_link(h: &Host, ifname: &str) -> String {
    let link: Value = serde_json::from_str(&ok(h.exec(&["ip", "-j", "link", "show", ifname])))
        .expect("ip -j link");
    link[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no MAC for {ifname}: {link}"))
        .to_string()
}

/// A host tool (nft, ip, python3) run in a container's network namespace.
fn in_ns(h: &Host, id: &str, args: &[&str]) -> Output {
    run_cmd(
        Command::new("nsenter")
            .arg(format!("--net={}", h.netns_of(id)))
            .args(args),
    )
}

fn url(ip6: &str, port: u16) -> String {
    format!("http://[{ip6}]:{port}/")
}

#[track_caller]
fn silent(o: Output, what: &str) {
    assert!(!o.status.success(), "{what}: {}", text(&o));
}

#[track_caller]
fn answers(o: Output, id: &str, what: &str) {
    let got = text(&o);
    assert!(
        o.status.success() && got.contains(&format!("hello from {id}")),
        "{what}: {got}"
    );
}

/// The outside's IPv6 echo server on port 8080, answering once it listens.
fn outside_echo6(h: &Host) -> ocinet_integration::Proc {
    let server = h.spawn_outside(&[
        "python3",
        "-c",
        ocinet_integration::ECHO_CLIENT6_PY,
        "::",
        "8080",
    ]);
    for _ in 0..50 {
        if h.exec_outside(&["busybox", "nc", "-z", OUTSIDE_IP6, "8080"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

fn wget_outside6(h: &Host, target: &str) -> Output {
    h.exec_outside(&[WGET, &[target]].concat())
}

fn reaches_the_outside_over_ipv6_masqueraded(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "ds", "10.62.0.0/24", "fd62::/64", &[]);
    let mut server = outside_echo6(&h);
    let a = h.start(rt, "a", &on("ds"));
    // The outside has no route to fd62::/64: an answer proves the source
    // was masqueraded to the host's link address.
    let got = ok(h.wget_from(&a.id, &url(OUTSIDE_IP6, 8080)));
    assert_eq!(got.trim(), format!("from {HOST_LINK_IP6}"));
    server.terminate();
}

/// Two dual-stack networks reach neither other over IPv6, either way,
/// while each reaches its own containers and the host forwards IPv6.
fn dual_stack_networks_are_isolated_over_ipv6(rt: Runtime) {
    let h = Host::new();
    dual(&h, "red", "10.63.0.0/24", "fd63::/64", &[]);
    dual(&h, "blue", "10.64.0.0/24", "fd64::/64", &[]);
    let r1 = h.start(rt, "r1", &on("red"));
    let r2 = h.start(rt, "r2", &on("red"));
    let b1 = h.start(rt, "b1", &on("blue"));
    let (r1ip, r2ip, b1ip) = (ip6_of(&h, &r1.id), ip6_of(&h, &r2.id), ip6_of(&h, &b1.id));
    let forwarding = ok(h.exec(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]));
    assert_eq!(forwarding.trim(), "1");
    answers(h.wget_from(&r1.id, &url(&r2ip, 80)), &r2.id, "within red");
    answers(h.wget(&url(&b1ip, 80)), &b1.id, "host to blue");
    silent(h.wget_from(&r1.id, &url(&b1ip, 80)), "red reached blue");
    silent(h.wget_from(&b1.id, &url(&r1ip, 80)), "blue reached red");
    silent(
        h.in_container(&b1.id, &["ping", "-6", "-c", "1", "-W", "1", &r2ip]),
        "blue pinged red",
    );
}

/// An internal dual-stack network: nothing in or out over IPv6, even with
/// a default route added by hand inside and a route to it outside, while
/// another network makes the host forward IPv6.
fn internal_dual_stack_network_is_closed_over_ipv6(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let mut server = outside_echo6(&h);
    dual(&h, "open", "10.65.0.0/24", "fd65::/64", &[]);
    dual(&h, "sealed", "10.66.0.0/24", "fd66::/64", &["--internal"]);
    let o = h.start(rt, "o", &on("open"));
    let a = h.start(rt, "a", &on("sealed"));
    let b = h.start(rt, "b", &on("sealed"));
    // The control: the open network does reach the outside.
    let got = ok(h.wget_from(&o.id, &url(OUTSIDE_IP6, 8080)));
    assert_eq!(got.trim(), format!("from {HOST_LINK_IP6}"));
    let routes = ok(h.in_container(&a.id, &["ip", "-6", "route"]));
    assert!(!routes.contains("default"), "{routes}");
    ok(h.in_container(
        &a.id,
        &["ip", "-6", "route", "add", "default", "via", "fd66::1"],
    ));
    silent(
        h.wget_from(&a.id, &url(OUTSIDE_IP6, 8080)),
        "internal container reached the outside over IPv6",
    );
    silent(
        h.wget_from(&a.id, &url(&ip6_of(&h, &o.id), 80)),
        "internal container reached another network over IPv6",
    );
    answers(
        h.wget_from(&a.id, &url(&ip6_of(&h, &b.id), 80)),
        &b.id,
        "within the internal network",
    );
    ok(h.exec_outside(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd66::/64",
        "via",
        HOST_LINK_IP6,
    ]));
    silent(
        wget_outside6(&h, &url(&ip6_of(&h, &b.id), 80)),
        "the outside reached an internal container over IPv6",
    );
    silent(
        h.wget_from(&o.id, &url(&ip6_of(&h, &b.id), 80)),
        "another network reached an internal container over IPv6",
    );
    server.terminate();
}

/// A neighbour that routes a `nat` network's IPv6 subnet via the host
/// reaches none of its containers' ports; on `nat-unprotected` it does.
fn direct_routing_over_ipv6_is_closed_on_nat_networks(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dual(&h, "prot", "10.67.0.0/24", "fd67::/64", &[]);
    dual(
        &h,
        "unprot",
        "10.68.0.0/24",
        "fd68::/64",
        &["--gateway-mode", "nat-unprotected"],
    );
    let a = h.start(rt, "a", &on("prot"));
    let c = h.start(rt, "c", &on("unprot"));
    for net in ["fd67::/64", "fd68::/64"] {
        ok(h.exec_outside(&["ip", "-6", "route", "add", net, "via", HOST_LINK_IP6]));
    }
    silent(
        wget_outside6(&h, &url(&ip6_of(&h, &a.id), 80)),
        "direct routing reached a nat network's container over IPv6",
    );
    silent(
        h.exec_outside(&["ping", "-6", "-c", "1", "-W", "1", &ip6_of(&h, &a.id)]),
        "direct routing pinged a nat network's container over IPv6",
    );
    answers(
        wget_outside6(&h, &url(&ip6_of(&h, &c.id), 80)),
        &c.id,
        "direct routing to a nat-unprotected container over IPv6",
    );
    // Its own traffic still goes out, and the host still reaches it.
    answers(
        h.wget(&url(&ip6_of(&h, &a.id), 80)),
        &a.id,
        "host to a nat container",
    );
}

/// Counters in the host namespace that see what passes the prerouting
/// guard (priority -150), in a chain of their own.
fn install_host_spy(h: &Host, rules: &str) {
    let text = format!(
        "table inet spy {{
            counter seen {{}}
            chain pre {{
                type filter hook prerouting priority -140; policy accept;
                {rules} counter name seen
            }}
        }}"
    );
    let path = h.dir.join("host-spy.nft");
    std::fs::write(&path, text).expect("spy rules");
    ok(h.exec(&["nft", "-f", &path.display().to_string()]));
}

fn host_seen(h: &Host) -> u64 {
    let o = ok(h.exec(&["nft", "-j", "list", "counter", "inet", "spy", "seen"]));
    let v: Value = serde_json::from_str(&o).expect("nft json");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("counter: {o}"))
}

/// UDP datagrams to [DST]:9 from SRC (python3 -c SEND6 SRC DST COUNT).
const SEND6: &str = r#"import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for i in range(int(sys.argv[3])):
    s.sendto(b"forged", (sys.argv[2], 9))
print("sent")
"#;

/// The uplink cannot send with a dual-stack network's IPv6 source: a
/// neighbour routing its subnet via the host, sending as a container of
/// it, is dropped before anything of the host (its resolver, published
/// ports) sees it.
fn forged_ipv6_sources_from_the_uplink_are_dropped(rt: Runtime) {
    let h = Host::new();
    let out = h.outside();
    dual(&h, "ds", "10.69.0.0/24", "fd69::/64", &[]);
    let mut a = h.start(rt, "a", &on("ds"));
    let forged = "fd69::77";
    // The outside takes a source of the network's subnet and routes the
    // subnet via the host.
    ok(run_cmd(Command::new("ip").args([
        "-n",
        &out,
        "addr",
        "add",
        &format!("{forged}/128"),
        "dev",
        "lo",
        "nodad",
    ])));
    ok(h.exec_outside(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd69::/64",
        "via",
        HOST_LINK_IP6,
    ]));
    // The outside knows the host's link address for good: its neighbour
    // solicitations from the forged source would be answered towards the
    // bridge, and the forgeries never sent at all.
    let uplink = h.outside_link();
    let outside_end = format!("oo{}", &uplink[2..]);
    ok(run_cmd(Command::new("ip").args([
        "-n",
        &out,
        "neigh",
        "replace",
        HOST_LINK_IP6,
        "lladdr",
        &mac_of_link(&h, &uplink),
        "dev",
        &outside_end,
        "nud",
        "permanent",
    ])));
    install_host_spy(&h, &format!("ip6 saddr {forged} udp dport 9"));
    let sent = text(&h.exec_outside(&["python3", "-c", SEND6, forged, "fd69::1", "20"]));
    assert!(sent.contains("sent"), "{sent}");
    assert_eq!(host_seen(&h), 0, "a forged IPv6 source passed the guard");
    // The genuine source is not affected: the container's own datagrams
    // come through.
    let sent = text(&in_ns(
        &h,
        &a.id,
        &["python3", "-c", SEND6, &ip6_of(&h, &a.id), "fd69::1", "3"],
    ));
    assert!(sent.contains("sent"), "{sent}");
    install_host_spy(&h, &format!("ip6 saddr {} udp dport 9", ip6_of(&h, &a.id)));
    let before = host_seen(&h);
    in_ns(
        &h,
        &a.id,
        &["python3", "-c", SEND6, &ip6_of(&h, &a.id), "fd69::1", "3"],
    );
    assert!(host_seen(&h) >= before + 3, "the container's own datagrams");
    // Control: without the guard the forgery arrives.
    install_host_spy(&h, &format!("ip6 saddr {forged} udp dport 9"));
    let before = host_seen(&h);
    ok(h.exec(&[
        "nft",
        "flush",
        "chain",
        "inet",
        "ocinet",
        "prerouting_guard",
    ]));
    h.exec_outside(&["python3", "-c", SEND6, forged, "fd69::1", "5"]);
    assert!(
        host_seen(&h) >= before + 5,
        "without the guard the forgery should arrive; the test cannot see it"
    );
    ok(h.ocinet(&["firewall", "reload"]));
    h.stop(&mut a);
}

/// One UDP datagram in a whole Ethernet frame, sent as is from `ifname`
/// (python3 -c FRAME6 IFNAME SRC_MAC DST_MAC SRC DST): how a container
/// would get `::1` to the host's bridge, which routing never would.
const FRAME6: &str = r#"import socket, struct, sys
ifname, smac, dmac, src, dst = sys.argv[1:6]
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
sa, da = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
payload = b"loopback?"
length = 8 + len(payload)
pseudo = sa + da + struct.pack(">I3xB", length, 17)
udp = struct.pack(">HHHH", 40000, 9, length, 0) + payload
data = pseudo + udp + (b"\0" if len(udp) % 2 else b"")
total = sum(struct.unpack(">%dH" % (len(data) // 2), data))
while total >> 16:
    total = (total & 0xffff) + (total >> 16)
udp = udp[:6] + struct.pack(">H", (~total & 0xffff) or 0xffff) + udp[8:]
ip6 = struct.pack(">IHBB", 6 << 28, length, 17, 64) + sa + da
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(5):
    s.send(mac(dmac) + mac(smac) + b"\x86\xdd" + ip6 + udp)
print("sent")
"#;

/// `::1` as a destination only ever comes from lo: a container that
/// addresses its frame to the bridge with `::1` inside is dropped before
/// the nat chains (where a published `[::1]` port would be DNATed).
fn loopback_ipv6_destination_from_a_container_is_dropped(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.70.0.0/24", "fd70::/64", &[]);
    let mut a = h.start(rt, "a", &on("ds"));
    let bridge_mac = mac_of_link(&h, &bridge_of(&h, "ds"));
    let send = || {
        let o = in_ns(
            &h,
            &a.id,
            &[
                "python3",
                "-c",
                FRAME6,
                "eth0",
                &mac_of(&h, &a.id),
                &bridge_mac,
                &ip6_of(&h, &a.id),
                "::1",
            ],
        );
        assert!(text(&o).contains("sent"), "{}", text(&o));
    };
    install_host_spy(&h, "ip6 daddr ::1 udp dport 9");
    send();
    assert_eq!(host_seen(&h), 0, "::1 from a bridge passed the guard");
    // Control: without the guard it reaches the nat chains' priority.
    ok(h.exec(&[
        "nft",
        "flush",
        "chain",
        "inet",
        "ocinet",
        "prerouting_guard",
    ]));
    send();
    assert!(
        host_seen(&h) >= 5,
        "without the guard the frames should arrive; the test cannot see them"
    );
    ok(h.ocinet(&["firewall", "reload"]));
    h.stop(&mut a);
}

/// ICMPv6 and DHCPv6 a router would send (python3 -c ROUTERISH KIND SRC
/// DST [TARGET MAC]): a router advertisement (`ra`), a redirect
/// (`redirect`), a DHCPv6 server's reply (`dhcp`), or an unsolicited,
/// overriding neighbour advertisement that TARGET is at MAC (`na`); three
/// of each.
const ROUTERISH: &str = r#"import socket, struct, sys
kind, src, dst = sys.argv[1:4]
if kind == "dhcp":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 547))
    msg = bytes([7, 0, 0, 1])
    port = 546
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.bind((src, 0))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    if kind == "na":
        target = socket.inet_pton(socket.AF_INET6, sys.argv[4])
        mac = bytes(int(x, 16) for x in sys.argv[5].split(":"))
        msg = struct.pack(">BBHI", 136, 0, 0, 0x20000000) + target + bytes([2, 1]) + mac
    elif kind == "ra":
        # Hop limit 64, no flags, router lifetime 1800 s.
        msg = struct.pack(">BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    else:
        target = socket.inet_pton(socket.AF_INET6, src)
        msg = struct.pack(">BBHI", 137, 0, 0, 0) + target + target
    port = 0
for _ in range(3):
    s.sendto(msg, (dst, port))
print("sent")
"#;

/// Named counters in C's namespace for each way A could show up
/// (`others[0]` is B's address).
fn install_spy6(h: &Host, c: &str, a_ip: &str, a_mac: &str, others: &[&str]) {
    let rules = format!(
        "table inet spy {{
            counter genuine {{}}
            counter as_other {{}}
            counter ra {{}}
            counter redirects {{}}
            counter dhcp {{}}
            counter na_for_b {{}}
            chain input {{
                type filter hook input priority -300; policy accept;
                ip6 saddr {a_ip} icmpv6 type echo-request counter name genuine
                ether saddr {a_mac} ip6 saddr {{ {others} }} counter name as_other
                icmpv6 type nd-router-advert counter name ra
                icmpv6 type nd-redirect counter name redirects
                udp sport 547 counter name dhcp
                ether saddr {a_mac} icmpv6 type nd-neighbor-advert @th,64,128 {b_target} counter name na_for_b
            }}
        }}",
        others = others.join(", "),
        b_target = format_args!(
            "0x{:032x}",
            u128::from(
                others[0]
                    .parse::<std::net::Ipv6Addr>()
                    .expect("B's address")
            )
        ),
    );
    let path = h.dir.join("spy6.nft");
    std::fs::write(&path, rules).expect("spy rules");
    ok(in_ns(h, c, &["nft", "-f", &path.display().to_string()]));
}

fn count6(h: &Host, c: &str, name: &str) -> u64 {
    let o = ok(in_ns(
        h,
        c,
        &["nft", "-j", "list", "counter", "inet", "spy", name],
    ));
    let v: Value = serde_json::from_str(&o).expect("nft json");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("counter {name}: {o}"))
}

/// A container sends IPv6 only from its own address, and nothing a router
/// sends: not from another address (free, or a neighbour's), not a
/// router advertisement, redirect or DHCPv6 server reply, nor a neighbour
/// advertisement for B's address (NDP spoofing), even from its own
/// address. Counters in C's namespace see what arrives; the same with
/// the guard chain flushed must arrive, or they prove nothing.
fn a_container_cannot_spoof_over_ipv6_or_act_as_a_router(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.71.0.0/24", "fd71::/64", &[]);
    let a = h.start(rt, "a", &on("ds"));
    let b = h.start(rt, "b", &on("ds"));
    let c = h.start(rt, "c", &on("ds"));
    let (a6, b6, c6) = (ip6_of(&h, &a.id), ip6_of(&h, &b.id), ip6_of(&h, &c.id));
    let free = "fd71::99";
    install_spy6(&h, &c.id, &a6, &mac_of(&h, &a.id), &[&b6, free]);
    let routes_before = ok(in_ns(&h, &c.id, &["ip", "-6", "route"]));

    // A as itself reaches C, and the counters see it.
    let o = h.in_container(&a.id, &["ping", "-6", "-c", "2", "-W", "2", &c6]);
    assert!(
        o.status.success(),
        "A cannot ping C over IPv6: {}",
        text(&o)
    );
    assert!(count6(&h, &c.id, "genuine") >= 2);

    // A never needs to solicit C (which it would from the spoofed source).
    let c_mac = mac_of(&h, &c.id);
    let a_mac = mac_of(&h, &a.id);
    let knows_c = || {
        ok(in_ns(
            &h,
            &a.id,
            &[
                "ip",
                "-6",
                "neigh",
                "replace",
                &c6,
                "lladdr",
                &c_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        ))
    };
    knows_c();
    for other in [free, b6.as_str()] {
        ok(in_ns(
            &h,
            &a.id,
            &[
                "ip",
                "addr",
                "add",
                &format!("{other}/128"),
                "dev",
                "eth0",
                "nodad",
            ],
        ));
    }
    let spoof = || {
        for other in [free, b6.as_str()] {
            let _ = h.in_container(
                &a.id,
                &["ping", "-6", "-c", "2", "-W", "1", "-I", other, &c6],
            );
        }
        for kind in ["ra", "redirect", "dhcp", "na"] {
            let o = in_ns(
                &h,
                &a.id,
                &["python3", "-c", ROUTERISH, kind, &a6, &c6, &b6, &a_mac],
            );
            assert!(text(&o).contains("sent"), "{kind}: {}", text(&o));
        }
    };
    // C knows B, at B's MAC; an overriding advertisement would move it.
    answers(h.wget_from(&c.id, &url(&b6, 80)), &b.id, "C to B");
    let b_at = || ok(in_ns(&h, &c.id, &["ip", "-6", "neigh", "show", &b6]));
    spoof();
    for name in ["as_other", "ra", "redirects", "dhcp", "na_for_b"] {
        assert_eq!(count6(&h, &c.id, name), 0, "{name} from A reached C");
    }
    let neigh = b_at();
    assert!(!neigh.contains(&a_mac), "C thinks B is at A's MAC: {neigh}");
    let routes_after = ok(in_ns(&h, &c.id, &["ip", "-6", "route"]));
    assert_eq!(routes_before, routes_after);

    // Control: without the guard chain the same arrives.
    ok(h.exec(&["nft", "flush", "chain", "bridge", "ocinet", "port_guard"]));
    spoof();
    for name in ["as_other", "ra", "redirects", "dhcp", "na_for_b"] {
        assert!(
            count6(&h, &c.id, name) >= 1,
            "without the guard {name} should arrive; the test cannot see it"
        );
    }
    let neigh = b_at();
    assert!(
        neigh.contains(&a_mac),
        "without the guard C should take B to be at A's MAC: {neigh}"
    );
    ok(h.ocinet(&["firewall", "reload"]));
    for other in [free, b6.as_str()] {
        ok(in_ns(
            &h,
            &a.id,
            &["ip", "addr", "del", &format!("{other}/128"), "dev", "eth0"],
        ));
    }
    // After the reload A is itself again, and still reaches C and B.
    ok(in_ns(&h, &c.id, &["ip", "-6", "neigh", "flush", "all"]));
    knows_c();
    let o = h.in_container(&a.id, &["ping", "-6", "-c", "1", "-W", "2", &c6]);
    assert!(
        o.status.success(),
        "A cannot ping C after reload: {}",
        text(&o)
    );
    answers(
        h.wget_from(&a.id, &url(&b6, 80)),
        &b.id,
        "A to B after reload",
    );
}

/// Network namespaces made with `ip -batch`, deleted on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn create(names: Vec<String>) -> Self {
        ip_batch(names.iter().map(|n| format!("netns add {n}")));
        Namespaces(names)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        ip_batch(self.0.iter().map(|n| format!("netns del {n}")));
    }
}

fn ip_batch(lines: impl Iterator<Item = String>) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ip -batch");
    let mut stdin = child.stdin.take().expect("stdin");
    for l in lines {
        let _ = writeln!(stdin, "{l}");
    }
    drop(stdin);
    let _ = child.wait();
}

fn elements_of_set(h: &Host, set: &str) -> usize {
    let o = ok(h.exec(&["nft", "-j", "list", "set", "bridge", "ocinet", set]));
    let v: Value = serde_json::from_str(&o).expect("nft json");
    v["nftables"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find_map(|o| o["set"]["elem"].as_array().map(Vec::len))
        })
        .unwrap_or(0)
}

/// Dual-stack containers add elements, never rules: the same rule count
/// for 1, 10 and 100 of them (set up by the hook directly, in namespaces
/// made with `ip netns add`: this is about the firewall, not runtimes).
/// An IPv4-only container beside them has no IPv6 element.
#[test]
fn rule_count_is_constant_for_dual_stack_containers() {
    let h = Host::new();
    dual(&h, "ds", "10.72.0.0/16", "fd72::/64", &[]);
    let tag = ocinet_integration::unique_hex();
    let n = 100;
    let names: Vec<String> = (0..=n).map(|i| format!("{}-{i}", h.name)).collect();
    let _ns = Namespaces::create(names.clone());
    let mut counts = Vec::new();
    let mut started = Vec::new();
    let rules = || -> usize {
        ok(h.ocinet(&["firewall", "rules"]))
            .trim()
            .parse()
            .expect("count")
    };
    for (i, ns) in names.iter().enumerate() {
        let id = format!("{}{i:04}-d", &tag[..8]);
        // The last one is on the default network, IPv4 only.
        let network = if i == n { "ocinet" } else { "ds" };
        let bundle = h.dir.join("b").join(&id);
        std::fs::create_dir_all(&bundle).expect("bundle");
        let config = serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "annotations": {"io.ocinet.network": network,
                            "io.ocinet.ports": format!("{}:80", 20000 + i)},
            "linux": {"namespaces": [{"type": "network", "path": format!("/run/netns/{ns}")}]}
        });
        std::fs::write(bundle.join("config.json"), config.to_string()).expect("config");
        let state = format!(
            r#"{{"ociVersion":"1.0","id":"{id}","status":"creating","bundle":"{}"}}"#,
            bundle.display()
        );
        let o = h.hook("createRuntime", &state, &[]);
        assert!(o.status.success(), "setup {i}: {}", text(&o));
        started.push((id, state));
        if [1, 10, n, n + 1].contains(&(i + 1)) {
            counts.push((i + 1, rules()));
        }
    }
    assert_eq!(
        elements_of_set(&h, "port_ip6"),
        n,
        "one port_ip6 per dual-stack container"
    );
    assert_eq!(elements_of_set(&h, "port_ip"), n + 1);
    for (id, state) in &started {
        let o = h.hook("poststop", state, &[]);
        assert!(o.status.success(), "teardown {id}: {}", text(&o));
    }
    assert!(
        counts.iter().all(|(_, c)| *c == counts[0].1),
        "rule count grew: {counts:?}"
    );
    assert!(counts[0].1 > 0);
    assert_eq!(elements_of_set(&h, "port_ip6"), 0, "elements left");
    assert!(h.ps().is_empty());
}

/// The IPv6 sets' elements as `nft` lists them, by set.
fn ipv6_elements(h: &Host) -> std::collections::BTreeMap<String, Vec<String>> {
    let o = ok(h.exec(&["nft", "-j", "list", "ruleset"]));
    let v: Value = serde_json::from_str(&o).expect("nft json");
    let mut out = std::collections::BTreeMap::new();
    for s in v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("set"))
        .filter(|s| s["table"] == "ocinet")
    {
        let name = s["name"].as_str().unwrap_or("");
        if !["masq_subnets6", "own_sources6", "port_ip6"].contains(&name) {
            continue;
        }
        let mut elems: Vec<String> = s["elem"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        elems.sort();
        out.insert(name.to_string(), elems);
    }
    out
}

/// The IPv6 elements the hooks send over netlink are exactly those `nft`
/// declares from the same records at a rebuild, and teardown takes them
/// all away (as `firewall_wire.rs` checks for the IPv4 sets).
#[test]
fn ipv6_elements_over_netlink_match_what_nft_declares() {
    let h = Host::new();
    dual(&h, "w6", "10.73.0.0/24", "fd73::/64", &[]);
    dual(
        &h,
        "w6i",
        "10.74.0.0/24",
        "fd74:0:0:1::/120",
        &["--internal"],
    );
    let a = h.bare_container("w6-a", serde_json::json!({"io.ocinet.network": "w6"}));
    let b = h.bare_container("w6-b", serde_json::json!({"io.ocinet.network": "w6i"}));
    let c = h.bare_container("w6-c", serde_json::json!({}));
    // The skeleton first, so that every element below comes over netlink.
    ok(h.ocinet(&["firewall", "reload"]));
    for x in [&a, &b, &c] {
        ok(h.hook("createRuntime", &x.state, &[]));
    }
    let by_netlink = ipv6_elements(&h);
    assert_eq!(
        by_netlink["masq_subnets6"],
        [r#"{"prefix":{"addr":"fd73::","len":64}}"#],
        "only the network that is not internal is masqueraded"
    );
    assert_eq!(by_netlink["own_sources6"].len(), 2, "{by_netlink:#?}");
    assert_eq!(
        by_netlink["port_ip6"].len(),
        2,
        "one per dual-stack container, none for the IPv4-only one: {by_netlink:#?}"
    );
    ok(h.ocinet(&["firewall", "reload"]));
    assert_eq!(
        by_netlink,
        ipv6_elements(&h),
        "netlink-made elements differ from nft's"
    );
    for x in [&a, &b, &c] {
        ok(h.hook("poststop", &x.stopped_state(), &[]));
    }
    ok(h.ocinet(&["network", "rm", "w6"]));
    ok(h.ocinet(&["network", "rm", "w6i"]));
    let left = ipv6_elements(&h);
    assert!(left.values().all(Vec::is_empty), "left: {left:#?}");
}

both_runtimes!(
    reaches_the_outside_over_ipv6_masqueraded,
    dual_stack_networks_are_isolated_over_ipv6,
    internal_dual_stack_network_is_closed_over_ipv6,
    direct_routing_over_ipv6_is_closed_on_nat_networks,
    forged_ipv6_sources_from_the_uplink_are_dropped,
    loopback_ipv6_destination_from_a_container_is_dropped,
    a_container_cannot_spoof_over_ipv6_or_act_as_a_router,
);
