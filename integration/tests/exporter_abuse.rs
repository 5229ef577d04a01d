//! Issue 6: the exporter under load and abuse. Clients are raw sockets made
//! inside the test's host namespace (threads setns into it), so nothing
//! about the HTTP they send is tidied up by a client library.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocinet_integration::{ok, BareContainer, Host, EXPORTER_ADDR};
use serde_json::json;

/// What a request got: a status code, or how the connection ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Status(u16, usize),
    /// Closed without a response.
    Closed,
    Error(String),
}

fn exchange(raw: &[u8]) -> Outcome {
    let mut s = match TcpStream::connect(EXPORTER_ADDR) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(format!("connect: {e}")),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    // A server may answer and close before reading all of an oversized
    // request: a failed write is not the outcome, the response is.
    let _ = s.write_all(raw);
    read_outcome(&mut s)
}

fn read_outcome(s: &mut TcpStream) -> Outcome {
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Outcome::Closed
        }
        Err(e) if buf.is_empty() => return Outcome::Error(format!("read: {e}")),
        Err(_) => {}
    }
    if buf.is_empty() {
        return Outcome::Closed;
    }
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
    match head.split_whitespace().nth(1).and_then(|c| c.parse().ok()) {
        Some(code) => Outcome::Status(code, buf.len()),
        None => Outcome::Error(format!("not HTTP: {head:?}")),
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").into_bytes()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A host with a few published containers for the collectors to report.
fn host_with_containers() -> (Host, Vec<BareContainer>) {
    let h = Host::new();
    let cs = (0..4)
        .map(|i| {
            let c = h.bare_container(
                &format!("load{i}"),
                json!({"io.ocinet.ports": format!("{}:80", 8080 + i)}),
            );
            ok(h.hook("createRuntime", &c.state, &[]));
            c
        })
        .collect();
    (h, cs)
}

#[test]
fn sixty_four_scrapers_for_thirty_seconds() {
    let (h, _containers) = host_with_containers();
    let mut e = h.start_exporter(&[]);
    let pid = e.0.id();
    let (ok200, busy, bad) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let first_bad = Arc::new(std::sync::Mutex::new(None::<String>));
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::scope(|s| {
        for _ in 0..64 {
            let (ok200, busy, bad, first_bad, h) = (&ok200, &busy, &bad, &first_bad, &h);
            s.spawn(move || {
                h.enter_on_this_thread();
                while Instant::now() < deadline {
                    match exchange(&get("/metrics")) {
                        Outcome::Status(200, n) if n > 1000 => {
                            ok200.fetch_add(1, Ordering::Relaxed)
                        }
                        // --web.max-requests (40 by default) turns the rest away.
                        Outcome::Status(503, _) => busy.fetch_add(1, Ordering::Relaxed),
                        other => {
                            first_bad
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(format!("{other:?}"));
                            bad.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
        // RSS after the first seconds of load, and the peak.
        let (done, peak) = (
            &done,
            s.spawn(|| {
                let (mut warm, mut peak) = (0, 0);
                let start = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let r = rss_kib(pid);
                    peak = peak.max(r);
                    if warm == 0 && start.elapsed() > Duration::from_secs(5) {
                        warm = peak;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                (warm, peak)
            }),
        );
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(1));
        done.store(true, Ordering::Relaxed);
        let (warm, peak) = peak.join().expect("sampler");
        let (n_ok, n_busy, n_bad) = (
            ok200.load(Ordering::Relaxed),
            busy.load(Ordering::Relaxed),
            bad.load(Ordering::Relaxed),
        );
        eprintln!("64 scrapers x 30 s: {n_ok} scrapes, {n_busy} turned away, {n_bad} failed; RSS {warm} KiB after 5 s, peak {peak} KiB");
        assert_eq!(
            n_bad,
            0,
            "requests that got neither metrics nor 503: first {:?}",
            first_bad.lock().map(|g| g.clone())
        );
        assert!(n_ok >= 64, "only {n_ok} scrapes in 30 s");
        // Bounded: no growth with the number of requests served.
        assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
        assert!(
            peak <= warm * 2 + 8 * 1024,
            "RSS grew under steady load: {warm} KiB at 5 s, {peak} KiB peak"
        );
    });
    // And it still answers normally afterwards.
    let m = ok(h.exec(&["curl", "-sf", &format!("http://{EXPORTER_ADDR}/metrics")]));
    assert!(m.contains("ocinet_build_info"));
    let stderr = e.terminate();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn slow_oversized_and_malformed_requests_leave_it_answering() {
    let (h, _containers) = host_with_containers();
    let mut e = h.start_exporter(&[]);
    let pid = e.0.id();
    let rss_before = rss_kib(pid);
    std::thread::scope(|s| {
        // 100 clients that dribble a request head forever, one byte every
        // 250 ms, and 50 that connect and say nothing: each must be cut
        // off at the 10 s header timeout, without holding up anyone else.
        let slow = s.spawn(|| {
            h.enter_on_this_thread();
            let started = Instant::now();
            let mut conns: Vec<(TcpStream, bool)> = (0..150)
                .map(|i| {
                    let mut c = TcpStream::connect(EXPORTER_ADDR).expect("connect");
                    let dribbles = i < 100;
                    if dribbles {
                        c.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
                            .expect("start");
                    }
                    c.set_nonblocking(true).expect("nonblocking");
                    (c, dribbles)
                })
                .collect();
            let mut closed_after = Vec::new();
            while !conns.is_empty() && started.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(250));
                conns.retain_mut(|(c, dribbles)| {
                    let mut b = [0u8; 256];
                    let open = match c.read(&mut b) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            !*dribbles || c.write_all(b"a").is_ok()
                        }
                        // EOF, a reset, or a response (the server gave up on it).
                        _ => false,
                    };
                    if !open {
                        closed_after.push(started.elapsed());
                    }
                    open
                });
            }
            (conns.len(), closed_after)
        });

        h.enter_on_this_thread();
        // Meanwhile, real scrapes are served.
        for _ in 0..5 {
            assert!(matches!(exchange(&get("/metrics")), Outcome::Status(200, n) if n > 1000));
            std::thread::sleep(Duration::from_millis(200));
        }
        // A whole request sent a byte at a time is served.
        let mut c = TcpStream::connect(EXPORTER_ADDR).expect("connect");
        for b in get("/metrics") {
            c.write_all(&[b]).expect("byte");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(read_outcome(&mut c), Outcome::Status(200, _)));

        let refused = |o: &Outcome| !matches!(o, Outcome::Status(200, _));
        // Oversized heads: one 64 KiB header, 3,000 small ones.
        let big = format!(
            "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 << 10)
        );
        let o = exchange(big.as_bytes());
        assert!(refused(&o), "a 64 KiB header was served: {o:?}");
        let many: String = (0..3000).map(|i| format!("X-H{i}: v\r\n")).collect();
        let o = exchange(format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes());
        assert!(refused(&o), "3,000 headers were served: {o:?}");
        // Unknown paths and methods.
        for path in [
            "/nope",
            "/metrics/../../etc/passwd",
            "/metricsx",
            &format!("/{}", "x".repeat(8000)),
        ] {
            let o = exchange(&get(path));
            assert!(
                matches!(o, Outcome::Status(404, _) | Outcome::Status(414, _)),
                "{path}: {o:?}"
            );
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
            let o = exchange(
                format!("{method} /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            assert!(matches!(o, Outcome::Status(405, _)), "{method}: {o:?}");
        }
        // A body it will never read, announced as 10 GB.
        let o = exchange(
            b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000000\r\n\r\nabc",
        );
        assert!(matches!(o, Outcome::Status(405, _)), "{o:?}");
        // Not HTTP at all, or not a version it speaks.
        for junk in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"\0\0\0\0\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            let o = exchange(junk);
            assert!(refused(&o), "{junk:?}: {o:?}");
        }

        let (still_open, closed_after) = slow.join().expect("slow clients");
        assert_eq!(still_open, 0, "slow clients still connected after 30 s");
        let first = closed_after.iter().min().copied().unwrap_or_default();
        let last = closed_after.iter().max().copied().unwrap_or_default();
        eprintln!("150 slow clients cut off between {first:?} and {last:?}");
        assert!(
            first >= Duration::from_secs(9),
            "a slow client was cut off early, at {first:?}"
        );
        assert!(
            last <= Duration::from_secs(15),
            "a slow client lasted {last:?}"
        );
        // Served normally afterwards.
        assert!(matches!(exchange(&get("/metrics")), Outcome::Status(200, n) if n > 1000));
    });
    let rss_after = rss_kib(pid);
    eprintln!("RSS {rss_before} KiB before, {rss_after} KiB after");
    assert!(rss_after < 64 * 1024, "RSS {rss_after} KiB");
    let stderr = e.terminate();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
