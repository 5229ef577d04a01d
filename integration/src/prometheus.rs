//! A real Prometheus server (Debian's /usr/bin/prometheus) for tests: run
//! in a host's network namespace on 127.0.0.1, scraping that host's
//! exporter, its data in the host's temporary directory, killed by its pid
//! when dropped; and the few HTTP API calls the tests make of it.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Host, Proc, EXPORTER_ADDR};

/// Where it listens, inside the host's namespace (each host has its own
/// loopback, so tests running at once do not collide).
pub const PROMETHEUS_ADDR: &str = "127.0.0.1:9090";

pub struct Prometheus<'h> {
    h: &'h Host,
    _proc: Proc,
}

impl Prometheus<'_> {
    /// Started scraping `EXPORTER_ADDR` every second under the job name
    /// `ocinet` (the one monitoring/prometheus/ocinet-rules.yml expects),
    /// loading `rule_files` and evaluating them every second. Returns at
    /// once: callers poll for what they wait for.
    pub fn start<'h>(h: &'h Host, rule_files: &[PathBuf]) -> Prometheus<'h> {
        let dir = h.dir.join("prometheus");
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        for f in rule_files {
            config += &format!("  - {}\n", f.display());
        }
        config += &format!(
            "scrape_configs:\n  - job_name: ocinet\n    static_configs:\n      - targets: ['{EXPORTER_ADDR}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let proc = h.spawn(&[
            "prometheus",
            &format!("--config.file={}", dir.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--web.listen-address={PROMETHEUS_ADDR}"),
        ]);
        Prometheus { h, _proc: proc }
    }

    /// GET `path` of the HTTP API with URL-encoded `params`; its JSON, or
    /// `Null` while the server does not answer yet.
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut args = vec!["curl".to_string(), "-s".into(), "--get".into()];
        for (k, v) in params {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("http://{PROMETHEUS_ADDR}{path}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = self.h.exec(&args);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    /// The series an instant query returns now; a refused query (or no
    /// answer) is an error naming the query and the reply.
    pub fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let v = self.get("/api/v1/query", &[("query", q)]);
        if v["status"] != "success" {
            return Err(format!("{q}: {v}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The values of `label` over the series `selector` selects: what
    /// Grafana's `label_values(selector, label)` asks.
    pub fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let v = self.get(
            &format!("/api/v1/label/{label}/values"),
            &[("match[]", selector)],
        );
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every rule Prometheus loaded (`/api/v1/rules`), of all groups, with
    /// its `name`, `health` and `lastError`.
    pub fn rules(&self) -> Vec<Value> {
        self.get("/api/v1/rules", &[])["data"]["groups"]
            .as_array()
            .map(|gs| {
                gs.iter()
                    .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }
}
