//! A container's annotations, as `KEY=VALUE` lines (keys without a dot get
//! the `io.ocinet.` prefix, so most inputs reach the value parsers): either
//! refused or resolved to settings that are safe to turn into paths,
//! interface names and netlink values.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use ocinet::cli::ContainerDefaults;
use ocinet::settings;
use ocinet_common::model::Mode;
use ocinet_common::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let annotations: HashMap<String, String> = text
        .split('\n')
        .map(|line| {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            let k = if k.contains('.') {
                k.to_string()
            } else {
                format!("io.ocinet.{k}")
            };
            (k, v.to_string())
        })
        .collect();
    let Ok(s) = settings::resolve("fuzz", &annotations, &ContainerDefaults::default()) else {
        return;
    };
    validate::name("name", &s.name).expect("a resolved name is a valid name");
    match &s.mode {
        Mode::Networks(nets) => {
            assert_eq!(nets.len(), s.attachments.len());
            for n in nets {
                validate::name("network", n).expect("a resolved network name is valid");
            }
        }
        Mode::Container(id) => {
            validate::container_id("container", id).expect("a resolved container id is valid")
        }
        Mode::None | Mode::Host => {}
    }
    for a in &s.attachments {
        if let Some(mac) = a.mac {
            assert_eq!(mac[0] & 1, 0, "multicast MAC accepted: {mac:02x?}");
            assert_ne!(mac, [0; 6], "zero MAC accepted");
        }
    }
});
