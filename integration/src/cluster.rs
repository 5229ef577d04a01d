//! Simulated clusters for the overlay tests (issue 23): an "underlay"
//! network namespace holding one bridge that every test `Host` joins by a
//! veth (the hosts' physical network), and a real etcd server run by the
//! test inside that namespace. Everything is torn down on drop, also when
//! the test panicked: the etcd process by its pid, its files, and the
//! underlay namespace (the hosts' underlay veths go with it).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{ok, run_cmd, text, unique_hex, Host, Proc};

/// The underlay bridge's address: etcd listens here, hosts reach it on-link.
pub const UNDERLAY_GW: &str = "10.99.0.254";
/// The underlay's prefix length (hosts get 10.99.0.<index>/24).
pub const UNDERLAY_PREFIX: u8 = 24;
/// The name of each host's end of its underlay veth, inside the host's
/// namespace (the overlay's VXLAN devices ride on it).
pub const UNDERLAY_LINK: &str = "ul0";
/// The bridge in the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "ulbr";

/// The underlay end of host `h`'s veth: unique per host (its name's hex
/// suffix) and short enough for IFNAMSIZ, so it can be found again by
/// `set_link` without remembering anything.
fn underlay_end(h: &Host) -> String {
    format!("u{}", h.name.get(3..).unwrap_or(&h.name))
}

/// A network namespace `<prefix>-ul` holding bridge `ulbr`
/// (10.99.0.254/24): the network the simulated hosts share.
pub struct Underlay {
    pub name: String,
}

impl Underlay {
    pub fn new() -> Underlay {
        // Same "oit" prefix as `Host`, so a leftover is recognisable as a
        // test's and `ip netns list` checks cover it.
        let name = format!("oit{}-ul", &unique_hex()[4..]);
        ok(run_cmd(Command::new("ip").args(["netns", "add", &name])));
        // From here on Drop deletes the namespace, whatever fails next.
        let ul = Underlay { name };
        ul.ip(&["link", "set", "lo", "up"]);
        ul.ip(&["link", "add", UNDERLAY_BRIDGE, "type", "bridge"]);
        ul.ip(&[
            "addr",
            "add",
            &format!("{UNDERLAY_GW}/{UNDERLAY_PREFIX}"),
            "dev",
            UNDERLAY_BRIDGE,
        ]);
        ul.ip(&["link", "set", UNDERLAY_BRIDGE, "up"]);
        ul
    }

    fn ip(&self, args: &[&str]) -> String {
        ok(run_cmd(
            Command::new("ip").args(["-n", &self.name]).args(args),
        ))
    }

    /// Connect host `h` to the underlay: a veth `ul0` in the host (address
    /// 10.99.0.<index>/24, up, lo up) whose peer is a port of `ulbr`.
    /// Returns the host's underlay address ("10.99.0.<index>").
    pub fn join(&self, h: &Host, index: u8) -> String {
        assert!(
            (1..=253).contains(&index),
            "underlay index {index}: 1..=253 (254 is the bridge)"
        );
        let end = underlay_end(h);
        self.ip(&[
            "link",
            "add",
            &end,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_LINK,
            "netns",
            &h.name,
        ]);
        self.ip(&["link", "set", &end, "master", UNDERLAY_BRIDGE]);
        self.ip(&["link", "set", &end, "up"]);
        let addr = format!("10.99.0.{index}");
        let in_host =
            |args: &[&str]| ok(run_cmd(Command::new("ip").args(["-n", &h.name]).args(args)));
        in_host(&[
            "addr",
            "add",
            &format!("{addr}/{UNDERLAY_PREFIX}"),
            "dev",
            UNDERLAY_LINK,
        ]);
        in_host(&["link", "set", UNDERLAY_LINK, "up"]);
        in_host(&["link", "set", "lo", "up"]);
        addr
    }

    /// Cut (`up == false`) or heal host `h`'s underlay link. The underlay
    /// end goes down, so the host's `ul0` loses carrier but keeps its
    /// address and routes, as a host whose cable was pulled.
    pub fn set_link(&self, h: &Host, up: bool) {
        let end = underlay_end(h);
        self.ip(&["link", "set", &end, if up { "up" } else { "down" }]);
    }

    /// Run a command in the underlay namespace (network namespace only).
    pub fn exec(&self, args: &[&str]) -> Output {
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.name))
                .args(args),
        )
    }
}

impl Default for Underlay {
    fn default() -> Self {
        Underlay::new()
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        // Deleting the namespace deletes the bridge and every veth pair
        // with an end in it, so the hosts' `ul0` go too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Client credentials of a TLS etcd (paths in its directory).
#[derive(Debug, Clone)]
struct Tls {
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// A real etcd (Debian's etcd-server) the test runs in the underlay
/// namespace on 10.99.0.254:2379 (clients) and :2380 (peer), with a data
/// directory of its own. Dropping it kills it by pid and removes its files.
pub struct Etcd {
    /// The underlay namespace it runs in.
    ns: String,
    dir: PathBuf,
    tls: Option<Tls>,
    proc: Option<Proc>,
    token: String,
}

/// How long etcd may take to answer `endpoint health` (about a second
/// here when idle; a loaded 2-core machine needs more).
const HEALTH_LIMIT: Duration = Duration::from_secs(30);

impl Etcd {
    /// Plain http on http://10.99.0.254:2379.
    pub fn start(ul: &Underlay) -> Etcd {
        Etcd::launch(ul, false)
    }

    /// https with client certificates required: a CA, a server certificate
    /// (SAN IP:10.99.0.254) and a client certificate are made with openssl
    /// in its directory; `ca()`, `cert()` and `key()` are the client's.
    pub fn start_tls(ul: &Underlay) -> Etcd {
        Etcd::launch(ul, true)
    }

    fn launch(ul: &Underlay, tls: bool) -> Etcd {
        let hex = unique_hex();
        let dir = std::env::temp_dir().join(format!("ocinet-etcd-{hex}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("etcd test dir");
        let mut e = Etcd {
            ns: ul.name.clone(),
            dir,
            tls: None,
            proc: None,
            token: format!("ocinet-it-{hex}"),
        };
        if tls {
            e.tls = Some(make_certs(&e.dir));
        }
        e.spawn_in(&ul.name);
        e
    }

    /// "http://10.99.0.254:2379", or https for a TLS etcd.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{UNDERLAY_GW}:2379")
    }

    /// The CA that signed the server's certificate (TLS only).
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca.clone())
    }

    /// A client certificate the server accepts (TLS only).
    pub fn cert(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.client_cert.clone())
    }

    /// The key of `cert()` (TLS only).
    pub fn key(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.client_key.clone())
    }

    /// Its directory (data, log, certificates).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pid of the running etcd, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.0.id())
    }

    /// Everything etcd wrote (across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The etcdctl flags that reach this etcd: endpoint, and for TLS the
    /// CA and client certificate. For running etcdctl elsewhere, e.g. in a
    /// host namespace: `h.exec(&[&["etcdctl"], &flags[..], &["put", ..]].concat())`.
    pub fn client_flags(&self) -> Vec<String> {
        let mut f = vec![
            format!("--endpoints={}", self.endpoint()),
            "--dial-timeout=2s".to_string(),
            "--command-timeout=5s".to_string(),
        ];
        if let Some(t) = &self.tls {
            f.push(format!("--cacert={}", t.ca.display()));
            f.push(format!("--cert={}", t.client_cert.display()));
            f.push(format!("--key={}", t.client_key.display()));
        }
        f
    }

    /// etcdctl (API v3) in the underlay namespace with `client_flags()`.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        run_cmd(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.ns))
                .arg("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(self.client_flags())
                .args(args),
        )
    }

    /// Every key under `prefix`, in etcd's order.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        ok(self.etcdctl(&["get", "--prefix", "--keys-only", prefix]))
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Every key under `prefix` with its value (ocinet's values are
    /// one-line JSON).
    pub fn pairs(&self, prefix: &str) -> std::collections::BTreeMap<String, String> {
        let out = ok(self.etcdctl(&["get", "--prefix", prefix]));
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect()
    }

    /// SIGTERM etcd and wait for it (SIGKILL after 10 s): the cluster's
    /// store becomes unreachable until `restart`.
    pub fn stop(&mut self) {
        let Some(mut p) = self.proc.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(p.0.id()).unwrap_or(i32::MAX));
        // A paused etcd would only act on SIGTERM once continued.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(p.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Dropping the Proc kills and reaps it.
        drop(p);
    }

    /// Start it again on the same data directory (keys kept) and wait
    /// until it is healthy.
    pub fn restart(&mut self) {
        self.stop();
        let ns = self.ns.clone();
        self.spawn_in(&ns);
    }

    /// SIGSTOP: connections stay open but nothing answers (a hung store).
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, s: nix::sys::signal::Signal) {
        let pid = self.pid().expect("etcd is not running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
        nix::sys::signal::kill(pid, s).unwrap_or_else(|e| panic!("{s} to etcd {pid}: {e}"));
    }

    fn spawn_in(&mut self, ns: &str) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let log2 = log.try_clone().expect("etcd log file");
        let client = self.endpoint();
        let peer = format!("http://{UNDERLAY_GW}:2380");
        let data = self.dir.join("data");
        // nsenter execs etcd (no --fork), so the child's pid is etcd's own
        // and signals reach it directly.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{ns}"))
            .arg("etcd")
            .args(["--name", "s1"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("s1={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token]);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&t.ca);
        }
        // No ETCD_* variable of the caller's may change its configuration.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn etcd: {e}"));
        self.proc = Some(Proc(child));
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + HEALTH_LIMIT;
        let mut last;
        loop {
            if let Some(p) = self.proc.as_mut() {
                if let Ok(Some(st)) = p.0.try_wait() {
                    panic!(
                        "etcd exited ({st}) before it was healthy:\n{}",
                        self.log_tail()
                    );
                }
            }
            let o = self.etcdctl(&["endpoint", "health"]);
            if o.status.success() {
                return;
            }
            last = text(&o);
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "etcd not healthy within {HEALTH_LIMIT:?}: {last}\nlog tail:\n{}",
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Proc's drop SIGKILLs it by pid and reaps it (SIGKILL also ends a
        // paused one); nothing of its data is wanted afterwards.
        self.proc = None;
        if std::env::var_os("OCINET_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A test CA, a server certificate for 10.99.0.254 and a client
/// certificate, all in `dir` (P-256 keys: quick to make, and accepted by
/// Go's TLS and rustls alike).
fn make_certs(dir: &Path) -> Tls {
    let p = |n: &str| dir.join(n);
    let openssl = |args: &[&str]| {
        ok(run_cmd(Command::new("openssl").current_dir(dir).args(args)));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=ocinet test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    let leaf = |name: &str, cn: &str, ext: &str| {
        std::fs::write(p(&format!("{name}.ext")), ext).expect("extension file");
        openssl(
            &[
                &["req", "-new"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ]);
    };
    leaf(
        "server",
        "etcd",
        &format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:{UNDERLAY_GW},IP:127.0.0.1\n"
        ),
    );
    leaf(
        "client",
        "ocinet",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    );
    // Private keys readable by their owner only, as a real deployment's.
    for k in ["ca.key", "server.key", "client.key"] {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p(k), std::fs::Permissions::from_mode(0o600));
    }
    Tls {
        ca: p("ca.crt"),
        client_cert: p("client.crt"),
        client_key: p("client.key"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
    }
}

/// A simulated cluster: hosts on one underlay with an etcd there. Fields
/// drop in order: the hosts (their containers, agents and namespaces)
/// before etcd, etcd before the underlay.
pub struct Cluster {
    pub hosts: Vec<Host>,
    pub etcd: Etcd,
    pub ul: Underlay,
}

/// The lease TTL the tests join with: short, so that a dead host is
/// forgotten within seconds.
pub const TEST_TTL: &str = "5";

impl Cluster {
    /// `n` hosts on an underlay with a plain-http etcd, none joined yet.
    pub fn new(n: usize) -> Cluster {
        Self::with_etcd(n, false)
    }

    /// The same with an etcd that wants TLS client certificates.
    pub fn new_tls(n: usize) -> Cluster {
        Self::with_etcd(n, true)
    }

    fn with_etcd(n: usize, tls: bool) -> Cluster {
        let ul = Underlay::new();
        let etcd = if tls {
            Etcd::start_tls(&ul)
        } else {
            Etcd::start(&ul)
        };
        let hosts: Vec<Host> = (0..n).map(|_| Host::new()).collect();
        for (i, h) in hosts.iter().enumerate() {
            ul.join(h, i as u8 + 1);
        }
        Cluster { hosts, etcd, ul }
    }

    /// `n` hosts, each a member (`h1`, `h2`, ...).
    pub fn joined(n: usize) -> Cluster {
        let c = Self::new(n);
        for i in 0..n {
            ok(c.join(i));
        }
        c
    }

    /// Host `i`'s underlay address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.99.0.{}", i + 1)
    }

    /// Host `i`'s node name.
    pub fn node(&self, i: usize) -> String {
        format!("h{}", i + 1)
    }

    /// `ocinet cluster join` on host `i`, with this etcd and the test TTL.
    pub fn join(&self, i: usize) -> Output {
        let mut args: Vec<String> = vec![
            "cluster".into(),
            "join".into(),
            "--store".into(),
            self.etcd.endpoint(),
            "--advertise-addr".into(),
            self.addr(i),
            "--node".into(),
            self.node(i),
            "--lease-ttl".into(),
            TEST_TTL.into(),
        ];
        if let (Some(ca), Some(cert), Some(key)) =
            (self.etcd.ca(), self.etcd.cert(), self.etcd.key())
        {
            for (flag, p) in [
                ("--store-cacert", ca),
                ("--store-cert", cert),
                ("--store-key", key),
            ] {
                args.push(flag.into());
                args.push(p.display().to_string());
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.hosts[i].ocinet(&refs)
    }

    /// `cluster ls --json` on host `i`.
    pub fn members(&self, i: usize) -> Vec<serde_json::Value> {
        let out = ok(self.hosts[i].ocinet(&["cluster", "ls", "--json"]));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("cluster ls --json: {e}: {out}"))
    }

    /// Wait up to `limit` for `f` to hold; whether it did.
    pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Container `id`'s address on network `net`, from `ps --json`.
pub fn ip_on(h: &Host, id: &str, net: &str) -> String {
    let ep = h.endpoint(id).unwrap_or_else(|| panic!("{id} not in ps"));
    ep["attachments"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["network"] == net))
        .and_then(|a| a["ip"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no address on {net}: {ep}"))
}

/// `network create NAME --driver overlay --subnet SUBNET EXTRA..` on `h`,
/// which must succeed.
pub fn overlay_network(h: &Host, name: &str, subnet: &str, extra: &[&str]) {
    let mut args = vec![
        "network", "create", name, "--driver", "overlay", "--subnet", subnet,
    ];
    args.extend_from_slice(extra);
    ok(h.ocinet(&args));
}

/// SIGKILL every overlay agent of `h` (by pid; the harness finds them by
/// their command line and state directory) and wait until they are gone;
/// the pids killed (none if none ran).
pub fn kill_agents(h: &Host) -> Vec<i32> {
    let pids = h.agents();
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        Cluster::eventually(Duration::from_secs(5), || h.agents().is_empty()),
        "{}: agents {pids:?} survived SIGKILL",
        h.name
    );
    pids
}

/// Whether container `id` on `h` reaches `ip` (one ping answered) within
/// `limit`.
pub fn ping(h: &Host, id: &str, ip: &str, limit: Duration) -> bool {
    Cluster::eventually(limit, || {
        h.in_container(id, &["ping", "-c1", "-W1", ip])
            .status
            .success()
    })
}

/// Whether an etcd key or its value names node `node`.
pub fn names_node(key: &str, value: &str, node: &str) -> bool {
    key.ends_with(&format!("/{node}"))
        || key.contains(&format!("/{node}/"))
        || value.contains(&format!("\"node\":\"{node}\""))
}
