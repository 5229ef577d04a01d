//! `ocinet inspect CONTAINER...`: a container's networking in the shape of
//! `docker inspect` (API v1.52, see `docker.rs`): `NetworkSettings` with
//! every network it is on, its published ports, and the network part of
//! `HostConfig`; the rest of Docker's object at Docker's zero values, so
//! that a script or Go client reading any of it finds the field.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ocinet_common::model::{shown_attachments, Attachment, Endpoint, Mode, Network, PortSpec};
use ocinet_common::{Error, Result};

use super::docker::{self, PortBinding, PortMap};
use super::network::{endpoint_id, network_id};
use ocinet_core::context::Context;

pub fn run(ctx: &Context, who: &[String]) -> Result<String> {
    let (eps, bad) = ctx.state.list_endpoints();
    for e in &bad {
        eprintln!("ocinet: skipping {e}");
    }
    let (nets, _) = ctx.config.list();
    let nets: HashMap<&str, &Network> = nets.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for w in who {
        match find(&eps, w) {
            Ok(e) => found.push(container_object(e, &eps, &nets)),
            Err(err) => missing.push(err),
        }
    }
    docker::array_or_fail(&found, missing)
}

/// The container `who` names: its runtime id or ocinet name exactly, else
/// the one container whose id starts with it (Docker's short id). Several
/// matches are refused naming them: ocinet does not guess (as `network
/// connect`).
fn find<'a>(eps: &'a [Endpoint], who: &str) -> Result<&'a Endpoint> {
    let exact: Vec<&Endpoint> = eps
        .iter()
        .filter(|e| e.id == who || e.name == who)
        .collect();
    let matches = if exact.is_empty() && !who.is_empty() {
        eps.iter().filter(|e| e.id.starts_with(who)).collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NotFound(format!(
            "container {who:?}: no ocinet container has that id, short id or name"
        ))),
        several => Err(Error::Conflict(format!(
            "container {who:?} is ambiguous: it names {} containers ({}); give one's full id",
            several.len(),
            several
                .iter()
                .map(|e| format!("id {} name {}", e.id, e.name))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// Docker's key of a published container port: "80/tcp".
fn port_key(port: u16, p: &PortSpec) -> String {
    format!("{port}/{}", p.protocol)
}

/// `NetworkSettings.Ports`: each published container port and the host
/// addresses and ports it answers on. A mapping with no host address
/// answers on every address of both families: Docker 29 shows that as two
/// bindings, 0.0.0.0 and ::.
fn port_map(ports: &[PortSpec]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        for m in p.mappings() {
            let hosts: Vec<String> = match m.host_ip {
                Some(ip) => vec![ip.to_string()],
                None => vec!["0.0.0.0".into(), "::".into()],
            };
            let bindings = map.entry(port_key(m.container_port, p)).or_default();
            for h in hosts {
                let b = PortBinding {
                    HostIp: h,
                    HostPort: m.host_port.to_string(),
                };
                if !bindings.contains(&b) {
                    bindings.push(b);
                }
            }
        }
    }
    map
}

/// `HostConfig.PortBindings`: the ports as requested (Docker keeps an
/// empty `HostIp` for "every address").
fn port_bindings(ports: &[PortSpec]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        for m in p.mappings() {
            map.entry(port_key(m.container_port, p))
                .or_default()
                .push(PortBinding {
                    HostIp: m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    HostPort: m.host_port.to_string(),
                });
        }
    }
    map
}

/// The gateway of `net`'s subnet of the family of `v6`.
fn gateway_of(net: Option<&&Network>, v6: bool) -> String {
    net.and_then(|n| {
        n.subnets
            .iter()
            .filter(|s| s.subnet.addr().is_ipv6() == v6)
            .find_map(|s| s.gateway)
    })
    .map(|g: IpAddr| g.to_string())
    .unwrap_or_default()
}

/// `NetworkSettings.Networks[name]` for attachment `a` of container `e`.
fn endpoint_settings(
    e: &Endpoint,
    a: &Attachment,
    net: Option<&&Network>,
) -> docker::EndpointSettings {
    let v4 = a.ipv4_net();
    let v6 = a.ipv6_net();
    // The names the network's resolver answers for the container (its
    // name, its aliases and its short id, those a client can ask for: see
    // the resolver's catalog), as Docker's DNSNames; none on a network
    // without the resolver.
    let dns_names = net.filter(|n| n.dns).map(|_| {
        let mut names = vec![e.name.clone()];
        names.extend(a.aliases.iter().cloned());
        names.push(e.id.chars().take(12).collect());
        names.retain(|n| ocinet_common::validate::resolvable(n));
        names.dedup();
        names
    });
    let mut ocinet = docker::Extras::new();
    ocinet.insert("Interface".into(), a.interface.clone().into());
    ocinet.insert("HostInterface".into(), serde_json::json!(a.host_veth));
    ocinet.insert("DefaultRoute".into(), a.carries_default_route().into());
    docker::EndpointSettings {
        IPAMConfig: None,
        Links: None,
        Aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
        DriverOpts: None,
        GwPriority: 0,
        NetworkID: network_id(&a.network),
        EndpointID: endpoint_id(&e.id, &a.network),
        Gateway: v4.map(|_| gateway_of(net, false)).unwrap_or_default(),
        IPAddress: v4.map(|n| n.addr().to_string()).unwrap_or_default(),
        MacAddress: a.mac.clone().unwrap_or_default(),
        IPPrefixLen: v4.map_or(0, |n| n.prefix_len()),
        IPv6Gateway: v6.map(|_| gateway_of(net, true)).unwrap_or_default(),
        GlobalIPv6Address: v6.map(|n| n.addr().to_string()).unwrap_or_default(),
        GlobalIPv6PrefixLen: v6.map_or(0, |n| n.prefix_len()),
        DNSNames: dns_names,
        ocinet,
    }
}

/// Docker's endpoint on its `none` or `host` network: ids, nothing else.
fn bare_endpoint(e: &Endpoint, network: &str) -> docker::EndpointSettings {
    docker::EndpointSettings {
        IPAMConfig: None,
        Links: None,
        Aliases: None,
        DriverOpts: None,
        GwPriority: 0,
        NetworkID: network_id(network),
        EndpointID: endpoint_id(&e.id, network),
        Gateway: String::new(),
        IPAddress: String::new(),
        MacAddress: String::new(),
        IPPrefixLen: 0,
        IPv6Gateway: String::new(),
        GlobalIPv6Address: String::new(),
        GlobalIPv6PrefixLen: 0,
        DNSNames: None,
        ocinet: docker::Extras::new(),
    }
}

fn container_object(
    e: &Endpoint,
    all: &[Endpoint],
    nets: &HashMap<&str, &Network>,
) -> docker::ContainerInspect {
    let ports: Vec<PortSpec> = e.ports().cloned().collect();
    let networks: BTreeMap<String, docker::EndpointSettings> = match &e.mode {
        Mode::Networks(_) => shown_attachments(e, all)
            .iter()
            .map(|a| {
                (
                    a.network.clone(),
                    endpoint_settings(e, a, nets.get(a.network.as_str())),
                )
            })
            .collect(),
        Mode::None => BTreeMap::from([("none".to_string(), bare_endpoint(e, "none"))]),
        Mode::Host => BTreeMap::from([("host".to_string(), bare_endpoint(e, "host"))]),
        // Docker shows a sharer's networks as none of its own.
        Mode::Container(_) => BTreeMap::new(),
    };
    // Docker's network mode names the first network the container was
    // started on.
    let network_mode = match &e.mode {
        Mode::Networks(n) => n.first().cloned().unwrap_or_default(),
        other => other.label(),
    };
    let running = e.container.is_some_and(|p| p.is_alive());
    let status = match (e.phase, running) {
        (ocinet_common::model::Phase::Setup, _) => "created",
        (_, true) => "running",
        (_, false) => "exited",
    };
    let started = docker::rfc3339(e.created, 0);
    docker::ContainerInspect {
        Id: e.id.clone(),
        Created: started.clone(),
        Path: String::new(),
        Args: Vec::new(),
        State: docker::State {
            Status: status.into(),
            Running: running,
            Paused: false,
            Restarting: false,
            OOMKilled: false,
            Dead: false,
            Pid: if running {
                e.container.map_or(0, |p| i64::from(p.pid))
            } else {
                0
            },
            ExitCode: 0,
            Error: String::new(),
            StartedAt: started,
            FinishedAt: docker::ZERO_TIME.into(),
        },
        Image: String::new(),
        ResolvConfPath: e
            .resolv_conf
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        HostnamePath: String::new(),
        HostsPath: String::new(),
        LogPath: String::new(),
        Name: format!("/{}", e.name),
        RestartCount: 0,
        Driver: String::new(),
        Platform: "linux".into(),
        MountLabel: String::new(),
        ProcessLabel: String::new(),
        AppArmorProfile: String::new(),
        ExecIDs: None,
        HostConfig: docker::HostConfig::with_network(
            network_mode,
            port_bindings(&ports),
            e.dns_servers.0.iter().map(ToString::to_string).collect(),
        ),
        Mounts: Vec::new(),
        Config: docker::Config::with_exposed(port_map(&ports).into_keys()),
        NetworkSettings: docker::NetworkSettings {
            SandboxID: e
                .netns_link
                .as_ref()
                .map(|_| docker::derived_id("sandbox", &[&e.id]))
                .unwrap_or_default(),
            SandboxKey: e
                .netns_link
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Ports: port_map(&ports),
            Networks: networks,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocinet_common::model::Protocol;

    fn spec(host_ip: Option<IpAddr>, host: u16, count: u16, ctr: u16) -> PortSpec {
        PortSpec {
            host_ip,
            host_port: host,
            count,
            container_port: ctr,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn ports_print_as_dockers_port_map() {
        let m = port_map(&[
            spec(None, 8080, 1, 80),
            spec(Some("127.0.0.1".parse().unwrap()), 9000, 2, 90),
        ]);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
                "90/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
                "91/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9001"}],
            })
        );
        let b = serde_json::to_value(port_bindings(&[spec(None, 8080, 1, 80)])).unwrap();
        assert_eq!(
            b,
            serde_json::json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
    }

    #[test]
    fn short_ids_and_names_find_one_container() {
        let eps = vec![
            Endpoint::new("abcdef0123", "web", Mode::network("n")),
            Endpoint::new("abc9990000", "db", Mode::network("n")),
        ];
        assert_eq!(
            find(&eps, "web").map(|e| e.id.as_str()).ok(),
            Some("abcdef0123")
        );
        assert_eq!(
            find(&eps, "abcd").map(|e| e.id.as_str()).ok(),
            Some("abcdef0123")
        );
        assert!(matches!(find(&eps, "abc"), Err(Error::Conflict(m)) if m.contains("abc9990000")));
        assert!(matches!(find(&eps, "nosuch"), Err(Error::NotFound(m)) if m.contains("nosuch")));
        assert!(find(&eps, "").is_err());
    }
}
