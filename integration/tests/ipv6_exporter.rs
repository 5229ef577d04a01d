//! Issue 22: the exporter with dual-stack containers, by a real scrape.
//! The info series of a dual-stack interface carries its IPv6 address in
//! `ip6` beside `ip`; an IPv4-only interface's series keeps exactly its
//! labels. The address gauges are per subnet (`subnet` label), the IPv6
//! free count a float (2^64 - 3 for a /64 with one lease).

use std::process::Command;

use ocinet_integration::{both_runtimes, ok, text, Host, Runtime, Spec, EXPORTER_ADDR};

fn scrape(h: &Host) -> String {
    ok(h.exec(&["curl", "-sf", &format!("http://{EXPORTER_ADDR}/metrics")]))
}

/// The sample lines of `name`.
fn samples<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .collect()
}

fn value(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    samples(metrics, name)
        .into_iter()
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The label names of a sample line, sorted.
fn label_names(line: &str) -> Vec<String> {
    let inner = line
        .split_once('{')
        .and_then(|(_, r)| r.split_once('}'))
        .map(|(l, _)| l)
        .unwrap_or("");
    let mut names: Vec<String> = inner
        .split("\",")
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    names.sort();
    names
}

fn dual_stack_info_and_per_subnet_gauges(rt: Runtime) {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "ds",
        "--subnet",
        "10.64.0.0/24",
        "--subnet",
        "fd64::/64",
    ]));
    let dual = h.start(rt, "d", &Spec::default().ann("io.ocinet.network", "ds"));
    let v4 = h.start(rt, "f", &Spec::default());
    let _e = h.start_exporter(&[]);
    let m = scrape(&h);
    let info = "ocinet_container_network_info";
    let line = |id: &str| {
        samples(&m, info)
            .into_iter()
            .find(|l| l.contains(&format!("container_id=\"{id}\"")))
            .unwrap_or_else(|| panic!("no info for {id}: {m}"))
            .to_string()
    };
    let d = line(&dual.id);
    assert!(
        d.contains("ip=\"10.64.0.2\"") && d.contains("ip6=\"fd64::2\""),
        "{d}"
    );
    // IPv4 only: the labels it always had, no empty ip6.
    let f = line(&v4.id);
    assert_eq!(
        label_names(&f),
        [
            "container",
            "container_id",
            "host_interface",
            "interface",
            "ip",
            "mac",
            "network"
        ],
        "{f}"
    );
    // Address gauges per subnet: IPv4 counts as before, IPv6 as floats.
    let addr = "ocinet_network_addresses";
    let v4_subnet = ["network=\"ds\"", "subnet=\"10.64.0.0/24\""];
    assert_eq!(
        value(
            &m,
            addr,
            &[v4_subnet[0], v4_subnet[1], "state=\"allocated\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, addr, &[v4_subnet[0], v4_subnet[1], "state=\"free\""]),
        Some(256.0 - 3.0 - 1.0)
    );
    let v6_subnet = ["network=\"ds\"", "subnet=\"fd64::/64\""];
    assert_eq!(
        value(
            &m,
            addr,
            &[v6_subnet[0], v6_subnet[1], "state=\"allocated\""]
        ),
        Some(1.0)
    );
    let free6 =
        value(&m, addr, &[v6_subnet[0], v6_subnet[1], "state=\"free\""]).expect("IPv6 free");
    assert_eq!(
        free6,
        (u64::MAX - 2) as f64,
        "2^64 less the subnet's address, gateway and one lease"
    );
    // The default network, IPv4 only, has its IPv4 series alone.
    let def: Vec<&str> = samples(&m, addr)
        .into_iter()
        .filter(|l| l.contains("network=\"ocinet\""))
        .collect();
    assert_eq!(def.len(), 2, "{def:?}");
    assert!(def.iter().all(|l| l.contains("subnet=\"10.")), "{def:?}");
    assert_eq!(
        value(
            &m,
            "ocinet_scrape_collector_success",
            &["collector=\"ipam\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "ocinet_scrape_collector_success",
            &["collector=\"netdev\""]
        ),
        Some(1.0)
    );
    // promtool takes it (float values, the optional label).
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        let mut si = check.stdin.take().expect("stdin");
        si.write_all(m.as_bytes()).expect("write");
    }
    let out = check.wait_with_output().expect("promtool output");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "promtool: {}",
        text(&out)
    );
}

both_runtimes!(dual_stack_info_and_per_subnet_gauges);
