//! `io.ocinet.ports` / `--publish`: any text either parses or is refused;
//! what parses prints back to text that parses to the same thing (ps and
//! error messages show it), and every mapping is a real port.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocinet_common::model::ports::parse_list;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(specs) = parse_list("io.ocinet.ports", text) else {
        return;
    };
    let printed: Vec<String> = specs.iter().map(ToString::to_string).collect();
    let again = parse_list("io.ocinet.ports", &printed.join(","))
        .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
    assert_eq!(specs, again);
    for m in specs.iter().flat_map(|s| s.mappings()) {
        assert!(m.host_port > 0 && m.container_port > 0, "{m:?}");
    }
});
