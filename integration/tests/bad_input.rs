//! Issue 6 (bad input): a table of malformed inputs to the hook. Each must
//! exit non-zero with a message naming the field, and leave nothing behind.

use std::process::{Command, Stdio};

use ocinet_integration::{text, Host, Proc};

struct Case {
    name: &'static str,
    /// stdin; `{PID}` and `{BUNDLE}` are substituted.
    stdin: String,
    /// config.json contents (None: no file written).
    config: Option<String>,
    /// What the message must name.
    expect: &'static [&'static str],
}

fn state(id: &str, extra: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.0","id":"{id}","status":"creating","pid":{{PID}},"bundle":"{{BUNDLE}}"{extra}}}"#
    )
}

fn config_with(annotations: &[(&str, &str)]) -> Option<String> {
    let ann: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    Some(
        serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "annotations": ann,
        "linux": {"namespaces": [{"type": "network"}]}})
        .to_string(),
    )
}

fn ann_case(name: &'static str, pairs: &[(&str, &str)], expect: &'static [&'static str]) -> Case {
    Case {
        name,
        stdin: state("bad-ann", ""),
        config: config_with(pairs),
        expect,
    }
}

fn cases() -> Vec<Case> {
    let good = config_with(&[]);
    let mut v = vec![
        Case { name: "empty stdin", stdin: String::new(), config: good.clone(), expect: &["stdin", "empty"] },
        Case { name: "stdin not JSON", stdin: "hello".into(), config: good.clone(), expect: &["stdin", "not an OCI state"] },
        Case { name: "stdin JSON array", stdin: "[1,2]".into(), config: good.clone(), expect: &["stdin"] },
        Case { name: "huge stdin", stdin: format!(r#"{{"id":"x","pad":"{}"}}"#, "a".repeat(2 << 20)), config: good.clone(), expect: &["stdin", "larger than 1 MiB"] },
        Case { name: "missing id", stdin: r#"{"ociVersion":"1.0","status":"creating","pid":1,"bundle":"/x"}"#.into(), config: good.clone(), expect: &["invalid id", "empty"] },
        Case { name: "id with slash", stdin: state("a/b", ""), config: good.clone(), expect: &["invalid id", "a/b"] },
        Case { name: "id dot-dot", stdin: state("..", ""), config: good.clone(), expect: &["invalid id", ".."] },
        Case { name: "id with dot-dot path", stdin: state("../../etc", ""), config: good.clone(), expect: &["invalid id"] },
        Case { name: "id too long", stdin: state(&"a".repeat(129), ""), config: good.clone(), expect: &["invalid id", "128"] },
        Case { name: "id with newline", stdin: state("a\\nb", ""), config: good.clone(), expect: &["invalid id"] },
        Case { name: "unknown status", stdin: r#"{"ociVersion":"1.0","id":"s1","status":"exploding","pid":1,"bundle":"/x"}"#.into(), config: good.clone(), expect: &["stdin", "exploding"] },
        Case { name: "negative pid", stdin: r#"{"ociVersion":"1.0","id":"p1","status":"creating","pid":-4,"bundle":"{BUNDLE}"}"#.into(), config: good.clone(), expect: &["invalid pid", "-4"] },
        Case { name: "pid with no such process", stdin: r#"{"ociVersion":"1.0","id":"p2","status":"creating","pid":999999999,"bundle":"{BUNDLE}"}"#.into(), config: good.clone(), expect: &["/proc/999999999/ns/net"] },
        Case { name: "no pid and no netns path", stdin: r#"{"ociVersion":"1.0","id":"p3","status":"creating","bundle":"{BUNDLE}"}"#.into(), config: good.clone(), expect: &["invalid pid"] },
        Case { name: "relative bundle", stdin: r#"{"ociVersion":"1.0","id":"b1","status":"creating","pid":{PID},"bundle":"rel/dir"}"#.into(), config: good.clone(), expect: &["invalid bundle", "absolute"] },
        Case { name: "missing config.json", stdin: state("c1", ""), config: None, expect: &["config.json", "No such file"] },
        Case { name: "config.json not JSON", stdin: state("c2", ""), config: Some("{{{".into()), expect: &["config.json"] },
        Case { name: "config.json wrong types", stdin: state("c3", ""), config: Some(r#"{"ociVersion":"1.0.2","linux":{"namespaces":"net"}}"#.into()), expect: &["config.json linux.namespaces", "\"\\\"net\\\"\"", "expected a sequence"] },
        Case { name: "config.json annotation not a string", stdin: state("c7", ""), config: Some(r#"{"ociVersion":"1.0.2","annotations":{"io.ocinet.network":5},"linux":{"namespaces":[{"type":"network"}]}}"#.into()), expect: &["config.json annotations[\"io.ocinet.network\"] \"5\"", "expected a string"] },
        Case { name: "config.json netns path not a string", stdin: state("c8", ""), config: Some(r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"network","path":["/x"]}]}}"#.into()), expect: &["config.json linux.namespaces[1].path", "[\\\"/x\\\"]", "expected a string"] },
        Case { name: "netns path is not a namespace", stdin: state("c4", ""), config: Some(r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network","path":"/etc/hostname"}]}}"#.into()), expect: &["network namespace"] },
        Case { name: "netns path missing", stdin: state("c5", ""), config: Some(r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network","path":"/run/netns/does-not-exist"}]}}"#.into()), expect: &["/run/netns/does-not-exist"] },
        Case { name: "bridge mode without own netns", stdin: state("c6", ""), config: Some(r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"}]}}"#.into()), expect: &["linux.namespaces", "network namespace"] },
    ];
    v.extend([
        ann_case(
            "network with slash",
            &[("io.ocinet.network", "a/b")],
            &["io.ocinet.network", "a/b"],
        ),
        ann_case(
            "network dot-dot",
            &[("io.ocinet.network", "../x")],
            &["io.ocinet.network", "../x"],
        ),
        ann_case(
            "network empty",
            &[("io.ocinet.network", "")],
            &["io.ocinet.network"],
        ),
        ann_case(
            "network too long",
            &[("io.ocinet.network", &"n".repeat(64))],
            &["io.ocinet.network"],
        ),
        ann_case(
            "network unknown",
            &[("io.ocinet.network", "nope")],
            &["nope", "does not exist"],
        ),
        ann_case(
            "container target missing",
            &[("io.ocinet.network", "container:ghost")],
            &["container:ghost", "no ocinet endpoint"],
        ),
        ann_case(
            "container target bad id",
            &[("io.ocinet.network", "container:../x")],
            &["io.ocinet.network", "../x"],
        ),
        ann_case(
            "port zero",
            &[("io.ocinet.ports", "0:80")],
            &["io.ocinet.ports", "0:80"],
        ),
        ann_case(
            "port too big",
            &[("io.ocinet.ports", "70000:80")],
            &["io.ocinet.ports", "70000"],
        ),
        ann_case(
            "port missing colon",
            &[("io.ocinet.ports", "8080")],
            &["io.ocinet.ports", "8080"],
        ),
        ann_case(
            "port bad protocol",
            &[("io.ocinet.ports", "8080:80/icmp")],
            &["io.ocinet.ports", "icmp"],
        ),
        ann_case(
            "port not a number",
            &[("io.ocinet.ports", "http:80")],
            &["io.ocinet.ports", "http"],
        ),
        ann_case(
            "ports duplicate",
            &[("io.ocinet.ports", "8080:80,8080:81")],
            &["io.ocinet.ports", "published twice"],
        ),
        ann_case(
            "port range reversed",
            &[("io.ocinet.ports", "9010-9000:80-90")],
            &["io.ocinet.ports", "reversed"],
        ),
        ann_case(
            "port ranges differ",
            &[("io.ocinet.ports", "9000-9001:80-82")],
            &["io.ocinet.ports", "2 ports"],
        ),
        ann_case(
            "port host ip not local",
            &[("io.ocinet.ports", "192.0.2.77:8080:80")],
            &[
                "io.ocinet.ports",
                "192.0.2.77",
                "not an address of this host",
            ],
        ),
        ann_case(
            "port host ip malformed",
            &[("io.ocinet.ports", "1.2.3:8080:80")],
            &["io.ocinet.ports", "1.2.3"],
        ),
        ann_case(
            "ports on host mode",
            &[
                ("io.ocinet.network", "host"),
                ("io.ocinet.ports", "8080:80"),
            ],
            &["io.ocinet.ports", "bridge networks"],
        ),
        ann_case(
            "static ip outside subnet",
            &[("io.ocinet.ip", "10.99.0.5")],
            &["io.ocinet.ip", "10.99.0.5", "outside the subnet"],
        ),
        ann_case(
            "static ip is gateway",
            &[("io.ocinet.ip", "10.87.0.1")],
            &["io.ocinet.ip", "gateway"],
        ),
        ann_case(
            "static ip is network address",
            &[("io.ocinet.ip", "10.87.0.0")],
            &["io.ocinet.ip", "network address"],
        ),
        ann_case(
            "static ip is broadcast",
            &[("io.ocinet.ip", "10.87.255.255")],
            &["io.ocinet.ip", "broadcast"],
        ),
        ann_case(
            "static ip not an ip",
            &[("io.ocinet.ip", "ten.0.0.1")],
            &["io.ocinet.ip", "ten.0.0.1"],
        ),
        ann_case(
            "static ip is ipv6",
            &[("io.ocinet.ip", "fd00::5")],
            &["io.ocinet.ip", "fd00::5"],
        ),
        ann_case(
            "mac malformed",
            &[("io.ocinet.mac", "zz:00:00:00:00:01")],
            &["io.ocinet.mac", "zz"],
        ),
        ann_case(
            "mac multicast",
            &[("io.ocinet.mac", "01:00:5e:00:00:01")],
            &["io.ocinet.mac", "multicast"],
        ),
        ann_case(
            "mac all zero",
            &[("io.ocinet.mac", "00:00:00:00:00:00")],
            &["io.ocinet.mac", "all-zero"],
        ),
        ann_case(
            "mac too short",
            &[("io.ocinet.mac", "02:00:00")],
            &["io.ocinet.mac", "02:00:00"],
        ),
        ann_case(
            "mac for none mode",
            &[
                ("io.ocinet.network", "none"),
                ("io.ocinet.mac", "02:00:00:00:00:01"),
            ],
            &["io.ocinet.mac", "bridge networks"],
        ),
        ann_case(
            "name with control character",
            &[("io.ocinet.name", "web\u{7}1")],
            &["io.ocinet.name"],
        ),
        ann_case(
            "name with newline",
            &[("io.ocinet.name", "web\n1")],
            &["io.ocinet.name"],
        ),
        ann_case(
            "name too long",
            &[("io.ocinet.name", &"w".repeat(64))],
            &["io.ocinet.name", "63"],
        ),
        ann_case(
            "name starts with dash",
            &[("io.ocinet.name", "-web")],
            &["io.ocinet.name", "-web"],
        ),
        ann_case(
            "name with slash",
            &[("io.ocinet.name", "a/b")],
            &["io.ocinet.name", "a/b"],
        ),
        ann_case(
            "unknown annotation",
            &[("io.ocinet.netwrok", "web")],
            &["io.ocinet.netwrok", "unknown"],
        ),
    ]);
    v
}

#[test]
fn malformed_inputs_are_refused_by_name_and_leave_nothing() {
    let h = Host::new();
    // A "container": a process in a namespace of its own.
    let sleeper = Proc(
        Command::new("unshare")
            .args(["-n", "sleep", "120"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sleeper"),
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    let pid = sleeper.0.id().to_string();
    let all = cases();
    assert!(all.len() >= 40, "only {} cases", all.len());
    let mut failures = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let bundle = h.dir.join(format!("bundle-{i}"));
        std::fs::create_dir_all(&bundle).expect("bundle");
        if let Some(cfg) = &c.config {
            std::fs::write(bundle.join("config.json"), cfg).expect("config");
        }
        let stdin = c
            .stdin
            .replace("{PID}", &pid)
            .replace("{BUNDLE}", &bundle.display().to_string());
        let o = h.hook("createRuntime", &stdin, &[]);
        let msg = text(&o);
        if o.status.success() {
            failures.push(format!("{}: accepted", c.name));
            continue;
        }
        for w in c.expect {
            if !msg.contains(w) {
                failures.push(format!(
                    "{}: message {:?} does not mention {w:?}",
                    c.name,
                    msg.trim()
                ));
            }
        }
        if msg.lines().count() > 3 {
            failures.push(format!(
                "{}: expected one clear line, got {}",
                c.name,
                msg.lines().count()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    // Nothing left: no endpoint, no lease, no port claim, no veth, no pin.
    assert!(h.ps().is_empty(), "{:?}", h.ps());
    assert!(h.leases("ocinet").is_empty(), "{:?}", h.leases("ocinet"));
    assert!(h.port_claims().is_empty(), "{:?}", h.port_claims());
    assert!(h.links("veth").is_empty(), "{:?}", h.links("veth"));
    assert!(
        h.nft_elements()
            .iter()
            .all(|e| !e.to_string().contains("\"tcp\"")),
        "{:?}",
        h.nft_elements()
    );
    for id in [
        "bad-ann", "p1", "p2", "p3", "b1", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8",
    ] {
        assert!(
            !std::path::Path::new(&format!("/run/netns/ocinet-{id}")).exists(),
            "pin for {id} left"
        );
    }
}
