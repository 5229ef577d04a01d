//! Overlay networks across simulated hosts (issue 23): three network
//! namespaces on an underlay bridge with a real etcd, containers under
//! runc and crun on different hosts.

use std::time::Duration;

use ocinet_integration::cluster::Cluster;
use ocinet_integration::{ok, text, Runtime, Spec};

fn ip_of(h: &ocinet_integration::Host, id: &str, net: &str) -> String {
    let ep = h.endpoint(id).unwrap_or_else(|| panic!("{id} not in ps"));
    ep["attachments"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["network"] == net))
        .and_then(|a| a["ip"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no address on {net}: {ep}"))
}

#[test]
fn containers_on_two_hosts_reach_each_other_by_address_and_name() {
    let c = Cluster::joined(2);
    let (h1, h2) = (&c.hosts[0], &c.hosts[1]);
    ok(h1.ocinet(&[
        "network",
        "create",
        "ov",
        "--driver",
        "overlay",
        "--subnet",
        "10.77.0.0/16",
    ]));
    let ls = ok(h2.ocinet(&["network", "ls"]));
    assert!(
        ls.lines()
            .any(|l| l.starts_with("ov ") && l.contains("overlay") && l.contains("global")),
        "{ls}"
    );
    let a = h1.started(Runtime::Runc, "a", &Spec::on("ov", "alpha"));
    let b = h2.started(
        Runtime::Crun,
        "b",
        &Spec::on("ov", "beta").ann("io.ocinet.aliases", "db"),
    );
    let (ipa, ipb) = (ip_of(h1, &a.id, "ov"), ip_of(h2, &b.id, "ov"));
    assert_ne!(
        ipa.split('.').nth(2),
        ipb.split('.').nth(2),
        "each host leases its own block: {ipa} {ipb}"
    );
    let ping = |h: &ocinet_integration::Host, id: &str, ip: &str| {
        Cluster::eventually(Duration::from_secs(5), || {
            h.in_container(id, &["ping", "-c1", "-W1", ip])
                .status
                .success()
        })
    };
    assert!(
        ping(h1, &a.id, &ipb),
        "alpha on h1 does not reach beta {ipb} on h2"
    );
    assert!(
        ping(h2, &b.id, &ipa),
        "beta on h2 does not reach alpha {ipa} on h1"
    );
    // By name, alias and short id, through each host's resolver.
    for name in ["beta", "db", &b.id[..12]] {
        let ok_name = Cluster::eventually(Duration::from_secs(5), || {
            text(&h1.in_container_fs(&a.id, &["nslookup", name])).contains(&ipb)
        });
        assert!(
            ok_name,
            "{name} does not resolve to {ipb} on h1: {}",
            text(&h1.in_container_fs(&a.id, &["nslookup", name]))
        );
    }
    let members = c.members(0);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members
            .iter()
            .all(|m| m["state"] == "up" && m["containers"] == 1),
        "{members:?}"
    );
}
