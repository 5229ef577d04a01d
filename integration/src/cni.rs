//! A CNI runtime of the tests' own: it executes plugins exactly as the
//! spec says (SPEC.md "Execution protocol": the `CNI_*` environment, the
//! configuration on stdin, the result or the error object on stdout, the
//! exit code), one plugin or a whole conflist (ADD in order with each
//! plugin's result as the next one's `prevResult`, DEL and CHECK in
//! reverse with the cached final result), in a test host's namespace.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::{ocinet_bin, Host};

/// Where Debian's reference plugins are.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// One plugin execution: its exit code and what it printed on stdout.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    /// Exit 0, or a panic that shows what the plugin said.
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        self.json()
    }

    /// A failure with the spec's error object of `code`, whose message or
    /// details contain `text`.
    #[track_caller]
    pub fn refused(&self, code: u64, text: &str) {
        assert_ne!(self.code, 0, "succeeded: {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "{}", self.stdout);
        let said = format!(
            "{} {}",
            v["msg"].as_str().unwrap_or_default(),
            v["details"].as_str().unwrap_or_default()
        );
        assert!(said.contains(text), "{said:?} lacks {text:?}");
    }
}

/// The invocation's parameters (the environment of SPEC.md).
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
}

impl Call {
    pub fn new(command: &str, container_id: &str, netns: &str, ifname: &str) -> Call {
        Call {
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            args: String::new(),
        }
    }

    pub fn command(&self, c: &str) -> Call {
        Call {
            command: c.into(),
            ..self.clone()
        }
    }
}

/// The directory given as CNI_PATH: `ocinet` (a link to the build's
/// binary, as an installation makes it), then Debian's plugins.
pub fn plugin_path(h: &Host) -> String {
    let dir = h.state_dir().with_file_name("cni-bin");
    if !dir.join("ocinet").exists() {
        std::fs::create_dir_all(&dir).expect("cni bin dir");
        std::os::unix::fs::symlink(ocinet_bin(), dir.join("ocinet")).expect("link ocinet");
    }
    format!("{}:{REFERENCE_PLUGINS}", dir.display())
}

/// Execute plugin `kind` (found on CNI_PATH) with `conf` on stdin, in the
/// host namespace of `h`, with the whole environment libcni gives (every
/// variable set, empty when unused).
pub fn exec(h: &Host, kind: &str, call: &Call, conf: &Value) -> Reply {
    exec_with_env(h, kind, call, conf, &[])
}

pub fn exec_with_env(
    h: &Host,
    kind: &str,
    call: &Call,
    conf: &Value,
    env: &[(&str, &str)],
) -> Reply {
    exec_bytes(h, kind, call, conf.to_string().as_bytes(), env)
}

/// `exec` with `stdin` as given (not necessarily JSON).
pub fn exec_raw(h: &Host, kind: &str, call: &Call, stdin: &[u8]) -> Reply {
    exec_bytes(h, kind, call, stdin, &[])
}

fn exec_bytes(h: &Host, kind: &str, call: &Call, stdin: &[u8], env: &[(&str, &str)]) -> Reply {
    let path = plugin_path(h);
    let bin = path
        .split(':')
        .map(|d| std::path::Path::new(d).join(kind))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no plugin {kind} on {path}"));
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.name))
        .arg(&bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", &call.command)
        .env("CNI_CONTAINERID", &call.container_id)
        .env("CNI_NETNS", &call.netns)
        .env("CNI_IFNAME", &call.ifname)
        .env("CNI_ARGS", &call.args)
        .env("CNI_PATH", &path)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plugin");
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    let out = child.wait_with_output().expect("plugin output");
    Reply {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// A conflist, run as libcni runs it.
pub struct Chain {
    pub list: Value,
    /// What ADD returned last: the `prevResult` of DEL and CHECK.
    pub cached: Option<Value>,
}

impl Chain {
    pub fn new(list: Value) -> Chain {
        Chain { list, cached: None }
    }

    /// Plugin `i`'s request: its entry with the list's name and version,
    /// `runtimeConfig` from the capabilities it declares, `prevResult`.
    fn request(&self, i: usize, caps: &Value, prev: Option<&Value>) -> Value {
        let mut conf = self.list["plugins"][i].clone();
        conf["name"] = self.list["name"].clone();
        conf["cniVersion"] = self.list["cniVersion"].clone();
        let mut rc = serde_json::Map::new();
        if let Some(declared) = conf["capabilities"].as_object() {
            for (k, on) in declared {
                if on.as_bool() == Some(true) {
                    if let Some(v) = caps.get(k) {
                        rc.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        conf
    }

    fn kinds(&self) -> Vec<String> {
        self.list["plugins"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p["type"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// ADD through every plugin; the first failure stops it (and is
    /// returned).
    pub fn add(&mut self, h: &Host, call: &Call, caps: &Value) -> Reply {
        let mut prev: Option<Value> = None;
        let mut last = None;
        for (i, kind) in self.kinds().iter().enumerate() {
            let r = exec(
                h,
                kind,
                &call.command("ADD"),
                &self.request(i, caps, prev.as_ref()),
            );
            if r.code != 0 {
                return r;
            }
            prev = Some(r.json());
            last = Some(r);
        }
        self.cached = prev;
        last.unwrap_or(Reply {
            code: 0,
            stdout: String::new(),
            stderr: String::new(),
        })
    }

    /// DEL or CHECK through every plugin, last first, with the cached
    /// result as `prevResult` (DEL goes on past failures, as runtimes
    /// retry; the first failure is returned).
    pub fn reverse(&self, h: &Host, verb: &str, call: &Call, caps: &Value) -> Reply {
        let mut first_failure = None;
        for (i, kind) in self.kinds().iter().enumerate().rev() {
            let r = exec(
                h,
                kind,
                &call.command(verb),
                &self.request(i, caps, self.cached.as_ref()),
            );
            if r.code != 0 && first_failure.is_none() {
                first_failure = Some(r);
                if verb == "CHECK" {
                    break;
                }
            }
        }
        first_failure.unwrap_or(Reply {
            code: 0,
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

/// An ocinet plugin entry of a test host: its state and config
/// directories, and `extra` keys.
pub fn ocinet_entry(h: &Host, extra: Value) -> Value {
    let mut e = json!({
        "type": "ocinet",
        "stateDir": h.state_dir(),
        "configDir": h.config_dir(),
    });
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

/// A one-plugin network configuration (what a runtime sends ocinet).
pub fn single(h: &Host, version: &str, name: &str, extra: Value) -> Value {
    let mut c = ocinet_entry(h, extra);
    c["cniVersion"] = json!(version);
    c["name"] = json!(name);
    c
}

/// A pod's network namespace as a CNI runtime makes one (before ADD, and
/// removed after DEL): `/run/netns/<host>-<tag>`, deleted on drop with
/// what runs in it.
/// An inline network definition: `base` with the keys of `extra` over it.
pub fn inline(mut base: Value, extra: Value) -> Value {
    if let (Some(o), Some(x)) = (base.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    base
}

/// A dual-stack inline definition whose upstream is the outside
/// namespace's, with `extra`'s keys.
pub fn dual(v4: &str, v6: &str, extra: Value) -> Value {
    inline(
        json!({"subnet": [v4, v6], "dnsUpstreams": [crate::OUTSIDE_IP]}),
        extra,
    )
}

pub struct Pod {
    pub name: String,
    /// The container id a runtime would give it (the tag first, so that
    /// pods of one host differ in the 12 characters ocinet's pin names).
    pub id: String,
    procs: Vec<std::process::Child>,
}

impl Pod {
    pub fn new(h: &Host, tag: &str) -> Pod {
        let name = format!("{}-{tag}", h.name);
        let id = format!("{tag}{}", &h.name[3..]);
        crate::ok(crate::run_cmd(
            Command::new("ip").args(["netns", "add", &name]),
        ));
        crate::ok(crate::run_cmd(
            Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]),
        ));
        Pod {
            name,
            id,
            procs: Vec::new(),
        }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run `args` in the pod's namespace.
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        crate::run_cmd(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
        )
    }

    /// A web server in the pod answering `body` on port 80 (busybox
    /// httpd listens on both families), ended on drop.
    pub fn serve(&mut self, h: &Host, body: &str) {
        let www = h.state_dir().with_file_name(format!("www-{}", self.name));
        std::fs::create_dir_all(&www).expect("www");
        std::fs::write(www.join("index.html"), body).expect("index");
        self.spawn(&[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            www.to_str().unwrap_or_default(),
        ]);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    /// Start `args` in the pod's namespace, ended on drop.
    pub fn spawn(&mut self, args: &[&str]) {
        let c = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in pod");
        self.procs.push(c);
    }

    /// The namespace goes (as a runtime removes it after its container).
    pub fn remove(&mut self) {
        for mut p in self.procs.drain(..) {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = crate::run_cmd(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.remove();
        // Whatever a failed test left of ocinet's pin of it.
        crate::remove_pins(&self.id);
    }
}
