//! Issue 24: the hook's teardown waits on no veth deletion. A container
//! whose namespace was its own has its host veths retired (down, out of
//! the bridge, marked `ocinet: retired`) and left to the kernel, which deletes the
//! pair with the namespace once the pin goes; one that joined a namespace
//! gets a detached reaper, as a CNI DEL does. These tests show the paths
//! leave nothing: the same id, name and address can be set up at once, a
//! namespace something else still holds keeps only a retired pair (gone
//! with it, or by `gc`), a hook or reaper killed on the way is recovered,
//! and a foreground `crun run` returns.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use ocinet_integration::{answers, assert_clean, ok, text, BareContainer, Host, Runtime, Spec};
use serde_json::{json, Value};

fn ip_of(h: &Host, id: &str) -> String {
    h.endpoint(id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no ip for {id}"))
}

/// The host's retired veths, with whether each is down and out of any
/// bridge.
fn retired(h: &Host) -> Vec<(String, bool)> {
    h.retired_links()
}

/// The veths inside the namespace `/proc/PID/ns/net`.
fn veths_in(pid: u32) -> Vec<String> {
    let o = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-o", "link", "show", "type", "veth"])
        .output()
        .expect("nsenter");
    // stdout only: ip warns on stderr about the peer's namespace.
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn ports() -> Value {
    json!({"io.ocinet.ports": "8080:80"})
}

/// A bare container whose config.json names its namespace by path (as a
/// pod's containers and `ip netns` users do): one it joined, which its
/// process keeps after the hook's teardown.
fn joined(h: &Host, tag: &str) -> BareContainer {
    let v = h.bare_container(tag, ports());
    let pid = v.proc.0.id();
    let config = json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "annotations": ports(),
        "linux": {"namespaces": [{"type": "network", "path": format!("/proc/{pid}/ns/net")}]}
    });
    std::fs::write(v.bundle.join("config.json"), config.to_string()).expect("config");
    v
}

fn set_up(h: &Host, v: &BareContainer) -> String {
    ok(h.hook("createRuntime", &v.state, &[]));
    ip_of(h, &v.id)
}

/// Stopped and started again under the same id and name, at once: the
/// new container gets the address the old one had, its port answers, and
/// the old veth goes (the kernel takes it with the namespace).
fn the_same_id_name_and_address_at_once(rt: Runtime) {
    let h = Host::new();
    let spec = Spec::default()
        .ann("io.ocinet.name", "web")
        .ann("io.ocinet.ports", "8080:80");
    let mut a = h.started(rt, "again", &spec);
    let ip = ip_of(&h, &a.id);
    let veth = h.host_veth(&a.id);
    let id = a.id.clone();
    h.stop(&mut a);
    assert!(h.endpoint(&id).is_none(), "the record outlived poststop");
    // In one look: gone (the kernel deletes it with the namespace, at a
    // moment of its own) or out of service: marked, down, off the bridge.
    let look = h.exec(&["ip", "-j", "link", "show", "dev", &veth]);
    if look.status.success() {
        let l: Value = serde_json::from_slice(&look.stdout).unwrap_or(Value::Null);
        let l = &l[0];
        assert_eq!(l["ifalias"], ocinet_integration::RETIRED_ALIAS, "{l}");
        assert!(l["master"].is_null(), "still on the bridge: {l}");
        assert!(
            !l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "UP")),
            "still up: {l}"
        );
    }
    let mut b = h.start_id(rt, &id, &spec.clone().ann("io.ocinet.ip", &ip));
    assert!(b.exit.is_none(), "the same address at once: {}", b.output());
    assert_eq!(ip_of(&h, &id), ip);
    assert_eq!(h.endpoint(&id).expect("record")["name"], "web");
    answers(h.wget("http://127.0.0.1:8080/"), &id);
    assert!(h.reaped(), "retired veths left: {:?}", retired(&h));
    h.stop(&mut b);
    assert_clean(&h, &id);
}

#[test]
fn the_same_id_name_and_address_at_once_runc() {
    the_same_id_name_and_address_at_once(Runtime::Runc);
}

#[test]
fn the_same_id_name_and_address_at_once_crun() {
    the_same_id_name_and_address_at_once(Runtime::Crun);
}

/// The container's own namespace, still held by another process at
/// poststop: the record, lease, claim and elements go, the host veth is
/// retired (down, out of the bridge), so the address can be leased again
/// at once; the retired pair goes with the namespace's last holder, or by
/// `ocinet gc` while it lives.
#[test]
fn a_namespace_still_held_at_poststop_keeps_only_a_retired_pair() {
    let h = Host::new();
    for by_gc in [false, true] {
        let mut v = h.bare_container(&format!("held{by_gc}"), ports());
        let ip = set_up(&h, &v);
        // The container's process lives on: something holds the namespace.
        ok(h.hook("poststop", &v.stopped_state(), &[]));
        assert_clean(&h, &v.id);
        let left = retired(&h);
        assert_eq!(left.len(), 1, "one retired veth: {left:?}");
        assert!(left[0].1, "retired but up or on a bridge: {left:?}");
        let inner = veths_in(v.proc.0.id());
        assert_eq!(inner.len(), 1, "the pair's inner end: {inner:?}");
        // The same id again at once: its host veth's name is the retired
        // one's, which is moved aside for it.
        let w = h.bare_container_id(
            &v.id,
            json!({"io.ocinet.ports": "8080:80", "io.ocinet.ip": ip}),
        );
        assert_eq!(set_up(&h, &w), ip, "the address is free at once");
        let veth = h.host_veth(&w.id);
        let left = retired(&h);
        assert!(
            left.len() == 1 && left[0].0 != veth && left[0].0.starts_with("ocx-"),
            "the retired pair moved aside from {veth}: {left:?}"
        );
        if by_gc {
            ok(h.ocinet(&["gc"]));
            assert!(retired(&h).is_empty(), "{:?}", retired(&h));
            assert!(veths_in(v.proc.0.id()).is_empty(), "gc left the inner end");
            assert!(
                h.links_now("veth").contains(&veth),
                "gc took the new container's {veth} (same name as the retired one had)"
            );
        } else {
            v.kill();
            assert!(h.reaped(), "the pair outlived the namespace");
        }
        ok(h.hook("poststop", &w.stopped_state(), &[]));
        assert_clean(&h, &w.id);
    }
}

/// A joined namespace outlives the container: its veths go to a detached
/// reaper, which leaves the namespace with no interface of ocinet's.
#[test]
fn a_joined_namespace_is_left_without_the_containers_interface() {
    let h = Host::new();
    let v = joined(&h, "joined");
    set_up(&h, &v);
    assert_eq!(veths_in(v.proc.0.id()).len(), 1);
    ok(h.hook("poststop", &v.stopped_state(), &[]));
    assert_clean(&h, &v.id);
    assert!(h.reaped(), "{:?}", retired(&h));
    assert!(
        veths_in(v.proc.0.id()).is_empty(),
        "the joined namespace kept the pair"
    );
}

/// A hook SIGKILLed once the veths were retired, or a reaper SIGKILLed
/// before it deleted anything: gc, or the next teardown (whose reaper
/// deletes every retired veth), leaves nothing.
#[test]
fn a_hook_or_reaper_killed_on_the_retiring_path_is_recovered() {
    let h = Host::new();
    // The hook dies after retiring, before it unpinned or gave anything
    // back: the record stays for the next poststop or gc.
    for (n, gc) in [false, true].into_iter().enumerate() {
        let mut v = h.bare_container(&format!("retired{n}"), ports());
        set_up(&h, &v);
        v.kill();
        let stop = v.stopped_state();
        let o = h.hook_with_env(
            "poststop",
            &stop,
            &[],
            &[("OCINET_TEST_KILL_AT", "teardown-retired")],
        );
        assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
        assert!(h.endpoint(&v.id).is_some(), "the record must survive");
        if gc {
            ok(h.ocinet(&["gc"]));
        } else {
            ok(h.hook("poststop", &stop, &[]));
        }
        assert_clean(&h, &v.id);
        assert!(h.reaped(), "{:?}", retired(&h));
    }
    // The reaper (it inherits the hook's environment) dies before it
    // deletes: the hook's work is whole, the retired pair waits.
    for (n, gc) in [false, true].into_iter().enumerate() {
        let v = joined(&h, &format!("reaper{n}"));
        set_up(&h, &v);
        let o = h.hook_with_env(
            "poststop",
            &v.stopped_state(),
            &[],
            &[("OCINET_TEST_KILL_AT", "reaping")],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert_clean(&h, &v.id);
        let mut waited = 0;
        while retired(&h).is_empty() && waited < 50 {
            std::thread::sleep(Duration::from_millis(20));
            waited += 1;
        }
        assert_eq!(retired(&h).len(), 1, "the killed reaper's veth");
        if gc {
            ok(h.ocinet(&["gc"]));
        } else {
            // The next teardown's reaper takes it along.
            let w = joined(&h, &format!("after{n}"));
            set_up(&h, &w);
            ok(h.hook("poststop", &w.stopped_state(), &[]));
        }
        assert!(h.reaped(), "{:?}", retired(&h));
        assert!(veths_in(v.proc.0.id()).is_empty());
    }
}

/// `crun run` in the foreground is a child subreaper that waits for every
/// descendant before it returns: the teardown of a container with a
/// namespace of its own leaves none. (Were a reaper started, the stall
/// below would hold crun for a minute.)
#[test]
fn a_foreground_crun_run_returns_after_the_teardown() {
    let h = Host::new();
    let spec = Spec {
        args: Some(vec!["true".into()]),
        ..Spec::default()
            .ann("io.ocinet.name", "fg")
            .ann("io.ocinet.ports", "8080:80")
    }
    .edit(|c| {
        if let Some(stop) = c["hooks"]["poststop"].as_array_mut() {
            for hk in stop {
                hk["env"] = json!(["OCINET_TEST_STALL_AT=reaping"]);
            }
        }
    });
    let mut c = h.run_in_foreground(Runtime::Crun, "fg", &spec);
    let st = h.wait_runtime(&mut c, Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "crun run did not return: {st:?} {}",
        c.output()
    );
    assert!(h.endpoint(&c.id).is_none(), "poststop did not run");
    assert_clean(&h, &c.id);
}

/// The conntrack entries of connections made to a container's published
/// port go with its teardown, another container's stay: by the kernel's
/// filtered flush, and by the table walk of kernels that have none.
#[test]
fn conntrack_entries_of_the_container_go_and_only_those() {
    let h = Host::new();
    ok(h.exec(&["ip", "link", "set", "lo", "up"]));
    let reply_from = |ip: &str| {
        let o = h.exec(&["conntrack", "-L", "--reply-src", ip]);
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    for walk in [false, true] {
        let a = h.bare_container(
            &format!("cta{walk}"),
            json!({"io.ocinet.ports": "8080:80/udp"}),
        );
        let b = h.bare_container(
            &format!("ctb{walk}"),
            json!({"io.ocinet.ports": "8081:80/udp"}),
        );
        let (ia, ib) = (set_up(&h, &a), set_up(&h, &b));
        // A datagram to each published port: DNATed, unanswered, tracked.
        for port in ["8080", "8081"] {
            let send = format!(
                "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))"
            );
            ok(h.exec(&["python3", "-c", &send]));
        }
        assert!(reply_from(&ia) > 0, "no entry for {ia}");
        assert!(reply_from(&ib) > 0, "no entry for {ib}");
        let env: &[(&str, &str)] = if walk {
            &[("OCINET_TEST_CONNTRACK_WALK", "1")]
        } else {
            &[]
        };
        ok(h.hook_with_env("poststop", &a.stopped_state(), &[], env));
        assert_eq!(reply_from(&ia), 0, "walk {walk}: {ia}'s entries left");
        assert!(reply_from(&ib) > 0, "walk {walk}: {ib}'s entries went too");
        ok(h.hook("poststop", &b.stopped_state(), &[]));
        assert_eq!(reply_from(&ib), 0);
    }
}

/// The processes of this host's state directory (a hook, the child a
/// hook leaves to close its netfilter sockets), by their command lines.
fn hook_processes(h: &Host) -> Vec<String> {
    let state = h.state_dir().display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" hook ") && c.contains(&state))
        .collect()
}

/// A hook's exit leaves the last close of its netfilter sockets (which
/// waits for the kernel's release of the nf_tables transaction) to a
/// child: the child holds nothing else (the runtime's pipes reach EOF
/// when the hook exits, so `output()` here returns) and ends by itself.
#[test]
fn the_child_a_hook_leaves_ends_by_itself() {
    let h = Host::new();
    let mut v = h.bare_container("exit", ports());
    set_up(&h, &v);
    v.kill();
    ok(h.hook("poststop", &v.stopped_state(), &[]));
    let mut left = hook_processes(&h);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = hook_processes(&h);
    }
    assert!(left.is_empty(), "still running: {left:?}");
    assert_clean(&h, &v.id);
}
