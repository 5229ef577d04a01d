//! Issue 22: published ports answer on the host's IPv6 loopback `[::1]`
//! through ocinet's one port proxy (the kernel cannot DNAT IPv6 loopback
//! to another address), with real runc and crun, each test in its own
//! throwaway host namespace. Every client here connects to ::1 of that
//! namespace; nothing is sent anywhere else.

use std::time::{Duration, Instant};

use ocinet_integration::{
    answers, assert_clean, both_runtimes, ok, text, Host, Proc, Runtime, Spec,
};

fn dual(h: &Host, name: &str, v4: &str, v6: &str) {
    ok(h.ocinet(&["network", "create", name, "--subnet", v4, "--subnet", v6]));
}

fn published(
    h: &Host,
    rt: Runtime,
    tag: &str,
    net: &str,
    ports: &str,
) -> ocinet_integration::Container {
    let spec = Spec::default()
        .ann("io.ocinet.network", net)
        .ann("io.ocinet.ports", ports);
    let c = h.start(rt, tag, &spec);
    assert!(c.exit.is_none(), "{tag} failed: {}", c.output());
    c
}

fn loopback(port: u16) -> String {
    format!("http://[::1]:{port}/")
}

#[track_caller]
fn silent(o: std::process::Output) {
    assert!(!o.status.success(), "expected no answer, got: {}", text(&o));
}

fn log_of(h: &Host) -> String {
    h.log()
}

/// A UDP server on every address of both families (`PORT NAME`): answers
/// `udp NAME got DATA`.
const UDP_ECHO_PY: &str = r#"import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(2048)
    s.sendto(b"udp " + sys.argv[2].encode() + b" got " + d, a)
"#;

/// One datagram to `[::1]:PORT`, the answer printed; up to 4 tries of
/// 0.5 s each.
const UDP_ASK_PY: &str = r#"import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(0.5)
for i in range(4):
    s.sendto(b"ping", ("::1", int(sys.argv[1])))
    try:
        print(s.recv(2048).decode())
        sys.exit(0)
    except Exception:
        pass
sys.exit(1)
"#;

/// `args` in network namespace `ns`, once it printed `ready` (bound).
fn ready_in(ns: &str, args: &[&str]) -> Proc {
    use std::io::BufRead;
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    let _ = std::io::BufReader::new(out).read_line(&mut line);
    let p = Proc(child);
    assert_eq!(line.trim(), "ready", "{args:?} did not start");
    p
}

/// The UDP echo in container `id`'s network namespace on `port`, answering
/// with `id`.
fn udp_echo_in(h: &Host, id: &str, port: u16) -> Proc {
    ready_in(
        &h.netns_of(id),
        &[
            "timeout",
            "120",
            "python3",
            "-c",
            UDP_ECHO_PY,
            &port.to_string(),
            id,
        ],
    )
}

/// The HTTP server that answers with the client's address, in container
/// `id`'s namespace on `port`.
fn client_echo_in(h: &Host, id: &str, port: u16) -> Proc {
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(id)))
        .args([
            "timeout",
            "120",
            "python3",
            "-c",
            ocinet_integration::ECHO_CLIENT6_PY,
            "::",
            &port.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("echo server");
    std::thread::sleep(Duration::from_millis(400));
    Proc(child)
}

/// What `[::1]:port` answers over HTTP, retried for 3 s (a server just
/// started in a container).
#[track_caller]
fn http_soon(h: &Host, port: u16) -> String {
    let mut last = String::new();
    for _ in 0..30 {
        let o = h.wget(&loopback(port));
        last = text(&o);
        if o.status.success() {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("[::1]:{port} does not answer: {last}");
}

fn udp_ask(h: &Host, port: u16) -> std::process::Output {
    h.exec(&["python3", "-c", UDP_ASK_PY, &port.to_string()])
}

/// The container's answer over UDP on `[::1]:port`, retried briefly (a
/// first packet to a new IPv6 address may wait for neighbour discovery).
#[track_caller]
fn udp_answers(h: &Host, port: u16, id: &str) {
    let want = format!("udp {id} got ping");
    let mut last = String::new();
    for _ in 0..5 {
        let o = udp_ask(h, port);
        last = text(&o);
        if o.status.success() && last.contains(&want) {
            return;
        }
    }
    panic!("[::1]:{port}/udp: expected {want:?}, got {last:?}");
}

/// The container's answer over TCP on `[::1]:port`, retried briefly.
#[track_caller]
fn tcp_answers(h: &Host, port: u16, id: &str) {
    let mut last = None;
    for _ in 0..20 {
        let o = h.wget(&loopback(port));
        if o.status.success() {
            return answers(o, id);
        }
        last = Some(o);
        std::thread::sleep(Duration::from_millis(100));
    }
    answers(last.expect("tried"), id);
}

/// The port proxy's ports, as `PORT/PROTO -> CONTAINER` (accepting only).
fn proxied(h: &Host) -> Vec<String> {
    let mut v: Vec<String> = h.proxy_status()["Ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["Accepting"] == true)
        .map(|p| {
            format!(
                "{}/{} -> {}",
                p["HostPort"],
                p["Protocol"].as_str().unwrap_or_default(),
                p["Container"].as_str().unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    v
}

/// Wait up to `limit` for `f`.
fn within(limit: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Explicit `[::1]` mappings answer on a dual-stack container (to its IPv6
/// address) and on an IPv4-only one (to its IPv4 address); a bare port
/// answers on ::1 for the dual-stack one only; the container sees the
/// gateway as the client; no rule and no element is added for ::1; the
/// proxy ends with the last such port.
fn explicit_and_bare_ports_answer_on_ipv6_loopback(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.81.0.0/24", "fd81::/64");
    let a = published(
        &h,
        rt,
        "dual",
        "ds",
        "[::1]:8080:80,[::1]:8053:53/udp,8081:80,8054:53/udp,[::1]:8088:8000",
    );
    let rules_one = ok(h.ocinet(&["firewall", "rules"]));
    let elements_one = h.nft_elements().len();
    let _ua = udp_echo_in(&h, &a.id, 53);
    tcp_answers(&h, 8080, &a.id);
    udp_answers(&h, 8053, &a.id);
    // Bare, on a container with IPv6: ::1 as well as every address.
    tcp_answers(&h, 8081, &a.id);
    udp_answers(&h, 8054, &a.id);
    // The container sees the network's gateway, not ::1 (a userspace
    // copy: the client's address is lost, as with docker-proxy).
    let _echo = client_echo_in(&h, &a.id, 8000);
    assert_eq!(http_soon(&h, 8088).trim(), "from fd81::1");

    let b = h.start(
        rt,
        "v4",
        &Spec::default().ann(
            "io.ocinet.ports",
            "[::1]:9080:80,[::1]:9053:53/udp,9081:80,9054:53/udp",
        ),
    );
    assert!(b.exit.is_none(), "{}", b.output());
    let _ub = udp_echo_in(&h, &b.id, 53);
    tcp_answers(&h, 9080, &b.id);
    udp_answers(&h, 9053, &b.id);
    // Bare on an IPv4-only container: IPv4 as before, nothing on ::1.
    let t = Instant::now();
    silent(h.wget(&loopback(9081)));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    silent(udp_ask(&h, 9054));
    answers(h.wget("http://127.0.0.1:9081/"), &b.id);

    // One process, a socket per port; rules as before and the ::1 ports
    // made no element (B's IPv4 ports made theirs).
    let (ida, idb) = (a.id.as_str(), b.id.as_str());
    assert_eq!(
        proxied(&h),
        [
            format!("8053/udp -> {ida}"),
            format!("8054/udp -> {ida}"),
            format!("8080/tcp -> {ida}"),
            format!("8081/tcp -> {ida}"),
            format!("8088/tcp -> {ida}"),
            format!("9053/udp -> {idb}"),
            format!("9080/tcp -> {idb}"),
        ]
    );
    assert_eq!(h.proxies().len(), 1, "{:?}", h.proxies());
    assert_eq!(ok(h.ocinet(&["firewall", "rules"])), rules_one);
    let loop_elements: Vec<String> = h
        .nft_elements()
        .iter()
        .map(|e| e.to_string())
        .filter(|e| {
            ["8080", "8053", "8088", "9080", "9053"]
                .iter()
                .any(|p| e.contains(p))
        })
        .collect();
    assert!(loop_elements.is_empty(), "{loop_elements:?}");
    assert!(h.nft_elements().len() > elements_one);
    let ps = ok(h.ocinet(&["ps"]));
    assert!(ps.contains("[::1]:8080:80/tcp"), "{ps}");

    // The last one gone, the proxy ends by itself.
    let (mut a, mut b) = (a, b);
    h.stop(&mut a);
    h.stop(&mut b);
    assert_clean(&h, &a.id);
    assert_clean(&h, &b.id);
    assert!(
        within(Duration::from_secs(5), || h.proxies().is_empty()),
        "the proxy outlived the last [::1] port: {:?}",
        h.proxies()
    );
}

#[track_caller]
fn ok_output(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// A port is free the moment its container's poststop returns: a second
/// container takes the same `[::1]` port at once, and a connection open
/// through the first is closed.
fn the_port_is_free_at_once_after_stop(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.82.0.0/24", "fd82::/64");
    let mut a = published(&h, rt, "first", "ds", "[::1]:8080:80,[::1]:8090:8000");
    tcp_answers(&h, 8080, &a.id);
    // An idle connection through the proxy, held open by a client.
    let _echo = client_echo_in(&h, &a.id, 8000);
    http_soon(&h, 8090);
    let held = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.name))
        .args([
            "timeout",
            "30",
            "python3",
            "-c",
            "import socket\ns=socket.create_connection(('::1',8090))\n\
             print('open',flush=True)\nd=s.recv(100)\nprint('closed' if d==b'' else 'data')",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("client");
    let mut held = Proc(held);
    let mut out = std::io::BufReader::new(held.0.stdout.take().expect("piped"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("client output");
    assert_eq!(line.trim(), "open");
    h.stop(&mut a);
    // Free for anyone at once, not only for the next container's hook
    // (which asks the proxy to look again anyway).
    ok_output(h.exec(&[
        "python3",
        "-c",
        // SO_REUSEADDR, as servers set it: the proxy's side of the
        // connections it served waits in TIME_WAIT.
        "import socket\ns=socket.socket(socket.AF_INET6)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('::1',8080))\ns.listen()",
    ]));
    assert_clean(&h, &a.id);
    let b = published(&h, rt, "second", "ds", "[::1]:8080:80");
    tcp_answers(&h, 8080, &b.id);
    // The first container's connection was closed with it.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("client output");
    assert_eq!(rest.trim(), "closed");
}

/// Reads to EOF, answers `got N SHA256`, closes (`PORT`): a half-close
/// that does not pass through the proxy leaves it waiting.
const COUNT_PY: &str = r#"import hashlib, socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.sendall(("got %d %s" % (n, h.hexdigest())).encode())
    c.close()
"#;

/// 8 MiB up, shut down, the answer read to EOF.
const SEND_PY: &str = r#"import hashlib, os, socket, sys
data = os.urandom(8 << 20)
s = socket.create_connection(("::1", int(sys.argv[1])), timeout=20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
want = "got %d %s" % (len(data), hashlib.sha256(data).hexdigest())
print("ok" if got.decode() == want else "mismatch: %r" % got)
"#;

/// Bulk data through the proxy arrives whole, and each end's EOF reaches
/// the other (half-close): the server answers only after the client shut
/// its side down, and the client reads that answer to EOF.
fn half_close_and_bulk_data_pass_through(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.79.0.0/24", "fd79::/64");
    for (tag, net, port) in [("dual", "ds", 8080u16), ("v4", "ocinet", 8081)] {
        let c = published(&h, rt, tag, net, &format!("[::1]:{port}:9000"));
        let _server = ready_in(
            &h.netns_of(&c.id),
            &["timeout", "60", "python3", "-c", COUNT_PY, "9000"],
        );
        let mut last = String::new();
        for _ in 0..10 {
            last = text(&h.exec(&["python3", "-c", SEND_PY, &port.to_string()]));
            if last.trim() == "ok" {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(last.trim(), "ok", "{tag}");
    }
}

/// `[::1]` is a host address like any other for the port check; a host
/// process holding `[::1]:PORT` fails an explicit mapping cleanly and
/// leaves a bare one working elsewhere, logged.
fn conflicts_and_a_host_process_holding_the_port(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.83.0.0/24", "fd83::/64");
    let a = published(&h, rt, "holder", "ds", "[::1]:8080:80");
    for (tag, net, ports) in [
        ("bare", "ds", "8080:80"),
        ("any6", "ds", "[::]:8080:80"),
        ("again", "ds", "[::1]:8080:80"),
        ("bare4", "ocinet", "8080:80"),
    ] {
        let c = h.start(
            rt,
            tag,
            &Spec::default()
                .ann("io.ocinet.network", net)
                .ann("io.ocinet.ports", ports),
        );
        assert!(c.exit.is_some_and(|s| !s.success()), "{tag}");
        let log = log_of(&h);
        assert!(
            log.contains(&format!("already published by container {}", a.id)),
            "{tag}: {log}"
        );
        assert!(h.leftovers(&c.id).is_empty(), "{tag}");
    }
    // IPv4 addresses of the same port are another address.
    let v4 = published(&h, rt, "v4", "ds", "0.0.0.0:8080:80");
    answers(h.wget("http://127.0.0.1:8080/"), &v4.id);
    tcp_answers(&h, 8080, &a.id);

    // A process of the host's own on [::1]:7070.
    let _squatter = ready_in(
        &format!("/run/netns/{}", h.name),
        &[
            "timeout",
            "60",
            "python3",
            "-c",
            "import socket,time\ns=socket.socket(socket.AF_INET6)\n\
             s.bind(('::1',7070))\ns.listen()\nprint('ready',flush=True)\ntime.sleep(60)",
        ],
    );
    let rules = ok(h.ocinet(&["firewall", "rules"]));
    let c = h.start(
        rt,
        "squatted",
        &Spec::default()
            .ann("io.ocinet.network", "ds")
            .ann("io.ocinet.ports", "[::1]:7070:80"),
    );
    assert!(c.exit.is_some_and(|s| !s.success()), "{}", c.output());
    let log = log_of(&h);
    assert!(
        log.contains("[::1]:7070/tcp cannot be published") && log.contains("in use"),
        "{log}"
    );
    assert!(h.leftovers(&c.id).is_empty(), "{:?}", h.leftovers(&c.id));
    assert_eq!(ok(h.ocinet(&["firewall", "rules"])), rules);
    // A bare port's ::1 side is extra: the container runs, the proxy says
    // why it does not accept there, and its IPv4 side answers.
    let d = published(&h, rt, "bare", "ds", "7070:80");
    answers(h.wget("http://127.0.0.1:7070/"), &d.id);
    let port = h.proxy_status()["Ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .find(|p| p["HostPort"] == 7070)
        .expect("7070 in the proxy's status");
    assert_eq!(port["Accepting"], false, "{port}");
    assert!(
        port["Error"]
            .as_str()
            .unwrap_or_default()
            .contains("in use"),
        "{port}"
    );
    assert!(log_of(&h).contains("does not answer on [::1]"));
}

/// SIGKILL of the proxy: `ocinet gc` starts another that serves every port
/// again from the records; killed again, the next container's hook does.
fn a_killed_proxy_comes_back_with_every_port(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.84.0.0/24", "fd84::/64");
    let a = published(&h, rt, "a", "ds", "[::1]:8080:80,[::1]:8053:53/udp");
    let _ua = udp_echo_in(&h, &a.id, 53);
    tcp_answers(&h, 8080, &a.id);
    udp_answers(&h, 8053, &a.id);
    let kill = |h: &Host| {
        let pid = h.proxy_pid().expect("the proxy runs");
        ok_output(
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output()
                .expect("kill"),
        );
        assert!(
            within(Duration::from_secs(2), || h.proxy_pid().is_none()),
            "still running"
        );
        pid
    };
    let first = kill(&h);
    silent(h.wget(&loopback(8080)));
    let gc = ok(h.ocinet(&["gc"]));
    assert!(gc.contains("started the port proxy"), "{gc}");
    tcp_answers(&h, 8080, &a.id);
    udp_answers(&h, 8053, &a.id);
    let second = kill(&h);
    assert_ne!(first, second);
    let b = published(&h, rt, "b", "ds", "[::1]:8081:80");
    tcp_answers(&h, 8080, &a.id);
    tcp_answers(&h, 8081, &b.id);
    udp_answers(&h, 8053, &a.id);
    assert_eq!(h.proxies().len(), 1, "{:?}", h.proxies());
}

/// The hook SIGKILLed before the proxy was asked and right after it
/// answered: gc leaves no record, claim or `[::1]` listener behind, the
/// idle proxy ends, and the port can be published again.
#[test]
fn a_hook_killed_around_the_proxy_request_is_recovered() {
    use std::os::unix::process::ExitStatusExt;
    let h = Host::new();
    dual(&h, "ds", "10.85.0.0/24", "fd85::/64");
    let ann = serde_json::json!({"io.ocinet.network": "ds", "io.ocinet.ports": "[::1]:8080:80"});
    for step in ["pinned", "proxied"] {
        let v = h.bare_container(&format!("k{step}"), ann.clone());
        let o = h.hook_with_env(
            "createRuntime",
            &v.state,
            &[],
            &[("OCINET_TEST_KILL_AT", step)],
        );
        assert_eq!(o.status.signal(), Some(9), "{step}: {}", text(&o));
        let gc = ok(h.ocinet(&["gc"]));
        let left = h.leftovers(&v.id);
        assert!(left.is_empty(), "{step}: {left:?}\n{gc}");
        assert!(h.port_claims().is_empty(), "{step}");
        // Nothing listens on [::1]:8080 and no proxy idles.
        assert!(
            within(Duration::from_secs(3), || h.proxies().is_empty()),
            "{step}: {:?} {gc}",
            h.proxies()
        );
        // Published again by the next one.
        ok(h.hook("createRuntime", &v.state, &[]));
        assert_eq!(proxied(&h), [format!("8080/tcp -> {}", v.id)], "{step}");
        ok(h.hook("poststop", &v.stopped_state(), &[]));
        assert!(h.leftovers(&v.id).is_empty(), "{step}");
    }
}

/// The poststop hook closes the proxy's socket before it returns: a
/// process of the host binds the port right after, three times over (the
/// proxy's own look at the records, once a second, would leave it bound
/// for up to that long).
#[test]
fn poststop_frees_the_port_before_it_returns() {
    let h = Host::new();
    dual(&h, "ds", "10.86.0.0/24", "fd86::/64");
    let ann = serde_json::json!({"io.ocinet.network": "ds", "io.ocinet.ports": "[::1]:8080:80"});
    let bind = "import socket\ns=socket.socket(socket.AF_INET6)\n\
                s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                s.bind(('::1',8080))\ns.listen()";
    for n in 0..3 {
        let v = h.bare_container(&format!("p{n}"), ann.clone());
        ok(h.hook("createRuntime", &v.state, &[]));
        assert!(
            !h.exec(&["python3", "-c", bind]).status.success(),
            "{n}: not bound"
        );
        ok(h.hook("poststop", &v.stopped_state(), &[]));
        ok_output(h.exec(&["python3", "-c", bind]));
        assert!(h.leftovers(&v.id).is_empty(), "{n}");
    }
}

/// Run by a service manager (`ocinet-proxy --persistent`): hooks use it
/// and start none, it stays after the last port and through gc, and
/// SIGTERM ends it, its pid file and socket gone.
fn a_persistent_proxy_is_used_and_left_alone(rt: Runtime) {
    let h = Host::new();
    dual(&h, "ds", "10.78.0.0/24", "fd78::/64");
    let bin = ocinet_integration::ocinet_bin().with_file_name("ocinet-proxy");
    let state = h.state_dir();
    let mut service = h.spawn(&[
        bin.to_str().unwrap_or_default(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--persistent",
    ]);
    let pid = i64::from(service.0.id());
    assert!(
        within(Duration::from_secs(5), || h.proxy_pid() == Some(pid)),
        "the service did not come up"
    );
    assert_eq!(h.proxy_status()["Persistent"], true);
    let mut a = published(&h, rt, "a", "ds", "[::1]:8080:80");
    tcp_answers(&h, 8080, &a.id);
    assert_eq!(h.proxies(), [pid as i32], "a hook started another");
    h.stop(&mut a);
    silent(h.wget(&loopback(8080)));
    ok(h.ocinet(&["gc"]));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(h.proxy_pid(), Some(pid), "the persistent proxy ended");
    service.terminate();
    assert!(h.proxy_pid().is_none());
    assert!(!state.join("proxy/proxy.json").exists(), "pid file left");
    assert!(!state.join("proxy/control.sock").exists(), "socket left");
    assert_clean(&h, &a.id);
}

both_runtimes!(
    explicit_and_bare_ports_answer_on_ipv6_loopback,
    a_persistent_proxy_is_used_and_left_alone,
    half_close_and_bulk_data_pass_through,
    the_port_is_free_at_once_after_stop,
    conflicts_and_a_host_process_holding_the_port,
    a_killed_proxy_comes_back_with_every_port,
);
