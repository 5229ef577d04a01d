//! What another host wrote into the cluster store (etcd): every kind of
//! value is read as the agent and the hook read it, and either refused
//! with an error naming its key or accepted as a value that keeps to its
//! key (its node, its network, its addresses inside the subnet) and
//! survives being written back and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocinet_cluster::values::{self, Block, Container, Member, NetworkValue, Node};

fuzz_target!(|data: &[u8]| {
    let refused = |e: ocinet_common::Error, key: &str| {
        assert!(e.to_string().contains(key), "{e}");
    };
    let key = "/ocinet/v1/members/h2";
    match Member::read(key, "h2", data) {
        Ok(m) => {
            assert_eq!(m.node, "h2");
            assert_eq!(Member::read(key, "h2", &values::encode(&m)).ok(), Some(m));
        }
        Err(e) => refused(e, key),
    }
    let key = "/ocinet/v1/nodes/h2";
    match Node::read(key, "h2", data) {
        Ok(n) => assert_eq!(Node::read(key, "h2", &values::encode(&n)).ok(), Some(n)),
        Err(e) => refused(e, key),
    }
    let key = "/ocinet/v1/blocks/ov/10.77.1.0-24";
    match Block::read(key, data) {
        Ok(b) => {
            assert!(!b.advertise.is_loopback() && !b.advertise.is_unspecified());
            assert_eq!(Block::read(key, &values::encode(&b)).ok(), Some(b));
        }
        Err(e) => refused(e, key),
    }
    let key = "/ocinet/v1/networks/ov";
    match NetworkValue::read(key, "ov", data) {
        Ok(n) => {
            assert_eq!(n.name, "ov");
            assert!(n.overlay().is_some());
        }
        Err(e) => refused(e, key),
    }
    let key = "/ocinet/v1/containers/ov/h2/abc";
    let subnet = "10.77.0.0/16".parse().expect("subnet");
    match Container::read(key, "h2", "abc", subnet, data) {
        Ok(c) => {
            assert!(c.addresses.iter().all(|a| match a {
                std::net::IpAddr::V4(v4) => subnet.contains(v4),
                _ => false,
            }));
            assert_eq!(Container::read(key, "h2", "abc", subnet, &values::encode(&c)).ok(), Some(c));
        }
        Err(e) => refused(e, key),
    }
});
