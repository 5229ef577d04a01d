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
