//! Issue 3: published ports (outside, host, localhost, hairpin, host-IP
//! bindings, UDP, ranges, SCTP), conflicts, isolation between networks, and
//! teardown that removes exactly what a container added, conntrack included.

use std::time::Duration;

use ocinet_integration::{answers, both_runtimes, ok, text, Host, Runtime, Spec, HOST_LINK_IP};

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

fn published(h: &Host, rt: Runtime, tag: &str, ports: &str) -> ocinet_integration::Container {
    let c = h.start(rt, tag, &Spec::default().ann("io.ocinet.ports", ports));
    assert!(c.exit.is_none(), "{tag} failed: {}", c.output());
    c
}

#[track_caller]
fn silent(o: std::process::Output) {
    assert!(!o.status.success(), "expected no answer, got: {}", text(&o));
}

fn reachable_from_outside_host_and_localhost(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let c = published(&h, rt, "pub", "8080:80");
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    answers(h.wget(&format!("http://{HOST_LINK_IP}:8080/")), &c.id);
    answers(h.wget("http://127.0.0.1:8080/"), &c.id);
    let ps = ok(h.ocinet(&["ps"]));
    assert!(ps.contains("8080:80/tcp"), "{ps}");
    let insp = ok(h.ocinet(&["network", "inspect", "ocinet"]));
    assert!(insp.contains("8080:80/tcp"), "{insp}");
}

fn hairpin_to_own_and_neighbours_port(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let a = published(&h, rt, "hpa", "8080:80");
    let b = h.start(rt, "hpb", &Spec::default());
    answers(
        h.wget_from(&a.id, &format!("http://{HOST_LINK_IP}:8080/")),
        &a.id,
    );
    answers(
        h.wget_from(&b.id, &format!("http://{HOST_LINK_IP}:8080/")),
        &a.id,
    );
}

fn host_ip_binding_answers_only_there(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let c = published(&h, rt, "lo", "127.0.0.1:8081:80");
    answers(h.wget("http://127.0.0.1:8081/"), &c.id);
    silent(h.wget_outside(&format!("http://{HOST_LINK_IP}:8081/")));
    silent(h.wget(&format!("http://{HOST_LINK_IP}:8081/")));
    // An address that is not the host's is refused, naming the entry.
    let bad = h.start(
        rt,
        "notmine",
        &Spec::default().ann("io.ocinet.ports", "192.0.2.99:8082:80"),
    );
    assert!(bad.exit.is_some_and(|s| !s.success()));
    let log = h.log();
    assert!(
        log.contains("192.0.2.99:8082:80/tcp") && log.contains("not an address of this host"),
        "{log}"
    );
    assert!(h.leftovers(&bad.id).is_empty());
}

/// A UDP echo server (answers in upper case) in the container's namespace.
/// Debian's busybox nc has no UDP, so python3 from the host serves.
fn udp_echo(h: &Host, id: &str, port: u16) -> Kill {
    let code = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',{port}))\n\
         while True:\n d,a=s.recvfrom(2048)\n s.sendto(d.upper(),a)\n"
    );
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", h.netns_of(id)))
        .args(["timeout", "60", "python3", "-c", &code])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("udp echo");
    std::thread::sleep(Duration::from_millis(300));
    Kill(child)
}

/// Send `count` datagrams from the outside namespace, one every 200 ms, and
/// return the answers.
fn udp_ask(h: &Host, port: u16, count: u32) -> String {
    let code = format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\n\
         for i in range({count}):\n s.sendto(b'ping-over-udp',('{HOST_LINK_IP}',{port}))\n \
         try: print(s.recvfrom(2048)[0].decode())\n except Exception: pass\n time.sleep(0.2)\n"
    );
    text(&h.exec_outside(&["timeout", "30", "python3", "-c", &code]))
}

fn udp_ranges_and_sctp(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let script = "httpd -p 81 -h /www; exec httpd -f -p 80 -h /www";
    let spec = Spec {
        args: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
    .ann(
        "io.ocinet.ports",
        "9000-9001:80-81,5353:5000/udp,7000:7000/sctp",
    );
    let c = h.start(rt, "udp", &spec);
    assert!(c.exit.is_none(), "{}", c.output());
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:9000/")),
        &c.id,
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:9001/")),
        &c.id,
    );
    let _echo = udp_echo(&h, &c.id, 5000);
    let got = udp_ask(&h, 5353, 1);
    assert!(
        got.contains("PING-OVER-UDP"),
        "no UDP answer through the published port: {got:?}"
    );
    let elems: Vec<String> = h.nft_elements().iter().map(|e| e.to_string()).collect();
    assert!(
        elems
            .iter()
            .any(|e| e.contains("\"sctp\"") && e.contains("7000")),
        "{elems:?}"
    );
}

fn a_taken_port_is_refused_and_the_holder_keeps_working(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let first = published(&h, rt, "first", "8080:80");
    let second = h.start(
        rt,
        "second",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    assert!(
        second.exit.is_some_and(|s| !s.success()),
        "{}",
        second.output()
    );
    let log = h.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&second.id) && l.contains("ERROR"))
        .unwrap_or("");
    assert!(
        line.contains("0.0.0.0:8080/tcp") && line.contains(&first.id),
        "{line}"
    );
    if rt == Runtime::Runc {
        assert!(second.output().contains(&first.id), "{}", second.output());
    }
    assert!(
        h.leftovers(&second.id).is_empty(),
        "{:?}",
        h.leftovers(&second.id)
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &first.id,
    );
}

fn networks_are_isolated_both_ways(rt: Runtime) {
    let h = Host::new();
    h.outside();
    ok(h.ocinet(&["network", "create", "blue", "--subnet", "10.80.0.0/24"]));
    ok(h.ocinet(&["network", "create", "red", "--subnet", "10.81.0.0/24"]));
    let b = h.start(
        rt,
        "blue",
        &Spec::default()
            .ann("io.ocinet.network", "blue")
            .ann("io.ocinet.ports", "8001:80"),
    );
    let r = h.start(
        rt,
        "red",
        &Spec::default()
            .ann("io.ocinet.network", "red")
            .ann("io.ocinet.ports", "8002:80"),
    );
    let (bip, rip) = (ip_of(&h, &b.id), ip_of(&h, &r.id));
    silent(h.wget_from(&b.id, &format!("http://{rip}/")));
    silent(h.wget_from(&r.id, &format!("http://{bip}/")));
    // Published ports still flow, across networks too, and replies come back.
    answers(
        h.wget_from(&b.id, &format!("http://{HOST_LINK_IP}:8002/")),
        &r.id,
    );
    answers(
        h.wget_from(&r.id, &format!("http://{HOST_LINK_IP}:8001/")),
        &b.id,
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8001/")),
        &b.id,
    );
    // Both still reach the outside (established replies pass the filter).
    let o = h.exec_outside(&["sh", "-c", "true"]);
    assert!(o.status.success());
}

fn conntrack_count(h: &Host, port: &str) -> usize {
    let o = h.exec(&["conntrack", "-L", "-p", "udp", "--orig-port-dst", port]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("udp"))
        .count()
}

fn teardown_removes_exactly_its_elements_and_conntrack(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let keep = published(&h, rt, "keep", "8090:80");
    let mut c = published(&h, rt, "gone", "8080:80,5353:5000/udp");
    let before: Vec<String> = h.nft_elements().iter().map(|e| e.to_string()).collect();
    let rules = ok(h.ocinet(&["firewall", "rules"]));
    // A UDP flow from outside: its conntrack entry would keep pointing at
    // the dead address.
    let echo = udp_echo(&h, &c.id, 5000);
    assert!(udp_ask(&h, 5353, 2).contains("PING-OVER-UDP"));
    assert!(
        conntrack_count(&h, "5353") >= 1,
        "no conntrack entry for the UDP flow"
    );
    // The packet path recorded that it reached this container, and only it.
    assert_eq!(dnat_seen(&h), vec![ip_of(&h, &c.id)]);
    drop(echo);
    let veth = format!("\"{}\"", h.host_veth(&c.id));
    h.stop(&mut c);
    assert!(dnat_seen(&h).is_empty(), "record outlived the container");
    assert!(h.leftovers(&c.id).is_empty(), "{:?}", h.leftovers(&c.id));
    let after: Vec<String> = h.nft_elements().iter().map(|e| e.to_string()).collect();
    let removed: Vec<&String> = before.iter().filter(|e| !after.contains(e)).collect();
    // Four port elements (address and port per mapping) and the four that
    // pin its bridge port to its MAC and address and its MAC to the port.
    assert_eq!(removed.len(), 8, "exactly its own elements go: {removed:?}");
    assert!(
        removed
            .iter()
            .all(|e| e.contains("8080") || e.contains("5353") || e.contains(&veth)),
        "{removed:?}"
    );
    assert!(
        after.iter().any(|e| e.contains("8090")),
        "the other container's element must stay"
    );
    assert_eq!(
        ok(h.ocinet(&["firewall", "rules"])),
        rules,
        "rule count changed"
    );
    // The flow's entry went with the container.
    assert_eq!(
        conntrack_count(&h, "5353"),
        0,
        "conntrack entry survived teardown"
    );
    // The port answers nothing now, and can be published again at once.
    silent(h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")));
    let again = published(&h, rt, "again", "8080:80");
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &again.id,
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8090/")),
        &keep.id,
    );
}

/// Addresses the firewall saw a connection DNATed to.
fn dnat_seen(h: &Host) -> Vec<String> {
    let o = ok(h.exec(&["nft", "-j", "list", "set", "inet", "ocinet", "dnat_seen"]));
    let v: serde_json::Value = serde_json::from_str(&o).expect("nft json");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

/// A flush takes the record of which containers were reached with it; the
/// entries made before it must still go with their container.
fn conntrack_is_cleared_after_a_flushed_ruleset(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let mut c = published(&h, rt, "flushct", "5353:5000/udp");
    let echo = udp_echo(&h, &c.id, 5000);
    assert!(udp_ask(&h, 5353, 2).contains("PING-OVER-UDP"));
    assert!(conntrack_count(&h, "5353") >= 1, "no conntrack entry");
    drop(echo);
    ok(h.exec(&["nft", "flush", "ruleset"]));
    h.stop(&mut c);
    assert!(h.leftovers(&c.id).is_empty(), "{:?}", h.leftovers(&c.id));
    assert_eq!(
        conntrack_count(&h, "5353"),
        0,
        "conntrack entry survived a teardown after a flush"
    );
}

fn reload_restores_a_flushed_ruleset(rt: Runtime) {
    let h = Host::new();
    h.outside();
    let c = published(&h, rt, "reload", "8080:80");
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    ok(h.exec(&["nft", "flush", "ruleset"]));
    silent(h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")));
    let out = ok(h.ocinet(&["firewall", "reload"]));
    assert!(out.contains("1 networks"), "{out}");
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &c.id,
    );
    // Teardown still works after a flush (elements may be missing).
    let c2 = published(&h, rt, "reload2", "8085:80");
    ok(h.exec(&["nft", "flush", "ruleset"]));
    let mut c2 = c2;
    h.stop(&mut c2);
    assert!(h.leftovers(&c2.id).is_empty(), "{:?}", h.leftovers(&c2.id));
}

/// Ends the process it holds, by its pid, and reaps it (no zombie left).
/// SIGTERM, not SIGKILL: it is `timeout`, which passes it on to its child.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

both_runtimes!(
    reachable_from_outside_host_and_localhost,
    hairpin_to_own_and_neighbours_port,
    host_ip_binding_answers_only_there,
    udp_ranges_and_sctp,
    a_taken_port_is_refused_and_the_holder_keeps_working,
    networks_are_isolated_both_ways,
    teardown_removes_exactly_its_elements_and_conntrack,
    conntrack_is_cleared_after_a_flushed_ruleset,
    reload_restores_a_flushed_ruleset,
);
