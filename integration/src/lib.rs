//! Test harness: every test gets a throwaway "host" network namespace, an
//! "outside" namespace joined to it by a veth when it needs one, and
//! containers run by real runc or crun with the ocinet hook. Dropping a
//! `Host` kills the containers it started and deletes its namespaces and
//! files, also when the test panicked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub mod cluster;
pub mod cni;
pub mod legacy;
pub mod prometheus;
pub mod rootfs;
pub mod upstream;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// 12 hex characters unique to this process and call: becomes a container
/// id prefix (so /run/netns/ocinet-<first 12> never collides) or a
/// namespace name.
pub fn unique_hex() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let v = (u64::from(std::process::id()) << 28) ^ (u64::from(t) << 8) ^ u64::from(n);
    format!("{:012x}", v & 0xffff_ffff_ffff)
}

/// The exporter binary, beside the hook.
pub fn exporter_bin() -> PathBuf {
    ocinet_bin().with_file_name("ocinet-exporter")
}

/// A process this test started; killed (by its pid) and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    /// SIGTERM it, wait, and return what it wrote to stderr (spawned with
    /// stderr piped). It must still be running when asked to stop.
    pub fn terminate(&mut self) -> String {
        use std::io::Read;
        assert!(
            matches!(self.0.try_wait(), Ok(None)),
            "it died: {:?}",
            self.0.try_wait()
        );
        let mut stderr = self.0.stderr.take().expect("stderr piped");
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        out
    }
}

/// The response of a test container's httpd ("hello from ID").
#[track_caller]
pub fn answers(o: std::process::Output, id: &str) {
    let t = text(&o);
    assert!(
        o.status.success() && t.contains(&format!("hello from {id}")),
        "expected {id} to answer: {t}"
    );
}

/// Nothing of container `id` is left (see `Host::leftovers`).
#[track_caller]
pub fn assert_clean(h: &Host, id: &str) {
    let left = h.leftovers(id);
    assert!(left.is_empty(), "{id} left behind: {left:?}");
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Its descendants first, found by pid while it still holds them: a
        // `timeout` or `ip netns exec` wrapper in front of the server does
        // not pass SIGKILL on, and its child would outlive the test.
        for pid in descendants(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every process below `pid` (children, theirs, ...), from the kernel's
/// per-task child lists.
fn descendants(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok())
            {
                if let Ok(k32) = i32::try_from(k) {
                    out.push(k32);
                }
                todo.push(k);
            }
        }
    }
    out
}

/// A stand-in container for tests that call the hook themselves: a process
/// in a network namespace of its own and a bundle whose config.json carries
/// the given annotations. Its pin is unmounted on drop, whatever the test
/// did (the host's own cleanup knows only the containers it started).
pub struct BareContainer {
    pub id: String,
    pub bundle: PathBuf,
    /// The OCI state for createRuntime.
    pub state: String,
    pub proc: Proc,
}

impl BareContainer {
    /// The OCI state for poststop.
    pub fn stopped_state(&self) -> String {
        self.state.replace("\"creating\"", "\"stopped\"")
    }

    /// The container's process ends (and with it the namespace, unless
    /// something pins it).
    pub fn kill(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
    }
}

impl Drop for BareContainer {
    fn drop(&mut self) {
        remove_pins(&self.id);
    }
}

/// podman's global flags for a test: its storage, run root and temporary
/// files under `dir` (nothing of the machine's own), crun with cgroupfs
/// (this machine's hybrid cgroups), no event log.
pub fn podman_store_args(dir: &Path) -> Vec<String> {
    let under = |d: &str| dir.join(d).display().to_string();
    [
        "--root".to_string(),
        under("root"),
        "--runroot".into(),
        under("runroot"),
        "--tmpdir".into(),
        under("tmp"),
        "--runtime".into(),
        "crun".into(),
        "--cgroup-manager".into(),
        "cgroupfs".into(),
        "--events-backend".into(),
        "none".into(),
    ]
    .into()
}

/// Unmount and remove the hook's `/run/netns` pins of container `id`
/// (named after its first 12 characters), whatever a test left.
pub(crate) fn remove_pins(id: &str) {
    for p in pins_of(id) {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
        let _ = std::fs::remove_file(&p);
    }
}

/// The hook's `/run/netns` pins of container `id`: `ocinet-<first 12
/// characters>`, with a hash after it where that name was taken.
fn pins_of(id: &str) -> Vec<PathBuf> {
    let pin = format!("ocinet-{}", &id[..12.min(id.len())]);
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with(&pin))
        .map(|f| f.path())
        .collect()
}

/// Whether process `pid` runs: it exists and is not a zombie (nothing
/// reaps an orphan on this machine, so an ended daemon stays one).
pub fn running(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(!s[s.rfind(')')? + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// The ocinet binary: $OCINET_BIN, or the one cargo built beside this test.
pub fn ocinet_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OCINET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/ocinet
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ocinet"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --bins` first (or set OCINET_BIN)",
        bin.display()
    );
    bin
}

pub fn run_cmd(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    out
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The command failed without a panic, and its output names every one of
/// `words` (bad input must be refused naming the field and the value);
/// its output.
#[track_caller]
pub fn refused(o: Output, words: &[&str]) -> String {
    let t = text(&o);
    assert!(
        !o.status.success(),
        "expected a refusal naming {words:?}, got success: {t}"
    );
    for w in words {
        assert!(t.contains(w), "the refusal does not name {w:?}: {t}");
    }
    assert!(!t.contains("panicked"), "{t}");
    t
}

#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): {}",
        o.status,
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Crun,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// The hook stage each runtime is tested with, so both are covered.
    pub fn stage(self) -> &'static str {
        match self {
            Runtime::Runc => "createRuntime",
            Runtime::Crun => "prestart",
        }
    }

    /// A runtime command line, run in the host namespace with the host's
    /// own runtime root (`--root`: each simulated host keeps its
    /// containers' state apart, as separate machines do, and no test sees
    /// another's containers in /run/runc or /run/crun). crun refuses this
    /// machine's hybrid cgroups unless the v2 mount is out of sight: hide
    /// it in a private mount namespace (never in the root one).
    fn command(self, host: &Host, args: &[&str]) -> Command {
        let root = host.dir.join(format!("{}-root", self.name()));
        let root = root.to_string_lossy().into_owned();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", host.name));
        match self {
            Runtime::Runc => {
                c.args(["runc", "--root", &root]).args(args);
            }
            Runtime::Crun => {
                c.args([
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"",
                    "crun",
                    "--root",
                    &root,
                ])
                .args(args);
            }
        }
        c
    }
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub annotations: BTreeMap<String, String>,
    /// Extra hook args (e.g. --network web).
    pub hook_args: Vec<String>,
    /// A network namespace path for config.json (container:<id> mode).
    pub netns_path: Option<String>,
    /// No network namespace entry at all (the host's namespace).
    pub host_netns: bool,
    /// The container's command (default: busybox httpd serving its id).
    pub args: Option<Vec<String>>,
    /// Applied to config.json last, just before it is written.
    pub edit: Option<ConfigEdit>,
}

/// A change to the config.json the harness wrote (a field removed, renamed,
/// or the whole document replaced), for configs the harness does not model.
#[derive(Clone)]
pub struct ConfigEdit(pub std::sync::Arc<dyn Fn(&mut Value) + Send + Sync>);

impl std::fmt::Debug for ConfigEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigEdit(..)")
    }
}

impl Spec {
    /// A container on network `net` named `name`.
    pub fn on(net: &str, name: &str) -> Self {
        Spec::default()
            .ann("io.ocinet.network", net)
            .ann("io.ocinet.name", name)
    }

    pub fn ann(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
    pub fn hook_arg(mut self, a: &str) -> Self {
        self.hook_args.push(a.into());
        self
    }
    pub fn edit(mut self, f: impl Fn(&mut Value) + Send + Sync + 'static) -> Self {
        self.edit = Some(ConfigEdit(std::sync::Arc::new(f)));
        self
    }
}

pub struct Container {
    pub id: String,
    pub runtime: Runtime,
    pub bundle: PathBuf,
    child: Option<Child>,
    pub exit: Option<std::process::ExitStatus>,
    /// Started by a runtime that returned at once (crun --detach).
    detached: bool,
}

impl Container {
    pub fn output(&self) -> String {
        let o = std::fs::read_to_string(self.bundle.join("stdout")).unwrap_or_default();
        let e = std::fs::read_to_string(self.bundle.join("stderr")).unwrap_or_default();
        format!("{o}{e}")
    }
}

/// A throwaway host: its own network namespace, state and config dirs.
pub struct Host {
    pub name: String,
    pub dir: PathBuf,
    outside: Mutex<Option<String>>,
    containers: Mutex<Vec<(String, Runtime, Option<u32>)>>,
    /// Every host interface `ps` has shown for each container id, so the
    /// leftover check finds them once the record is gone.
    seen_interfaces: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The process of each `BareContainer`, whose namespace holds the
    /// container end of any veth ocinet made for it.
    bare_pids: Mutex<BTreeMap<String, u32>>,
}

/// An HTTP server (python3 -c ECHO_CLIENT_PY ADDRESS PORT) answering
/// with the address the request came from.
pub const ECHO_CLIENT_PY: &str = r#"import http.server as s, sys
class H(s.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("from " + self.client_address[0] + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
s.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#;

/// `ECHO_CLIENT_PY` on an IPv6 socket (python3 -c ECHO_CLIENT6_PY ADDRESS
/// PORT), for servers of the IPv6 tests.
pub const ECHO_CLIENT6_PY: &str = r#"import http.server as s, socket, sys
class H(s.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("from " + self.client_address[0] + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
class S(s.HTTPServer):
    address_family = socket.AF_INET6
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#;

/// `timeout` rather than `wget -T`, which segfaults in Debian's busybox.
pub const WGET: &[&str] = &["timeout", "3", "busybox", "wget", "-q", "-O", "-"];

/// The alias ocinet's teardown marks a retired host veth with
/// (docs/architecture.md, "Teardown waits on no veth deletion"), and the name prefix one is moved aside to when a new
/// container needs its name.
pub const RETIRED_ALIAS: &str = "ocinet: retired";
pub const RETIRED_PREFIX: &str = "ocx-";

pub const HOST_LINK_IP: &str = "198.51.100.1";
pub const OUTSIDE_IP: &str = "198.51.100.2";
/// The same link's IPv6 addresses (documentation prefix, RFC 3849).
pub const HOST_LINK_IP6: &str = "2001:db8:100::1";
pub const OUTSIDE_IP6: &str = "2001:db8:100::2";
/// Where tests run the exporter (inside each host's own namespace).
pub const EXPORTER_ADDR: &str = "127.0.0.1:19870";

impl Host {
    pub fn new() -> Host {
        let name = format!("oit{}", &unique_hex()[4..]);
        let dir = std::env::temp_dir().join(format!("ocinet-it-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        ok(run_cmd(Command::new("ip").args(["netns", "add", &name])));
        let h = Host {
            name,
            dir,
            outside: Mutex::new(None),
            containers: Mutex::new(Vec::new()),
            seen_interfaces: Mutex::new(BTreeMap::new()),
            bare_pids: Mutex::new(BTreeMap::new()),
        };
        ok(h.exec(&["ip", "link", "set", "lo", "up"]));
        h
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// What ocinet logged on this host so far (its log file; empty if none).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("ocinet.log")).unwrap_or_default()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Run a command in the host namespace (network namespace only, so
    /// the cgroup mounts stay visible to runtimes).
    pub fn exec(&self, args: &[&str]) -> Output {
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.name))
                .args(args),
        )
    }

    /// `ocinet ARGS --state-dir .. --config-dir ..` in the host namespace.
    pub fn ocinet(&self, args: &[&str]) -> Output {
        self.ocinet_with_env(args, &[])
    }

    pub fn ocinet_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let bin = ocinet_bin();
        let (s, c) = (self.state_dir(), self.config_dir());
        let mut all: Vec<&str> = vec![bin.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--state-dir",
            s.to_str().unwrap_or_default(),
            "--config-dir",
            c.to_str().unwrap_or_default(),
        ]);
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.name))
                .args(&all)
                .envs(env.iter().copied()),
        )
    }

    /// The hook directly, with `stdin` as the OCI state.
    pub fn hook(&self, stage: &str, stdin: &str, extra: &[&str]) -> Output {
        self.hook_with_env(stage, stdin, extra, &[])
    }

    pub fn hook_with_env(
        &self,
        stage: &str,
        stdin: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        use std::io::Write;
        let bin = ocinet_bin();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg(&bin)
            .args(["hook", stage, "--state-dir"])
            .arg(self.state_dir())
            .arg("--config-dir")
            .arg(self.config_dir())
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn hook");
        let mut si = child.stdin.take().expect("stdin");
        let _ = si.write_all(stdin.as_bytes());
        drop(si);
        child.wait_with_output().expect("hook output")
    }

    /// `ocinet ARGS --json`, parsed.
    #[track_caller]
    fn ocinet_json(&self, args: &[&str]) -> Value {
        match self.try_ocinet_json(args) {
            Ok(v) => v,
            Err(e) => panic!("ocinet {args:?}: {e}"),
        }
    }

    fn try_ocinet_json(&self, args: &[&str]) -> Result<Value, String> {
        let o = self.ocinet(args);
        if !o.status.success() {
            return Err(text(&o));
        }
        serde_json::from_slice(&o.stdout).map_err(|e| format!("{e}: {}", text(&o)))
    }

    /// A view of the store for the leftover check, or nothing where ocinet
    /// refuses the state directory itself (the hostile-state tests plant a
    /// symlink or an open directory there on purpose: ocinet reads nothing
    /// through it, so neither can a check that asks ocinet).
    fn store_view(&self, args: &[&str]) -> Value {
        match self.try_ocinet_json(args) {
            Ok(v) => v,
            Err(e) if e.contains("invalid state") => {
                eprintln!("leftover check: ocinet {args:?} refused the state: {e}");
                Value::Null
            }
            Err(e) => panic!("ocinet {args:?}: {e}"),
        }
    }

    /// The leases of `network` as (address, holder), by `ocinet leases`:
    /// every lease of its pool, those no record accounts for included.
    pub fn leases(&self, network: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .all_leases()
            .into_iter()
            .filter(|(net, _, _)| net == network)
            .map(|(_, ip, holder)| (ip, holder))
            .collect();
        out.sort();
        out
    }

    /// Every lease of every pool as (network, address, holder), networks
    /// whose definition is gone or broken included.
    pub fn all_leases(&self) -> Vec<(String, String, String)> {
        let field = |l: &Value, k: &str| l[k].as_str().unwrap_or_default().to_string();
        self.store_view(&["leases", "--json"])
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                (
                    field(l, "Network"),
                    field(l, "IPAddress"),
                    field(l, "Container"),
                )
            })
            .collect()
    }

    /// Every claimed host port and its holder's container id, by `ocinet
    /// ports` (orphaned claims included), one per port: `<proto>-<port>`
    /// for every address, `<proto>-<port>.d/<address>` for one; a range
    /// claimed whole is expanded to its ports.
    pub fn port_claims(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in self
            .store_view(&["ports", "--json"])
            .as_array()
            .into_iter()
            .flatten()
        {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            let (proto, ip, holder, ports) =
                (s("Protocol"), s("HostIp"), s("Container"), s("HostPort"));
            let (first, last) = ports.split_once('-').unwrap_or((&ports, &ports));
            let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) else {
                panic!("ports: bad HostPort in {c}");
            };
            for port in first..=last {
                out.push(match ip.as_str() {
                    "0.0.0.0" => (format!("{proto}-{port}"), holder.clone()),
                    a => (format!("{proto}-{port}.d/{a}"), holder.clone()),
                });
            }
        }
        out.sort();
        out
    }

    pub fn ps(&self) -> Vec<Value> {
        let rows = self
            .store_view(&["ps", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut seen = self
            .seen_interfaces
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A `container:` sharer shows its target's interfaces, which are
        // not its own to leave behind.
        let own = |r: &&Value| {
            !r["network"]
                .as_str()
                .is_some_and(|n| n.starts_with("container:"))
        };
        for r in rows.iter().filter(own) {
            let names = r["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .chain([r])
                .filter_map(|a| a["host_interface"].as_str());
            let id = r["id"].as_str().unwrap_or_default().to_string();
            seen.entry(id)
                .or_default()
                .extend(names.map(str::to_string));
        }
        rows
    }

    /// The host end of container `id`'s first veth, as `ps` shows it.
    #[track_caller]
    pub fn host_veth(&self, id: &str) -> String {
        self.endpoint(id)
            .and_then(|e| e["host_interface"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no host interface for {id}: {:?}", self.ps()))
    }

    pub fn endpoint(&self, id: &str) -> Option<Value> {
        self.ps().into_iter().find(|e| e["id"] == id)
    }

    /// An "outside" namespace joined to this host by a veth:
    /// host 198.51.100.1/24 <-> outside 198.51.100.2/24, and
    /// host 2001:db8:100::1/64 <-> outside 2001:db8:100::2/64 (no
    /// duplicate address detection, so both are usable at once).
    pub fn outside(&self) -> String {
        let mut o = self.outside.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = o.as_ref() {
            return n.clone();
        }
        let name = format!("{}-out", self.name);
        ok(run_cmd(Command::new("ip").args(["netns", "add", &name])));
        *o = Some(name.clone());
        let suffix = &self.name[3..];
        let (hv, ov) = (format!("oh{suffix}"), format!("oo{suffix}"));
        // The host end gets an index its peer (index 2, the first link of
        // a fresh namespace) cannot have: the kernel's linkwatch treats a
        // veth whose peer's index equals its own as a non-urgent event and
        // brings its carrier up only ~1 s later, dropping what is sent
        // meanwhile (a resolver's first forward over IPv6 timed out so).
        ok(self.exec(&[
            "ip", "link", "add", &hv, "index", "4095", "type", "veth", "peer", "name", &ov,
            "netns", &name,
        ]));
        ok(self.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_LINK_IP}/24"),
            "dev",
            &hv,
        ]));
        ok(self.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_LINK_IP6}/64"),
            "dev",
            &hv,
            "nodad",
        ]));
        ok(self.exec(&["ip", "link", "set", &hv, "up"]));
        let in_out = |args: &[&str]| ok(run_cmd(Command::new("ip").args(["-n", &name]).args(args)));
        in_out(&["link", "set", "lo", "up"]);
        in_out(&["addr", "add", &format!("{OUTSIDE_IP}/24"), "dev", &ov]);
        in_out(&[
            "addr",
            "add",
            &format!("{OUTSIDE_IP6}/64"),
            "dev",
            &ov,
            "nodad",
        ]);
        in_out(&["link", "set", &ov, "up"]);
        name
    }

    /// The host's end of the veth to the outside namespace (made on first
    /// use), e.g. as a macvlan parent on the outside's segment.
    pub fn outside_link(&self) -> String {
        self.outside();
        format!("oh{}", &self.name[3..])
    }

    /// A macvlan network `name` on the outside's segment: the parent is
    /// `outside_link()`, the gateway the outside's address, containers get
    /// addresses from the upper half of 198.51.100.0/24. Returns the parent.
    pub fn macvlan_network(&self, name: &str) -> String {
        let parent = self.outside_link();
        ok(self.ocinet(&[
            "network",
            "create",
            name,
            "--driver",
            "macvlan",
            "--parent",
            &parent,
            "--subnet",
            "198.51.100.0/24",
            "--gateway",
            OUTSIDE_IP,
            "--ip-range",
            "198.51.100.128/25",
            // Name resolution is on (mode bridge): any forward goes to the
            // outside namespace, never to the machine's resolvers.
            "--dns-upstream",
            OUTSIDE_IP,
        ]));
        parent
    }

    /// Run shell `script` (its arguments `args`, as `$1`...) in the host
    /// namespace and a private mount namespace of its own: mounts it makes
    /// go with it.
    pub fn exec_private_mounts(&self, script: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// Run `args` in the outside namespace.
    pub fn exec_outside(&self, args: &[&str]) -> Output {
        let name = self.outside();
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{name}"))
                .args(args),
        )
    }

    /// Write a bundle and start the container in the foreground runtime
    /// process; returns once the hook finished (endpoint ready) or the
    /// runtime exited (setup failed).
    /// `start`, asserting the container runs (its hooks succeeded).
    pub fn started(&self, rt: Runtime, tag: &str, spec: &Spec) -> Container {
        let c = self.start(rt, tag, spec);
        assert!(c.exit.is_none(), "{tag}: {}", c.output());
        c
    }

    pub fn start(&self, rt: Runtime, tag: &str, spec: &Spec) -> Container {
        let id = format!("{}-{tag}", unique_hex());
        self.start_id(rt, &id, spec)
    }

    pub fn start_id(&self, rt: Runtime, id: &str, spec: &Spec) -> Container {
        // crun in the foreground is a child subreaper and waits for every
        // descendant, the resolver a hook starts included: run it
        // detached, as podman and containerd do (create, then start).
        let mut c = self.spawn_runtime(rt, id, spec, rt == Runtime::Crun);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(ch) = c.child.as_mut() {
                if let Ok(Some(st)) = ch.try_wait() {
                    c.child = None;
                    // Reaped: its pid is no longer ours to kill.
                    let mut list = self.containers.lock().unwrap_or_else(|p| p.into_inner());
                    for e in list.iter_mut().filter(|e| e.0 == id) {
                        e.2 = None;
                    }
                    drop(list);
                    if !(rt == Runtime::Crun && st.success()) {
                        c.exit = Some(st);
                        break;
                    }
                    // Detached and started: the container runs on.
                    c.detached = true;
                }
            }
            // `phase` is the record's (a sharer whose target is gone shows
            // `detached` there; its record is finished all the same).
            if self
                .endpoint(id)
                .is_some_and(|e| e["phase"] == "ready" || e["phase"] == "detached")
            {
                // The runtime starts the process right after the hook.
                std::thread::sleep(Duration::from_millis(150));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not come up: {}",
                c.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    fn write_bundle(&self, rt: Runtime, id: &str, spec: &Spec) -> PathBuf {
        let bundle = self.dir.join("bundles").join(id);
        let www = bundle.join("www");
        std::fs::create_dir_all(&www).expect("bundle dir");
        let out = bundle.join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        std::fs::write(www.join("index.html"), format!("hello from {id}\n")).expect("index");
        let bin = ocinet_bin();
        let mut hook_args: Vec<String> = vec![
            "ocinet".into(),
            "hook".into(),
            rt.stage().into(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
            "--config-dir".into(),
            self.config_dir().display().to_string(),
        ];
        hook_args.extend(spec.hook_args.iter().cloned());
        let mut stop_args = hook_args.clone();
        stop_args[2] = "poststop".into();
        stop_args.truncate(7);
        let hook = |args: Vec<String>| json!({"path": bin, "args": args});
        let mut namespaces = vec![
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        if !spec.host_netns {
            let mut ns = json!({"type": "network"});
            if let Some(p) = &spec.netns_path {
                ns["path"] = json!(p);
            }
            namespaces.push(ns);
        }
        let args = spec.args.clone().unwrap_or_else(|| {
            vec![
                "httpd".into(),
                "-f".into(),
                "-p".into(),
                "80".into(),
                "-h".into(),
                "/www".into(),
            ]
        });
        let mut hooks = json!({"poststop": [hook(stop_args)]});
        hooks[rt.stage()] = json!([hook(hook_args)]);
        let mut config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
                "env": ["PATH=/bin"], "cwd": "/",
                "capabilities": {
                    "bounding": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
                    "effective": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
                    "permitted": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]
                },
                "noNewPrivileges": true
            },
            "root": {"path": rootfs::path(), "readonly": true},
            "hostname": "c",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=16m"]},
                {"destination": "/www", "type": "bind", "source": www, "options": ["rbind", "ro"]},
                {"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]}
            ],
            "annotations": spec.annotations,
            "hooks": hooks,
            "linux": {
                "namespaces": namespaces,
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"]
            }
        });
        if let Some(edit) = &spec.edit {
            (edit.0)(&mut config);
        }
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap_or_default(),
        )
        .expect("config.json");
        bundle
    }

    /// Run a container whose process ends by itself with its runtime in
    /// the foreground (`run` without `--detach`, also for crun, a child
    /// subreaper then), as a person at a shell does; returns at once.
    pub fn run_in_foreground(&self, rt: Runtime, tag: &str, spec: &Spec) -> Container {
        let id = format!("{}-{tag}", unique_hex());
        self.spawn_runtime(rt, &id, spec, false)
    }

    /// Write the bundle of `id` and spawn `RUNTIME run [--detach]` on it,
    /// its output to the bundle's stdout and stderr files; the runtime
    /// process is killed by its pid at the end if it still runs.
    fn spawn_runtime(&self, rt: Runtime, id: &str, spec: &Spec, detach: bool) -> Container {
        let bundle = self.write_bundle(rt, id, spec);
        let stdout = std::fs::File::create(bundle.join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(bundle.join("stderr")).expect("stderr file");
        let mut args = vec!["run"];
        if detach {
            args.push("--detach");
        }
        args.extend(["--bundle", bundle.to_str().unwrap_or_default(), id]);
        let mut cmd = rt.command(self, &args);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = cmd.spawn().expect("spawn runtime");
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id.to_string(), rt, Some(child.id())));
        Container {
            id: id.to_string(),
            runtime: rt,
            bundle,
            child: Some(child),
            exit: None,
            detached: false,
        }
    }

    /// Wait up to `limit` for the foreground runtime of `c` to exit; its
    /// status, or `None` while it still runs.
    pub fn wait_runtime(&self, c: &mut Container, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let Some(child) = c.child.as_mut() else {
            return c.exit;
        };
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                c.child = None;
                c.exit = Some(st);
                // Reaped: its pid is no longer ours to kill.
                let mut list = self.containers.lock().unwrap_or_else(|p| p.into_inner());
                for e in list.iter_mut().filter(|e| e.0 == c.id) {
                    e.2 = None;
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop a container (SIGKILL through its runtime) and wait for the
    /// runtime to finish, poststop hooks included.
    pub fn stop(&self, c: &mut Container) {
        if c.detached {
            // Killed, then deleted once stopped: the delete runs poststop.
            let _ = run_cmd(&mut c.runtime.command(self, &["kill", &c.id, "KILL"]));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let st = run_cmd(&mut c.runtime.command(self, &["state", &c.id]));
                let stopped = !st.status.success() || text(&st).contains("\"stopped\"");
                if stopped {
                    break;
                }
                assert!(Instant::now() < deadline, "{} did not stop", c.id);
                std::thread::sleep(Duration::from_millis(20));
            }
            c.detached = false;
        }
        if let Some(mut child) = c.child.take() {
            let _ = run_cmd(&mut c.runtime.command(self, &["kill", &c.id, "KILL"]));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    c.exit = Some(st);
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("runtime of {} did not exit after kill", c.id);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = run_cmd(&mut c.runtime.command(self, &["delete", "--force", &c.id]));
        let mut list = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|(id, _, _)| id != &c.id);
    }

    /// The container's network namespace path. Its `ip netns` entry is not
    /// used: under crun's private-mount-namespace workaround the pin lives in
    /// that mount namespace only.
    pub fn netns_of(&self, id: &str) -> String {
        let ep = self
            .endpoint(id)
            .unwrap_or_else(|| panic!("no endpoint for {id}"));
        match ep["pid"].as_i64() {
            Some(pid) => format!("/proc/{pid}/ns/net"),
            None => ep["netns"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{id} has no namespace")),
        }
    }

    /// The pid of the resolver serving this host's state, while it runs
    /// (`ocinet dns status`: a live process with the start time its pid
    /// file names).
    pub fn resolver_pid(&self) -> Option<i64> {
        self.dns_status()["Pid"].as_i64()
    }

    /// `ocinet dns status --json`.
    pub fn dns_status(&self) -> Value {
        self.ocinet_json(&["dns", "status", "--json"])
    }

    /// Running resolvers (hook-started or persistent) of this host's state
    /// directory, whatever their pid file says: by their command line.
    pub fn resolvers(&self) -> Vec<i32> {
        self.daemons(b"ocinet-dns", b"dns-server")
    }

    /// `ocinet proxy status --json`.
    pub fn proxy_status(&self) -> Value {
        self.ocinet_json(&["proxy", "status", "--json"])
    }

    /// The pid of the port proxy serving this host's state, while it runs
    /// (its answer over the control socket).
    pub fn proxy_pid(&self) -> Option<i64> {
        self.proxy_status()["Pid"].as_i64()
    }

    /// Running port proxies of this host's state directory, by their
    /// command line.
    pub fn proxies(&self) -> Vec<i32> {
        self.daemons(b"ocinet-proxy", b"port-proxy")
    }

    /// Running overlay agents of this host's state directory.
    pub fn agents(&self) -> Vec<i32> {
        self.daemons(b"ocinet-agent", b"agent")
    }

    /// Running processes of `binary` (or `ocinet subcommand`) for this
    /// host's state directory.
    fn daemons(&self, binary: &[u8], subcommand: &[u8]) -> Vec<i32> {
        let state = self.state_dir();
        let want = [
            b"--state-dir".as_slice(),
            state.as_os_str().as_encoded_bytes(),
        ];
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
                let daemon =
                    args.first().is_some_and(|a| a.ends_with(binary)) || args.contains(&subcommand);
                daemon && running(i64::from(*pid)) && args.windows(2).any(|w| w == want)
            })
            .collect()
    }

    /// Wait up to 5 s for the resolver to end by itself (after the last
    /// container of a DNS-enabled network); whether it did.
    pub fn resolver_ended(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.resolver_pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.resolver_pid().is_none()
    }

    /// Run `args` with the container's busybox, inside the container: its
    /// network and mount namespaces and root, so that its own
    /// /etc/resolv.conf is the one used.
    pub fn in_container_fs(&self, id: &str, args: &[&str]) -> Output {
        let pid = self
            .endpoint(id)
            .and_then(|e| e["pid"].as_i64())
            .unwrap_or_else(|| panic!("no pid for {id}"));
        run_cmd(
            Command::new("nsenter")
                .args([
                    "--target",
                    &pid.to_string(),
                    "--net",
                    "--mount",
                    "--root",
                    "--wd",
                ])
                .arg("/bin/busybox")
                .args(args),
        )
    }

    /// Run `args` in the container's network namespace, with the host's
    /// busybox (the network is what is under test, not the image).
    pub fn in_container(&self, id: &str, args: &[&str]) -> Output {
        let ns = self.netns_of(id);
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .arg("busybox")
                .args(args),
        )
    }

    /// HTTP GET with busybox wget from the container's namespace, given up
    /// after 3 s (Debian's static busybox 1.35 segfaults on `wget -T`).
    pub fn wget_from(&self, id: &str, url: &str) -> Output {
        let ns = self.netns_of(id);
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .args(WGET)
                .arg(url),
        )
    }

    /// Interfaces of the host namespace of a given kind (veth, bridge),
    /// once the veths a finished teardown retired are gone: a teardown
    /// retires its host veths (down, out of the bridge, marked with the
    /// alias `ocinet: retired`) and leaves their deletion to the kernel
    /// (with the container's namespace) or a detached reaper, so "nothing
    /// left" means after that (waited for up to 10 s; what is left then
    /// is listed, and fails the test that looks).
    pub fn links(&self, kind: &str) -> Vec<String> {
        self.reaped();
        self.links_now(kind)
    }

    /// The host's links of `kind` as they are now, retired ones included.
    pub fn links_now(&self, kind: &str) -> Vec<String> {
        let out = ok(self.exec(&["ip", "-o", "link", "show", "type", kind]));
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// The host's retired veths now (the mark ocinet's teardown leaves, or
    /// the `ocx-` name a retired veth is moved aside to), each with
    /// whether it is down and out of any bridge.
    pub fn retired_links(&self) -> Vec<(String, bool)> {
        self.veths_now()
            .into_iter()
            .filter_map(|(name, retired, out)| retired.then_some((name, out)))
            .collect()
    }

    /// Every veth of the host in one look: (name, retired, down and out of
    /// any bridge). One look, because a retired veth keeps its name until
    /// the kernel deletes it, at a moment of its own.
    fn veths_now(&self) -> Vec<(String, bool, bool)> {
        let links: Value =
            serde_json::from_str(&ok(self.exec(&["ip", "-j", "link", "show", "type", "veth"])))
                .unwrap_or(Value::Null);
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let name = l["ifname"].as_str()?;
                let up = l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "UP"));
                let retired = l["ifalias"] == RETIRED_ALIAS || name.starts_with(RETIRED_PREFIX);
                Some((name.to_string(), retired, !up && l["master"].is_null()))
            })
            .collect()
    }

    /// Wait (up to 10 s) until no retired veth is left in the host
    /// namespace; whether none is.
    pub fn reaped(&self) -> bool {
        for _ in 0..200 {
            if self.retired_links().is_empty() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// podman with crun in the host namespace, with this test's own storage
    /// and hooks.d (installed by `ocinet install-podman-hook`). The
    /// workarounds of ENVIRONMENT.md apply: crun needs the cgroup v2 mount
    /// out of sight (a private mount namespace) and rlimits cannot be raised.
    pub fn podman(&self, args: &[&str]) -> Output {
        self.podman_in(args, None)
    }

    /// `podman` with its CNI backend: a containers.conf of this test's
    /// own naming `conflist_dir` and `cni::plugin_path`, and libcni's
    /// cache (always /var/lib/cni) on a tmpfs of the private mount
    /// namespace.
    pub fn podman_cni(&self, conflist_dir: &Path, args: &[&str]) -> Output {
        let conf = self.dir.join("containers-cni.conf");
        if !conf.exists() {
            let dirs: Vec<String> = cni::plugin_path(self)
                .split(':')
                .map(|d| format!("{d:?}"))
                .collect();
            std::fs::write(
                &conf,
                format!(
                    "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = {:?}\ncni_plugin_dirs = [{}]\n",
                    conflist_dir.display().to_string(),
                    dirs.join(", ")
                ),
            )
            .expect("containers.conf");
        }
        self.podman_in(args, Some(&conf))
    }

    fn podman_in(&self, args: &[&str], containers_conf: Option<&Path>) -> Output {
        // podman 4.3 opens its lock segment (/dev/shm/libpod_lock, one name
        // whatever --root says) and creates it when missing: the first two
        // podman calls on a fresh machine, from tests running in parallel,
        // race, and the loser fails with "failed to create 2048 locks in
        // /libpod_lock: file exists". Until the segment exists, one podman
        // at a time.
        static FIRST_LOCKS: Mutex<()> = Mutex::new(());
        let _first = (!Path::new("/dev/shm/libpod_lock").exists())
            .then(|| FIRST_LOCKS.lock().unwrap_or_else(|p| p.into_inner()));
        let hooks = self.dir.join("hooks.d");
        if !hooks.join("ocinet-prestart.json").exists() {
            let h = hooks.display().to_string();
            ok(self.ocinet(&["install-podman-hook", "--hooks-dir", &h]));
        }
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .args(match containers_conf {
                // podman makes the pod's namespace entry in /run/netns
                // itself, and a later call (stop, rm) must find it: that
                // mount (shared) propagates to the host, and nothing else
                // does (the root and the cgroup mounts made private first).
                Some(_) => [
                    "unshare",
                    "-m",
                    "--propagation",
                    "unchanged",
                    "sh",
                    "-c",
                    "mount --make-private / && mount --make-rprivate /sys/fs/cgroup || exit 1; \
                     umount /sys/fs/cgroup/unified 2>/dev/null; \
                     mount -t tmpfs tmpfs /var/lib || exit 1; exec podman \"$@\"",
                    "podman",
                ],
                None => [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "umount /sys/fs/cgroup/unified 2>/dev/null; exec podman \"$@\"",
                    "podman",
                ],
            })
            .args(podman_store_args(&self.dir.join("podman")))
            .arg("--hooks-dir")
            .arg(hooks)
            .args(args);
        if let Some(conf) = containers_conf {
            c.env("CONTAINERS_CONF", conf);
        }
        run_cmd(&mut c)
    }

    /// A `BareContainer` in this host, its id made unique to this run from
    /// `tag`.
    pub fn bare_container(&self, tag: &str, annotations: Value) -> BareContainer {
        self.bare_container_id(&format!("{}-{tag}", unique_hex()), annotations)
    }

    /// `bare_container` under a given id (a container set up again under
    /// the id of one torn down).
    pub fn bare_container_id(&self, id: &str, annotations: Value) -> BareContainer {
        let id = id.to_string();
        // A mount namespace of its own too, as a runtime's container has:
        // the hook mounts the resolv.conf of a DNS-enabled network there
        // (the bundle's rootfs has the /etc it needs), and it goes with the
        // process.
        let proc = self.spawn(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "-n",
            "sleep",
            "600",
        ]);
        let pid = proc.0.id();
        // unshare must have made the namespace and become sleep before the
        // hook looks.
        let host_ns = std::fs::metadata(format!("/run/netns/{}", self.name))
            .map(|m| format!("net:[{}]", std::os::unix::fs::MetadataExt::ino(&m)))
            .unwrap_or_default();
        for _ in 0..200 {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !ns.as_os_str().is_empty()
                && ns.as_os_str() != host_ns.as_str()
                && comm.trim() == "sleep"
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let bundle = self.dir.join("bundles").join(&id);
        std::fs::create_dir_all(bundle.join("rootfs/etc")).expect("bundle");
        let config = serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "annotations": annotations,
            "linux": {"namespaces": [{"type": "network"}]}
        });
        std::fs::write(bundle.join("config.json"), config.to_string()).expect("config");
        let state = format!(
            r#"{{"ociVersion":"1.0","id":"{id}","status":"creating","pid":{pid},"bundle":"{}"}}"#,
            bundle.display()
        );
        self.bare_pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), pid);
        BareContainer {
            id,
            bundle,
            state,
            proc,
        }
    }

    /// Move the calling thread into this host's network namespace, for
    /// sockets a test opens itself (load and abuse clients). Call it on a
    /// thread the test spawned: the namespace sticks to the thread, and
    /// sockets to the namespace they were made in.
    pub fn enter_on_this_thread(&self) {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("host netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("setns into the host namespace");
    }

    /// Start the exporter in this host on `EXPORTER_EXPORTER_ADDR`, with this host's
    /// state and config directories, and wait until it answers.
    pub fn start_exporter(&self, extra: &[&str]) -> Proc {
        let bin = exporter_bin();
        let (s, c) = (self.state_dir(), self.config_dir());
        let mut args = vec![
            bin.to_str().unwrap_or(""),
            "--web.listen-address",
            EXPORTER_ADDR,
            "--state-dir",
            s.to_str().unwrap_or(""),
            "--config-dir",
            c.to_str().unwrap_or(""),
        ];
        args.extend_from_slice(extra);
        let p = self.spawn(&args);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let o = self.exec(&[
                "curl",
                "-sk",
                "-o",
                "/dev/null",
                &format!("http://{EXPORTER_ADDR}/"),
            ]);
            let o2 = self.exec(&[
                "curl",
                "-sk",
                "-o",
                "/dev/null",
                &format!("https://{EXPORTER_ADDR}/"),
            ]);
            if o.status.success() || o2.status.success() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("exporter did not start");
    }

    /// Start a long-running process in the host namespace.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        Proc(child)
    }

    /// Start a long-running process in the outside namespace.
    pub fn spawn_outside(&self, args: &[&str]) -> Proc {
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.outside()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn outside {args:?}: {e}"));
        Proc(child)
    }

    /// HTTP GET from the host namespace.
    pub fn wget(&self, url: &str) -> Output {
        self.exec(&[WGET, &[url]].concat())
    }

    /// HTTP GET from the host namespace, retried for up to 5 s while it
    /// fails: a container's server may not be listening yet when its
    /// runtime has returned (the last answer is returned either way).
    pub fn wget_eventually(&self, url: &str) -> Output {
        let mut o = self.wget(url);
        for _ in 0..50 {
            if o.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            o = self.wget(url);
        }
        o
    }

    /// HTTP GET from the outside namespace.
    pub fn wget_outside(&self, url: &str) -> Output {
        self.exec_outside(&[WGET, &[url]].concat())
    }

    /// Elements of every set in ocinet's nftables tables (`inet ocinet`
    /// and the anti-spoofing `bridge ocinet`).
    pub fn nft_elements(&self) -> Vec<Value> {
        let o = self.exec(&["nft", "-j", "list", "ruleset"]);
        if !o.status.success() {
            return Vec::new();
        }
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("set").or_else(|| o.get("map")))
            .filter(|s| s["table"] == "ocinet")
            .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The host veths that are or were `id`'s: those `ps` showed for it
    /// (now, or at any call of this harness; a `container:` sharer's are
    /// its target's), and the host ends of veths in namespaces that are
    /// `id`'s (a bare container's process, a pin left under /run/netns):
    /// the veth of a setup killed before the harness saw its record.
    /// ocinet names a host interface only in a record, and asking for the
    /// name of a container without one has no answer; the peer does.
    fn veths_of(&self, id: &str) -> BTreeSet<String> {
        self.ps();
        let mut mine = self
            .seen_interfaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .unwrap_or_default();
        let mut namespaces = Vec::new();
        if let Some(pid) = self
            .bare_pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            namespaces.push(format!("/proc/{pid}/ns/net"));
        }
        namespaces.extend(pins_of(id).iter().map(|p| p.display().to_string()));
        let veths = |o: Output| -> Vec<Value> {
            serde_json::from_slice::<Value>(&o.stdout)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
        };
        let host = veths(self.exec(&["ip", "-j", "link", "show", "type", "veth"]));
        for ns in namespaces {
            let inside = veths(run_cmd(
                Command::new("nsenter")
                    .arg(format!("--net={ns}"))
                    .args(["ip", "-j", "link", "show", "type", "veth"]),
            ));
            // Each inside end names its peer's index in the other
            // namespace, the host's for a container's veth.
            for peer in inside.iter().filter_map(|l| l["link_index"].as_i64()) {
                if let Some(name) = host
                    .iter()
                    .find(|l| l["ifindex"].as_i64() == Some(peer))
                    .and_then(|l| l["ifname"].as_str())
                {
                    mine.insert(name.to_string());
                }
            }
        }
        mine
    }

    /// Everything `id` could have left behind: endpoint, lease, veth,
    /// /run/netns entry. Returns what is still there.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut left = Vec::new();
        if self.endpoint(id).is_some() {
            left.push(format!("endpoint {id}"));
        }
        // Every pool's, networks whose definition is gone or broken too.
        for (net, ip, holder) in self.all_leases() {
            if holder == id {
                left.push(format!("lease of {ip} in network {net}"));
            }
        }
        let short = &id[..12.min(id.len())];
        let pin = format!("ocinet-{short}");
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for f in dir.flatten() {
                if f.file_name().to_string_lossy().starts_with(&pin) {
                    left.push(format!("/run/netns/{}", f.file_name().to_string_lossy()));
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts
            .lines()
            .filter(|l| l.contains(&format!("/run/netns/{pin}")))
        {
            left.push(format!("bind mount {m}"));
        }
        for (port, holder) in self.port_claims() {
            if holder == id {
                left.push(format!("port claim {port}"));
            }
        }
        // A retired veth (marked, down, out of its bridge) is going: the
        // reaper or the namespace's end takes it (`reaped` waits for that).
        let host_veths: BTreeMap<String, (bool, bool)> = self
            .veths_now()
            .into_iter()
            .map(|(name, retired, out)| (name, (retired, out)))
            .collect();
        for veth in self.veths_of(id) {
            match host_veths.get(&veth) {
                Some((false, _)) => left.push(format!("veth {veth}")),
                Some((true, false)) => {
                    left.push(format!("veth {veth} retired but up or on a bridge"))
                }
                _ => {}
            }
            let quoted = format!("\"{veth}\"");
            for e in self
                .nft_elements()
                .iter()
                .map(Value::to_string)
                .filter(|e| e.contains(&quoted))
            {
                left.push(format!("nftables element {e}"));
            }
        }
        // A [::1] port the port proxy still serves for it (issue 22).
        let proxy = self.store_view(&["proxy", "status", "--json"]);
        if let Some(ports) = proxy["Ports"].as_array() {
            for p in ports.iter().filter(|p| p["Container"] == id) {
                left.push(format!(
                    "[::1]:{}/{} served by the port proxy",
                    p["HostPort"], p["Protocol"]
                ));
            }
        }
        left
    }
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.dir.join("podman/root").exists() {
            let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        }
        let list = std::mem::take(&mut *self.containers.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, rt, pid) in list {
            let _ = run_cmd(&mut rt.command(self, &["kill", &id, "KILL"]));
            std::thread::sleep(Duration::from_millis(100));
            let _ = run_cmd(&mut rt.command(self, &["delete", "--force", &id]));
            if let Some(pid) = pid {
                // The foreground runtime process this harness started.
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            remove_pins(&id);
        }
        // The overlay agent (started by a join or an overlay container)
        // ends once the config is gone, within a store timeout or two:
        // ended here by its pid rather than waited for.
        for pid in self.agents() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if let Some(o) = self
            .outside
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = Command::new("ip").args(["netns", "del", &o]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if std::env::var_os("OCINET_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        // Every resolver started for this host ends by itself once its
        // namespace and state directory are gone (issue 21: one ran on for
        // 25 minutes). One that does not is ended here, by its pid, and
        // fails the test.
        // The port proxy too (issue 22): it looks once a second.
        let daemons = || {
            let mut all = self.resolvers();
            all.extend(self.proxies());
            all
        };
        let deadline = Instant::now() + Duration::from_secs(4);
        while !daemons().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = daemons();
        for pid in &left {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "resolver(s) or port proxies {left:?} of {} outlived its namespace and state directory",
                self.name
            );
        }
    }
}

/// Generate one test per runtime from a `fn(Runtime)`.
#[macro_export]
macro_rules! both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod runc {
            $( #[test] fn $name() { super::$name($crate::Runtime::Runc) } )*
        }
        mod crun {
            $( #[test] fn $name() { super::$name($crate::Runtime::Crun) } )*
        }
    };
}
