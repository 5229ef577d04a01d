//! Issue 3: the firewall's rule count does not grow with containers. 1,000
//! endpoints, each publishing a port, set up by the hook directly (network
//! namespaces made with `ip netns add`, no runtime: this test is about the
//! firewall, and runtimes would only make it slow). Issue 22: every
//! second one is on a dual-stack network, so its IPv6 elements are among
//! them.

use std::io::Write;
use std::process::{Command, Stdio};

use ocinet_integration::{ok, text, unique_hex, Host};

struct Namespaces(Vec<String>);

impl Namespaces {
    fn create(names: Vec<String>) -> Self {
        batch(names.iter().map(|n| format!("netns add {n}")));
        Namespaces(names)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        batch(self.0.iter().map(|n| format!("netns del {n}")));
    }
}

fn batch(lines: impl Iterator<Item = String>) {
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    let mut stdin = child.stdin.take().expect("stdin");
    for l in lines {
        let _ = writeln!(stdin, "{l}");
    }
    drop(stdin);
    let _ = child.wait();
}

#[test]
fn rule_count_is_the_same_for_1_100_and_1000_containers() {
    let h = Host::new();
    let tag = unique_hex();
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("{}{i:04}-s", &tag[..8]))
        .collect();
    let names: Vec<String> = (0..1000).map(|i| format!("{}-{i}", h.name)).collect();
    let _ns = Namespaces::create(names.clone());
    ok(h.ocinet(&[
        "network",
        "create",
        "ds",
        "--subnet",
        "10.73.0.0/22",
        "--subnet",
        "fd73::/64",
        "--disable-dns",
    ]));
    let mut counts = Vec::new();
    let mut started = Vec::new();
    for (i, (id, ns)) in ids.iter().zip(&names).enumerate() {
        // The first on the default network (IPv4 only), then every second
        // one dual stack.
        let network = if i % 2 == 1 { "ds" } else { "ocinet" };
        let bundle = h.dir.join("b").join(id);
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
        started.push((id.clone(), state));
        if [1, 100, 1000].contains(&(i + 1)) {
            let n: usize = ok(h.ocinet(&["firewall", "rules"]))
                .trim()
                .parse()
                .expect("count");
            counts.push((i + 1, n));
        }
    }
    let elements = h.nft_elements().len();
    for (id, state) in &started {
        let o = h.hook("poststop", state, &[]);
        assert!(o.status.success(), "teardown {id}: {}", text(&o));
    }
    assert!(
        counts.iter().all(|(_, n)| *n == counts[0].1),
        "rule count grew: {counts:?}"
    );
    assert!(counts[0].1 > 0);
    // 1,000 containers are 2,000 port-map elements and 3,000 anti-spoofing
    // elements, plus the networks' own; the 500 dual-stack ones 1,000
    // IPv6 port-map elements and their IPv6 anti-spoofing ones besides.
    assert!(elements >= 6500, "only {elements} elements");
    assert!(h.ps().is_empty());
    // The dual-stack network's own elements go with it.
    ok(h.ocinet(&["network", "rm", "ds"]));
    assert!(
        h.nft_elements().len() < 10,
        "elements left: {}",
        h.nft_elements().len()
    );
}
