//! What the hook reads that someone else wrote or could have corrupted: the
//! OCI state on stdin and every kind of state file. Each is parsed or
//! refused with an error naming the file; nothing panics, and a parsed
//! record survives a save and a load.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ocinet_common::model::{Endpoint, Network};
use ocinet_common::store::fsutil::parse_json;
use ocinet_common::store::legacy::{Leases, PortIndex};

fn round_trips<T>(path: &Path, data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    match parse_json::<T>(path, data) {
        Ok(v) => {
            let saved = serde_json::to_vec(&v).expect("a loaded record saves");
            let loaded: T = parse_json(path, &saved).expect("a saved record loads");
            assert_eq!(v, loaded);
        }
        Err(e) => assert!(e.to_string().contains(&path.display().to_string()), "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = ocinet::oci::read_state(data) {
        ocinet_common::validate::container_id("id", &st.id).expect("an accepted id is valid");
        assert!(st.pid.is_none_or(|p| p > 0));
    }
    round_trips::<Leases>(Path::new("/run/ocinet/ipam/n.json"), data);
    round_trips::<PortIndex>(Path::new("/run/ocinet/ports.json"), data);
    round_trips::<Endpoint>(Path::new("/run/ocinet/endpoints/c.json"), data);
    round_trips::<Network>(Path::new("/etc/ocinet/networks/n.json"), data);
    if let Ok(n) = parse_json::<Network>(Path::new("/etc/ocinet/networks/n.json"), data) {
        // Loading a network validates it (its values reach netlink and nft).
        let _ = n.validate();
    }
});
