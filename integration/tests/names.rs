//! Issue 21, items 5, 14 and 15: names that could never answer are
//! refused where they enter (annotations, `network connect --alias`, a
//! CNI runtime's aliases), a CONTAINER argument that matches two containers is refused, and an image
//! without `/etc` on a DNS-enabled network is refused before anything is
//! set up (ocinet does not write the image). Every network names its
//! upstream: an address in the outside namespace (nothing here is
//! forwarded: every name asked is a container's).

use ocinet_integration::{ok, text, Host, Runtime, Spec, OUTSIDE_IP};

fn dns_network(h: &Host, name: &str, subnet: &str) {
    ok(h.ocinet(&[
        "network",
        "create",
        name,
        "--subnet",
        subnet,
        "--dns-upstream",
        OUTSIDE_IP,
    ]));
}

fn log(h: &Host) -> String {
    h.log()
}

/// The container's attachments' networks, as `ps --json` shows them.
fn networks_of(h: &Host, id: &str) -> Vec<String> {
    h.endpoint(id)
        .and_then(|e| e["attachments"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["network"].as_str().map(str::to_string))
        .collect()
}

/// `nslookup NAME` inside container `id`, through its resolv.conf.
fn lookup(h: &Host, id: &str, name: &str) -> String {
    text(&h.in_container_fs(id, &["nslookup", name]))
}

fn names_that_cannot_answer_are_refused(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dns_network(&h, "web", "10.64.0.0/24");
    dns_network(&h, "other", "10.65.0.0/24");
    ok(h.ocinet(&[
        "network",
        "create",
        "quiet",
        "--subnet",
        "10.66.0.0/24",
        "--disable-dns",
    ]));
    let many: Vec<String> = (0..3000).map(|i| format!("a{i}")).collect();
    let many = many.join(",");
    for (net, k, v, why) in [
        (
            "web",
            "io.ocinet.name",
            "nm.",
            "invalid io.ocinet.name \"nm.\"",
        ),
        (
            "web",
            "io.ocinet.name",
            "a..b",
            "invalid io.ocinet.name \"a..b\"",
        ),
        ("web", "io.ocinet.name", "localhost", "is reserved"),
        (
            "web",
            "io.ocinet.aliases",
            "x.",
            "invalid io.ocinet.aliases \"x.\"",
        ),
        (
            "web",
            "io.ocinet.aliases",
            "db,a..b",
            "invalid io.ocinet.aliases \"a..b\"",
        ),
        (
            "web",
            "io.ocinet.aliases",
            "localhost",
            "invalid io.ocinet.aliases \"localhost\": is reserved",
        ),
        ("web", "io.ocinet.aliases", "db.localhost", "is reserved"),
        (
            "web",
            "io.ocinet.aliases",
            "2.0.64.10.in-addr.arpa",
            "is reserved",
        ),
        (
            "web",
            "io.ocinet.aliases",
            "10.64.0.9",
            "reads as an IPv4 address",
        ),
        ("web", "io.ocinet.aliases", "db:1", "':' is not allowed"),
        (
            "web",
            "io.ocinet.aliases",
            many.as_str(),
            "\"3000 aliases\": at most 64 aliases per network",
        ),
        (
            "quiet",
            "io.ocinet.aliases",
            "db",
            "invalid io.ocinet.aliases \"db\": network quiet has no name resolution",
        ),
    ] {
        let c = h.start(
            rt,
            "bad",
            &Spec::default().ann("io.ocinet.network", net).ann(k, v),
        );
        assert!(c.exit.is_some_and(|s| !s.success()), "{k}={v:.40} started");
        assert!(log(&h).contains(why), "{k}={v:.40}: {}", log(&h));
        ocinet_integration::assert_clean(&h, &c.id);
    }

    // What was accepted before and answers still does: a name with '_'
    // (Docker's characters for container names), and a container whose
    // runtime id is no DNS name at all (its name is its id; it is simply
    // not a name the resolver serves).
    let mut a = h.started(
        rt,
        "a",
        &Spec::default()
            .ann("io.ocinet.network", "web,quiet")
            .ann("io.ocinet.name", "web_1")
            .ann("io.ocinet.aliases", "db"),
    );
    // On a container of several networks the aliases go where names answer.
    assert!(
        log(&h).contains("aliases are not recorded on network quiet"),
        "{}",
        log(&h)
    );
    let odd_id = format!("{}..x", ocinet_integration::unique_hex());
    let mut b = h.start_id(
        rt,
        &odd_id,
        &Spec::default().ann("io.ocinet.network", "web"),
    );
    assert!(b.exit.is_none(), "{}", b.output());
    let a_ip = h.endpoint(&a.id).expect("a")["ip"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for name in ["web_1", "db"] {
        let out = lookup(&h, &b.id, name);
        assert!(out.contains(&format!("Address: {a_ip}")), "{name}: {out}");
    }

    // network connect --alias: the same rule, refused before anything is
    // changed.
    let many: Vec<String> = (0..65).map(|i| format!("--alias=a{i}")).collect();
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["other".into(), "--alias".into(), "x.".into()],
            "invalid --alias \"x.\"",
        ),
        (
            vec!["other".into(), "--alias".into(), "a..b".into()],
            "invalid --alias \"a..b\"",
        ),
        (
            vec!["other".into(), "--alias".into(), "localhost".into()],
            "is reserved",
        ),
        (
            vec![
                "other".into(),
                "--alias".into(),
                "db".into(),
                "--alias".into(),
                "DB".into(),
            ],
            "invalid --alias \"DB\": is given twice",
        ),
        (
            vec!["quiet".into(), "--alias".into(), "db2".into()],
            "invalid --alias \"db2\": network quiet has no name resolution",
        ),
    ];
    let mut with_many = vec!["other".to_string()];
    with_many.extend(many);
    cases.push((with_many, "\"65 aliases\": at most 64 aliases per network"));
    for (args, why) in cases {
        let mut all = vec!["network", "connect", args[0].as_str(), b.id.as_str()];
        all.extend(args[1..].iter().map(String::as_str));
        let o = h.ocinet(&all);
        assert!(
            !o.status.success() && text(&o).contains(why),
            "{:?}: {}",
            &args[..args.len().min(3)],
            text(&o)
        );
        assert_eq!(networks_of(&h, &b.id), ["web"], "{args:?}");
    }
    assert!(h.leases("other").is_empty(), "{:?}", h.leases("other"));
    // A good alias still connects and answers.
    ok(h.ocinet(&["network", "connect", "other", &b.id, "--alias", "cache"]));
    assert_eq!(networks_of(&h, &b.id), ["web", "other"]);
    h.stop(&mut a);
    h.stop(&mut b);
    ocinet_integration::assert_clean(&h, &a.id);
    ocinet_integration::assert_clean(&h, &b.id);
}

/// A CONTAINER argument that is one container's id and another's name
/// matches both: refused naming each, nothing changed.
fn an_argument_matching_two_containers_is_refused(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dns_network(&h, "web", "10.64.0.0/24");
    dns_network(&h, "other", "10.65.0.0/24");
    let mut a = h.started(rt, "a", &Spec::default().ann("io.ocinet.network", "web"));
    let mut b = h.started(
        rt,
        "b",
        &Spec::default()
            .ann("io.ocinet.network", "web")
            .ann("io.ocinet.name", &a.id),
    );
    for args in [
        vec!["network", "connect", "other", a.id.as_str()],
        vec!["network", "disconnect", "web", a.id.as_str()],
    ] {
        let o = h.ocinet(&args);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?}: {t}");
        assert!(
            t.contains("is ambiguous")
                && t.contains(&format!("id {} name {}", a.id, a.id))
                && t.contains(&format!("id {} name {}", b.id, a.id)),
            "{args:?}: {t}"
        );
    }
    assert_eq!(networks_of(&h, &a.id), ["web"]);
    assert_eq!(networks_of(&h, &b.id), ["web"]);
    // Each one's own id that nobody has as a name still works.
    ok(h.ocinet(&["network", "connect", "other", &b.id]));
    assert_eq!(networks_of(&h, &b.id), ["web", "other"]);
    h.stop(&mut a);
    h.stop(&mut b);
}

/// An image without /etc on a DNS-enabled network: refused before
/// anything is set up, naming the root file system, and the image is not
/// written; with io.ocinet.dns=off it runs.
fn an_image_without_etc_is_refused_and_not_written(rt: Runtime) {
    let h = Host::new();
    h.outside();
    dns_network(&h, "web", "10.64.0.0/24");
    let image = h.state_dir().with_file_name("image-without-etc");
    ok(std::process::Command::new("cp")
        .arg("-a")
        .arg(ocinet_integration::rootfs::path())
        .arg(&image)
        .output()
        .expect("cp"));
    std::fs::remove_dir_all(image.join("etc")).expect("rm etc");
    let image_path = image.display().to_string();
    let spec = |extra: &[(&str, &str)]| {
        let p = image_path.clone();
        let mut s = Spec::default().ann("io.ocinet.network", "web");
        for (k, v) in extra {
            s = s.ann(k, v);
        }
        s.edit(move |c| c["root"]["path"] = serde_json::json!(p))
    };
    let c = h.start(rt, "noetc", &spec(&[]));
    assert!(c.exit.is_some_and(|s| !s.success()), "started without /etc");
    let l = log(&h);
    assert!(
        l.contains(&format!(
            "invalid config.json root.path {image_path:?}: has no /etc"
        )) && l.contains("io.ocinet.dns=off"),
        "{l}"
    );
    ocinet_integration::assert_clean(&h, &c.id);
    assert!(!image.join("etc").exists(), "the image was written");
    let mut off = h.started(rt, "off", &spec(&[("io.ocinet.dns", "off")]));
    assert_eq!(networks_of(&h, &off.id), ["web"]);
    h.stop(&mut off);
    ocinet_integration::assert_clean(&h, &off.id);
    assert!(!image.join("etc").exists(), "the image was written");
    let _ = std::fs::remove_dir_all(&image);
}

/// A CNI runtime's aliases (the convention's list, or podman's map of
/// network to list) meet the same rule, with the spec's code 7 naming the
/// key and value; a network without name resolution takes none.
#[test]
fn cni_aliases_that_cannot_answer_are_refused() {
    use ocinet_integration::cni::{self, Call, Pod};
    use serde_json::json;
    let h = Host::new();
    h.outside();
    let net = |extra: serde_json::Value| {
        let mut v = json!({"subnet": "10.90.0.0/24", "dnsUpstreams": [OUTSIDE_IP],
            "capabilities": {"aliases": true}});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        cni::single(&h, "1.0.0", "pods", v)
    };
    let pod = Pod::new(&h, "al");
    let call = Call::new("ADD", &pod.id, &pod.path(), "eth0");
    let many: Vec<String> = (0..65).map(|i| format!("a{i}")).collect();
    for (aliases, why) in [
        (json!(["x."]), "invalid runtimeConfig.aliases \"x.\""),
        (
            json!({"pods": ["db", "a..b"]}),
            "invalid runtimeConfig.aliases \"a..b\"",
        ),
        (json!(["localhost"]), "is reserved"),
        (json!(many), "\"65 aliases\": at most 64"),
    ] {
        let mut conf = net(json!({}));
        conf["runtimeConfig"] = json!({ "aliases": aliases });
        cni::exec(&h, "ocinet", &call, &conf).refused(7, why);
        assert!(h.endpoint(&pod.id).is_none(), "{why}: a record was left");
        ocinet_integration::assert_clean(&h, &pod.id);
    }
    let quiet = Pod::new(&h, "qu");
    let qcall = Call::new("ADD", &quiet.id, &quiet.path(), "eth0");
    let mut conf = cni::single(
        &h,
        "1.0.0",
        "quiet",
        json!({"subnet": "10.91.0.0/24", "disableDns": true, "capabilities": {"aliases": true}}),
    );
    conf["runtimeConfig"] = json!({"aliases": ["db"]});
    cni::exec(&h, "ocinet", &qcall, &conf).refused(7, "network quiet has no name resolution");
    ocinet_integration::assert_clean(&h, &quiet.id);
    // Good aliases are taken.
    let mut conf = net(json!({}));
    conf["runtimeConfig"] = json!({"aliases": ["db", "cache"]});
    cni::exec(&h, "ocinet", &call, &conf).ok();
    let att = h.endpoint(&pod.id).expect("record")["attachments"][0]["aliases"].clone();
    assert_eq!(att, json!(["db", "cache"]));
    cni::exec(&h, "ocinet", &call.command("DEL"), &conf).ok();
    ocinet_integration::assert_clean(&h, &pod.id);
}

ocinet_integration::both_runtimes!(
    names_that_cannot_answer_are_refused,
    an_argument_matching_two_containers_is_refused,
    an_image_without_etc_is_refused_and_not_written,
);
