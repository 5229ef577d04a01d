//! An overlay container's interface retries neighbour resolution every
//! 100 ms (ten times the probes, so an absent address is still given up
//! after the kernel's 3 s): a host's first container is reached by the
//! other hosts' containers ~100 ms, not 1 s, after an ARP that came
//! before their host routed its new block (BENCHMARKS.md 16.2). Read
//! back from inside the container's namespace; only overlay attachments
//! change, a bridge network's interface keeps the kernel's defaults.

use ocinet_integration::cluster::{overlay_network, Cluster};
use ocinet_integration::{ok, Host, Runtime, Spec};

/// `retrans_time_ms`, `mcast_solicit`, `ucast_solicit` of `ifname` in
/// the container's namespace (the sysctl files a process in that
/// namespace sees), for IPv6 when `v6`.
fn parms(h: &Host, id: &str, ifname: &str, v6: bool) -> (u64, u64, u64) {
    let fam = if v6 { "ipv6" } else { "ipv4" };
    let read = |f: &str| -> u64 {
        let path = format!("/proc/sys/net/{fam}/neigh/{ifname}/{f}");
        let out = ok(h.in_container(id, &["cat", &path]));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{path} in {id}: {out:?}: {e}"))
    };
    (
        read("retrans_time_ms"),
        read("mcast_solicit"),
        read("ucast_solicit"),
    )
}

/// The same, of network `net`'s bridge in the host's namespace (named as
/// `network inspect` says).
fn bridge_parms(h: &Host, net: &str, v6: bool) -> (u64, u64, u64) {
    let insp: serde_json::Value =
        serde_json::from_str(&ok(h.ocinet(&["network", "inspect", net]))).expect("inspect json");
    let bridge = insp[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap_or_else(|| panic!("no bridge named in {insp}"))
        .to_string();
    let fam = if v6 { "ipv6" } else { "ipv4" };
    let read = |f: &str| -> u64 {
        let path = format!("/proc/sys/net/{fam}/neigh/{bridge}/{f}");
        let out = ok(h.exec(&["cat", &path]));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{path} on the host: {out:?}: {e}"))
    };
    (
        read("retrans_time_ms"),
        read("mcast_solicit"),
        read("ucast_solicit"),
    )
}

const OVERLAY: (u64, u64, u64) = (100, 30, 30);
const KERNEL: (u64, u64, u64) = (1000, 3, 3);

#[test]
fn overlay_interfaces_retry_neighbour_resolution_sooner_bridge_ones_do_not() {
    let c = Cluster::joined(1);
    let h = &c.hosts[0];
    overlay_network(h, "ov", "10.71.0.0/16", &[]);
    overlay_network(
        h,
        "ds",
        "10.72.0.0/16",
        &["--ipv6", "--subnet", "fd72::/64"],
    );
    ok(h.ocinet(&["network", "create", "br", "--subnet", "10.70.5.0/24"]));

    // IPv4 overlay beside a bridge network, in either order, under both
    // runtimes: the overlay interface only.
    for (rt, nets, ov_if, br_if) in [
        (Runtime::Runc, "ov,br", "eth0", "eth1"),
        (Runtime::Crun, "br,ov", "eth1", "eth0"),
    ] {
        let name = format!("v4-{}", rt.name());
        let ct = h.started(
            rt,
            &name,
            &Spec::default()
                .ann("io.ocinet.network", nets)
                .ann("io.ocinet.name", &name),
        );
        assert_eq!(
            parms(h, &ct.id, ov_if, false),
            OVERLAY,
            "{rt:?}: the overlay interface {ov_if}'s ARP parameters"
        );
        assert_eq!(
            parms(h, &ct.id, br_if, false),
            KERNEL,
            "{rt:?}: the bridge interface {br_if} keeps the kernel's ARP defaults"
        );
        // The host's end (while a container has the bridges up): the
        // overlay network's bridge resolves this host's containers as
        // fast; a bridge network's keeps the kernel's defaults.
        assert_eq!(bridge_parms(h, "ov", false), OVERLAY, "overlay bridge ARP");
        assert_eq!(
            bridge_parms(h, "br", false),
            KERNEL,
            "bridge network's bridge ARP"
        );
        // An IPv4-only overlay network leaves NDP alone (where the
        // interface has IPv6 at all).
        let v6 = h.in_container(
            &ct.id,
            &[
                "cat",
                &format!("/proc/sys/net/ipv6/neigh/{ov_if}/retrans_time_ms"),
            ],
        );
        if v6.status.success() {
            assert_eq!(
                parms(h, &ct.id, ov_if, true),
                KERNEL,
                "{rt:?}: NDP on an IPv4-only overlay interface"
            );
        }
    }

    // Dual stack: ARP and NDP alike.
    for rt in [Runtime::Runc, Runtime::Crun] {
        let name = format!("ds-{}", rt.name());
        let ct = h.started(rt, &name, &Spec::on("ds", &name));
        assert_eq!(
            parms(h, &ct.id, "eth0", false),
            OVERLAY,
            "{rt:?}: ARP on a dual-stack overlay interface"
        );
        assert_eq!(
            parms(h, &ct.id, "eth0", true),
            OVERLAY,
            "{rt:?}: NDP on a dual-stack overlay interface"
        );
        assert_eq!(
            bridge_parms(h, "ds", false),
            OVERLAY,
            "dual-stack overlay bridge ARP"
        );
        assert_eq!(
            bridge_parms(h, "ds", true),
            OVERLAY,
            "dual-stack overlay bridge NDP"
        );
    }

    // A bridge deleted under a running container is made again by
    // `firewall reload`, tuned the same.
    {
        let ct = h.started(Runtime::Runc, "again", &Spec::on("ds", "again"));
        let insp: serde_json::Value =
            serde_json::from_str(&ok(h.ocinet(&["network", "inspect", "ds"])))
                .expect("inspect json");
        let bridge = insp[0]["Options"]["com.docker.network.bridge.name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ok(h.exec(&["ip", "link", "del", &bridge]));
        ok(h.ocinet(&["firewall", "reload"]));
        assert_eq!(bridge_parms(h, "ds", false), OVERLAY, "remade bridge ARP");
        assert_eq!(bridge_parms(h, "ds", true), OVERLAY, "remade bridge NDP");
        assert_eq!(parms(h, &ct.id, "eth0", false), OVERLAY, "the container's");
    }

    // A bridge network alone: both families at the kernel's defaults.
    for rt in [Runtime::Runc, Runtime::Crun] {
        let name = format!("br-{}", rt.name());
        let ct = h.started(rt, &name, &Spec::on("br", &name));
        assert_eq!(
            parms(h, &ct.id, "eth0", false),
            KERNEL,
            "{rt:?}: bridge ARP"
        );
        let v6 = h.in_container(
            &ct.id,
            &["cat", "/proc/sys/net/ipv6/neigh/eth0/retrans_time_ms"],
        );
        if v6.status.success() {
            assert_eq!(parms(h, &ct.id, "eth0", true), KERNEL, "{rt:?}: bridge NDP");
        }
    }
}
