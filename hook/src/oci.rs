//! What the runtime hands the hook: the OCI state on stdin and the bundle's
//! config.json, as runc 1.1 and crun 1.8 really send them.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec, State};
use ocinet_common::{validate, Error, Result};

/// Far above any real state document; stops a runaway writer.
const MAX_STATE_BYTES: u64 = 1 << 20;

#[derive(Debug)]
pub struct OciState {
    pub id: String,
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    pub annotations: HashMap<String, String>,
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

pub struct Bundle {
    pub spec: Spec,
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
    let spec = Spec::load(&config_path).map_err(|e| match e {
        oci_spec::OciSpecError::Io(io) => Error::io(&config_path, io),
        other => Error::invalid("config.json", config_path.display(), other.to_string()),
    })?;
    Ok(Bundle { spec })
}

impl Bundle {
    pub fn annotations(&self) -> HashMap<String, String> {
        self.spec.annotations().clone().unwrap_or_default()
    }

    /// The container's network namespace: the config's path if it names
    /// one, else the one of its init process. `None` when the container has
    /// no network namespace of its own (it runs in the host's).
    pub fn netns_path(&self, pid: Option<i32>) -> Result<Option<PathBuf>> {
        let ns = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .and_then(|nss| {
                nss.iter()
                    .find(|n| n.typ() == LinuxNamespaceType::Network)
                    .cloned()
            });
        let Some(ns) = ns else { return Ok(None) };
        if let Some(p) = ns.path() {
            return Ok(Some(p.clone()));
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
}
