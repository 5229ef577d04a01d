//! ocinet as a CNI plugin (spec 1.1, results for 0.3.0 to 1.1.0): the
//! `ocinet` binary run with `CNI_COMMAND` set. A thin front end: it turns
//! the environment and the network configuration into the core's typed
//! requests, and the record the core keeps into CNI results. The same
//! state, firewall, resolver, `ps`, `gc` and exporter serve containers of
//! both front ends.

pub mod conf;
pub mod env;
pub mod errors;
pub mod result;
pub mod verbs;

use std::io::{Read, Write};

use rscni_types::error::Error as CniError;
use rscni_types::types::{Cmd, ErrorResult};
use rscni_types::version::{PluginInfo, SpecVersion};

/// Larger than any configuration a runtime sends (a prevResult of a long
/// chain included): refused rather than read without end.
const MAX_STDIN: u64 = 1 << 20;

/// Run one CNI invocation; returns the exit code. What the runtime reads
/// goes to stdout, a result or the spec's error object (stdout, not
/// stderr: libcni reads errors there).
pub fn main(log: verbs::LogInit<'_>) -> i32 {
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut stdin);
    let (version, outcome) = match read {
        Err(e) => (
            SpecVersion::CURRENT,
            Err(CniError::IOFailure(format!("stdin: {e}"))),
        ),
        Ok(_) if stdin.len() as u64 > MAX_STDIN => (
            SpecVersion::CURRENT,
            Err(CniError::FailedToDecode(format!(
                "the network configuration is larger than {MAX_STDIN} bytes"
            ))),
        ),
        Ok(_) => run(&stdin, |k| std::env::var(k).ok(), log),
    };
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(json)) => {
            let _ = writeln!(out, "{json}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            tracing::error!(code = u32::from(&e), "{}: {}", e.msg(), e.details());
            let body = serde_json::to_string(&ErrorResult::new(version, &e)).unwrap_or_default();
            let _ = writeln!(out, "{body}");
            1
        }
    }
}

/// The version answers are given in (the configuration's, once read), and
/// what to print.
fn run(
    stdin: &[u8],
    env: impl Fn(&str) -> Option<String>,
    log: verbs::LogInit<'_>,
) -> (SpecVersion, Result<Option<String>, CniError>) {
    let inv = match env::Invocation::from_env(&env) {
        Ok(i) => i,
        Err(e) => return (SpecVersion::CURRENT, Err(e)),
    };
    let info = PluginInfo::default();
    if inv.command == Cmd::Version {
        // The answer names the version asked in, if one was.
        let asked = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str()?.parse::<SpecVersion>().ok())
            .filter(|v| info.supported_versions().contains(v))
            .unwrap_or(SpecVersion::CURRENT);
        let body = serde_json::json!({
            "cniVersion": asked.to_string(),
            "supportedVersions": info.supported_versions().iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        });
        return (asked, Ok(Some(body.to_string())));
    }
    let conf = match conf::Conf::parse(stdin) {
        Ok(c) => c,
        Err(e) => return (SpecVersion::CURRENT, Err(e)),
    };
    let version = match info.negotiate(&conf.net, inv.command) {
        Ok(v) => v,
        Err(e) => return (conf.net.version().unwrap_or(SpecVersion::CURRENT), Err(e)),
    };
    (version, verbs::run(&inv, &conf, version, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn version_answers_in_the_version_asked() {
        let (_, out) = run(
            br#"{"cniVersion":"0.4.0"}"#,
            env(&[("CNI_COMMAND", "VERSION")]),
            &|_| {},
        );
        let v: serde_json::Value = serde_json::from_str(&out.unwrap().unwrap()).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        let all = v["supportedVersions"].as_array().unwrap();
        for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            assert!(all.iter().any(|x| x == want), "{v}");
        }
    }

    #[test]
    fn check_below_0_4_0_and_unknown_versions_are_refused() {
        let add = &[
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ];
        let (_, out) = run(
            br#"{"cniVersion":"0.3.1","name":"n","type":"ocinet"}"#,
            env(add),
            &|_| {},
        );
        assert_eq!(u32::from(&out.unwrap_err()), 1);
        let (_, out) = run(
            br#"{"cniVersion":"9.9.9","name":"n","type":"ocinet"}"#,
            env(add),
            &|_| {},
        );
        assert_eq!(u32::from(&out.unwrap_err()), 1);
    }
}
