//! Issue 6 (faults): the hook SIGKILLed at each step of setup and teardown
//! (debug builds honour OCINET_TEST_KILL_AT), then `ocinet gc` or the next
//! hook call must leave a consistent state: no lease, veth, nftables
//! element, bind mount, port claim or state file of the dead attempt, and
//! the address can be leased again.

use std::os::unix::process::ExitStatusExt;

use ocinet_integration::{ok, text, BareContainer, Host};
use serde_json::Value;

const SETUP_STEPS: &[&str] = &[
    "leased",
    "recorded",
    "bridge",
    "firewall-started",
    "veth",
    "firewall",
    "pinned",
];

#[derive(Clone, Copy, Debug)]
enum Recovery {
    Gc,
    NextHook,
}

fn ports() -> Value {
    serde_json::json!({"io.ocinet.ports": "8080:80"})
}

fn leases(h: &Host) -> Vec<(String, String)> {
    h.leases("ocinet")
}

fn killed_at(h: &Host, stage: &str, v: &BareContainer, step: &str) {
    let o = h.hook_with_env(stage, &v.state, &[], &[("OCINET_TEST_KILL_AT", step)]);
    assert_eq!(
        o.status.signal(),
        Some(9),
        "{stage} was to die at {step}: {}",
        text(&o)
    );
}

#[track_caller]
fn assert_clean(h: &Host, id: &str, when: &str) {
    let left = h.leftovers(id);
    assert!(left.is_empty(), "{when}: {id} left {left:?}");
    assert!(leases(h).is_empty(), "{when}: leases left {:?}", leases(h));
    assert!(
        h.port_claims().is_empty(),
        "{when}: claims left {:?}",
        h.port_claims()
    );
}

/// Set up for real and check the endpoint is whole: one lease, the veth,
/// its firewall elements and the pin.
fn set_up(h: &Host, v: &BareContainer, extra: &[&str], when: &str) -> String {
    let o = h.hook("createRuntime", &v.state, extra);
    assert!(
        o.status.success(),
        "{when}: setup after recovery failed: {}",
        text(&o)
    );
    let ep = h.endpoint(&v.id).expect("endpoint");
    assert_eq!(ep["state"], "ready", "{when}");
    let ip = ep["ip"].as_str().expect("ip").to_string();
    assert_eq!(
        leases(h),
        vec![(ip.clone(), v.id.clone())],
        "{when}: exactly one lease"
    );
    assert_eq!(
        h.port_claims(),
        vec![("tcp-8080".to_string(), v.id.clone())],
        "{when}: exactly one port claim"
    );
    let veth = h.host_veth(&v.id);
    assert!(h.links("veth").contains(&veth), "{when}: no veth");
    let elements = h
        .nft_elements()
        .iter()
        .map(Value::to_string)
        .filter(|e| {
            e.contains(&format!("\"{ip}\""))
                || e.contains(&format!("\"{veth}\""))
                || e.contains("8080")
        })
        .count();
    assert_eq!(
        elements, 6,
        "{when}: two port elements and four guard elements (port, port . MAC, port . address, MAC owner)"
    );
    ip
}

fn tear_down(h: &Host, v: &BareContainer, when: &str) {
    ok(h.hook("poststop", &v.stopped_state(), &[]));
    assert_clean(h, &v.id, when);
}

#[test]
fn a_hook_killed_at_any_setup_step_is_recovered_by_gc_or_the_next_call() {
    let h = Host::new();
    for (n, step) in SETUP_STEPS.iter().enumerate() {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("killed at {step}, recovered by {recovery:?}");
            let v = h.bare_container(&format!("kill{n}-{recovery:?}").to_lowercase(), ports());
            killed_at(&h, "createRuntime", &v, step);
            // The record of an unfinished setup says so (it is written
            // saying ready, under a name that means it is not yet).
            let phase = h.endpoint(&v.id).map(|e| e["state"].clone());
            let want = (*step != "leased").then(|| Value::from("setup"));
            assert_eq!(phase, want, "{when}: the dead attempt's record");
            let leased: Vec<String> = leases(&h).into_iter().map(|(ip, _)| ip).collect();
            assert_eq!(
                leased.len(),
                1,
                "{when}: the dead attempt should hold one lease"
            );
            match recovery {
                Recovery::Gc => {
                    ok(h.ocinet(&["gc"]));
                    assert_clean(&h, &v.id, &when);
                    // The dead attempt's address is free again.
                    let ip = set_up(&h, &v, &["--ip", &leased[0]], &when);
                    assert_eq!(ip, leased[0]);
                }
                Recovery::NextHook => {
                    set_up(&h, &v, &[], &when);
                }
            }
            tear_down(&h, &v, &when);
        }
    }
    assert!(
        !h.nft_elements()
            .iter()
            .any(|e| e.to_string().contains("8080")),
        "{:?}",
        h.nft_elements()
    );
}

#[test]
fn a_hook_killed_after_recording_ready_leaves_a_whole_endpoint() {
    let h = Host::new();
    let v = h.bare_container("kill-ready", ports());
    killed_at(&h, "createRuntime", &v, "ready");
    // The container runs and is fully wired: gc keeps it, a retried hook
    // finds it set up.
    ok(h.ocinet(&["gc"]));
    let ip = set_up(&h, &v, &[], "after a kill at ready");
    assert!(h
        .ps()
        .iter()
        .any(|e| e["id"] == v.id.as_str() && e["ip"] == ip.as_str()));
    tear_down(&h, &v, "after a kill at ready");
}

#[test]
fn a_teardown_killed_midway_is_finished_by_a_second_poststop_or_gc() {
    let h = Host::new();
    for (n, step) in ["teardown-unwired", "teardown-unleased"].iter().enumerate() {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("poststop killed at {step}, recovered by {recovery:?}");
            let mut v = h.bare_container(&format!("tkill{n}-{recovery:?}").to_lowercase(), ports());
            set_up(&h, &v, &[], &when);
            // As at a real poststop, the container is gone.
            v.kill();
            let stop = v.stopped_state();
            let o = h.hook_with_env("poststop", &stop, &[], &[("OCINET_TEST_KILL_AT", step)]);
            assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
            assert!(
                h.endpoint(&v.id).is_some(),
                "{when}: the record must survive until the end"
            );
            match recovery {
                Recovery::Gc => ok(h.ocinet(&["gc"])),
                Recovery::NextHook => ok(h.hook("poststop", &stop, &[])),
            };
            assert_clean(&h, &v.id, &when);
        }
    }
    assert!(leases(&h).is_empty(), "{:?}", leases(&h));
    assert!(h.port_claims().is_empty(), "{:?}", h.port_claims());
}

/// The macvlan driver's interface lives in the container's namespace, which
/// outlives a killed hook here (the container still runs): whichever way the
/// attempt is recovered, no interface of it may be left there, nor a lease.
#[test]
fn a_macvlan_setup_killed_at_any_step_is_recovered_by_gc_or_the_next_call() {
    let h = Host::new();
    h.macvlan_network("mv");
    let has_eth0 = |v: &BareContainer| {
        std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", v.proc.0.id()))
            .args(["ip", "-o", "link", "show", "eth0"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let eth0_addressed = |v: &BareContainer| {
        std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", v.proc.0.id()))
            .args(["ip", "-o", "addr", "show", "dev", "eth0", "scope", "global"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    };
    for (n, step) in ["leased", "recorded", "veth"].iter().enumerate() {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("macvlan killed at {step}, recovered by {recovery:?}");
            let v = h.bare_container(
                &format!("mvkill{n}-{recovery:?}").to_lowercase(),
                serde_json::json!({"io.ocinet.network": "mv"}),
            );
            killed_at(&h, "createRuntime", &v, step);
            assert_eq!(h.leases("mv").len(), 1, "{when}: one lease held");
            assert_eq!(has_eth0(&v), *step == "veth", "{when}: eth0 made");
            match recovery {
                Recovery::Gc => {
                    ok(h.ocinet(&["gc"]));
                    assert!(h.leases("mv").is_empty(), "{when}: {:?}", h.leases("mv"));
                    assert!(h.endpoint(&v.id).is_none(), "{when}: record left");
                    assert!(
                        !has_eth0(&v),
                        "{when}: gc left the macvlan in the container"
                    );
                }
                Recovery::NextHook => {
                    let o = h.hook("createRuntime", &v.state, &[]);
                    assert!(o.status.success(), "{when}: {}", text(&o));
                    assert!(has_eth0(&v), "{when}: no eth0 after the retry");
                    assert_eq!(h.leases("mv").len(), 1, "{when}: {:?}", h.leases("mv"));
                }
            }
            ok(h.hook("poststop", &v.stopped_state(), &[]));
            assert!(h.leases("mv").is_empty(), "{when}: {:?}", h.leases("mv"));
            assert!(h.endpoint(&v.id).is_none(), "{when}: record left");
            // The container's process still holds its own namespace here:
            // poststop leaves the macvlan to the namespace's end, without
            // its address, which is off the segment at once.
            assert!(
                !eth0_addressed(&v),
                "{when}: teardown left the macvlan its address"
            );
        }
    }
}

/// A setup killed after naming its pin and before making it leaves the
/// name free; whoever mounts a namespace there meanwhile keeps it through
/// gc (review finding: unpin used to unmount whatever it found).
#[test]
fn a_pin_name_taken_after_a_killed_setup_is_left_to_its_owner() {
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let h = Host::new();
    let v = h.bare_container("pinrace", ports());
    killed_at(&h, "createRuntime", &v, "firewall");
    let name = format!("ocinet-{}", &v.id[..12]);
    ok(std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .expect("ip netns add"));
    let theirs = Del(name.clone());
    ok(h.ocinet(&["gc"]));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        mounts.contains(&format!("/run/netns/{name} ")),
        "gc unmounted a namespace that was not the container's"
    );
    drop(theirs);
    assert_clean(&h, &v.id, "after gc");
}

/// `network connect` and `disconnect` SIGKILLed at each step, recovered by
/// gc or by running the same command again: the container keeps its first
/// attachment whole, and of the interrupted one nothing is left (gc, or a
/// retried disconnect) or exactly one whole attachment (a retried
/// connect): one lease, one veth, its elements.
#[test]
fn a_connect_or_disconnect_killed_at_any_step_is_recovered_by_gc_or_the_next_call() {
    let h = Host::new();
    ok(h.ocinet(&["network", "create", "back", "--subnet", "10.62.0.0/24"]));
    let v = h.bare_container("conncrash", ports());
    let ip = set_up(&h, &v, &[], "before connecting");
    let back = |h: &Host| h.leases("back");
    let attachments = |h: &Host| {
        h.endpoint(&v.id)
            .and_then(|e| e["attachments"].as_array().cloned())
            .unwrap_or_default()
    };
    let back_elements = |h: &Host| {
        h.nft_elements()
            .iter()
            .map(Value::to_string)
            // An address of back's, not the network's own prefix.
            .filter(|e| e.contains("\"10.62.0.") && !e.contains("\"10.62.0.0\""))
            .count()
    };
    let connect =
        |env: &[(&str, &str)]| h.ocinet_with_env(&["network", "connect", "back", &v.id], env);
    let disconnect =
        |env: &[(&str, &str)]| h.ocinet_with_env(&["network", "disconnect", "back", &v.id], env);
    #[track_caller]
    fn only_eth0(h: &Host, v: &BareContainer, atts: Vec<Value>, ip: &str, when: &str) {
        assert_eq!(atts.len(), 1, "{when}: {atts:?}");
        assert_eq!(atts[0]["network"], "ocinet", "{when}");
        assert!(
            h.leases("back").is_empty(),
            "{when}: {:?}",
            h.leases("back")
        );
        assert_eq!(
            h.leases("ocinet"),
            vec![(ip.to_string(), v.id.clone())],
            "{when}"
        );
        let veths: Vec<String> = h
            .links("veth")
            .into_iter()
            .filter(|l| l.starts_with("oc"))
            .collect();
        assert_eq!(veths, vec![h.host_veth(&v.id)], "{when}");
    }
    // A connect has no pin of its own to make.
    for step in SETUP_STEPS.iter().filter(|s| **s != "pinned") {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("connect killed at {step}, recovered by {recovery:?}");
            let o = connect(&[("OCINET_TEST_KILL_AT", *step)]);
            assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
            // Recorded (from `recorded` on): shown as under way.
            let table = ok(h.ocinet(&["ps"]));
            assert_eq!(
                table.contains("connecting"),
                *step != "leased",
                "{when}: {table}"
            );
            match recovery {
                Recovery::Gc => {
                    ok(h.ocinet(&["gc"]));
                    only_eth0(&h, &v, attachments(&h), &ip, &when);
                    assert_eq!(back_elements(&h), 0, "{when}: {:?}", h.nft_elements());
                }
                Recovery::NextHook => {
                    ok(connect(&[]));
                    let atts = attachments(&h);
                    assert_eq!(atts.len(), 2, "{when}: {atts:?}");
                    assert_eq!(atts[1]["state"], "ready", "{when}");
                    assert_eq!(back(&h).len(), 1, "{when}: {:?}", back(&h));
                    // guarded port, port . MAC, port . address (the MAC
                    // owner's key names no address).
                    assert_eq!(back_elements(&h), 1, "{when}");
                    ok(disconnect(&[]));
                    only_eth0(&h, &v, attachments(&h), &ip, &when);
                }
            }
        }
    }
    for step in [
        "teardown-unplugged",
        "teardown-unwired",
        "teardown-unleased",
    ] {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("disconnect killed at {step}, recovered by {recovery:?}");
            ok(connect(&[]));
            let o = disconnect(&[("OCINET_TEST_KILL_AT", step)]);
            assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
            assert_eq!(
                attachments(&h).len(),
                2,
                "{when}: the record keeps it until the end"
            );
            match recovery {
                Recovery::Gc => ok(h.ocinet(&["gc"])),
                Recovery::NextHook => ok(disconnect(&[])),
            };
            only_eth0(&h, &v, attachments(&h), &ip, &when);
            assert_eq!(back_elements(&h), 0, "{when}: {:?}", h.nft_elements());
        }
    }
    // Killed after giving its address back, and the address leased to
    // another container before anyone finishes: finishing must leave the
    // new holder's elements (same address, same derived MAC) alone.
    ok(connect(&[]));
    let taken = attachments(&h)[1]["ip"]
        .as_str()
        .expect("eth1 address")
        .to_string();
    let o = disconnect(&[("OCINET_TEST_KILL_AT", "teardown-unleased")]);
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let w = h.bare_container("connthief", serde_json::json!({}));
    ok(h.hook("createRuntime", &w.state, &[]));
    ok(h.ocinet(&["network", "connect", "back", &w.id, "--ip", &taken]));
    let theirs = |h: &Host| {
        h.nft_elements()
            .iter()
            .map(Value::to_string)
            .filter(|e| e.contains(&format!("\"{taken}\"")))
            .count()
    };
    assert_eq!(theirs(&h), 1, "the new holder's port . address");
    ok(h.ocinet(&["gc"]));
    assert_eq!(attachments(&h).len(), 1, "{:?}", attachments(&h));
    assert_eq!(back(&h), vec![(taken.clone(), w.id.clone())]);
    assert_eq!(
        theirs(&h),
        1,
        "finishing the old disconnect took the new holder's elements"
    );
    ok(h.ocinet(&["network", "disconnect", "back", &w.id]));
    ok(h.hook("poststop", &w.stopped_state(), &[]));
    tear_down(&h, &v, "after the connects");
}

/// The same for a macvlan attachment connected to a container on a bridge
/// network: its interface lives in the container's namespace, so whichever
/// way a killed connect or disconnect is recovered, the container has eth0
/// and either no eth1 and no lease on the macvlan network, or one whole
/// attachment (a retried connect).
#[test]
fn a_macvlan_connect_or_disconnect_killed_at_any_step_is_recovered() {
    let h = Host::new();
    h.macvlan_network("mv");
    let v = h.bare_container("mvconn", ports());
    set_up(&h, &v, &[], "before connecting");
    let inside = |v: &BareContainer| -> Vec<String> {
        let o = std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", v.proc.0.id()))
            .args(["ip", "-o", "link", "show"])
            .output()
            .expect("ip link");
        text(&o)
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or(n).to_string())
            })
            .collect()
    };
    let attachments = |h: &Host| {
        h.endpoint(&v.id)
            .and_then(|e| e["attachments"].as_array().cloned())
            .unwrap_or_default()
    };
    let run =
        |verb: &str, env: &[(&str, &str)]| h.ocinet_with_env(&["network", verb, "mv", &v.id], env);
    let only_eth0 = |when: &str| {
        assert_eq!(attachments(&h).len(), 1, "{when}: {:?}", attachments(&h));
        assert!(h.leases("mv").is_empty(), "{when}: {:?}", h.leases("mv"));
        let names = inside(&v);
        assert!(
            names.contains(&"eth0".to_string()) && !names.contains(&"eth1".to_string()),
            "{when}: {names:?}"
        );
    };
    let whole = |when: &str| {
        let atts = attachments(&h);
        assert_eq!(atts.len(), 2, "{when}: {atts:?}");
        assert_eq!(atts[1]["state"], "ready", "{when}");
        assert_eq!(h.leases("mv").len(), 1, "{when}: {:?}", h.leases("mv"));
        assert!(
            inside(&v).contains(&"eth1".to_string()),
            "{when}: {:?}",
            inside(&v)
        );
    };
    for step in SETUP_STEPS.iter().filter(|s| **s != "pinned") {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("macvlan connect killed at {step}, recovered by {recovery:?}");
            let o = run("connect", &[("OCINET_TEST_KILL_AT", *step)]);
            assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
            match recovery {
                Recovery::Gc => {
                    ok(h.ocinet(&["gc"]));
                    only_eth0(&when);
                }
                Recovery::NextHook => {
                    ok(run("connect", &[]));
                    whole(&when);
                    ok(run("disconnect", &[]));
                    only_eth0(&when);
                }
            }
        }
    }
    for step in [
        "teardown-unplugged",
        "teardown-unwired",
        "teardown-unleased",
    ] {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("macvlan disconnect killed at {step}, recovered by {recovery:?}");
            ok(run("connect", &[]));
            whole(&when);
            let o = run("disconnect", &[("OCINET_TEST_KILL_AT", step)]);
            assert_eq!(o.status.signal(), Some(9), "{when}: {}", text(&o));
            match recovery {
                Recovery::Gc => ok(h.ocinet(&["gc"])),
                Recovery::NextHook => ok(run("disconnect", &[])),
            };
            only_eth0(&when);
        }
    }
    tear_down(&h, &v, "after the macvlan connects");
}

/// On a DNS-enabled network: a setup killed at any step, then gc or the
/// next call; the container's name answers once it is set up (and not
/// before), the resolver runs while a container is there and ends after
/// the last, and no generated file is left.
#[test]
fn a_dns_setup_killed_at_any_step_is_recovered_and_names_answer() {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "named",
        "--subnet",
        "10.64.0.0/24",
        "--dns-upstream",
        "198.51.100.2",
    ]));
    let ann =
        |name: &str| serde_json::json!({"io.ocinet.network": "named", "io.ocinet.name": name});
    let peer = h.bare_container("dnspeer", ann("peer"));
    ok(h.hook("createRuntime", &peer.state, &[]));
    let ask = |name: &str| {
        text(
            &std::process::Command::new("nsenter")
                .arg(format!("--net=/proc/{}/ns/net", peer.proc.0.id()))
                .args(["busybox", "nslookup", name, "10.64.0.1"])
                .output()
                .expect("nslookup"),
        )
    };
    for (n, step) in SETUP_STEPS.iter().enumerate() {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("killed at {step}, recovered by {recovery:?}");
            let name = format!(
                "n{n}{}",
                if matches!(recovery, Recovery::Gc) {
                    "g"
                } else {
                    "h"
                }
            );
            let v = h.bare_container(
                &format!("dnskill{n}-{recovery:?}").to_lowercase(),
                ann(&name),
            );
            killed_at(&h, "createRuntime", &v, step);
            assert!(
                ask(&name).contains("NXDOMAIN"),
                "{when}: answered before its setup was done"
            );
            match recovery {
                Recovery::Gc => {
                    ok(h.ocinet(&["gc"]));
                    ok(h.hook("createRuntime", &v.state, &[]));
                }
                Recovery::NextHook => {
                    ok(h.hook("createRuntime", &v.state, &[]));
                }
            }
            let ip = h
                .endpoint(&v.id)
                .and_then(|e| e["ip"].as_str().map(str::to_string))
                .expect("ip");
            let got = ask(&name);
            assert!(got.contains(&format!("Address: {ip}")), "{when}: {got}");
            ok(h.hook("poststop", &v.stopped_state(), &[]));
            assert!(
                ask(&name).contains("NXDOMAIN"),
                "{when}: answered after teardown"
            );
        }
    }
    ok(h.hook("poststop", &peer.stopped_state(), &[]));
    assert!(
        h.resolver_ended(),
        "the resolver outlived the last container"
    );
    let left: Vec<_> = std::fs::read_dir(h.state_dir().join("dns/resolv"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 22: the same on a dual-stack network, with the kill point
/// between the two leases: whatever is recovered, neither family's lease
/// nor the IPv6 neighbour entry is left, and both addresses can be had
/// again.
#[test]
fn a_dual_stack_setup_killed_at_any_step_is_recovered_by_gc_or_the_next_call() {
    let h = Host::new();
    ok(h.ocinet(&[
        "network",
        "create",
        "ds",
        "--subnet",
        "10.76.0.0/24",
        "--subnet",
        "fd76::/64",
    ]));
    let ds = || serde_json::json!({"io.ocinet.network": "ds", "io.ocinet.ports": "8080:80"});
    let steps = ["leased-ipv4"].iter().chain(SETUP_STEPS);
    for (n, step) in steps.enumerate() {
        for recovery in [Recovery::Gc, Recovery::NextHook] {
            let when = format!("dual stack, killed at {step}, recovered by {recovery:?}");
            let v = h.bare_container(&format!("dkill{n}-{recovery:?}").to_lowercase(), ds());
            killed_at(&h, "createRuntime", &v, step);
            let held: Vec<String> = h.leases("ds").into_iter().map(|(ip, _)| ip).collect();
            let want = if *step == "leased-ipv4" { 1 } else { 2 };
            assert_eq!(held.len(), want, "{when}: {held:?}");
            match recovery {
                Recovery::Gc => {
                    ok(h.ocinet(&["gc"]));
                    assert!(h.leases("ds").is_empty(), "{when}: {:?}", h.leases("ds"));
                    assert!(
                        h.leftovers(&v.id).is_empty(),
                        "{when}: {:?}",
                        h.leftovers(&v.id)
                    );
                }
                Recovery::NextHook => {}
            }
            let o = h.hook("createRuntime", &v.state, &[]);
            assert!(o.status.success(), "{when}: {}", text(&o));
            let ep = h.endpoint(&v.id).expect("endpoint");
            let ip6 = ep["attachments"][0]["ip6"]
                .as_str()
                .expect("ip6")
                .to_string();
            assert_eq!(h.leases("ds").len(), 2, "{when}: {:?}", h.leases("ds"));
            let addr = ok(h.exec(&[
                "nsenter",
                &format!("--net=/proc/{}/ns/net", v.proc.0.id()),
                "ip",
                "-6",
                "addr",
            ]));
            assert!(addr.contains(&format!("inet6 {ip6}/64")), "{when}: {addr}");
            ok(h.hook("poststop", &v.stopped_state(), &[]));
            assert!(h.leases("ds").is_empty(), "{when}: {:?}", h.leases("ds"));
            assert!(
                h.leftovers(&v.id).is_empty(),
                "{when}: {:?}",
                h.leftovers(&v.id)
            );
            let neigh = text(&h.exec(&["ip", "-6", "neigh", "show", &ip6]));
            assert!(!neigh.contains("lladdr"), "{when}: {neigh}");
        }
    }
}
