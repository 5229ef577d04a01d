//! Docker Engine API v1.52 (Docker 29) shapes for `ocinet network inspect`
//! and `ocinet inspect`, so scripts and Go clients written against
//! `docker network inspect` / `docker inspect` read ocinet's output.
//!
//! The field names are Docker's own, spelled as on the wire (hence the
//! non-snake-case fields): a rename table beside them would be one more
//! place for a name to drift. Where the structs of moby's `api/types`
//! (tag docker-v29.0.0) have `omitempty`, the field is skipped when empty
//! here too; every other field is always printed, with Docker's zero value
//! when ocinet has nothing for it (a Go client then decodes every field it
//! expects; `jq` finds every key a Docker script reads). ocinet's own
//! fields ride along in `ocinet` maps, flattened next to Docker's: both
//! Go's decoder and `jq` pass over keys they do not know.
#![allow(non_snake_case)]

use std::collections::BTreeMap;
use std::io::Write;

use ocinet_common::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};

/// The extra keys ocinet adds beside Docker's.
pub type Extras = Map<String, Value>;

/// What Go's `time.Time{}` prints: a timestamp ocinet does not know.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

// ---- docker network inspect ----

/// One element of `docker network inspect`'s array (`network.Inspect`).
#[derive(Debug, Serialize)]
pub struct NetworkInspect {
    pub Name: String,
    pub Id: String,
    pub Created: String,
    pub Scope: String,
    pub Driver: String,
    pub EnableIPv4: bool,
    pub EnableIPv6: bool,
    pub IPAM: Ipam,
    pub Internal: bool,
    pub Attachable: bool,
    pub Ingress: bool,
    pub ConfigFrom: ConfigReference,
    pub ConfigOnly: bool,
    pub Options: BTreeMap<String, String>,
    pub Labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Peers: Option<Vec<PeerInfo>>,
    pub Containers: BTreeMap<String, EndpointResource>,
    pub Status: NetworkStatus,
    #[serde(flatten)]
    pub ocinet: Extras,
}

#[derive(Debug, Serialize)]
pub struct Ipam {
    pub Driver: String,
    pub Options: BTreeMap<String, String>,
    pub Config: Vec<IpamConfig>,
}

#[derive(Debug, Serialize)]
pub struct IpamConfig {
    pub Subnet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IPRange: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Gateway: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub AuxiliaryAddresses: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize)]
pub struct ConfigReference {
    pub Network: String,
}

#[derive(Debug, Serialize)]
pub struct PeerInfo {
    pub Name: String,
    pub IP: String,
}

/// A container's side of a network, in `Containers` (keyed by its id).
#[derive(Debug, Serialize)]
pub struct EndpointResource {
    pub Name: String,
    pub EndpointID: String,
    pub MacAddress: String,
    /// Address with prefix length; "" when the container has none of the
    /// family (what Go's zero `netip.Prefix` prints).
    pub IPv4Address: String,
    pub IPv6Address: String,
    #[serde(flatten)]
    pub ocinet: Extras,
}

#[derive(Debug, Serialize)]
pub struct NetworkStatus {
    pub IPAM: IpamStatus,
}

#[derive(Debug, Serialize)]
pub struct IpamStatus {
    /// Keyed by subnet.
    pub Subnets: BTreeMap<String, SubnetStatus>,
}

#[derive(Debug, Serialize)]
pub struct SubnetStatus {
    /// Addresses of the subnet in use or reserved (network address,
    /// broadcast, gateway, auxiliary addresses, leases).
    pub IPsInUse: u64,
    /// Addresses of the range still to hand out.
    pub DynamicIPsAvailable: u64,
}

// ---- docker inspect (a container) ----

/// One element of `docker inspect CONTAINER`'s array
/// (`container.InspectResponse`).
#[derive(Debug, Serialize)]
pub struct ContainerInspect {
    pub Id: String,
    pub Created: String,
    pub Path: String,
    pub Args: Vec<String>,
    pub State: State,
    pub Image: String,
    pub ResolvConfPath: String,
    pub HostnamePath: String,
    pub HostsPath: String,
    pub LogPath: String,
    /// "/" and the name, as Docker writes it.
    pub Name: String,
    pub RestartCount: i64,
    pub Driver: String,
    pub Platform: String,
    pub MountLabel: String,
    pub ProcessLabel: String,
    pub AppArmorProfile: String,
    pub ExecIDs: Option<Vec<String>>,
    pub HostConfig: HostConfig,
    pub Mounts: Vec<Value>,
    pub Config: Config,
    pub NetworkSettings: NetworkSettings,
}

#[derive(Debug, Serialize)]
pub struct State {
    pub Status: String,
    pub Running: bool,
    pub Paused: bool,
    pub Restarting: bool,
    pub OOMKilled: bool,
    pub Dead: bool,
    pub Pid: i64,
    pub ExitCode: i64,
    pub Error: String,
    pub StartedAt: String,
    pub FinishedAt: String,
}

#[derive(Debug, Serialize)]
pub struct NetworkSettings {
    pub SandboxID: String,
    pub SandboxKey: String,
    pub Ports: PortMap,
    pub Networks: BTreeMap<String, EndpointSettings>,
}

/// "80/tcp" → its host bindings.
pub type PortMap = BTreeMap<String, Vec<PortBinding>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortBinding {
    pub HostIp: String,
    pub HostPort: String,
}

/// A container's side of one network (`network.EndpointSettings`).
#[derive(Debug, Serialize)]
pub struct EndpointSettings {
    pub IPAMConfig: Option<EndpointIpamConfig>,
    pub Links: Option<Vec<String>>,
    pub Aliases: Option<Vec<String>>,
    pub DriverOpts: Option<BTreeMap<String, String>>,
    pub GwPriority: i64,
    pub NetworkID: String,
    pub EndpointID: String,
    pub Gateway: String,
    pub IPAddress: String,
    pub MacAddress: String,
    pub IPPrefixLen: u8,
    pub IPv6Gateway: String,
    pub GlobalIPv6Address: String,
    pub GlobalIPv6PrefixLen: u8,
    pub DNSNames: Option<Vec<String>>,
    #[serde(flatten)]
    pub ocinet: Extras,
}

#[derive(Debug, Serialize)]
pub struct EndpointIpamConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IPv4Address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IPv6Address: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LogConfig {
    pub Type: String,
    pub Config: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct RestartPolicy {
    pub Name: String,
    pub MaximumRetryCount: i64,
}

/// `container.HostConfig`, resources included (Go embeds them). ocinet
/// fills the network's part; the rest is Docker's zero.
#[derive(Debug, Serialize)]
pub struct HostConfig {
    pub Binds: Option<Vec<String>>,
    pub ContainerIDFile: String,
    pub LogConfig: LogConfig,
    pub NetworkMode: String,
    pub PortBindings: PortMap,
    pub RestartPolicy: RestartPolicy,
    pub AutoRemove: bool,
    pub VolumeDriver: String,
    pub VolumesFrom: Option<Vec<String>>,
    pub ConsoleSize: [u32; 2],
    pub CapAdd: Option<Vec<String>>,
    pub CapDrop: Option<Vec<String>>,
    pub CgroupnsMode: String,
    pub Dns: Vec<String>,
    pub DnsOptions: Vec<String>,
    pub DnsSearch: Vec<String>,
    pub ExtraHosts: Option<Vec<String>>,
    pub GroupAdd: Option<Vec<String>>,
    pub IpcMode: String,
    pub Cgroup: String,
    pub Links: Option<Vec<String>>,
    pub OomScoreAdj: i64,
    pub PidMode: String,
    pub Privileged: bool,
    pub PublishAllPorts: bool,
    pub ReadonlyRootfs: bool,
    pub SecurityOpt: Option<Vec<String>>,
    pub UTSMode: String,
    pub UsernsMode: String,
    pub ShmSize: i64,
    pub Isolation: String,
    pub CpuShares: i64,
    pub Memory: i64,
    pub NanoCpus: i64,
    pub CgroupParent: String,
    pub BlkioWeight: u16,
    pub BlkioWeightDevice: Vec<Value>,
    pub BlkioDeviceReadBps: Vec<Value>,
    pub BlkioDeviceWriteBps: Vec<Value>,
    pub BlkioDeviceReadIOps: Vec<Value>,
    pub BlkioDeviceWriteIOps: Vec<Value>,
    pub CpuPeriod: i64,
    pub CpuQuota: i64,
    pub CpuRealtimePeriod: i64,
    pub CpuRealtimeRuntime: i64,
    pub CpusetCpus: String,
    pub CpusetMems: String,
    pub Devices: Vec<Value>,
    pub DeviceCgroupRules: Option<Vec<String>>,
    pub DeviceRequests: Option<Vec<Value>>,
    pub MemoryReservation: i64,
    pub MemorySwap: i64,
    pub MemorySwappiness: Option<i64>,
    pub OomKillDisable: Option<bool>,
    pub PidsLimit: Option<i64>,
    pub Ulimits: Vec<Value>,
    pub CpuCount: i64,
    pub CpuPercent: i64,
    pub IOMaximumIOps: u64,
    pub IOMaximumBandwidth: u64,
    pub MaskedPaths: Option<Vec<String>>,
    pub ReadonlyPaths: Option<Vec<String>>,
}

impl HostConfig {
    /// Docker's zero, with the network mode, published ports and DNS
    /// servers given.
    pub fn with_network(network_mode: String, ports: PortMap, dns: Vec<String>) -> Self {
        HostConfig {
            Binds: None,
            ContainerIDFile: String::new(),
            LogConfig: LogConfig {
                Type: String::new(),
                Config: BTreeMap::new(),
            },
            NetworkMode: network_mode,
            PortBindings: ports,
            RestartPolicy: RestartPolicy {
                Name: "no".into(),
                MaximumRetryCount: 0,
            },
            AutoRemove: false,
            VolumeDriver: String::new(),
            VolumesFrom: None,
            ConsoleSize: [0, 0],
            CapAdd: None,
            CapDrop: None,
            CgroupnsMode: String::new(),
            Dns: dns,
            DnsOptions: Vec::new(),
            DnsSearch: Vec::new(),
            ExtraHosts: None,
            GroupAdd: None,
            IpcMode: String::new(),
            Cgroup: String::new(),
            Links: None,
            OomScoreAdj: 0,
            PidMode: String::new(),
            Privileged: false,
            PublishAllPorts: false,
            ReadonlyRootfs: false,
            SecurityOpt: None,
            UTSMode: String::new(),
            UsernsMode: String::new(),
            ShmSize: 0,
            Isolation: String::new(),
            CpuShares: 0,
            Memory: 0,
            NanoCpus: 0,
            CgroupParent: String::new(),
            BlkioWeight: 0,
            BlkioWeightDevice: Vec::new(),
            BlkioDeviceReadBps: Vec::new(),
            BlkioDeviceWriteBps: Vec::new(),
            BlkioDeviceReadIOps: Vec::new(),
            BlkioDeviceWriteIOps: Vec::new(),
            CpuPeriod: 0,
            CpuQuota: 0,
            CpuRealtimePeriod: 0,
            CpuRealtimeRuntime: 0,
            CpusetCpus: String::new(),
            CpusetMems: String::new(),
            Devices: Vec::new(),
            DeviceCgroupRules: None,
            DeviceRequests: None,
            MemoryReservation: 0,
            MemorySwap: 0,
            MemorySwappiness: None,
            OomKillDisable: None,
            PidsLimit: None,
            Ulimits: Vec::new(),
            CpuCount: 0,
            CpuPercent: 0,
            IOMaximumIOps: 0,
            IOMaximumBandwidth: 0,
            MaskedPaths: None,
            ReadonlyPaths: None,
        }
    }
}

/// `container.Config`. ocinet knows the exposed (published) ports; the
/// rest is Docker's zero.
#[derive(Debug, Serialize)]
pub struct Config {
    pub Hostname: String,
    pub Domainname: String,
    pub User: String,
    pub AttachStdin: bool,
    pub AttachStdout: bool,
    pub AttachStderr: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ExposedPorts: BTreeMap<String, Map<String, Value>>,
    pub Tty: bool,
    pub OpenStdin: bool,
    pub StdinOnce: bool,
    pub Env: Option<Vec<String>>,
    pub Cmd: Option<Vec<String>>,
    pub Image: String,
    pub Volumes: Option<BTreeMap<String, Map<String, Value>>>,
    pub WorkingDir: String,
    pub Entrypoint: Option<Vec<String>>,
    pub Labels: BTreeMap<String, String>,
}

impl Config {
    pub fn with_exposed(ports: impl IntoIterator<Item = String>) -> Self {
        Config {
            Hostname: String::new(),
            Domainname: String::new(),
            User: String::new(),
            AttachStdin: false,
            AttachStdout: false,
            AttachStderr: false,
            ExposedPorts: ports.into_iter().map(|p| (p, Map::new())).collect(),
            Tty: false,
            OpenStdin: false,
            StdinOnce: false,
            Env: None,
            Cmd: None,
            Image: String::new(),
            Volumes: None,
            WorkingDir: String::new(),
            Entrypoint: None,
            Labels: BTreeMap::new(),
        }
    }
}

// ---- helpers ----

/// A 64-hex-digit id, as Docker's network, endpoint and sandbox ids look,
/// derived from `parts` so that it is the same on every call (ocinet keeps
/// no id of its own for these): a network's on every host of a cluster, an
/// endpoint's for as long as its container is on that network. Not a
/// secret and not collision-proof against an adversary (FNV-1a, as the
/// rest of ocinet's derived names): an identifier to match on.
pub fn derived_id(kind: &str, parts: &[&str]) -> String {
    let mut input = kind.as_bytes().to_vec();
    for p in parts {
        input.push(0);
        input.extend_from_slice(p.as_bytes());
    }
    (0u8..4)
        .map(|i| {
            let mut salted = vec![i];
            salted.extend_from_slice(&input);
            format!("{:016x}", ocinet_common::validate::fnv1a64(&salted))
        })
        .collect()
}

/// RFC 3339 in UTC with nanoseconds, as Go's `time.Time` marshals
/// (trailing zeros of the fraction dropped, none when it is whole).
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An ocinet option value as Docker's `map[string]string` holds it:
/// strings as they are, numbers and booleans as text; None for a null
/// (an option that does not apply is left out, as Docker leaves out an
/// option nobody set).
pub fn option_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(option_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// The found objects as a JSON array, as Docker prints them. When some of
/// the arguments were not found, Docker still prints the others (an empty
/// array when none was) and then fails naming the missing: so here, the
/// array goes to stdout now and the error is returned (printed by `main`,
/// with a non-zero exit).
pub fn array_or_fail<T: Serialize>(found: &[T], missing: Vec<Error>) -> Result<String> {
    let text = serde_json::to_string_pretty(found)
        .map(|s| s + "\n")
        .map_err(|e| Error::Conflict(format!("inspect output: {e}")))?;
    if missing.is_empty() {
        return Ok(text);
    }
    let _ = std::io::stdout().write_all(text.as_bytes());
    let mut missing = missing;
    Err(if missing.len() == 1 {
        missing.remove(0)
    } else {
        Error::Many(missing)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_does() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_601_600, 0), "2026-12-07T00:00:00Z");
        assert_eq!(
            rfc3339(1_796_601_600, 360_899_459),
            "2026-12-07T00:00:00.360899459Z"
        );
        assert_eq!(
            rfc3339(1_796_601_600, 500_000_000),
            "2026-12-07T00:00:00.5Z"
        );
    }

    #[test]
    fn ids_look_like_dockers_and_are_stable() {
        let a = derived_id("network", &["web"]);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, derived_id("network", &["web"]));
        assert_ne!(a, derived_id("network", &["web2"]));
        assert_ne!(
            derived_id("endpoint", &["ab", "c"]),
            derived_id("endpoint", &["a", "bc"])
        );
    }

    #[test]
    fn options_become_text() {
        assert_eq!(option_text(&Value::from(1400)), Some("1400".into()));
        assert_eq!(option_text(&Value::from(true)), Some("true".into()));
        assert_eq!(option_text(&Value::from("br-x")), Some("br-x".into()));
        assert_eq!(option_text(&Value::Null), None);
    }
}
