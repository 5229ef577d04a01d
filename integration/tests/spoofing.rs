//! Issue 6: a container cannot send as another. Container A spoofs B's
//! address, B's MAC and B's ARP identity towards C; nftables counters in C's
//! namespace see what actually arrives. The same spoof with ocinet's guard
//! chain flushed must arrive, or the counters prove nothing.
//!
//! runc only: the guard sits on the host's bridge port, whatever runtime
//! made the namespace.

use std::process::{Command, Output};

use ocinet_integration::{ok, run_cmd, text, Host, Runtime, Spec};
use serde_json::Value;

struct Peer {
    id: String,
    ip: String,
    mac: String,
}

fn peer(h: &Host, tag: &str) -> Peer {
    let c = h.start(Runtime::Runc, tag, &Spec::default());
    assert!(c.exit.is_none(), "{}", c.output());
    let ep = h.endpoint(&c.id).expect("endpoint");
    let field = |k: &str| {
        ep[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} of {}", c.id))
            .to_string()
    };
    Peer {
        id: c.id.clone(),
        ip: field("ip"),
        mac: field("mac"),
    }
}

/// A host tool (nft, ip) run in a container's network namespace.
fn in_ns(h: &Host, id: &str, args: &[&str]) -> Output {
    run_cmd(
        Command::new("nsenter")
            .arg(format!("--net={}", h.netns_of(id)))
            .args(args),
    )
}

/// A never needs to ARP for C: a permanent neighbour entry (made again
/// after a MAC change, which flushes even those).
fn knows_c(h: &Host, a: &Peer, c: &Peer) {
    ok(in_ns(
        h,
        &a.id,
        &[
            "ip",
            "neigh",
            "replace",
            &c.ip,
            "lladdr",
            &c.mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    ));
}

/// Named counters in C's namespace for each way A could show up.
fn install_spy(h: &Host, c: &Peer, a: &Peer, b: &Peer) {
    let rules = format!(
        "table inet spy {{
            counter genuine {{}}
            counter as_b_ip {{}}
            counter as_b_mac {{}}
            chain input {{
                type filter hook input priority -300; policy accept;
                ether saddr {am} ip saddr {ai} icmp type echo-request counter name genuine
                ether saddr {am} ip saddr {bi} counter name as_b_ip
                ether saddr {bm} ip saddr {ai} counter name as_b_mac
            }}
        }}
        table arp spy {{
            counter as_b_arp {{}}
            chain input {{
                type filter hook input priority -300; policy accept;
                arp saddr ether {am} arp saddr ip {bi} counter name as_b_arp
            }}
        }}",
        am = a.mac,
        ai = a.ip,
        bm = b.mac,
        bi = b.ip,
    );
    let path = h.dir.join("spy.nft");
    std::fs::write(&path, rules).expect("spy rules");
    ok(in_ns(h, &c.id, &["nft", "-f", &path.display().to_string()]));
}

fn count(h: &Host, c: &Peer, family: &str, name: &str) -> u64 {
    let o = ok(in_ns(
        h,
        &c.id,
        &["nft", "-j", "list", "counter", family, "spy", name],
    ));
    let v: Value = serde_json::from_str(&o).expect("nft json");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("counter {name}: {o}"))
}

/// busybox's ping and arping from A's namespace; for spoofs the outcome is
/// not asserted (a spoofed ping gets no answer either way), only what
/// reaches C.
fn from_a(h: &Host, a: &Peer, args: &[&str]) -> Output {
    h.in_container(&a.id, args)
}

#[test]
fn a_container_cannot_send_with_another_containers_ip_mac_or_arp_identity() {
    let h = Host::new();
    let (a, b, c) = (peer(&h, "a"), peer(&h, "b"), peer(&h, "c"));
    install_spy(&h, &c, &a, &b);
    // A never needs to ARP for C: the IP and MAC checks are tested on their
    // own, the ARP check separately below.
    knows_c(&h, &a, &c);

    // A as itself reaches C, and the counters see it.
    let o = from_a(&h, &a, &["ping", "-c", "2", "-W", "2", &c.ip]);
    assert!(
        o.status.success(),
        "A cannot ping C as itself: {}",
        text(&o)
    );
    assert!(count(&h, &c, "inet", "genuine") >= 2);

    // B's address.
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "addr", "add", &format!("{}/32", b.ip), "dev", "eth0"],
    ));
    let _ = from_a(&h, &a, &["ping", "-c", "3", "-W", "1", "-I", &b.ip, &c.ip]);
    assert_eq!(
        count(&h, &c, "inet", "as_b_ip"),
        0,
        "a packet with B's address from A's MAC reached C"
    );

    // B's ARP identity: "B is at A's MAC".
    let _ = from_a(
        &h,
        &a,
        &["arping", "-U", "-c", "2", "-s", &b.ip, "-I", "eth0", &b.ip],
    );
    let _ = from_a(
        &h,
        &a,
        &[
            "arping", "-c", "2", "-w", "2", "-s", &b.ip, "-I", "eth0", &c.ip,
        ],
    );
    assert_eq!(
        count(&h, &c, "arp", "as_b_arp"),
        0,
        "an ARP claim for B's address from A reached C"
    );
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "addr", "del", &format!("{}/32", b.ip), "dev", "eth0"],
    ));

    // B's MAC.
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "link", "set", "eth0", "address", &b.mac],
    ));
    let _ = from_a(&h, &a, &["ping", "-c", "3", "-W", "1", &c.ip]);
    assert_eq!(
        count(&h, &c, "inet", "as_b_mac"),
        0,
        "a frame with B's MAC from A's port reached C"
    );
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "link", "set", "eth0", "address", &a.mac],
    ));
    // The bridge never learned B's MAC on A's port: C still reaches B.
    let got = ok(h.wget_from(&c.id, &format!("http://{}/", b.ip)));
    assert_eq!(got.trim(), format!("hello from {}", b.id));

    // Control: without the guard chain the same spoof does arrive, so the
    // zeros above are the guard's doing. A reload puts the guard back.
    ok(h.exec(&["nft", "flush", "chain", "bridge", "ocinet", "port_guard"]));
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "addr", "add", &format!("{}/32", b.ip), "dev", "eth0"],
    ));
    let _ = from_a(&h, &a, &["ping", "-c", "2", "-W", "1", "-I", &b.ip, &c.ip]);
    let unguarded = count(&h, &c, "inet", "as_b_ip");
    assert!(
        unguarded >= 1,
        "without the guard the spoofed packets should arrive; the test cannot see spoofing"
    );
    let _ = from_a(
        &h,
        &a,
        &[
            "arping", "-c", "2", "-w", "2", "-s", &b.ip, "-I", "eth0", &c.ip,
        ],
    );
    assert!(
        count(&h, &c, "arp", "as_b_arp") >= 1,
        "without the guard the ARP claim should arrive"
    );
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "link", "set", "eth0", "address", &b.mac],
    ));
    let _ = from_a(&h, &a, &["ping", "-c", "2", "-W", "1", &c.ip]);
    assert!(
        count(&h, &c, "inet", "as_b_mac") >= 1,
        "without the guard B's MAC from A should arrive"
    );
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "link", "set", "eth0", "address", &a.mac],
    ));
    ok(h.ocinet(&["firewall", "reload"]));
    let _ = from_a(&h, &a, &["ping", "-c", "2", "-W", "1", "-I", &b.ip, &c.ip]);
    assert_eq!(
        count(&h, &c, "inet", "as_b_ip"),
        unguarded,
        "spoofed packets pass after firewall reload"
    );
    // And A as itself still works, once C forgets what the unguarded
    // spoofs taught its neighbour table (A's address at B's MAC), and A is
    // itself again: without B's address, and with the permanent entry for
    // C it started with (a MAC change flushes even permanent entries, so
    // the guarded ping from B's address above left A resolving C with B's
    // address as the sender, which the guard rightly drops).
    ok(in_ns(&h, &c.id, &["ip", "neigh", "flush", "all"]));
    ok(in_ns(
        &h,
        &a.id,
        &["ip", "addr", "del", &format!("{}/32", b.ip), "dev", "eth0"],
    ));
    knows_c(&h, &a, &c);
    let o = from_a(&h, &a, &["ping", "-c", "1", "-W", "2", &c.ip]);
    assert!(
        o.status.success(),
        "A cannot ping C after reload: {}",
        text(&o)
    );
}
