//! Issue 13: configs that runc and crun run must not break the hook. Each
//! case starts from the runtime's own `spec` output, changes one field the
//! hook does not use (removed, renamed, or set to a value of a newer
//! runtime-spec), and must come up networked under both runtimes.

use std::process::Command;

use ocinet_integration::{both_runtimes, ok, run_cmd, text, Host, Runtime, Spec};
use serde_json::{json, Value};

/// `<runtime> spec` in a directory of its own: the runtime's idea of a
/// minimal valid config.json.
fn runtime_spec(h: &Host, rt: Runtime) -> Value {
    let dir = h.dir.join(format!("{}-spec", rt.name()));
    std::fs::create_dir_all(&dir).expect("spec dir");
    ok(run_cmd(
        Command::new(rt.name()).arg("spec").current_dir(&dir),
    ));
    let doc = std::fs::read(dir.join("config.json")).expect("spec config.json");
    serde_json::from_slice(&doc).expect("spec JSON")
}

/// The runtime's spec with what the harness needs to run and reach the
/// container (its command, rootfs, hooks, annotations, web root) taken
/// from the harness's own config.
fn adopt(base: &Value, harness: &Value) -> Value {
    let mut b = base.clone();
    b["process"]["terminal"] = json!(false);
    b["process"]["args"] = harness["process"]["args"].clone();
    b["process"]["env"] = json!(["PATH=/bin"]);
    for k in ["root", "hooks", "annotations"] {
        b[k] = harness[k].clone();
    }
    let binds: Vec<Value> = harness["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "bind")
        .cloned()
        .collect();
    if let Some(mounts) = b["mounts"].as_array_mut() {
        mounts.extend(binds);
    }
    b
}

type Change = fn(&mut Value);

/// Refused by crun 1.8.1 itself (so not a config it runs), run by runc
/// 1.1.5: "unknown persona specified", "open ``: No such file or
/// directory", "max number of capabilities not initialized" (crun's keys are
/// case-sensitive, runc's are not). Neither runs an unknown namespace type.
const RUNC_ONLY: &[&str] = &[
    "personality with an unknown domain",
    "network namespace path empty",
    "capitalised process key",
];

fn cases() -> Vec<(&'static str, Change)> {
    vec![
        ("as written by the runtime", |_| {}),
        ("no process.user", |c| {
            c["process"].as_object_mut().map(|p| p.remove("user"));
        }),
        ("unknown capability", |c| {
            for set in ["bounding", "effective", "permitted"] {
                if let Some(l) = c["process"]["capabilities"][set].as_array_mut() {
                    l.push(json!("CAP_NEW_THING"));
                }
            }
        }),
        ("ioPriority with an unknown class", |c| {
            c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_NEW", "priority": 4});
        }),
        ("scheduler with an unknown policy", |c| {
            c["process"]["scheduler"] = json!({"policy": "SCHED_NEW", "priority": 1});
        }),
        ("personality with an unknown domain", |c| {
            c["linux"]["personality"] = json!({"domain": "LINUX_NEW"});
        }),
        ("capitalised hostname key", |c| {
            let v = c.as_object_mut().and_then(|o| o.remove("hostname"));
            c["Hostname"] = v.unwrap_or(json!("c"));
        }),
        ("capitalised process key", |c| {
            let v = c.as_object_mut().and_then(|o| o.remove("process"));
            c["Process"] = v.unwrap_or(json!({}));
        }),
        ("network namespace path empty", |c| {
            for ns in c["linux"]["namespaces"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if ns["type"] == "network" {
                    ns["path"] = json!("");
                }
            }
        }),
        ("unknown top-level field", |c| {
            c["org.example.newThing"] = json!({"enabled": true, "level": [1, 2]});
        }),
    ]
}

fn configs_the_runtime_runs_come_up_networked(rt: Runtime) {
    let h = Host::new();
    let base = runtime_spec(&h, rt);
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 10, "only {} cases", cases.len());
    for (name, change) in cases {
        if rt == Runtime::Crun && RUNC_ONLY.contains(&name) {
            continue;
        }
        let base = base.clone();
        let spec = Spec::default().edit(move |c| {
            *c = adopt(&base, c);
            change(c);
        });
        let mut c = h.start(rt, "cfg", &spec);
        let up = c.exit.is_none()
            && h.endpoint(&c.id)
                .and_then(|e| e["ip"].as_str().map(str::to_string))
                .is_some_and(|ip| {
                    let addr = text(&h.in_container(&c.id, &["ip", "-4", "addr", "show", "eth0"]));
                    let reply = h.wget(&format!("http://{ip}/"));
                    addr.contains(&format!("inet {ip}/"))
                        && text(&reply).contains(&format!("hello from {}", c.id))
                });
        if !up {
            let log = h.log();
            failures.push(format!(
                "{name}: not networked (exit {:?}): {}\nhook log tail: {}",
                c.exit,
                c.output().trim(),
                log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
            ));
        }
        h.stop(&mut c);
        let left = h.leftovers(&c.id);
        if !left.is_empty() {
            failures.push(format!("{name}: left {left:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        rt.name(),
        failures.join("\n")
    );
}

both_runtimes!(configs_the_runtime_runs_come_up_networked);
