//! Validation of every string that can come from a user (annotations, hook
//! args, CLI) before it reaches a path, an interface name or the kernel.

use crate::{Error, Result};

/// Linux IFNAMSIZ is 16 including the terminating NUL.
pub const IFNAMSIZ_MAX: usize = 15;
pub const MAX_CONTAINER_ID: usize = 128;
pub const MAX_NAME: usize = 63;

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Container ids end up in file names and in /run/netns entries: runc's own
/// rule (`^[\w+\-.]+$`) minus `+`, and never `.` or `..`.
pub fn container_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, id, "must not be empty"));
    }
    if id.len() > MAX_CONTAINER_ID {
        return Err(Error::invalid(
            field,
            id,
            format!("longer than {MAX_CONTAINER_ID} characters"),
        ));
    }
    if id == "." || id == ".." || id.starts_with('.') {
        return Err(Error::invalid(field, id, "must not start with '.'"));
    }
    if !id.chars().all(is_word_char) {
        return Err(Error::invalid(
            field,
            id,
            "only letters, digits, '_', '.' and '-' are allowed",
        ));
    }
    Ok(())
}

/// Network names and container names: file names and metric label values.
pub fn name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(Error::invalid(
            field,
            value,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    let first = value.chars().next().unwrap_or('-');
    if !first.is_ascii_alphanumeric() {
        return Err(Error::invalid(
            field,
            value,
            "must start with a letter or digit",
        ));
    }
    if !value.chars().all(is_word_char) {
        return Err(Error::invalid(
            field,
            value,
            "only letters, digits, '_', '.' and '-' are allowed",
        ));
    }
    Ok(())
}

/// The most aliases one attachment takes: each is a name the resolver
/// keeps in memory and matches queries against; a container that needs
/// more than this is better served by a DNS zone of its own.
pub const MAX_ALIASES: usize = 64;
/// RFC 1035: 255 octets on the wire, 253 characters written out.
pub const MAX_DNS_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Names the resolver keeps for itself, or that no resolver asks it for:
/// `localhost` and names under it (RFC 6761: answered by the client's own
/// stub), and `arpa` with everything under it (`in-addr.arpa`, the reverse
/// names the resolver answers from the network's addresses, and
/// `ip6.arpa`).
fn reserved(value: &str) -> Option<&'static str> {
    let v = value.to_ascii_lowercase();
    if v == "localhost" || v.ends_with(".localhost") {
        return Some(
            "localhost and the names under it are the container's own loopback (RFC 6761)",
        );
    }
    if v == "arpa" || v.ends_with(".arpa") {
        return Some(
            "names under arpa (in-addr.arpa, ip6.arpa) are the reverse names the resolver answers itself",
        );
    }
    None
}

/// Whether the C libraries (glibc, musl) take `value` for an IPv4 address
/// and never ask DNS for it: what inet_aton(3) accepts, one to four
/// numbers, each decimal, octal (leading 0) or hex (0x), the last filling
/// the bytes left (`10.1.0.2`, `10.258`, `123`, `0x1f`). A 12-digit short
/// id overflows and is a name.
fn looks_like_address(value: &str) -> bool {
    let number = |p: &str| -> Option<u64> {
        let p = p.to_ascii_lowercase();
        let (digits, radix) = match p.strip_prefix("0x") {
            Some(h) => (h.to_string(), 16),
            None if p.len() > 1 && p.starts_with('0') => (p[1..].to_string(), 8),
            None => (p.clone(), 10),
        };
        // inet_aton takes a bare "0x" as 0.
        if digits.is_empty() {
            return (radix == 16).then_some(0);
        }
        if digits.len() > 12 {
            return None;
        }
        u64::from_str_radix(&digits, radix).ok()
    };
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() > 4 {
        return false;
    }
    let Some(values) = parts
        .iter()
        .map(|p| number(p))
        .collect::<Option<Vec<u64>>>()
    else {
        return false;
    };
    let (last, head) = values.split_last().unwrap_or((&0, &[]));
    head.iter().all(|v| *v <= 255) && *last < 1u64 << (8 * (4 - head.len()))
}

/// The rules every name the resolver answers must meet, whatever its
/// characters: dots separate labels, none empty (no `a..b`, no trailing
/// or leading dot), each at most 63 characters, not an address, not
/// reserved.
fn answerable(field: &str, value: &str) -> Result<()> {
    if value.ends_with('.') {
        return Err(Error::invalid(
            field,
            value,
            "must not end with '.': names are matched without the root's dot",
        ));
    }
    if value.split('.').any(str::is_empty) {
        return Err(Error::invalid(
            field,
            value,
            "has an empty label: dots separate labels of 1 to 63 characters",
        ));
    }
    if let Some(l) = value.split('.').find(|l| l.len() > MAX_LABEL) {
        return Err(Error::invalid(
            field,
            value,
            format!("label {l:?} is longer than {MAX_LABEL} characters"),
        ));
    }
    if looks_like_address(value) {
        return Err(Error::invalid(
            field,
            value,
            "reads as an IPv4 address: resolvers do not ask DNS for it",
        ));
    }
    if let Some(why) = reserved(value) {
        return Err(Error::invalid(field, value, format!("is reserved: {why}")));
    }
    Ok(())
}

/// Whether the resolver can be asked for `value` at all (see
/// `answerable`): names that cannot (a container named after an id like
/// `a..b`, or one written by an earlier version) are not served.
pub fn resolvable(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_DNS_NAME && answerable("name", value).is_ok()
}

/// A name that is asked for only to answer in DNS (an alias): a host name
/// (RFC 1123) with '_' besides, as container names have it and Docker
/// takes it in aliases (`my_db` of a compose file): labels of letters,
/// digits, '_' and '-', not starting or ending with '-', 1 to 63
/// characters each, at most 253 in all, separated by
/// single dots, no trailing dot; not an address, not a name the resolver
/// keeps for itself.
pub fn dns_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, value, "must not be empty"));
    }
    if value.len() > MAX_DNS_NAME {
        return Err(Error::invalid(
            field,
            value,
            format!("longer than {MAX_DNS_NAME} characters"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(Error::invalid(
            field,
            value,
            format!("{c:?} is not allowed: a DNS name is labels of letters, digits, '_' and '-', separated by '.'"),
        ));
    }
    answerable(field, value)?;
    if let Some(l) = value
        .split('.')
        .find(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return Err(Error::invalid(
            field,
            value,
            format!("label {l:?} starts or ends with '-'"),
        ));
    }
    Ok(())
}

/// A container's ocinet name (`io.ocinet.name`, `--name`, a CNI
/// runtime's `K8S_POD_NAME`): the characters Docker takes for a container
/// name (`name`: letters, digits, '_', '.', '-', 63 at most, so `web_1`
/// stays valid and answers as it is), and, as it answers in DNS, what every
/// answerable name meets (`answerable`). A name derived from a runtime's
/// container id is not checked here: ids are the runtime's, and one that
/// cannot answer is simply not a name the resolver knows.
pub fn container_name(field: &str, value: &str) -> Result<()> {
    name(field, value)?;
    answerable(field, value)
}

/// A container's aliases on one attachment: each a `dns_name`, each once
/// (case does not count, as in DNS), at most `MAX_ALIASES`, and, where the
/// front end knows the container's own name (`own`), not that.
pub fn aliases(field: &str, list: &[String], own: Option<&str>) -> Result<()> {
    if list.len() > MAX_ALIASES {
        return Err(Error::invalid(
            field,
            format!("{} aliases", list.len()),
            format!("at most {MAX_ALIASES} aliases per network"),
        ));
    }
    for (i, a) in list.iter().enumerate() {
        dns_name(field, a)?;
        if own.is_some_and(|n| a.eq_ignore_ascii_case(n)) {
            return Err(Error::invalid(
                field,
                a,
                "is the container's own name, which answers already",
            ));
        }
        if list[..i].iter().any(|o| o.eq_ignore_ascii_case(a)) {
            return Err(Error::invalid(field, a, "is given twice"));
        }
    }
    Ok(())
}

pub fn ifname(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > IFNAMSIZ_MAX {
        return Err(Error::invalid(
            field,
            value,
            format!("interface names are 1 to {IFNAMSIZ_MAX} characters"),
        ));
    }
    if value == "." || value == ".." {
        return Err(Error::invalid(field, value, "not a valid interface name"));
    }
    // /proc/sys/net/ipv{4,6}/conf/{all,default} are the kernel's own: an
    // interface of either name would have no sysctls of its own.
    if value == "all" || value == "default" {
        return Err(Error::invalid(
            field,
            value,
            "reserved by the kernel (net.ipv4.conf.all and .default are not interfaces)",
        ));
    }
    if !value.chars().all(is_word_char) {
        return Err(Error::invalid(
            field,
            value,
            "only letters, digits, '_', '.' and '-' are allowed",
        ));
    }
    Ok(())
}

/// Whether `ip` can be a server to send queries to: not 0.0.0.0, the
/// broadcast address or a multicast group.
pub fn is_unicast(ip: std::net::Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

/// `is_unicast` for either family (an IPv6 one neither unspecified nor
/// multicast).
pub fn is_unicast_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => is_unicast(v4),
        std::net::IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Why `ip` cannot be a container's own DNS server (`io.ocinet.dns`, CNI's
/// `dns.servers`), or `None` when it can. The resolver forwards for the
/// container from the host's namespace: an address only the host reaches
/// (loopback, link-local, or an IPv4-mapped IPv6 one, which a socket sends
/// to as the IPv4 address it maps) would let the container ask through
/// it what it could not ask itself.
pub fn container_dns_server(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    if !is_unicast_ip(ip) {
        return Some("is not a unicast address");
    }
    let hosts_own = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    };
    if hosts_own {
        return Some(
            "is the host's own (loopback or link-local): the resolver would query it for the container",
        );
    }
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            Some("is an IPv4-mapped address: write the IPv4 address")
        }
        _ => None,
    }
}

/// A unicast, non-zero Ethernet address written as six colon-separated bytes.
pub fn mac(field: &str, value: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return Err(Error::invalid(
            field,
            value,
            "expected six bytes like 02:42:ac:11:00:02",
        ));
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| Error::invalid(field, value, format!("{p:?} is not a hex byte")))?;
    }
    if mac[0] & 1 == 1 {
        return Err(Error::invalid(
            field,
            value,
            "multicast addresses cannot be assigned",
        ));
    }
    if mac == [0; 6] {
        return Err(Error::invalid(
            field,
            value,
            "the all-zero address cannot be assigned",
        ));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// FNV-1a: a stable hash for deriving interface names and MACs. Stability
/// across builds matters (names must be recomputable after an upgrade), which
/// rules out std's `DefaultHasher`.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["c1", "abc-DEF_0.9", &"a".repeat(128)] {
            container_id("id", ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            "a\nb",
            &"a".repeat(129),
            "é",
        ] {
            let e = container_id("id", bad).unwrap_err().to_string();
            assert!(e.contains("invalid id"), "{e}");
        }
    }

    #[test]
    fn names() {
        name("n", "web-1").unwrap();
        for bad in ["", "-x", "a\u{7}", "a/b", &"x".repeat(64)] {
            assert!(name("n", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dns_names() {
        let long = "a.".repeat(128);
        let long = long.trim_end_matches('.').to_string();
        for ok in [
            "db",
            "web-1",
            "DB.Example",
            "a1",
            "1a",
            "x.y-z.example",
            "my_db",
            "a.0x1g",
            "host.123",
            "123456789012",
            "4294967296",
            "1.2.3.4.5",
            "08",
            "1.256.0.1",
            &"a".repeat(63),
            &["a".repeat(63).as_str(); 4].join(".")[..253],
        ] {
            dns_name("alias", ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for (bad, why) in [
            ("", "empty"),
            ("x.", "must not end with '.'"),
            ("nm.", "must not end with '.'"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a:b", "':' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("a b", "' ' is not allowed"),
            ("é", "is not allowed"),
            ("-a", "starts or ends with '-'"),
            ("a.b-", "starts or ends with '-'"),
            (&"a".repeat(64), "longer than 63"),
            (long.as_str(), "longer than 253"),
            ("localhost", "reserved"),
            ("LocalHost", "reserved"),
            ("db.localhost", "reserved"),
            ("2.0.1.10.in-addr.arpa", "reserved"),
            ("x.ip6.arpa", "reserved"),
            ("arpa", "reserved"),
            ("10.1.0.2", "IPv4 address"),
            ("123", "IPv4 address"),
            ("0x1f", "IPv4 address"),
            ("10.0x1.2", "IPv4 address"),
            ("10.258", "IPv4 address"),
            ("4294967295", "IPv4 address"),
            ("017.0.0.1", "IPv4 address"),
        ] {
            let e = dns_name("alias", bad).unwrap_err().to_string();
            assert!(
                e.contains("invalid alias") && e.contains(why),
                "{bad:?}: {e}"
            );
            if !bad.is_empty() && bad.len() < 100 {
                assert!(e.contains(&format!("{bad:?}")), "{bad:?} not named: {e}");
            }
        }
    }

    #[test]
    fn container_names_keep_dockers_characters_and_must_answer() {
        for ok in ["web_1", "web-1", "a.b", "proj_web_1", "c1", "web-"] {
            container_name("io.ocinet.name", ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "nm.",
            "a..b",
            "localhost",
            "x.localhost",
            "1.2.3.4",
            "-x",
            "a/b",
            "",
        ] {
            let e = container_name("io.ocinet.name", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("io.ocinet.name"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn alias_lists() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        aliases("--alias", &list(&["db", "cache"]), Some("web")).unwrap();
        aliases("--alias", &[], Some("web")).unwrap();
        let e = aliases("--alias", &list(&["db", "DB"]), Some("web"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"DB\"") && e.contains("twice"), "{e}");
        let e = aliases("--alias", &list(&["Web"]), Some("web"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("own name"), "{e}");
        let many: Vec<String> = (0..65).map(|i| format!("a{i}")).collect();
        aliases("--alias", &many[..64], Some("web")).unwrap();
        let e = aliases("--alias", &many, Some("web"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("65 aliases") && e.contains("at most 64"), "{e}");
        let e = aliases("--alias", &list(&["db", "x."]), Some("web"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid --alias \"x.\""), "{e}");
    }

    #[test]
    fn ifnames() {
        ifname("bridge", "ocinet0").unwrap();
        ifname("bridge", "a23456789012345").unwrap();
        for bad in [
            "",
            "a234567890123456",
            ".",
            "..",
            "br 0",
            "br\t0",
            "br/0",
            "br:0",
            "all",
            "default",
        ] {
            assert!(ifname("bridge", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            mac("m", "02:42:AC:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        for bad in [
            "",
            "02:42:ac:11:00",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "zz:42:ac:11:00:02",
            "0242ac110002",
            "02:42:ac:11:00:002",
        ] {
            let e = mac("io.ocinet.mac", bad).unwrap_err().to_string();
            assert!(e.contains("io.ocinet.mac"), "{e}");
        }
        assert_eq!(
            format_mac(&[2, 0x42, 0xac, 0x11, 0, 2]),
            "02:42:ac:11:00:02"
        );
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
