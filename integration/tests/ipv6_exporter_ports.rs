//! Issue 22: `ocinet_port_mapping_connections` counts IPv6 connections
//! through published ports, by a real scrape. An IPv6 series carries
//! `family="ipv6"` (and `host_ip="::"` for a port published on every
//! address); an IPv4 series keeps exactly the labels it always had. The
//! connections come from the outside namespace (2001:db8:100::2) to the
//! host's address on its link (2001:db8:100::1).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocinet_integration::{
    both_runtimes, ok, Host, Proc, Runtime, Spec, EXPORTER_ADDR, HOST_LINK_IP6,
};

const METRIC: &str = "ocinet_port_mapping_connections";

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

/// The sample lines of the port series for `host_port`.
fn series(metrics: &str, host_port: u16) -> Vec<&str> {
    samples(metrics, METRIC)
        .into_iter()
        .filter(|l| l.contains(&format!("host_port=\"{host_port}\"")))
        .collect()
}

/// The value of the one series of `host_port` whose labels include all of
/// `labels`.
fn value(metrics: &str, host_port: u16, labels: &[&str]) -> Option<f64> {
    let found: Vec<&str> = series(metrics, host_port)
        .into_iter()
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .collect();
    assert!(found.len() <= 1, "{found:?}");
    found
        .first()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrape until the series of `host_port` with `labels` reads `want`.
#[track_caller]
fn reads(h: &Host, host_port: u16, labels: &[&str], want: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while Instant::now() < deadline {
        last = value(&scrape(h), host_port, labels);
        if last == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{host_port} {labels:?}: {last:?}, not {want}\n{:?}",
        series(&scrape(h), host_port)
    );
}

/// A TCP connection from the outside namespace to `[ip]:port`, held open
/// until dropped (the client then closes it).
fn connect_from_outside(h: &Host, ip: &str, port: u16) -> Proc {
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.outside()))
        .args([
            "timeout",
            "60",
            "python3",
            "-c",
            "import socket, sys\n\
             s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
             print('connected', flush=True)\n\
             sys.stdin.read()\n",
            ip,
            &port.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("client");
    use std::io::BufRead;
    let mut line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let p = Proc(child);
    assert_eq!(line.trim(), "connected", "[{ip}]:{port}");
    p
}

/// `promtool check metrics` takes the exposition (series of one metric
/// with and without `family`) without a word.
fn promtool_accepts(metrics: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        let mut si = check.stdin.take().expect("stdin");
        si.write_all(metrics.as_bytes()).expect("write");
    }
    let out = check.wait_with_output().expect("promtool output");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}",
        ocinet_integration::text(&out)
    );
}

/// The host namespace forgets closed connections within a second (the
/// defaults keep them for up to two minutes), so that a closed one
/// leaves its series promptly.
fn short_conntrack_timeouts(h: &Host) {
    for t in ["time_wait", "close", "close_wait", "fin_wait", "last_ack"] {
        ok(h.exec(&[
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_{t}"),
        ]));
    }
}

/// A dual-stack container publishing `8080:80` (both families) and
/// `[HOST_LINK_IP6]:8081:80`: each has an IPv6 series, 0 while idle, 1
/// with an open IPv6 connection through it from the outside, 0 again once
/// the connection is closed; the IPv4 series of 8080 keeps its labels (no
/// `family`) and does not count IPv6 connections; 8081 has no IPv4 series.
fn ipv6_connections_per_published_port(rt: Runtime) {
    let h = Host::new();
    h.outside();
    short_conntrack_timeouts(&h);
    ok(h.ocinet(&[
        "network",
        "create",
        "ds",
        "--subnet",
        "10.68.0.0/24",
        "--subnet",
        "fd68::/64",
    ]));
    let c = h.start(
        rt,
        "pub",
        &Spec::default()
            .ann("io.ocinet.network", "ds")
            .ann("io.ocinet.name", "api")
            .ann(
                "io.ocinet.ports",
                &format!("8080:80,[{HOST_LINK_IP6}]:8081:80"),
            ),
    );
    assert!(c.exit.is_none(), "{}", c.output());
    let _e = h.start_exporter(&[]);
    let m = scrape(&h);
    let v4_8080 = series(&m, 8080)
        .into_iter()
        .find(|l| !l.contains("family="))
        .unwrap_or_else(|| panic!("no IPv4 series of 8080: {m}"))
        .to_string();
    assert_eq!(
        v4_8080,
        "ocinet_port_mapping_connections{container=\"api\",container_port=\"80\",host_ip=\"0.0.0.0\",host_port=\"8080\",interface=\"eth0\",network=\"ds\",protocol=\"tcp\"} 0",
        "the IPv4 series as it always was"
    );
    let six_any = ["family=\"ipv6\"", "host_ip=\"::\""];
    let six_addr = [
        "family=\"ipv6\"".to_string(),
        format!("host_ip=\"{HOST_LINK_IP6}\""),
    ];
    let six_addr: Vec<&str> = six_addr.iter().map(String::as_str).collect();
    assert_eq!(value(&m, 8080, &six_any), Some(0.0), "{m}");
    assert_eq!(value(&m, 8081, &six_addr), Some(0.0), "{m}");
    assert_eq!(series(&m, 8080).len(), 2, "{:?}", series(&m, 8080));
    assert_eq!(series(&m, 8081).len(), 1, "{:?}", series(&m, 8081));
    promtool_accepts(&m);

    // A first IPv6 packet to a fresh veth may wait for neighbour discovery:
    // prime the path, and let that connection's entry go.
    let url = format!("http://[{HOST_LINK_IP6}]:8081/");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.wget_outside(&url).status.success() {
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    reads(&h, 8081, &six_addr, 0.0);

    let mut one = connect_from_outside(&h, HOST_LINK_IP6, 8081);
    reads(&h, 8081, &six_addr, 1.0);
    let m = scrape(&h);
    assert_eq!(value(&m, 8080, &six_any), Some(0.0), "{m}");
    let mut two = connect_from_outside(&h, HOST_LINK_IP6, 8080);
    reads(&h, 8080, &six_any, 1.0);
    let m = scrape(&h);
    assert_eq!(value(&m, 8081, &six_addr), Some(1.0), "{m}");
    assert!(
        samples(&m, METRIC).contains(&v4_8080.as_str()),
        "an IPv6 connection counted on the IPv4 series: {:?}",
        series(&m, 8080)
    );

    // Closed: back to 0.
    let _ = one.0.kill();
    let _ = one.0.wait();
    reads(&h, 8081, &six_addr, 0.0);
    let _ = two.0.kill();
    let _ = two.0.wait();
    reads(&h, 8080, &six_any, 0.0);
    let m = scrape(&h);
    let success = samples(&m, "ocinet_scrape_collector_success")
        .into_iter()
        .find(|l| l.contains("collector=\"portmap\""))
        .map(str::to_string);
    assert!(
        success.as_deref().is_some_and(|l| l.ends_with(" 1")),
        "{success:?}"
    );
}

both_runtimes!(ipv6_connections_per_published_port);
