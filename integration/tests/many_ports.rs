//! Issue 13: a container may publish up to the documented cap of 4,096
//! ports. Set up and torn down in one nf_tables transaction each: the
//! elements go in and come out whole, traffic flows, the hook never waits
//! on an answer that cannot come, and nothing is left.

use std::time::{Duration, Instant};

use ocinet_integration::{answers, assert_clean, both_runtimes, Host, Runtime, Spec};

/// Elements of one map of the `inet ocinet` table.
fn map_len(h: &Host, map: &str) -> usize {
    let o = h.exec(&["nft", "-j", "list", "map", "inet", "ocinet", map]);
    assert!(o.status.success(), "nft list map {map} failed");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("map"))
        .map(|m| m["elem"].as_array().map_or(0, Vec::len))
        .sum()
}

fn publishes_and_releases(rt: Runtime) {
    let h = Host::new();
    for n in [1u32, 63, 128, 1024, 4096] {
        // Container port 80 (httpd) is always the first host port.
        let spec = format!("30000-{}:80-{}", 30000 + n - 1, 80 + n - 1);
        let started = Instant::now();
        let mut c = h.start(
            rt,
            &format!("p{n}"),
            &Spec::default().ann("io.ocinet.ports", &spec),
        );
        assert!(c.exit.is_none(), "{n} ports: {}", c.output());
        let setup = started.elapsed();
        assert_eq!(map_len(&h, "pub_any_addr"), n as usize, "{n} ports");
        assert_eq!(map_len(&h, "pub_any_port"), n as usize, "{n} ports");
        assert_eq!(h.port_claims().len(), n as usize, "{n} ports");
        answers(h.wget("http://127.0.0.1:30000/"), &c.id);
        let started = Instant::now();
        h.stop(&mut c);
        let teardown = started.elapsed();
        assert_eq!(map_len(&h, "pub_any_addr"), 0, "{n} ports left elements");
        assert_eq!(map_len(&h, "pub_any_port"), 0, "{n} ports left elements");
        assert_clean(&h, &c.id);
        // Debug build, whole runtime start/stop: generous, but far from
        // the 10 s an unanswered batch used to wait per hook call.
        for (what, took) in [("start", setup), ("stop", teardown)] {
            assert!(
                took < Duration::from_secs(8),
                "{n} ports: {what} took {took:?}"
            );
        }
        let log = h.log();
        assert!(!log.contains("ERROR"), "{n} ports: {log}");
    }
}

both_runtimes!(publishes_and_releases);
