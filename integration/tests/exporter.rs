//! Issue 4: the exporter against real containers, real traffic, the real
//! kernel, a real Prometheus server and promtool.

use std::process::Command;
use std::time::{Duration, Instant};

use ocinet_integration::{
    exporter_bin, ok, text, Host, Proc, Runtime, Spec, EXPORTER_ADDR, HOST_LINK_IP,
};

const ADDR: &str = EXPORTER_ADDR;

fn scrape(h: &Host) -> String {
    ok(h.exec(&["curl", "-sf", &format!("http://{ADDR}/metrics")]))
}

/// The value of the first sample of `name` whose labels contain all of `labels`.
fn value(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn host_veth_rx_tx(h: &Host, veth: &str) -> (u64, u64) {
    let o = ok(h.exec(&["ip", "-s", "-j", "link", "show", veth]));
    let v: serde_json::Value = serde_json::from_str(&o).expect("ip json");
    let s = &v[0]["stats64"];
    (
        s["rx"]["bytes"].as_u64().expect("rx"),
        s["tx"]["bytes"].as_u64().expect("tx"),
    )
}

#[test]
fn byte_counters_follow_a_transfer_and_match_ip_link() {
    let h = Host::new();
    let c = h.start(
        Runtime::Runc,
        "xfer",
        &Spec::default().ann("io.ocinet.name", "web"),
    );
    std::fs::write(c.bundle.join("www/big"), vec![b'x'; 1 << 20]).expect("1 MiB file");
    let _e = h.start_exporter(&[]);
    let ep = h.endpoint(&c.id).expect("endpoint");
    let veth = ep["host_interface"].as_str().expect("veth").to_string();
    let label = format!("container_id=\"{}\"", c.id);
    let before = scrape(&h);
    let tx0 = value(
        &before,
        "ocinet_container_network_transmit_bytes_total",
        &[&label],
    )
    .expect("tx series");
    let got = ok(h.exec(&[
        "curl",
        "-sf",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("http://{}/big", ep["ip"].as_str().unwrap_or("")),
    ]));
    assert_eq!(got.trim(), "1048576");
    // The bridge floods the odd frame of its own to every port (an IPv6
    // duplicate-address solicitation of its link-local, 86 bytes, about a
    // second after its first port came up): one landing between the
    // scrape and `ip link` makes the two differ by it, so the pair is read
    // again until a quiet moment (the counters only grow; a real
    // disagreement stays).
    let mut tries = 0;
    let (after, ctr_tx, ctr_rx, rx, tx) = loop {
        let after = scrape(&h);
        let (rx, tx) = host_veth_rx_tx(&h, &veth);
        let ctr_tx = value(
            &after,
            "ocinet_container_network_transmit_bytes_total",
            &[&label],
        )
        .expect("tx");
        let ctr_rx = value(
            &after,
            "ocinet_container_network_receive_bytes_total",
            &[
                &label,
                "interface=\"eth0\"",
                "container=\"web\"",
                "network=\"ocinet\"",
            ],
        )
        .expect("rx");
        tries += 1;
        if (ctr_tx as u64 == rx && ctr_rx as u64 == tx) || tries == 5 {
            break (after, ctr_tx, ctr_rx, rx, tx);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        ctr_tx - tx0 >= 1_048_576.0,
        "moved by {} only",
        ctr_tx - tx0
    );
    // What the container sent is what the host end received, and vice versa.
    assert_eq!(ctr_tx as u64, rx, "container transmit vs host veth receive");
    assert_eq!(ctr_rx as u64, tx, "container receive vs host veth transmit");
    assert!(value(
        &after,
        "ocinet_container_network_receive_packets_total",
        &[&label]
    )
    .is_some_and(|v| v > 0.0));
    for m in [
        "receive_errors_total",
        "receive_packets_dropped_total",
        "transmit_errors_total",
        "transmit_packets_dropped_total",
        "transmit_packets_total",
    ] {
        assert!(
            value(&after, &format!("ocinet_container_network_{m}"), &[&label]).is_some(),
            "{m} missing"
        );
    }
    let info = value(
        &after,
        "ocinet_container_network_info",
        &[
            &label,
            &format!("host_interface=\"{veth}\""),
            &format!("ip=\"{}\"", ep["ip"].as_str().unwrap_or("")),
        ],
    );
    assert_eq!(info, Some(1.0));
    // The veth name is on the info metric only.
    assert!(!after.lines().any(
        |l| l.starts_with("ocinet_container_network_receive_bytes_total") && l.contains(&veth)
    ));
    assert_eq!(
        value(&after, "ocinet_network_endpoints", &["network=\"ocinet\""]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "ocinet_network_addresses",
            &["network=\"ocinet\"", "state=\"allocated\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "ocinet_network_addresses",
            &["network=\"ocinet\"", "state=\"free\""]
        ),
        Some(65536.0 - 3.0 - 1.0)
    );
    for coll in ["netdev", "conntrack", "portmap", "ipam"] {
        assert_eq!(
            value(
                &after,
                "ocinet_scrape_collector_success",
                &[&format!("collector=\"{coll}\"")]
            ),
            Some(1.0),
            "{coll}"
        );
        assert!(value(
            &after,
            "ocinet_scrape_collector_duration_seconds",
            &[&format!("collector=\"{coll}\"")]
        )
        .is_some());
    }
    assert!(value(&after, "ocinet_build_info", &["version=\""]).is_some());
}

#[test]
fn conntrack_metrics_and_open_connections_per_published_port() {
    let h = Host::new();
    h.outside();
    let c = h.start(
        Runtime::Runc,
        "ct",
        &Spec::default()
            .ann("io.ocinet.name", "api")
            .ann("io.ocinet.ports", "8080:80,5353:53/udp"),
    );
    let _e = h.start_exporter(&[]);
    let m = scrape(&h);
    let labels = [
        "container=\"api\"",
        // The attachment the ports are published from.
        "network=\"ocinet\"",
        "interface=\"eth0\"",
        "protocol=\"tcp\"",
        "host_ip=\"0.0.0.0\"",
        "host_port=\"8080\"",
        "container_port=\"80\"",
    ];
    assert_eq!(
        value(&m, "ocinet_port_mapping_connections", &labels),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "ocinet_port_mapping_connections",
            &["protocol=\"udp\"", "host_port=\"5353\""]
        ),
        Some(0.0)
    );
    // Hold a connection open from the outside.
    let outside = h.outside();
    let _conn = Proc(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{outside}"))
            .args([
                "sh",
                "-c",
                &format!("sleep 20 | busybox nc {HOST_LINK_IP} 8080"),
            ])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("nc"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0.0;
    while Instant::now() < deadline && seen < 1.0 {
        std::thread::sleep(Duration::from_millis(100));
        seen = value(&scrape(&h), "ocinet_port_mapping_connections", &labels).unwrap_or(0.0);
    }
    assert!(seen >= 1.0, "open connection not counted");
    let m = scrape(&h);
    let entries = value(&m, "ocinet_nf_conntrack_entries", &[]).expect("entries");
    let limit = value(&m, "ocinet_nf_conntrack_entries_limit", &[]).expect("limit");
    assert!(
        entries >= 1.0 && limit >= entries && limit > 1000.0,
        "entries {entries} limit {limit}"
    );
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    for stat in [
        "found",
        "invalid",
        "insert",
        "insert_failed",
        "drop",
        "early_drop",
        "error",
        "search_restart",
    ] {
        let name = format!("ocinet_nf_conntrack_stat_{stat}_total");
        let n = m
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{cpu=")))
            .count();
        assert!(n >= 1 && n <= cpus.max(1) * 64, "{name}: {n} series");
    }
    let _ = c;
}

#[test]
fn promtool_accepts_the_output_and_prometheus_scrapes_it() {
    let h = Host::new();
    let c = h.start(
        Runtime::Runc,
        "prom",
        &Spec::default()
            .ann("io.ocinet.name", "scraped")
            .ann("io.ocinet.ports", "8080:80"),
    );
    let _e = h.start_exporter(&[]);
    let metrics = scrape(&h);
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
        si.write_all(metrics.as_bytes()).expect("write");
    }
    let out = check.wait_with_output().expect("promtool output");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}",
        text(&out)
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        assert!(
            metrics.contains(&format!("# HELP {name} "))
                && metrics.contains(&format!("# TYPE {name} ")),
            "{name} lacks HELP/TYPE"
        );
    }

    let dir = h.dir.join("prometheus");
    std::fs::create_dir_all(&dir).expect("prom dir");
    std::fs::write(dir.join("prometheus.yml"), format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ocinet\n    static_configs:\n      - targets: ['{ADDR}']\n")).expect("config");
    let _prom = h.spawn(&[
        "prometheus",
        &format!("--config.file={}", dir.join("prometheus.yml").display()),
        &format!("--storage.tsdb.path={}", dir.join("data").display()),
        "--web.listen-address=127.0.0.1:9090",
    ]);
    let query = |q: &str| -> serde_json::Value {
        let o = h.exec(&[
            "curl",
            "-s",
            "--get",
            "--data-urlencode",
            &format!("query={q}"),
            "http://127.0.0.1:9090/api/v1/query",
        ]);
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        let up = query("up{job=\"ocinet\"}");
        let series = query(&format!("ocinet_container_network_receive_bytes_total{{container_id=\"{}\",container=\"scraped\"}}", c.id));
        if up["data"]["result"][0]["value"][1] == "1"
            && series["data"]["result"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        {
            let ports =
                query("ocinet_port_mapping_connections{container=\"scraped\",host_port=\"8080\"}");
            assert_eq!(
                ports["data"]["result"].as_array().map(Vec::len),
                Some(1),
                "{ports}"
            );
            return;
        }
        last = series;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never saw the target up with the container's series: {last}");
}

#[test]
fn basic_auth_and_tls_from_a_web_config_file() {
    let h = Host::new();
    let dir = h.dir.join("web");
    std::fs::create_dir_all(&dir).expect("web dir");
    ok(ocinet_integration::run_cmd(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")),
    ));
    let hash = bcrypt_hash("s3cret");
    std::fs::write(dir.join("web.yml"), format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prom: '{hash}'\n")).expect("web.yml");
    let cfg = dir.join("web.yml");
    let _e = h.start_exporter(&["--web.config.file", cfg.to_str().unwrap_or("")]);
    let url = format!("https://{ADDR}/metrics");
    let code = |args: &[&str]| -> String {
        let mut all = vec!["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        all.push(&url);
        text(&h.exec(&all))
    };
    assert_eq!(code(&["-u", "prom:s3cret"]), "200");
    assert_eq!(code(&["-u", "prom:wrong"]), "401");
    assert_eq!(code(&["-u", "nobody:s3cret"]), "401");
    assert_eq!(code(&[]), "401");
    let body = ok(h.exec(&["curl", "-sk", "-u", "prom:wrong", &url]));
    assert!(
        !body.contains("ocinet_"),
        "metrics leaked without auth: {body}"
    );
    let body = ok(h.exec(&["curl", "-sk", "-u", "prom:s3cret", &url]));
    assert!(body.contains("ocinet_build_info"));
    // Plain HTTP on the TLS port is not served.
    let o = h.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        "prom:s3cret",
        &format!("http://{ADDR}/metrics"),
    ]);
    assert_ne!(text(&o).trim(), "200");
    // A bad web config is refused at start.
    std::fs::write(
        dir.join("bad.yml"),
        "basic_auth_users:\n  prom: plaintext\n",
    )
    .expect("bad");
    let o = h.exec(&[
        exporter_bin().to_str().unwrap_or(""),
        "--web.config.file",
        dir.join("bad.yml").to_str().unwrap_or(""),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("not a bcrypt hash"),
        "{}",
        text(&o)
    );
}

#[test]
fn landing_page_unknown_paths_methods_and_disabled_collectors() {
    let h = Host::new();
    let _e = h.start_exporter(&["--no-collector.portmap", "--no-collector.conntrack"]);
    let page = ok(h.exec(&["curl", "-sf", &format!("http://{ADDR}/")]));
    assert!(page.contains("href=\"/metrics\""), "{page}");
    let code = |args: &[&str]| {
        text(
            &h.exec(
                &[
                    &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"],
                    args,
                ]
                .concat(),
            ),
        )
    };
    assert_eq!(code(&[&format!("http://{ADDR}/nope")]), "404");
    assert_eq!(
        code(&["-X", "POST", &format!("http://{ADDR}/metrics")]),
        "405"
    );
    let m = scrape(&h);
    assert!(
        !m.contains("collector=\"portmap\"") && !m.contains("ocinet_nf_conntrack"),
        "disabled collectors ran"
    );
    assert!(m.contains("collector=\"netdev\""));
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let h = Host::new();
    let mut e = h.start_exporter(&[]);
    // nsenter execs the exporter in place, so this pid is the exporter's.
    let pid = e.0.id();
    ok(ocinet_integration::run_cmd(
        Command::new("kill").args(["-TERM", &pid.to_string()]),
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(st)) = e.0.try_wait() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(Instant::now() < deadline, "exporter ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its stderr is a pipe, not a terminal: a log, so no colour codes.
    let mut log = String::new();
    if let Some(mut s) = e.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut log);
    }
    assert!(log.contains("listening"), "{log}");
    assert!(
        !log.contains("\x1b["),
        "ANSI codes in a redirected log: {log:?}"
    );
}

fn bcrypt_hash(password: &str) -> String {
    // python3's crypt module is gone and no bcrypt CLI ships by default:
    // the test crate hashes with the bcrypt crate.
    bcrypt::hash(password, 6).expect("bcrypt")
}

/// The exporter keeps parsed endpoint records between scrapes; a change
/// right before a scrape must still show in it.
#[test]
fn containers_show_up_and_go_in_the_very_next_scrape() {
    let h = Host::new();
    let _e = h.start_exporter(&[]);
    let listed = |id: &str| scrape(&h).contains(&format!("container_id=\"{id}\""));
    let mut cs = Vec::new();
    for i in 0..5 {
        let c = h.bare_container(&format!("seen{i}"), serde_json::json!({}));
        ok(h.hook("createRuntime", &c.state, &[]));
        // Old enough for the records to be kept: the next container's
        // setup must invalidate them.
        std::thread::sleep(Duration::from_millis(100));
        assert!(listed(&c.id), "{} missing right after setup", c.id);
        assert!(listed(&c.id), "{} missing from the second scrape", c.id);
        cs.push(c);
    }
    for mut c in cs {
        c.kill();
        ok(h.hook("poststop", &c.stopped_state(), &[]));
        assert!(!listed(&c.id), "{} still listed right after teardown", c.id);
    }
}
