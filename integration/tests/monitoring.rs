//! Issue 25: the Grafana dashboard and the Prometheus rules in
//! monitoring/, checked by promtool and against a real Prometheus scraping
//! a real exporter with real containers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ocinet_integration::prometheus::Prometheus;
use ocinet_integration::upstream::Upstream;
use ocinet_integration::{
    answers, ok, text, Host, Runtime, Spec, EXPORTER_ADDR, HOST_LINK_IP, OUTSIDE_IP,
};
use serde_json::Value;

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("monitoring")
}

fn rules_file() -> PathBuf {
    monitoring_dir().join("prometheus/ocinet-rules.yml")
}

fn rules_test_file() -> PathBuf {
    monitoring_dir().join("prometheus/ocinet-rules.test.yml")
}

fn dashboard() -> Value {
    let path = monitoring_dir().join("grafana/ocinet.json");
    let raw = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn yaml(path: &PathBuf) -> serde_yaml::Value {
    let raw =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&raw).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn ystr<'a>(v: &'a serde_yaml::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(serde_yaml::Value::as_str)
}

/// Every rule of the rules file: (alert name or recorded name, is an
/// alert, the rule).
fn rules() -> Vec<(String, bool, serde_yaml::Value)> {
    let doc = yaml(&rules_file());
    let groups = doc
        .get("groups")
        .and_then(serde_yaml::Value::as_sequence)
        .expect("groups");
    let mut out = Vec::new();
    for g in groups {
        for r in g
            .get("rules")
            .and_then(serde_yaml::Value::as_sequence)
            .expect("rules of a group")
        {
            match (ystr(r, "alert"), ystr(r, "record")) {
                (Some(a), None) => out.push((a.to_string(), true, r.clone())),
                (None, Some(rec)) => out.push((rec.to_string(), false, r.clone())),
                _ => panic!("a rule is neither an alert nor a recording rule: {r:?}"),
            }
        }
    }
    out
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir().join("prometheus"))
        .output()
        .expect("promtool (the prometheus package)")
}

/// promtool accepts the rules and their unit tests pass; every alert has
/// a severity, a summary, a description and a runbook line, and a unit
/// test in which it fires and one in which it does not.
#[test]
fn promtool_checks_the_rules_and_every_alert_is_unit_tested_both_ways() {
    let o = promtool(&["check", "rules", "ocinet-rules.yml"]);
    assert!(o.status.success(), "promtool check rules: {}", text(&o));
    let o = promtool(&["test", "rules", "ocinet-rules.test.yml"]);
    assert!(o.status.success(), "promtool test rules: {}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));

    let rules = rules();
    let alerts: Vec<&(String, bool, serde_yaml::Value)> = rules.iter().filter(|r| r.1).collect();
    assert!(alerts.len() >= 8, "only {} alerts", alerts.len());
    for (name, _, r) in &alerts {
        let labels = r.get("labels").expect("labels");
        assert!(
            matches!(ystr(labels, "severity"), Some("warning" | "critical")),
            "{name}: severity {:?}",
            labels.get("severity")
        );
        let ann = r.get("annotations").expect("annotations");
        for key in ["summary", "description", "runbook"] {
            assert!(
                ystr(ann, key).is_some_and(|s| s.len() > 10),
                "{name}: annotation {key} missing or empty"
            );
        }
    }

    // (alert name) -> (has a firing case, has a not-firing case)
    let mut cover: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let tests = yaml(&rules_test_file());
    for t in tests
        .get("tests")
        .and_then(serde_yaml::Value::as_sequence)
        .expect("tests")
    {
        for case in t
            .get("alert_rule_test")
            .and_then(serde_yaml::Value::as_sequence)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = ystr(case, "alertname").expect("alertname").to_string();
            let fires = case
                .get("exp_alerts")
                .and_then(serde_yaml::Value::as_sequence)
                .is_some_and(|a| !a.is_empty());
            let e = cover.entry(name).or_default();
            if fires {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
    }
    for (name, _, _) in &alerts {
        assert_eq!(
            cover.get(name.as_str()),
            Some(&(true, true)),
            "{name}: (firing, not firing) unit tests"
        );
    }
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.0.as_str()).collect();
    for name in cover.keys() {
        assert!(
            known.contains(name.as_str()),
            "a test names unknown alert {name}"
        );
    }
}

/// The dashboard's shape: importable (an input for the data source),
/// every query through the `datasource` variable, no instance written in,
/// and the host, network and container variables.
#[test]
fn the_dashboard_takes_its_data_source_and_hosts_from_variables() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_i64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert_eq!(d["id"], Value::Null, "an exported dashboard has no id");
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(d["__inputs"]
        .as_array()
        .is_some_and(|i| i.iter().any(|i| i["pluginId"] == "prometheus")));
    let vars = d["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["host", "network", "container"] {
        let v = var(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        assert!(
            v["definition"]
                .as_str()
                .is_some_and(|q| q.starts_with("label_values(")),
            "{name}"
        );
    }
    let panels = leaf_panels(&d);
    assert!(panels.len() >= 15, "{} panels", panels.len());
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(
                !expr.contains("instance=\"") && !expr.contains("job=\""),
                "{title}: a hard-coded target in {expr}"
            );
            assert!(
                expr.contains("$host"),
                "{title}: not filtered by host: {expr}"
            );
        }
    }
}

/// Every panel of the dashboard, rows' own panels included.
fn leaf_panels(d: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().cloned().unwrap_or_default());
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// A query of the dashboard with the variables Grafana would fill in.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = vec![
        // Grafana's value for a 15 s scrape interval; with the test's 1 s
        // scrapes a minute holds plenty of samples for rate().
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "5m"),
        ("topn", "10"),
    ];
    all.extend_from_slice(vars);
    // Longest names first, so no name is replaced inside a longer one.
    all.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for (name, value) in all {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "a variable left in {out}");
    out
}

/// (selector, label) of a `label_values(selector, label)` variable query.
fn parse_label_values(q: &str) -> (String, String) {
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not label_values(...): {q}"));
    let (sel, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("label_values without a label: {q}"));
    (sel.trim().to_string(), label.trim().to_string())
}

/// Real containers on two networks (runc and crun), a published port on
/// each reached from the outside, a few resolver queries: every panel's
/// every query returns a series from a real Prometheus scraping the real
/// exporter (with every variable at "All", and at each container's own
/// host, network and name), every variable query has values, and every
/// rule of the rules file evaluates without error, each recorded series
/// present.
#[test]
fn every_panel_query_and_recording_rule_answers_from_a_real_prometheus() {
    let h = Host::new();
    h.outside();
    let _up = Upstream::start(&h, OUTSIDE_IP, [203, 0, 113, 7]);
    for (net, sub) in [("front", "10.64.0.0/24"), ("back", "10.65.0.0/24")] {
        ok(h.ocinet(&[
            "network",
            "create",
            net,
            "--subnet",
            sub,
            "--dns-upstream",
            OUTSIDE_IP,
        ]));
    }
    let web = h.started(
        Runtime::Runc,
        "web",
        &Spec::on("front", "web-1").ann("io.ocinet.ports", "8080:80"),
    );
    let api = h.started(
        Runtime::Crun,
        "api",
        &Spec::on("back", "api-1").ann("io.ocinet.ports", "8081:80"),
    );
    let _exporter = h.start_exporter(&[]);
    let prom = Prometheus::start(&h, &[rules_file()]);

    // Traffic through the published ports, from the outside namespace.
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8080/")),
        &web.id,
    );
    answers(
        h.wget_outside(&format!("http://{HOST_LINK_IP}:8081/")),
        &api.id,
    );
    // The resolver: a forwarded name, a container's own name, an unknown
    // one (answered by the fake upstream in the outside namespace).
    for (c, own) in [(&web, "web-1"), (&api, "api-1")] {
        let got = text(&h.in_container_fs(&c.id, &["nslookup", "outside.test"]));
        assert!(got.contains("203.0.113.7"), "{got}");
        let ip = h
            .endpoint(&c.id)
            .and_then(|e| e["ip"].as_str().map(str::to_string))
            .expect("the container's address");
        let got = text(&h.in_container_fs(&c.id, &["nslookup", own]));
        assert!(got.contains(&format!("Address: {ip}")), "{got}");
        let got = text(&h.in_container_fs(&c.id, &["nslookup", "nobody"]));
        assert!(got.contains("NXDOMAIN"), "{got}");
    }

    let d = dashboard();
    let panels = leaf_panels(&d);
    let host = EXPORTER_ADDR;
    let var_sets: [[(&str, &str); 3]; 3] = [
        [("host", ".*"), ("network", ".*"), ("container", ".*")],
        [("host", host), ("network", "front"), ("container", "web-1")],
        [("host", host), ("network", "back"), ("container", "api-1")],
    ];
    let all_rules = rules();
    let recorded: Vec<&str> = all_rules
        .iter()
        .filter(|r| !r.1)
        .map(|r| r.0.as_str())
        .collect();

    // Polled until everything answers: Prometheus needs a few scrapes for
    // rate() and a few evaluations for the rules. What is still missing at
    // the deadline is listed.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<String>;
    loop {
        missing = Vec::new();
        for vars in &var_sets {
            for p in &panels {
                let title = p["title"].as_str().unwrap_or("?");
                for t in p["targets"].as_array().cloned().unwrap_or_default() {
                    let q = substitute(t["expr"].as_str().unwrap_or(""), vars);
                    match prom.query(&q) {
                        Ok(series) if !series.is_empty() => {
                            // A variable set to one value leaves no other
                            // container or network in what the panel shows.
                            for (var, value) in vars.iter().filter(|(_, v)| *v != ".*") {
                                let label = if *var == "host" { "instance" } else { var };
                                for s in &series {
                                    let got = &s["metric"][label];
                                    assert!(
                                        got.is_null() || got == value,
                                        "panel {title:?}: ${var}={value} but a series has {label}={got}: {q}"
                                    );
                                }
                            }
                        }
                        Ok(_) => {
                            missing.push(format!("panel {title:?} ({vars:?}): no series for {q}"))
                        }
                        Err(e) => missing.push(format!("panel {title:?}: error {e}")),
                    }
                }
            }
            for v in d["templating"]["list"].as_array().expect("templating") {
                if v["type"] != "query" {
                    continue;
                }
                let def = v["definition"].as_str().unwrap_or("");
                let (sel, label) = parse_label_values(&substitute(def, vars));
                if prom.label_values(&sel, &label).is_empty() {
                    missing.push(format!("variable {} ({vars:?}): no values", v["name"]));
                }
            }
        }
        for r in &recorded {
            match prom.query(r) {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => missing.push(format!("recording rule {r}: no series")),
                Err(e) => missing.push(format!("recording rule {r}: error {e}")),
            }
        }
        // Every rule, alerts included, evaluated at least once and
        // without error (a many-to-many join would show here).
        let loaded = prom.rules();
        if loaded.len() != all_rules.len() {
            missing.push(format!(
                "Prometheus loaded {} rules of {}",
                loaded.len(),
                all_rules.len()
            ));
        }
        for r in &loaded {
            if r["health"] != "ok" {
                missing.push(format!(
                    "rule {}: health {} {}",
                    r["name"], r["health"], r["lastError"]
                ));
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    // The variables list the real names.
    let containers = prom.label_values("ocinet_container_network_info", "container");
    assert!(
        containers.contains(&"web-1".to_string()) && containers.contains(&"api-1".to_string()),
        "{containers:?}"
    );
    let networks = prom.label_values("ocinet_network_endpoints", "network");
    assert!(
        networks.contains(&"front".to_string()) && networks.contains(&"back".to_string()),
        "{networks:?}"
    );
}
