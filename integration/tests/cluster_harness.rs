//! Issue 23: the harness for simulated clusters itself. Hosts joined to an
//! underlay reach each other and a real etcd the test runs; a TLS etcd
//! wants a client certificate; link cuts and etcd restarts do what the
//! fault tests rely on; nothing outlives the test.

use std::process::{Command, Output};

use ocinet_integration::cluster::{Etcd, Underlay, UNDERLAY_GW};
use ocinet_integration::{ok, run_cmd, running, text, Host};

/// etcdctl in host `h`'s namespace with `flags` (endpoint, TLS files).
fn etcdctl_in(h: &Host, flags: &[String], args: &[&str]) -> Output {
    let mut all: Vec<&str> = vec!["etcdctl"];
    all.extend(flags.iter().map(String::as_str));
    all.extend_from_slice(args);
    h.exec(&all)
}

fn ping(h: &Host, addr: &str) -> Output {
    h.exec(&["ping", "-c", "1", "-W", "2", addr])
}

fn netns_list() -> String {
    ok(run_cmd(Command::new("ip").args(["netns", "list"])))
}

#[test]
fn hosts_reach_each_other_and_etcd_and_leave_nothing() {
    let (names, etcd_pid, etcd_dir) = {
        let ul = Underlay::new();
        let hosts: Vec<Host> = (0..3).map(|_| Host::new()).collect();
        let addrs: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| ul.join(h, u8::try_from(i + 1).expect("small index")))
            .collect();
        assert_eq!(addrs, ["10.99.0.1", "10.99.0.2", "10.99.0.3"]);
        let etcd = Etcd::start(&ul);
        assert_eq!(etcd.endpoint(), "http://10.99.0.254:2379");
        assert!(etcd.ca().is_none() && etcd.cert().is_none() && etcd.key().is_none());

        for (i, h) in hosts.iter().enumerate() {
            for (j, a) in addrs.iter().enumerate() {
                if i != j {
                    let o = ping(h, a);
                    assert!(o.status.success(), "host {i} -> {a}: {}", text(&o));
                }
            }
            let o = ping(h, UNDERLAY_GW);
            assert!(o.status.success(), "host {i} -> underlay: {}", text(&o));
        }
        let ep = etcd.endpoint();
        ok(hosts[0].exec(&["etcdctl", "--endpoints", &ep, "put", "k", "v"]));
        let got = ok(hosts[2].exec(&["etcdctl", "--endpoints", &ep, "get", "k"]));
        assert_eq!(got, "k\nv\n");
        ok(etcd.etcdctl(&["put", "/ocinet/v1/nodes/a", "{}"]));
        ok(etcd.etcdctl(&["put", "/ocinet/v1/nodes/b", "{}"]));
        assert_eq!(
            etcd.keys("/ocinet/v1/nodes/"),
            ["/ocinet/v1/nodes/a", "/ocinet/v1/nodes/b"]
        );

        let mut names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        names.push(ul.name.clone());
        let listed = netns_list();
        for n in &names {
            assert!(listed.contains(n.as_str()), "{n} missing from {listed}");
        }
        let pid = etcd.pid().expect("etcd runs");
        assert!(running(i64::from(pid)));
        (names, pid, etcd.dir().to_path_buf())
    };
    let listed = netns_list();
    for n in &names {
        assert!(!listed.contains(n.as_str()), "{n} left behind: {listed}");
    }
    assert!(
        !running(i64::from(etcd_pid)),
        "etcd {etcd_pid} outlived the test"
    );
    assert!(!etcd_dir.exists(), "{} left behind", etcd_dir.display());
}

#[test]
fn tls_etcd_wants_a_client_certificate() {
    let ul = Underlay::new();
    let h = Host::new();
    ul.join(&h, 7);
    let etcd = Etcd::start_tls(&ul);
    assert_eq!(etcd.endpoint(), "https://10.99.0.254:2379");
    let (ca, cert, key) = (
        etcd.ca().expect("ca"),
        etcd.cert().expect("cert"),
        etcd.key().expect("key"),
    );
    assert!(ca.exists() && cert.exists() && key.exists());

    // With the client certificate, from a host of the cluster.
    ok(etcdctl_in(
        &h,
        &etcd.client_flags(),
        &["put", "secure", "yes"],
    ));
    assert_eq!(etcd.keys("secure"), ["secure"]);

    let base = [
        format!("--endpoints={}", etcd.endpoint()),
        "--dial-timeout=2s".to_string(),
        "--command-timeout=3s".to_string(),
    ];
    // The server is trusted but no certificate is offered: refused.
    let mut no_cert = base.to_vec();
    no_cert.push(format!("--cacert={}", ca.display()));
    let o = etcdctl_in(&h, &no_cert, &["get", "secure"]);
    assert!(
        !o.status.success(),
        "accepted without a client certificate: {}",
        text(&o)
    );
    let o = etcdctl_in(&h, &no_cert, &["put", "secure", "no"]);
    assert!(
        !o.status.success(),
        "accepted without a client certificate: {}",
        text(&o)
    );
    // Refused for that reason (not, say, an unreachable server).
    assert!(
        etcd.log().contains("client didn't provide a certificate"),
        "{}",
        etcd.log()
    );
    // Plain http to the TLS port: refused too.
    let o = h.exec(&[
        "etcdctl",
        "--endpoints=http://10.99.0.254:2379",
        "--dial-timeout=2s",
        "--command-timeout=3s",
        "get",
        "secure",
    ]);
    assert!(!o.status.success(), "plain http accepted: {}", text(&o));
    let got = ok(etcd.etcdctl(&["get", "secure", "--print-value-only"]));
    assert_eq!(got, "yes\n");
}

/// What the fault tests build on: a cut link isolates one host and heals;
/// a stopped etcd is unreachable and comes back with its keys; a paused one
/// does not answer until resumed.
#[test]
fn link_cuts_and_etcd_restarts() {
    let ul = Underlay::new();
    let (a, b) = (Host::new(), Host::new());
    ul.join(&a, 1);
    let b_addr = ul.join(&b, 2);
    let mut etcd = Etcd::start(&ul);
    let ep = etcd.endpoint();
    let flags = etcd.client_flags();

    ul.set_link(&b, false);
    let o = ping(&a, &b_addr);
    assert!(!o.status.success(), "reached a cut host: {}", text(&o));
    let o = etcdctl_in(&b, &flags, &["get", "x"]);
    assert!(!o.status.success(), "cut host reached etcd: {}", text(&o));
    ul.set_link(&b, true);
    let o = ping(&a, &b_addr);
    assert!(o.status.success(), "healed link: {}", text(&o));

    ok(a.exec(&["etcdctl", "--endpoints", &ep, "put", "kept", "1"]));
    let old = etcd.pid().expect("runs");
    etcd.stop();
    assert!(etcd.pid().is_none() && !running(i64::from(old)));
    let o = etcdctl_in(&a, &flags, &["get", "kept"]);
    assert!(!o.status.success(), "stopped etcd answered: {}", text(&o));
    etcd.restart();
    assert_eq!(etcd.keys("kept"), ["kept"]);

    etcd.pause();
    let o = etcdctl_in(&a, &flags, &["get", "kept"]);
    assert!(!o.status.success(), "paused etcd answered: {}", text(&o));
    etcd.resume();
    assert_eq!(
        ok(etcdctl_in(
            &a,
            &flags,
            &["get", "kept", "--print-value-only"]
        )),
        "1\n"
    );
}
