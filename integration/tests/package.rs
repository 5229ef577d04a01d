//! The Debian package (issue 25), as a user meets it: built by
//! `scripts/package.sh` from the debug binaries cargo already built (no
//! second build: `PROFILE=dev NO_BUILD=1 FAST=1`), checked by lintian and
//! `dpkg-deb`, then installed with the real `dpkg` into a throwaway root: a
//! private mount namespace whose /usr, /etc, /var and /opt are overlays
//! with tmpfs uppers and whose /run is a tmpfs (with the machine's
//! /run/netns bound back in, so the test's host namespace is reachable).
//! Everything the package and dpkg write vanishes with that namespace;
//! the machine's own dpkg database is never touched. In it: the units pass
//! `systemd-analyze verify`, the man pages render, the completions load,
//! a runc container started from the packaged example config.json with the
//! installed hook keeps its network across an upgrade from an older
//! version, podman runs a container through the packaged hooks.d files,
//! and remove keeps configuration and state while purge removes them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ocinet_integration::*;
use serde_json::Value;

/// The version the upgrade starts from: the same tree, an older version
/// number (`~` sorts before anything in Debian's order).
const OLD_VERSION: &str = "0.1.0~pkgtest1";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The package at this tree's version and at `OLD_VERSION`, built once per
/// test process beside the binaries it packages (build output, replaced by
/// the next run).
fn debs() -> &'static (PathBuf, PathBuf) {
    static DEBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DEBS.get_or_init(|| {
        let out = ocinet_bin()
            .parent()
            .expect("target dir")
            .join("package-test");
        let _ = std::fs::remove_dir_all(&out);
        let build = |version: Option<&str>, dir: &Path| -> PathBuf {
            let mut c = Command::new(repo_root().join("scripts/package.sh"));
            c.env("PROFILE", "dev")
                .env("NO_BUILD", "1")
                .env("FAST", "1")
                .env("OUT", dir);
            if let Some(v) = version {
                c.env("DEB_VERSION", v);
            }
            let o = run_cmd(&mut c);
            assert!(o.status.success(), "package.sh failed: {}", text(&o));
            // The script prints the .deb's path last.
            let path = PathBuf::from(
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or_default(),
            );
            assert!(path.is_file(), "no package at {path:?}: {}", text(&o));
            path
        };
        let new = build(None, &out.join("new"));
        let old = build(Some(OLD_VERSION), &out.join("old"));
        (new, old)
    })
}

fn deb_field(deb: &Path, field: &str) -> String {
    ok(run_cmd(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(field),
    ))
    .trim()
    .to_string()
}

/// Metadata, contents and lintian: what a Debian user's tools check.
#[test]
fn package_metadata_contents_and_lintian() {
    let (deb, old) = debs();
    assert_eq!(deb_field(deb, "Package"), "ocinet");
    assert_eq!(
        deb_field(deb, "Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(deb_field(old, "Version"), OLD_VERSION);
    assert_eq!(deb_field(deb, "Section"), "net");
    assert_eq!(deb_field(deb, "Architecture"), "amd64");
    let depends = deb_field(deb, "Depends");
    assert!(
        depends.contains("libc6") && depends.contains("nftables"),
        "{depends}"
    );

    let listing = ok(run_cmd(Command::new("dpkg-deb").arg("-c").arg(deb)));
    // path -> (mode string, link target)
    let mut entries = std::collections::BTreeMap::new();
    for l in listing.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() < 6 {
            continue;
        }
        let path = cols[5].trim_start_matches('.').to_string();
        let target = (cols.len() >= 8 && cols[6] == "->").then(|| cols[7].to_string());
        entries.insert(path, (cols[0].to_string(), target));
    }
    let has = |p: &str| entries.contains_key(p);
    for bin in ["ocinet", "ocinet-dns", "ocinet-proxy", "ocinet-exporter"] {
        let p = format!("/usr/bin/{bin}");
        assert_eq!(
            entries.get(&p).map(|e| e.0.as_str()),
            Some("-rwxr-xr-x"),
            "{p}"
        );
        assert!(
            has(&format!("/usr/share/man/man1/{bin}.1.gz")),
            "man page of {bin}"
        );
        assert!(has(&format!(
            "/usr/share/bash-completion/completions/{bin}"
        )));
        assert!(has(&format!("/usr/share/zsh/vendor-completions/_{bin}")));
        assert!(has(&format!(
            "/usr/share/fish/vendor_completions.d/{bin}.fish"
        )));
    }
    // The CNI plugin is the hook binary itself, where CNI runtimes look.
    assert_eq!(
        entries
            .get("/usr/lib/cni/ocinet")
            .and_then(|e| e.1.clone())
            .as_deref(),
        Some("../../bin/ocinet")
    );
    assert_eq!(
        entries
            .get("/opt/cni/bin/ocinet")
            .and_then(|e| e.1.clone())
            .as_deref(),
        Some("/usr/bin/ocinet")
    );
    for unit in [
        "ocinet-exporter.service",
        "ocinet-dns.service",
        "ocinet-proxy.service",
        "ocinet-agent.service",
        "ocinet-gc.service",
        "ocinet-gc.timer",
        "ocinet-firewall-reload.service",
    ] {
        assert!(has(&format!("/lib/systemd/system/{unit}")), "{unit}");
    }
    for p in [
        "/usr/share/containers/oci/hooks.d/ocinet-prestart.json",
        "/usr/share/containers/oci/hooks.d/ocinet-poststop.json",
        "/etc/default/ocinet-exporter",
        "/usr/lib/tmpfiles.d/ocinet.conf",
        "/etc/logrotate.d/ocinet",
        "/usr/share/doc/ocinet/copyright",
        "/usr/share/doc/ocinet/changelog.Debian.gz",
        "/usr/share/doc/ocinet/examples/config.json",
        "/usr/share/doc/ocinet/examples/10-ocinet.conflist",
        "/usr/share/doc/ocinet/examples/web.yml",
        "/usr/share/man/man1/ocinet-network-create.1.gz",
        "/usr/share/man/man1/ocinet-dns-status.1.gz",
    ] {
        assert!(has(p), "{p} missing from the package");
    }
    // The hidden reaper verb has no page.
    assert!(!has("/usr/share/man/man1/ocinet-reap-links.1.gz"));

    // conffiles: what dpkg keeps on remove and asks about on upgrade.
    let tmp = std::env::temp_dir().join(format!("ocinet-pkg-ctl-{}", unique_hex()));
    ok(run_cmd(
        Command::new("dpkg-deb").arg("-e").arg(deb).arg(&tmp),
    ));
    let conffiles = std::fs::read_to_string(tmp.join("conffiles")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&tmp);
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(
        conffiles,
        ["/etc/default/ocinet-exporter", "/etc/logrotate.d/ocinet"]
    );

    // Clean, with every override explained in packaging/lintian-overrides.
    let o = run_cmd(
        Command::new("lintian")
            .args(["--fail-on", "error,warning", "--display-info", "--pedantic"])
            .arg(deb),
    );
    let report: Vec<String> = text(&o)
        .lines()
        .filter(|l| l.len() > 2 && matches!(&l[..2], "E:" | "W:" | "I:" | "P:"))
        .map(str::to_string)
        .collect();
    assert!(
        o.status.success() && report.is_empty(),
        "lintian: {}",
        text(&o)
    );
}

/// The throwaway root: a process holding a private mount namespace in which
/// /usr, /etc, /var and /opt are overlays with tmpfs uppers and /run is a
/// tmpfs. Commands run in it with `nsenter` (and in the test's host network
/// namespace). Killed on drop, after whatever it started was stopped.
struct Root {
    holder: Proc,
    host: String,
    dir: PathBuf,
    runc: Vec<String>,
    podman: bool,
}

const SETUP_ROOT: &str = r#"set -eu
D=$1
# crun (podman's runtime here) refuses this machine's hybrid cgroups.
umount /sys/fs/cgroup/unified 2>/dev/null || true
mkdir -p "$D/upper" "$D/oldrun"
mount -t tmpfs -o mode=755 tmpfs "$D/upper"
# /run: a tmpfs of this namespace (the package's /run/ocinet, runc's and
# podman's state), with the machine's /run/netns bound back in.
mount --rbind /run "$D/oldrun"
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/netns /run/lock
mount --rbind "$D/oldrun/netns" /run/netns
umount -l "$D/oldrun"
for d in usr etc var opt; do
    mkdir -p "$D/upper/$d/u" "$D/upper/$d/w"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$D/upper/$d/u,workdir=$D/upper/$d/w" "/$d"
done
# A hooks.d file someone installed on the machine would shadow the package's.
rm -f /etc/containers/oci/hooks.d/ocinet-*.json
echo ready
exec sleep 3600
"#;

impl Root {
    fn new(h: &Host) -> Root {
        use std::io::BufRead;
        let dir = h.dir.join("root");
        std::fs::create_dir_all(&dir).expect("root dir");
        let mut child = Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                SETUP_ROOT,
                "sh",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare");
        let stdout = child.stdout.take().expect("stdout");
        let holder = Proc(child);
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "the throwaway root was not set up");
        Root {
            holder,
            host: h.name.clone(),
            dir,
            runc: Vec::new(),
            podman: false,
        }
    }

    /// `args` in the throwaway root and the test's host namespace.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.0.id()))
            .arg(format!("--net=/run/netns/{}", self.host))
            .args(args)
            // podman runs poststop hooks with an empty environment; the
            // rest of ocinet gets a plain PATH here too.
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.cmd(args))
    }

    fn sh(&self, script: &str) -> Output {
        self.run(&["sh", "-c", script])
    }

    fn exists(&self, path: &str) -> bool {
        self.run(&["test", "-e", path]).status.success()
    }

    fn status(&self) -> String {
        text(&self.run(&["dpkg-query", "-W", "-f", "${Status} ${Version}", "ocinet"]))
    }

    /// `ocinet ps --json` of the installed binary and default directories.
    fn ps(&self) -> Vec<Value> {
        let out = ok(self.run(&["/usr/bin/ocinet", "ps", "--json"]));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ps --json: {e}: {out}"))
    }

    fn podman(&self, args: &[&str]) -> Output {
        let mut all = vec!["podman".to_string()];
        all.extend(ocinet_integration::podman_store_args(
            &self.dir.join("podman"),
        ));
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(&refs)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // What a failed test left running: its poststop hooks run while the
        // installed binary may still be there, then the namespace goes.
        for id in std::mem::take(&mut self.runc) {
            let _ = self.run(&["runc", "kill", &id, "KILL"]);
            std::thread::sleep(Duration::from_millis(200));
            let _ = self.run(&["runc", "delete", "--force", &id]);
        }
        if self.podman {
            let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        }
    }
}

/// The installed firewall-rebuild unit's command, as systemd runs it: its
/// `ExecStart=/bin/sh -c '...'` with systemd's `$$` unescaped.
fn firewall_unit_script(root: &Root) -> String {
    let unit = ok(root.run(&["cat", "/lib/systemd/system/ocinet-firewall-reload.service"]));
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/bin/sh -c '"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no ExecStart=/bin/sh -c '...' in {unit}"));
    exec.replace("$$", "$")
}

/// Wait (up to 30 s) for the installed hook to report `id` ready; its
/// record from `ps --json`.
fn ready(root: &Root, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = root
            .ps()
            .into_iter()
            .find(|e| e["id"] == id && e["state"] == "ready")
        {
            return e;
        }
        assert!(Instant::now() < deadline, "{id} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The container answers at its address (ping and HTTP) and on its
/// published port of the host.
#[track_caller]
fn reachable(h: &Host, ip: &str, port: u16, id: &str) {
    ok(h.exec(&["ping", "-c", "1", "-W", "2", ip]));
    let mut w: Vec<&str> = WGET.to_vec();
    let direct = format!("http://{ip}/");
    w.push(&direct);
    answers(h.exec(&w), id);
    let mut w: Vec<&str> = WGET.to_vec();
    let published = format!("http://127.0.0.1:{port}/");
    w.push(&published);
    answers(h.exec(&w), id);
}

#[test]
fn package_installs_upgrades_with_a_running_container_and_purges() {
    let (new, old) = debs();
    let h = Host::new();
    let mut root = Root::new(&h);
    let real_status = text(&run_cmd(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Status}",
        "ocinet",
    ])));

    // Install the older version.
    ok(root.run(&["dpkg", "-i", &old.display().to_string()]));
    assert!(
        root.status().starts_with("install ok installed"),
        "{}",
        root.status()
    );
    assert!(root.status().ends_with(OLD_VERSION), "{}", root.status());

    // Enabled by default: the gc timer and the firewall rebuild; the rest
    // only when the administrator enables it. Nothing was started (no
    // systemd runs here, and the scripts start nothing anyway).
    for link in [
        "/etc/systemd/system/timers.target.wants/ocinet-gc.timer",
        "/etc/systemd/system/multi-user.target.wants/ocinet-firewall-reload.service",
        "/etc/systemd/system/nftables.service.wants/ocinet-firewall-reload.service",
    ] {
        assert!(root.exists(link), "{link} not enabled");
    }
    for link in [
        "/etc/systemd/system/multi-user.target.wants/ocinet-exporter.service",
        "/etc/systemd/system/multi-user.target.wants/ocinet-dns.service",
        "/etc/systemd/system/multi-user.target.wants/ocinet-proxy.service",
        "/etc/systemd/system/multi-user.target.wants/ocinet-agent.service",
    ] {
        assert!(!root.exists(link), "{link} enabled by default");
    }
    // tmpfiles made the state directory as the hook wants it.
    assert_eq!(
        ok(root.run(&["stat", "-c", "%a %U", "/run/ocinet"])).trim(),
        "700 root"
    );

    // Every unit, as systemd reads it (binaries and man pages in place).
    let units = ok(root.sh("ls /lib/systemd/system/ocinet-*"));
    let units: Vec<&str> = units.split_whitespace().collect();
    assert_eq!(units.len(), 7, "{units:?}");
    let mut verify = vec!["systemd-analyze", "verify"];
    verify.extend(&units);
    let o = root.run(&verify);
    assert!(
        o.status.success() && text(&o).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&o)
    );

    // Every man page renders without a warning from groff or man.
    let pages = ok(root.sh("ls /usr/share/man/man1/ocinet*.1.gz"));
    let pages: Vec<&str> = pages.split_whitespace().collect();
    assert!(pages.len() >= 25, "{pages:?}");
    for page in &pages {
        let mut c = root.cmd(&["man", "-l", page]);
        c.env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("LANG", "C.UTF-8");
        let o = run_cmd(&mut c);
        let name = Path::new(page)
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".1.gz"))
            .unwrap_or_default()
            .to_string();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success()
                && o.stderr.is_empty()
                && out.contains("NAME")
                && out.contains(&name),
            "man -l {page}: {}",
            text(&o)
        );
    }
    // `ocinet dns` and `ocinet proxy` have no page of their own (the names
    // are the binaries'): those pages list the groups' verbs.
    for (page, verb) in [
        ("ocinet-dns", "ocinet-dns-status(1)"),
        ("ocinet-proxy", "ocinet-proxy-status(1)"),
    ] {
        let mut c = root.cmd(&["man", page]);
        c.env("MANPAGER", "cat").env("MANWIDTH", "200");
        let out = ok(run_cmd(&mut c));
        assert!(
            out.contains("--persistent") && out.contains(verb),
            "man {page}: {out}"
        );
    }
    // man finds them by name too (the units' Documentation= does this).
    let mut c = root.cmd(&["man", "ocinet-network-create"]);
    c.env("MANPAGER", "cat");
    assert!(ok(run_cmd(&mut c)).contains("--subnet"));

    // The completions load in bash (and zsh's and fish's are in place).
    for bin in ["ocinet", "ocinet-dns", "ocinet-proxy", "ocinet-exporter"] {
        let script =
            format!("source /usr/share/bash-completion/completions/{bin} && complete -p {bin}");
        let out = ok(root.run(&["bash", "-c", &script]));
        assert!(out.contains(&format!(" {bin}")), "complete -p {bin}: {out}");
    }
    // bash's completion function for `ocinet network cr<TAB>`.
    let out = ok(root.run(&[
        "bash",
        "-c",
        "source /usr/share/bash-completion/completions/ocinet; \
         COMP_WORDS=(ocinet network cr); COMP_CWORD=2; COMP_LINE='ocinet network cr'; COMP_POINT=17; \
         _ocinet ocinet cr network; echo \"${COMPREPLY[@]}\"",
    ]));
    assert!(
        out.contains("create"),
        "completion of `ocinet network cr`: {out}"
    );

    // The packaged hooks.d files are what `ocinet install-podman-hook`
    // writes with the installed binary and the default directories.
    let hd = root.dir.join("hooks-written");
    ok(root.run(&[
        "/usr/bin/ocinet",
        "install-podman-hook",
        "--hooks-dir",
        &hd.display().to_string(),
    ]));
    for stage in ["prestart", "poststop"] {
        let written: Value = serde_json::from_slice(
            &std::fs::read(hd.join(format!("ocinet-{stage}.json"))).expect("written hook"),
        )
        .expect("json");
        let shipped: Value = serde_json::from_slice(
            &root
                .run(&[
                    "cat",
                    &format!("/usr/share/containers/oci/hooks.d/ocinet-{stage}.json"),
                ])
                .stdout,
        )
        .expect("packaged hooks.d json");
        assert_eq!(written, shipped, "hooks.d {stage}");
    }

    // The firewall rebuild on a host where no container ran: nothing, not
    // even ocinet's (empty) tables.
    let rebuild = firewall_unit_script(&root);
    ok(root.run(&["/bin/sh", "-c", &rebuild]));
    let tables = ok(h.exec(&["nft", "list", "tables"]));
    assert!(
        tables.trim().is_empty(),
        "tables made with no container: {tables}"
    );

    // The demo's container, with runc, from the packaged example config
    // (the installed hook, default directories) and a published port.
    let example: Value = serde_json::from_slice(
        &root
            .run(&["cat", "/usr/share/doc/ocinet/examples/config.json"])
            .stdout,
    )
    .expect("example config.json");
    let id = format!("{}-pkg", unique_hex());
    let bundle = root.dir.join("bundle");
    let www = bundle.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), format!("hello from {id}\n")).expect("index");
    let mut config = example.clone();
    config["root"] = serde_json::json!({"path": rootfs::path(), "readonly": true});
    // What the example leaves to `runc spec`: a user, and the capability
    // httpd needs for port 80.
    config["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    config["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0});
    let caps = serde_json::json!(["CAP_NET_BIND_SERVICE"]);
    config["process"]["capabilities"] =
        serde_json::json!({"bounding": caps, "effective": caps, "permitted": caps});
    config["annotations"]["io.ocinet.ports"] = "8080:80".into();
    config["mounts"] = serde_json::json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]},
        {"destination": "/www", "type": "bind", "source": www, "options": ["rbind", "ro"]}
    ]);
    assert_eq!(
        config["hooks"]["createRuntime"][0]["path"],
        "/usr/bin/ocinet"
    );
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).expect("config"),
    )
    .expect("write config.json");
    let log = std::fs::File::create(root.dir.join("runc.log")).expect("runc log");
    let mut runc = root.cmd(&[
        "runc",
        "run",
        "--bundle",
        &bundle.display().to_string(),
        &id,
    ]);
    runc.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let mut runtime = Proc(runc.spawn().expect("spawn runc"));
    root.runc.push(id.clone());
    let ep = ready(&root, &id);
    let ip = ep["ip"].as_str().expect("ip").to_string();
    assert!(ip.starts_with("10.87."), "{ep}");
    std::thread::sleep(Duration::from_millis(200));
    reachable(&h, &ip, 8080, &id);

    // Upgrade with it running: its network survives (same address, still
    // answering directly and on the published port).
    ok(root.run(&["dpkg", "-i", &new.display().to_string()]));
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert!(root.status().ends_with(&version), "{}", root.status());
    let after = ready(&root, &id);
    assert_eq!(after["ip"], ep["ip"]);
    reachable(&h, &ip, 8080, &id);

    // nftables.service (re)loading /etc/nftables.conf flushes the ruleset:
    // the published port stops answering until the firewall-rebuild unit
    // (which runs after it) puts ocinet's tables back.
    ok(h.exec(&["nft", "flush", "ruleset"]));
    let mut w: Vec<&str> = WGET.to_vec();
    w.push("http://127.0.0.1:8080/");
    assert!(
        !h.exec(&w).status.success(),
        "the port answered with no ruleset"
    );
    ok(root.run(&["/bin/sh", "-c", &rebuild]));
    reachable(&h, &ip, 8080, &id);

    // The exporter as its unit runs it, with the flags of
    // /etc/default/ocinet-exporter (EnvironmentFile, `$ARGS` split at
    // spaces as systemd does): it serves the container's series.
    let mut exporter = root.cmd(&[
        "sh",
        "-c",
        ". /etc/default/ocinet-exporter && exec /usr/bin/ocinet-exporter $ARGS",
    ]);
    exporter
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut exporter = Proc(exporter.spawn().expect("spawn exporter"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let o = h.exec(&["curl", "-sf", "http://127.0.0.1:19870/metrics"]);
        if o.status.success() {
            break String::from_utf8_lossy(&o.stdout).to_string();
        }
        assert!(
            matches!(exporter.0.try_wait(), Ok(None)),
            "the exporter exited: {}",
            exporter.terminate()
        );
        assert!(Instant::now() < deadline, "the exporter did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ocinet_") && l.contains("web-1")),
        "no series of the container: {metrics}"
    );
    exporter.terminate();

    // The persistent resolver and port proxy as their units start them:
    // each comes up persistent, where `ocinet dns|proxy status` (the hooks'
    // view) finds it, and ends on SIGTERM (systemctl stop).
    for (unit, status) in [
        ("ocinet-dns.service", "dns"),
        ("ocinet-proxy.service", "proxy"),
    ] {
        let text_of = ok(root.run(&["cat", &format!("/lib/systemd/system/{unit}")]));
        let exec: Vec<&str> = text_of
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("no ExecStart in {unit}"))
            .split_whitespace()
            .collect();
        let mut c = root.cmd(&exec);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut daemon = Proc(c.spawn().expect("spawn daemon"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = root.run(&["/usr/bin/ocinet", status, "status", "--json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            if v["Running"] == true && v["Persistent"] == true {
                break;
            }
            assert!(
                matches!(daemon.0.try_wait(), Ok(None)),
                "{unit}'s command exited: {}",
                daemon.terminate()
            );
            assert!(Instant::now() < deadline, "{unit}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon.terminate();
        let v: Value = serde_json::from_str(&ok(root.run(&[
            "/usr/bin/ocinet",
            status,
            "status",
            "--json",
        ])))
        .expect("status json");
        assert_eq!(v["Running"], false, "{unit} after SIGTERM: {v}");
    }

    // logrotate with the packaged rule, while the container runs: the log
    // is rotated (copied, then truncated in place), and the hook goes on
    // writing to it (its poststop below succeeds and logs there).
    ok(root.run(&["logrotate", "--force", "/etc/logrotate.d/ocinet"]));
    assert!(root.exists("/run/ocinet/ocinet.log.1"), "not rotated");
    assert_eq!(
        ok(root.run(&["stat", "-c", "%s", "/run/ocinet/ocinet.log"])).trim(),
        "0"
    );

    // podman, through the packaged hooks.d files (podman's default hooks
    // directory: no --hooks-dir), beside the runc container.
    root.podman = true;
    let pwww = root.dir.join("pwww");
    std::fs::create_dir_all(&pwww).expect("podman www");
    std::fs::write(pwww.join("index.html"), "hello from pkgpod\n").expect("index");
    let vol = format!("{}:/www:ro", pwww.display());
    let root_fs = rootfs::path().display().to_string();
    let pid = ok(root.podman(&[
        "run",
        "-d",
        "--name",
        "pkgpod",
        "--network",
        "none",
        "--annotation",
        "io.ocinet.name=pkgpod",
        "--annotation",
        "io.ocinet.ports=8081:80",
        "-v",
        &vol,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--rootfs",
        &root_fs,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]))
    .trim()
    .to_string();
    let pep = ready(&root, &pid);
    assert_eq!(pep["name"], "pkgpod");
    let pip = pep["ip"].as_str().expect("podman container ip").to_string();
    std::thread::sleep(Duration::from_millis(200));
    reachable(&h, &pip, 8081, "pkgpod");
    ok(root.podman(&["stop", "--time", "1", "pkgpod"]));
    ok(root.podman(&["rm", "pkgpod"]));
    root.podman = false;

    // Stopped by the upgraded hook: nothing of it is left.
    let _ = root.run(&["runc", "kill", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(runtime.0.try_wait(), Ok(None)) {
        assert!(Instant::now() < deadline, "runc did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = root.run(&["runc", "delete", "--force", &id]);
    root.runc.clear();
    assert!(root.ps().is_empty(), "{:?}", root.ps());
    let log = ok(root.run(&["cat", "/run/ocinet/ocinet.log"]));
    assert!(
        log.contains(&id),
        "the poststop did not log after the rotation: {log}"
    );
    assert!(
        h.links("veth").is_empty(),
        "veths left: {:?}",
        h.links("veth")
    );

    // remove: binaries gone, configuration and state kept.
    let networks_before = ok(root.run(&["/usr/bin/ocinet", "network", "ls"]));
    ok(root.run(&["dpkg", "-r", "ocinet"]));
    assert!(
        root.status().starts_with("deinstall ok config-files"),
        "{}",
        root.status()
    );
    for gone in [
        "/usr/bin/ocinet",
        "/usr/lib/cni/ocinet",
        "/opt/cni/bin/ocinet",
        "/lib/systemd/system/ocinet-gc.timer",
    ] {
        assert!(!root.exists(gone), "{gone} left after remove");
    }
    for kept in [
        "/etc/default/ocinet-exporter",
        "/etc/logrotate.d/ocinet",
        "/etc/ocinet/networks",
        "/run/ocinet/ocinet.log",
    ] {
        assert!(root.exists(kept), "{kept} removed by remove");
    }
    assert!(networks_before.contains("ocinet"), "{networks_before}");

    // purge: configuration, state and the units' enablement go too.
    ok(root.run(&["dpkg", "-P", "ocinet"]));
    assert!(!root.status().contains("installed"), "{}", root.status());
    for gone in [
        "/etc/default/ocinet-exporter",
        "/etc/logrotate.d/ocinet",
        "/etc/ocinet",
        "/run/ocinet",
        "/etc/systemd/system/timers.target.wants/ocinet-gc.timer",
        "/etc/systemd/system/multi-user.target.wants/ocinet-firewall-reload.service",
    ] {
        assert!(!root.exists(gone), "{gone} left after purge");
    }

    // The machine's own dpkg database never saw any of it.
    let real_after = text(&run_cmd(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Status}",
        "ocinet",
    ])));
    assert_eq!(real_status, real_after);
    assert!(!Path::new("/usr/bin/ocinet").exists() || real_status.contains("installed"));
    drop(runtime);
}
