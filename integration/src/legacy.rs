//! State in the layout ocinet 0.1.0 wrote (`fixtures/endpoint-v0.1.0.json`
//! is one such record, written by that release): for the tests of a host
//! upgraded with containers running. The one place the harness knows the
//! record's file layout, as the upgrade it stands for does.

use serde_json::{json, Value};

use crate::Host;

impl Host {
    fn record_path(&self, id: &str) -> std::path::PathBuf {
        self.state_dir()
            .join("endpoints")
            .join(format!("{id}.json"))
    }

    /// Replace the record of the running container `id` by the one 0.1.0
    /// would have written for it: its one network's fields flat on the
    /// record and the nftables elements it added listed. Only what 0.1.0
    /// could do: one network, single ports on every host address.
    pub fn rewrite_record_as_0_1_0(&self, id: &str) {
        let path = self.record_path(id);
        let new: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("record")).expect("record is JSON");
        let atts = new["attachments"].as_array().cloned().unwrap_or_default();
        assert_eq!(atts.len(), 1, "0.1.0 had one network per container: {new}");
        let a = &atts[0];
        let address = a["addresses"][0].as_str().expect("an address");
        let (ip, prefix) = address.split_once('/').expect("address/prefix");
        let veth = a["host_veth"].as_str().expect("a veth");
        let mac = a["mac"].as_str().expect("a MAC");
        let bridge = a["bridge"].as_str().expect("a bridge");
        let mut firewall = vec![
            json!({"set": "guarded_ports", "key": veth}),
            json!({"set": "port_mac", "key": {"concat": [veth, mac]}}),
            json!({"set": "port_ip", "key": {"concat": [veth, ip]}}),
            json!({"set": "mac_owner", "key": {"concat": [bridge, mac]}, "value": veth}),
        ];
        let ports = a["ports"].as_array().cloned().unwrap_or_default();
        for p in &ports {
            assert!(
                p["count"] == 1 && p.get("host_ip").is_none(),
                "the helper writes single ports on every address only: {p}"
            );
            let key = json!({"concat": [p["protocol"], p["host_port"]]});
            firewall.push(json!({"set": "pub_any_addr", "key": key, "value": ip}));
            firewall.push(json!({"set": "pub_any_port", "key": key, "value": p["container_port"]}));
        }
        let mut old = json!({
            "id": new["id"], "name": new["name"], "mode": new["mode"], "phase": new["phase"],
            "ip": ip, "prefix_len": prefix.parse::<u8>().expect("prefix"),
            "mac": mac, "bridge": bridge, "host_veth": veth, "interface": a["interface"],
            "netns_link": new["netns_link"], "ports": ports, "firewall": firewall,
            "created": new["created"],
        });
        for k in ["container", "netns_id", "hook"] {
            if let Some(v) = new.get(k) {
                old[k] = v.clone();
            }
        }
        if let Some(g) = a.get("gateway") {
            old["gateway"] = g.clone();
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&old).expect("json")).expect("write");
        // The converted layout is marked done once; an upgrade starts
        // without the mark.
        let _ = std::fs::remove_file(self.state_dir().join("endpoints/.layout-attachments"));
    }

    /// The record of `id` with `edit` applied, in whatever layout it is.
    pub fn edit_record(&self, id: &str, edit: impl FnOnce(&mut Value)) {
        let path = self.record_path(id);
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("record")).expect("record is JSON");
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("write");
    }

    /// Whether the record of `id` is in 0.1.0's layout.
    pub fn record_is_0_1_0(&self, id: &str) -> bool {
        let v: Value = std::fs::read(self.record_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        v.get("host_veth").is_some() && v.get("attachments").is_none()
    }
}
