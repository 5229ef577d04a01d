//! A query from a container, any bytes: the resolver's decision never
//! panics; a reply is a DNS message with the query's id (or, for a query
//! that does not parse, its header with FORMERR), a response, and over UDP
//! no longer than the client takes (512 bytes, or its EDNS payload, at
//! most 4,096), so a flood of junk gets nothing larger than it sent.
#![no_main]

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use ocinet_dns::answer::{decide, Decision};
use ocinet_dns::catalog::NetworkNames;

fn net() -> NetworkNames {
    let mut names = HashMap::new();
    let mut reverse = HashMap::new();
    // One name many containers share (an alias), to reach truncation.
    let shared: Vec<Ipv4Addr> = (2..=60).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
    for ip in &shared {
        reverse.insert(*ip, format!("c{}", ip.octets()[3]));
    }
    names.insert("shared".to_string(), shared);
    names.insert("web-1".to_string(), vec![Ipv4Addr::new(10, 1, 0, 2)]);
    // Dual-stack: AAAA and ip6.arpa names are reached too.
    let shared6: Vec<Ipv6Addr> = (2..=60u16)
        .map(|i| Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, i))
        .collect();
    let reverse6 = shared6
        .iter()
        .map(|ip| (*ip, format!("c{}", ip.segments()[7])))
        .collect();
    let mut names6 = HashMap::new();
    names6.insert("shared".to_string(), shared6);
    names6.insert("web-1".to_string(), vec![Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2)]);
    NetworkNames {
        name: "web".into(),
        address: Some(Ipv4Addr::new(10, 1, 0, 1)),
        subnet: Some("10.1.0.0/24".parse().expect("subnet")),
        address6: Some("fd00:1::1".parse().expect("address")),
        subnet6: Some("fd00:1::/64".parse().expect("subnet")),
        upstreams: Vec::new(),
        rate: 0,
        internal: false,
        members_only: false,
        names,
        reverse,
        names6,
        reverse6,
    }
}

fuzz_target!(|data: &[u8]| {
    let n = net();
    for (names, udp) in [(Some(&n), true), (Some(&n), false), (None, true)] {
        let Decision::Reply(bytes, _) = decide(data, names, udp) else {
            continue;
        };
        assert!(data.len() >= 12, "a reply to {} bytes", data.len());
        assert_eq!(bytes[..2], data[..2], "another id");
        assert!(bytes[2] & 0x80 != 0, "not a response");
        if udp {
            let most = Message::from_vec(data)
                .map_or(512, |m| usize::from(m.max_payload().clamp(512, 4096)));
            assert!(bytes.len() <= most, "{} bytes over UDP, {most} taken", bytes.len());
        }
        if bytes.len() > 12 {
            Message::from_vec(&bytes).unwrap_or_else(|e| panic!("reply does not parse: {e}"));
        }
    }
});
