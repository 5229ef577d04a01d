//! Issue 6 (faults): what others do to a running setup (delete the bridge,
//! flush the ruleset), what is already gone at poststop (the namespace, the
//! bundle), and a state directory on a full file system.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use ocinet_integration::{
    answers, assert_clean, ok, run_cmd, text, Host, Runtime, Spec, HOST_LINK_IP,
};
use serde_json::json;

/// The first successful output of up to ten tries a second apart, or the
/// last failure.
fn eventually(f: impl Fn() -> std::process::Output) -> std::process::Output {
    let mut o = f();
    for _ in 0..10 {
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        o = f();
    }
    o
}

fn published_url() -> String {
    format!("http://{HOST_LINK_IP}:8080/")
}

fn master_of(h: &Host, veth: &str) -> String {
    ok(h.exec(&["ip", "-o", "link", "show", veth]))
}

#[test]
fn a_deleted_bridge_and_a_flushed_ruleset_are_restored_by_firewall_reload() {
    let h = Host::new();
    h.outside();
    let a = h.start(
        Runtime::Runc,
        "a",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    let b = h.start(Runtime::Runc, "b", &Spec::default());
    let ip_a = h
        .endpoint(&a.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .expect("ip");
    answers(h.wget_outside(&published_url()), &a.id);

    ok(h.exec(&["ip", "link", "del", "ocinet0"]));
    ok(h.exec(&["nft", "flush", "ruleset"]));
    assert!(
        !h.wget_outside(&published_url()).status.success(),
        "still answering without a bridge"
    );
    assert!(!h
        .wget_from(&b.id, &format!("http://{ip_a}/"))
        .status
        .success());

    let out = ok(h.ocinet(&["firewall", "reload"]));
    assert!(
        out.contains("bridges made again: 1") && out.contains("put back on their bridge: 2"),
        "{out}"
    );
    answers(h.wget_outside(&published_url()), &a.id);
    // B's failed ARP for A during the outage answers "no route to host"
    // for a moment (the kernel's neighbour state machine), then recovers.
    answers(
        eventually(|| h.wget_from(&b.id, &format!("http://{ip_a}/"))),
        &a.id,
    );
    // Hairpin is back too: A reaches its own published port via the host.
    answers(h.wget_from(&a.id, &published_url()), &a.id);
    let veth = h.host_veth(&a.id);
    assert!(master_of(&h, &veth).contains("master ocinet0"));
    // Nothing to do the second time.
    let out = ok(h.ocinet(&["firewall", "reload"]));
    assert!(
        out.contains("bridges made again: 0") && out.contains("put back on their bridge: 0"),
        "{out}"
    );
}

#[test]
fn a_deleted_bridge_and_a_flushed_ruleset_are_restored_by_the_next_hook_call() {
    let h = Host::new();
    h.outside();
    let a = h.start(
        Runtime::Runc,
        "a",
        &Spec::default().ann("io.ocinet.ports", "8080:80"),
    );
    ok(h.exec(&["ip", "link", "del", "ocinet0"]));
    ok(h.exec(&["nft", "flush", "ruleset"]));
    assert!(!h.wget_outside(&published_url()).status.success());
    let c = h.start(Runtime::Runc, "c", &Spec::default());
    assert!(c.exit.is_none(), "{}", c.output());
    answers(h.wget_outside(&published_url()), &a.id);
    let ip_a = h
        .endpoint(&a.id)
        .and_then(|e| e["ip"].as_str().map(str::to_string))
        .expect("ip");
    answers(h.wget_from(&c.id, &format!("http://{ip_a}/")), &a.id);
}

#[test]
fn poststop_after_the_namespace_is_gone_tears_down_cleanly() {
    let h = Host::new();
    let mut v = h.bare_container("nsgone", json!({"io.ocinet.ports": "8080:80"}));
    ok(h.hook("createRuntime", &v.state, &[]));
    let pin = h
        .endpoint(&v.id)
        .and_then(|e| e["netns"].as_str().map(str::to_string))
        .expect("pin");
    // `ip netns del` of our pin, then the container dies: nothing holds
    // the namespace any more, and its veth goes with it.
    ok(run_cmd(Command::new("umount").arg(&pin)));
    std::fs::remove_file(&pin).expect("pin file");
    v.kill();
    let o = h.hook("poststop", &v.stopped_state(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_clean(&h, &v.id);
}

#[test]
fn poststop_after_the_bundle_is_gone_tears_down_cleanly() {
    let h = Host::new();
    let mut v = h.bare_container("bundlegone", json!({"io.ocinet.ports": "8080:80"}));
    ok(h.hook("createRuntime", &v.state, &[]));
    std::fs::remove_dir_all(&v.bundle).expect("remove bundle");
    v.kill();
    let o = h.hook("poststop", &v.stopped_state(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_clean(&h, &v.id);
}

/// A small tmpfs mounted over the host's state directory, 0700 as the
/// hook demands; unmounted on drop.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(dir: &Path) -> SmallFs {
        std::fs::create_dir_all(dir).expect("state dir");
        ok(run_cmd(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "ocinet-it-full"])
                .arg(dir),
        ));
        SmallFs {
            dir: dir.to_path_buf(),
        }
    }

    /// Fill it to the last byte; returns the filler to delete later.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let page = vec![0u8; 4096];
        while f.write_all(&page).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn stray_temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in [dir.to_path_buf(), dir.join("endpoints"), dir.join("ipam")] {
        for f in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.contains(".tmp") {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn a_full_state_file_system_gives_a_clear_error_and_no_half_state() {
    let h = Host::new();
    let fs = SmallFs::mount(&h.state_dir());
    // Something already set up, so the disk fills with state in place.
    let first = h.bare_container("early", json!({}));
    ok(h.hook("createRuntime", &first.state, &[]));

    let filler = fs.fill();
    let mut v = h.bare_container("full", json!({"io.ocinet.ports": "8080:80"}));
    let o = h.hook("createRuntime", &v.state, &[]);
    let msg = text(&o);
    assert!(!o.status.success(), "setup on a full disk succeeded: {msg}");
    assert!(
        msg.contains("No space left on device")
            && msg.contains(&h.state_dir().display().to_string()),
        "{msg}"
    );
    assert_clean(&h, &v.id);
    assert!(
        stray_temp_files(&h.state_dir()).is_empty(),
        "{:?}",
        stray_temp_files(&h.state_dir())
    );
    // Reading state still works, and the earlier container is untouched.
    assert_eq!(h.ps().len(), 1);

    std::fs::remove_file(&filler).expect("free space");
    ok(h.hook("createRuntime", &v.state, &[]));
    assert_eq!(h.ps().len(), 2);

    // Teardown on a full disk: either it finishes, or it fails naming the
    // disk and keeps the record so a retry finishes once there is room.
    let filler = fs.fill();
    v.kill();
    let o = h.hook("poststop", &v.stopped_state(), &[]);
    if !o.status.success() {
        let msg = text(&o);
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(
            h.endpoint(&v.id).is_some(),
            "a failed teardown must keep its record: {msg}"
        );
        std::fs::remove_file(&filler).expect("free space");
        ok(h.hook("poststop", &v.stopped_state(), &[]));
    }
    assert_clean(&h, &v.id);
    assert!(
        stray_temp_files(&h.state_dir()).is_empty(),
        "{:?}",
        stray_temp_files(&h.state_dir())
    );
    ok(h.hook("poststop", &first.stopped_state(), &[]));
    drop(fs);
}

#[test]
fn corrupt_and_truncated_state_files_are_reported_by_path_and_skipped() {
    let h = Host::new();
    let mut a = h.bare_container("healthy", json!({"io.ocinet.ports": "8080:80"}));
    let mut b = h.bare_container("mangled", json!({"io.ocinet.ports": "8081:80"}));
    ok(h.hook("createRuntime", &a.state, &[]));
    ok(h.hook("createRuntime", &b.state, &[]));
    let endpoints = h.state_dir().join("endpoints");
    let truncated = endpoints.join(format!("{}.json", b.id));
    let whole = std::fs::read(&truncated).expect("record");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).expect("truncate");
    let junk = endpoints.join("junk.json");
    std::fs::write(&junk, b"\x00\xff not json").expect("junk");
    let names = |s: &str| {
        s.contains(&truncated.display().to_string()) && s.contains(&junk.display().to_string())
    };

    // ps and gc name both files and go on with the rest.
    let ps = h.ocinet(&["ps"]);
    assert!(
        ps.status.success() && names(&text(&ps)) && text(&ps).contains(&a.id),
        "{}",
        text(&ps)
    );
    let gc = ok(h.ocinet(&["gc"]));
    assert!(names(&gc), "{gc}");
    assert!(h.endpoint(&a.id).is_some(), "gc removed a live container");

    // The exporter reports the healthy container, counts the bad files and
    // logs their paths.
    let mut e = h.start_exporter(&[]);
    let m = ok(h.exec(&[
        "curl",
        "-sf",
        &format!("http://{}/metrics", ocinet_integration::EXPORTER_ADDR),
    ]));
    assert!(m.contains(&format!("container_id=\"{}\"", a.id)), "{m}");
    assert!(
        m.contains("ocinet_state_files_unreadable{kind=\"endpoint\"} 2"),
        "{m}"
    );
    let log = e.terminate();
    assert!(names(&log) && !log.contains("panicked"), "{log}");

    // Teardown of the healthy container is unaffected.
    a.kill();
    ok(h.hook("poststop", &a.stopped_state(), &[]));
    assert_clean(&h, &a.id);
    // The mangled one's teardown cannot know what to undo: a clear error
    // naming the file, not a crash, and nothing else touched.
    b.kill();
    let o = h.hook("poststop", &b.stopped_state(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&truncated.display().to_string()),
        "{}",
        text(&o)
    );
}
