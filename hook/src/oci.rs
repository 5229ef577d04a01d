//! What the runtime hands the hook: the OCI state on stdin and the bundle's
//! config.json, as runc 1.1 and crun 1.8 really send them.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::State;
use ocinet_common::model::Request;
use ocinet_common::{validate, Error, Result};
use serde::Deserialize;

/// Far above any real state document; stops a runaway writer.
const MAX_STATE_BYTES: u64 = 1 << 20;

#[derive(Debug)]
pub struct OciState {
    pub id: String,
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    pub annotations: HashMap<String, String>,
}

/// The core's request for this container: the bundle's annotations with
/// the state's over them, resolved against the hook's defaults, and the
/// network namespace the bundle gives it.
pub fn request(st: &OciState, defaults: &crate::cli::ContainerDefaults) -> Result<Request> {
    let bundle = load_bundle(&st.bundle)?;
    let mut annotations = bundle.annotations();
    annotations.extend(st.annotations.clone());
    Ok(Request {
        id: st.id.clone(),
        pid: st.pid,
        settings: crate::settings::resolve(&st.id, &annotations, defaults)?,
        netns: bundle.netns_path(st.pid)?,
        netns_fresh: bundle.netns_is_fresh(),
        netns_field: "config.json linux.namespaces network path".into(),
        rootfs: bundle.rootfs(),
        origin: ocinet_common::model::Origin::Oci,
    })
}

pub fn read_state(mut input: impl Read) -> Result<OciState> {
    let mut buf = Vec::new();
    input
        .by_ref()
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("stdin", e))?;
    if buf.len() as u64 > MAX_STATE_BYTES {
        return Err(Error::invalid(
            "stdin",
            format!("{} bytes", buf.len()),
            "OCI state larger than 1 MiB",
        ));
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid(
            "stdin",
            "",
            "empty: expected the OCI state JSON",
        ));
    }
    let state: State = serde_json::from_slice(&buf)
        .map_err(|e| Error::invalid("stdin", summarize(&buf), format!("not an OCI state: {e}")))?;
    validate::container_id("id", state.id())?;
    // runc sends no pid at poststop and crun sends 0: both mean "none".
    let pid = match *state.pid() {
        None | Some(0) => None,
        Some(p) if p < 0 => return Err(Error::invalid("pid", p, "must be positive")),
        Some(p) => Some(p),
    };
    Ok(OciState {
        id: state.id().clone(),
        pid,
        bundle: state.bundle().clone(),
        annotations: state.annotations().clone().unwrap_or_default(),
    })
}

fn summarize(buf: &[u8]) -> String {
    let s = String::from_utf8_lossy(&buf[..buf.len().min(60)]).to_string();
    if buf.len() > 60 {
        format!("{s}...")
    } else {
        s
    }
}

/// Far above any real config.json (seccomp profiles included); stops a
/// runaway or hostile file from being read whole.
const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// The few parts of config.json the hook reads. Everything else is the
/// runtime's business: runc and crun run documents that a strict reading of
/// the runtime-spec rejects (no `process.user`, capabilities or scheduler
/// policies from a newer spec), and the hook must not fail those.
#[derive(Debug, Default, Deserialize)]
struct Config {
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    linux: Option<Linux>,
    /// Read as it is: only `root.path` matters (where the generated
    /// resolv.conf goes), and nothing about it may fail a config the
    /// runtime runs.
    #[serde(default)]
    root: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Linux {
    #[serde(default)]
    namespaces: Option<Vec<Namespace>>,
}

#[derive(Debug, Deserialize)]
struct Namespace {
    /// A string; types this hook does not know are skipped.
    #[serde(rename = "type", default)]
    typ: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

pub struct Bundle {
    config: Config,
    dir: PathBuf,
}

pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    if bundle.as_os_str().is_empty() || !bundle.is_absolute() {
        return Err(Error::invalid(
            "bundle",
            bundle.display(),
            "must be an absolute path",
        ));
    }
    let config_path = bundle.join("config.json");
    let mut buf = Vec::new();
    std::fs::File::open(&config_path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut buf))
        .map_err(|e| Error::io(&config_path, e))?;
    if buf.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::invalid(
            "config.json",
            config_path.display(),
            format!("larger than {} MiB", MAX_CONFIG_BYTES >> 20),
        ));
    }
    let config = parse_config(&buf).map_err(|e| e.context(config_path.display().to_string()))?;
    Ok(Bundle {
        config,
        dir: bundle.to_path_buf(),
    })
}

/// Parse in two steps, so that a field of the wrong type is reported with
/// its JSON path and the value found there, not only serde's message.
fn parse_config(buf: &[u8]) -> Result<Config> {
    let doc: serde_json::Value = serde_json::from_slice(buf)
        .map_err(|e| Error::invalid("config.json", summarize(buf), format!("not JSON: {e}")))?;
    // serde would take an array for a struct (its fields in order); the
    // runtimes take only objects there.
    let mut objects = vec![("".to_string(), "config.json".to_string())];
    objects.push(("/linux".into(), "config.json linux".into()));
    let n = doc
        .pointer("/linux/namespaces")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len);
    objects.extend((0..n).map(|i| {
        (
            format!("/linux/namespaces/{i}"),
            format!("config.json linux.namespaces[{i}]"),
        )
    }));
    for (pointer, field) in objects {
        match doc.pointer(&pointer) {
            None | Some(serde_json::Value::Null | serde_json::Value::Object(_)) => {}
            Some(v) => {
                return Err(Error::invalid(
                    field,
                    summarize(v.to_string().as_bytes()),
                    "expected an object",
                ))
            }
        }
    }
    serde_path_to_error::deserialize::<_, Config>(&doc).map_err(|e| {
        let mut field = String::from("config.json ");
        let mut pointer = String::new();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Seq { index } => {
                    field += &format!("[{index}]");
                    pointer += &format!("/{index}");
                }
                Segment::Map { key } => {
                    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        if !field.ends_with(' ') {
                            field.push('.');
                        }
                        field += key;
                    } else {
                        field += &format!("[{key:?}]");
                    }
                    pointer += &format!("/{}", key.replace('~', "~0").replace('/', "~1"));
                }
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        let value = doc
            .pointer(&pointer)
            .map(|v| summarize(v.to_string().as_bytes()))
            .unwrap_or_default();
        Error::invalid(field.trim_end(), value, e.inner().to_string())
    })
}

impl Bundle {
    /// The container's root file system (`root.path`, relative to the
    /// bundle unless absolute), if the config names one.
    pub fn rootfs(&self) -> Option<PathBuf> {
        let path = self.config.root.as_ref()?.get("path")?.as_str()?;
        if path.is_empty() {
            return None;
        }
        Some(self.dir.join(path))
    }

    pub fn annotations(&self) -> HashMap<String, String> {
        self.config.annotations.clone().unwrap_or_default()
    }

    /// The container's network namespace: the config's path if it names
    /// one, else the one of its init process. `None` when the container has
    /// no network namespace of its own (it runs in the host's).
    pub fn netns_path(&self, pid: Option<i32>) -> Result<Option<PathBuf>> {
        let Some(ns) = self.network_namespace() else {
            return Ok(None);
        };
        // runc and crun make a new namespace for an empty path.
        if let Some(p) = ns.path.as_deref().filter(|p| !p.is_empty()) {
            return Ok(Some(PathBuf::from(p)));
        }
        match pid {
            Some(pid) => Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/net")))),
            None => Err(Error::invalid(
                "pid",
                "none",
                "needed to find the container's network namespace",
            )),
        }
    }

    /// Whether the runtime makes the container a network namespace of its
    /// own (one with no path), which nothing else joined.
    pub fn netns_is_fresh(&self) -> bool {
        self.network_namespace()
            .is_some_and(|ns| ns.path.as_deref().is_none_or(|p| p.is_empty()))
    }

    fn network_namespace(&self) -> Option<&Namespace> {
        self.config
            .linux
            .as_ref()
            .and_then(|l| l.namespaces.as_ref())
            .and_then(|nss| nss.iter().find(|n| n.typ.as_deref() == Some("network")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_runc_and_crun_send() {
        let runc = r#"{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":13162,"bundle":"/b","annotations":{"a":"b"}}"#;
        let s = read_state(runc.as_bytes()).unwrap();
        assert_eq!((s.id.as_str(), s.pid), ("c1", Some(13162)));
        assert_eq!(s.annotations["a"], "b");
        let crun = r#"{"ociVersion":"1.0","id":"c1","pid":13353,"root":"rootfs","bundle":"/b","status":"created"}"#;
        assert_eq!(read_state(crun.as_bytes()).unwrap().pid, Some(13353));
        let runc_stop = r#"{"ociVersion":"1.0.2-dev","id":"c1","status":"stopped","bundle":"/b"}"#;
        assert_eq!(read_state(runc_stop.as_bytes()).unwrap().pid, None);
        let crun_stop =
            r#"{"ociVersion":"1.0","id":"c1","pid":0,"bundle":"/b","status":"stopped"}"#;
        assert_eq!(read_state(crun_stop.as_bytes()).unwrap().pid, None);
    }

    #[test]
    fn rejects_bad_state_naming_the_field() {
        let cases = [
            ("", "stdin"),
            ("not json", "stdin"),
            (r#"{"id":"c1","status":"weird","bundle":"/b"}"#, "stdin"),
            (r#"{"status":"created","bundle":"/b"}"#, "id"),
            (r#"{"id":"../x","status":"created","bundle":"/b"}"#, "id"),
            (r#"{"id":"a/b","status":"created","bundle":"/b"}"#, "id"),
            (
                r#"{"id":"c1","status":"created","pid":-5,"bundle":"/b"}"#,
                "pid",
            ),
        ];
        for (input, field) in cases {
            let e = read_state(input.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{input} accepted"))
                .to_string();
            assert!(e.starts_with(&format!("invalid {field}")), "{input}: {e}");
        }
        let huge = format!(r#"{{"id":"c1","x":"{}"}}"#, "a".repeat(2 << 20));
        assert!(read_state(huge.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("larger than 1 MiB"));
    }

    fn bundle(doc: &str) -> Result<Bundle> {
        parse_config(doc.as_bytes()).map(|config| Bundle {
            config,
            dir: PathBuf::from("/bundle"),
        })
    }

    #[test]
    fn reads_only_what_it_needs_from_configs_runc_runs() {
        // Each of these is run by runc 1.1 or crun 1.8 but rejected by a
        // strict runtime-spec reading.
        let docs = [
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"linux":{"namespaces":[{"type":"network"}]}}"#,
            r#"{"process":{"capabilities":{"bounding":["CAP_NEW_THING"]}},"linux":{"namespaces":[{"type":"network"}]}}"#,
            r#"{"process":{"ioPriority":{"class":"IOPRIO_CLASS_NEW","priority":1}},"linux":{"namespaces":[{"type":"network"}]}}"#,
            r#"{"process":{"scheduler":{"policy":"SCHED_NEW"}},"linux":{"namespaces":[{"type":"network"}]}}"#,
            r#"{"linux":{"personality":{"domain":"LINUX_NEW"},"namespaces":[{"type":"network"}]}}"#,
            r#"{"Process":{"args":["sh"]},"newTopLevel":{"x":1},"linux":{"namespaces":[{"type":"network"}]}}"#,
            r#"{"linux":{"namespaces":[{"type":"time"},{"type":"newkind","path":"/x"},{"type":"network","path":""}]}}"#,
            r#"{"annotations":null,"linux":{"namespaces":[{"type":"network","path":null}]}}"#,
        ];
        for d in docs {
            let b = bundle(d).unwrap_or_else(|e| panic!("{d}: {e}"));
            assert_eq!(
                b.netns_path(Some(7)).unwrap_or_else(|e| panic!("{d}: {e}")),
                Some(PathBuf::from("/proc/7/ns/net")),
                "{d}"
            );
            assert!(b.annotations().is_empty());
        }
    }

    #[test]
    fn a_namespace_without_a_path_is_the_containers_own() {
        for (doc, fresh) in [
            (r#"{"linux":{"namespaces":[{"type":"network"}]}}"#, true),
            (
                r#"{"linux":{"namespaces":[{"type":"network","path":""}]}}"#,
                true,
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"network","path":"/run/netns/x"}]}}"#,
                false,
            ),
            (r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#, false),
        ] {
            assert_eq!(bundle(doc).unwrap().netns_is_fresh(), fresh, "{doc}");
        }
    }

    #[test]
    fn finds_annotations_and_namespace_paths() {
        let b = bundle(
            r#"{"annotations":{"io.ocinet.network":"web"},"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/x"}]}}"#,
        )
        .unwrap();
        assert_eq!(b.annotations()["io.ocinet.network"], "web");
        assert_eq!(
            b.netns_path(None).unwrap(),
            Some(PathBuf::from("/run/netns/x"))
        );
        // No network entry: the host's namespace. No linux at all: same.
        for d in [r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#, "{}"] {
            assert_eq!(bundle(d).unwrap().netns_path(Some(7)).unwrap(), None);
        }
        // A new namespace needs the pid to be found.
        let e = bundle(r#"{"linux":{"namespaces":[{"type":"network","path":""}]}}"#)
            .unwrap()
            .netns_path(None)
            .unwrap_err();
        assert!(e.to_string().starts_with("invalid pid"), "{e}");
    }

    #[test]
    fn a_malformed_needed_field_is_named_with_its_value() {
        let cases = [
            (
                r#"{"annotations":{"io.ocinet.network":5}}"#,
                r#"invalid config.json annotations["io.ocinet.network"] "5": invalid type: integer `5`"#,
            ),
            (
                r#"{"annotations":["a"]}"#,
                r#"invalid config.json annotations "[\"a\"]": invalid type: sequence"#,
            ),
            (
                r#"{"linux":{"namespaces":{"type":"network"}}}"#,
                r#"invalid config.json linux.namespaces "{\"type\":\"network\"}": invalid type: map"#,
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":7}]}}"#,
                r#"invalid config.json linux.namespaces[1].path "7": invalid type: integer `7`"#,
            ),
            (
                r#"{"linux":{"namespaces":[{"type":["network"]}]}}"#,
                r#"invalid config.json linux.namespaces[0].type "[\"network\"]""#,
            ),
            (
                r#"{"linux":5}"#,
                r#"invalid config.json linux "5": expected an object"#,
            ),
            ("[1]", r#"invalid config.json "[1]": expected an object"#),
            (
                r#"{"linux":{"namespaces":[["network","/x"]]}}"#,
                r#"invalid config.json linux.namespaces[0] "[\"network\",\"/x\"]": expected an object"#,
            ),
            ("{", r#"invalid config.json "{": not JSON"#),
        ];
        for (doc, want) in cases {
            let e = bundle(doc)
                .err()
                .unwrap_or_else(|| panic!("{doc} accepted"))
                .to_string();
            assert!(e.starts_with(want), "{doc}:\n got {e}\nwant {want}");
            assert!(!e.contains("serde failed"), "{e}");
        }
    }

    #[test]
    fn load_bundle_caps_the_size_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("ocinet-oci-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = load_bundle(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("config.json: No such file"), "{e}");
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(9 << 20));
        std::fs::write(dir.join("config.json"), big).unwrap();
        let e = load_bundle(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("larger than 8 MiB"), "{e}");
        std::fs::write(dir.join("config.json"), r#"{"annotations":{"a":1}}"#).unwrap();
        let e = load_bundle(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("config.json: invalid config.json annotations.a \"1\""),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
