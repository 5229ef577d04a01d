//! Issue 25: `ocinet network inspect` and `ocinet inspect CONTAINER` print
//! Docker's shapes (Engine API v1.52, Docker 29), so scripts and Go
//! clients written for `docker network inspect` / `docker inspect` read
//! them. Real runc and crun, a dual-stack network and a second one, a
//! published port and an alias; the output's field names and JSON types
//! are compared, recursively, with Docker 29 output recorded below, and
//! the values that must be the container's with what the container has.

use std::collections::BTreeSet;
use std::process::Command;

use ocinet_integration::{both_runtimes, ok, run_cmd, text, Host, Runtime, Spec, OUTSIDE_IP};
use serde_json::Value;

/// `docker network inspect web` on Docker 29.1 (API v1.52), for
/// `docker network create --ipv6 --subnet 172.20.0.0/16 --subnet
/// fd00:dead:beef::/64 web` and a container `app` started with
/// `--network web --network-alias api -p 8080:80` (the shape of moby's
/// `api/types/network.Inspect` at docker-v29.0.0, values as Docker prints
/// them).
const DOCKER_NETWORK_INSPECT: &str = r#"[
    {
        "Name": "web",
        "Id": "7d86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99",
        "Created": "2026-11-30T09:12:41.360899459Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": true,
        "EnableIPv6": true,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {
                    "Subnet": "172.20.0.0/16",
                    "Gateway": "172.20.0.1"
                },
                {
                    "Subnet": "fd00:dead:beef::/64",
                    "Gateway": "fd00:dead:beef::1"
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {
            "Network": ""
        },
        "ConfigOnly": false,
        "Options": {
            "com.docker.network.enable_ipv4": "true",
            "com.docker.network.enable_ipv6": "true"
        },
        "Labels": {},
        "Containers": {
            "19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c": {
                "Name": "app",
                "EndpointID": "628cadb8bcb92de107b2a1e516cbffe463e321f548feb37697cce00ad694f21a",
                "MacAddress": "16:7e:3a:c2:51:0b",
                "IPv4Address": "172.20.0.2/16",
                "IPv6Address": "fd00:dead:beef::2/64"
            }
        },
        "Status": {
            "IPAM": {
                "Subnets": {
                    "172.20.0.0/16": {
                        "IPsInUse": 4,
                        "DynamicIPsAvailable": 65532
                    },
                    "fd00:dead:beef::/64": {
                        "IPsInUse": 3,
                        "DynamicIPsAvailable": 18446744073709551613
                    }
                }
            }
        }
    }
]"#;

/// `docker inspect app` on Docker 29.1 (API v1.52) for the container
/// above, then `docker network connect back app` (a second, IPv4-only
/// network): moby's `api/types/container.InspectResponse` at
/// docker-v29.0.0 (containerd image store, hence `Storage` and
/// `ImageManifestDescriptor` rather than `GraphDriver`).
const DOCKER_CONTAINER_INSPECT: &str = r#"[
    {
        "Id": "19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c",
        "Created": "2026-11-30T09:13:02.118734552Z",
        "Path": "/docker-entrypoint.sh",
        "Args": [
            "nginx",
            "-g",
            "daemon off;"
        ],
        "State": {
            "Status": "running",
            "Running": true,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": 4711,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": "2026-11-30T09:13:02.402934081Z",
            "FinishedAt": "0001-01-01T00:00:00Z"
        },
        "Image": "sha256:4ff102c5d78d254a6f0da062b3cf39eaf07f01eec0927fd21e219d0af8bc0591",
        "ResolvConfPath": "/var/lib/docker/containers/19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c/resolv.conf",
        "HostnamePath": "/var/lib/docker/containers/19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c/hostname",
        "HostsPath": "/var/lib/docker/containers/19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c/hosts",
        "LogPath": "/var/lib/docker/containers/19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c/19a4d5d687db25203351ed79d478946f861258f018fe384f229f2efa4b23513c-json.log",
        "Name": "/app",
        "RestartCount": 0,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "docker-default",
        "ExecIDs": null,
        "HostConfig": {
            "Binds": null,
            "ContainerIDFile": "",
            "LogConfig": {
                "Type": "json-file",
                "Config": {}
            },
            "NetworkMode": "web",
            "PortBindings": {
                "80/tcp": [
                    {
                        "HostIp": "",
                        "HostPort": "8080"
                    }
                ]
            },
            "RestartPolicy": {
                "Name": "no",
                "MaximumRetryCount": 0
            },
            "AutoRemove": false,
            "VolumeDriver": "",
            "VolumesFrom": null,
            "ConsoleSize": [
                49,
                163
            ],
            "CapAdd": null,
            "CapDrop": null,
            "CgroupnsMode": "private",
            "Dns": [],
            "DnsOptions": [],
            "DnsSearch": [],
            "ExtraHosts": null,
            "GroupAdd": null,
            "IpcMode": "private",
            "Cgroup": "",
            "Links": null,
            "OomScoreAdj": 0,
            "PidMode": "",
            "Privileged": false,
            "PublishAllPorts": false,
            "ReadonlyRootfs": false,
            "SecurityOpt": null,
            "UTSMode": "",
            "UsernsMode": "",
            "ShmSize": 67108864,
            "Runtime": "runc",
            "Isolation": "",
            "CpuShares": 0,
            "Memory": 0,
            "NanoCpus": 0,
            "CgroupParent": "",
            "BlkioWeight": 0,
            "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": [],
            "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [],
            "BlkioDeviceWriteIOps": [],
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpuRealtimePeriod": 0,
            "CpuRealtimeRuntime": 0,
            "CpusetCpus": "",
            "CpusetMems": "",
            "Devices": [],
            "DeviceCgroupRules": null,
            "DeviceRequests": null,
            "MemoryReservation": 0,
            "MemorySwap": 0,
            "MemorySwappiness": null,
            "OomKillDisable": null,
            "PidsLimit": null,
            "Ulimits": [],
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "MaskedPaths": [
                "/proc/asound",
                "/proc/acpi",
                "/proc/interrupts",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/devices/virtual/powercap"
            ],
            "ReadonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ]
        },
        "Storage": {
            "RootFS": {
                "Snapshot": {
                    "Name": "overlayfs"
                }
            }
        },
        "Mounts": [],
        "Config": {
            "Hostname": "19a4d5d687db",
            "Domainname": "",
            "User": "",
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "ExposedPorts": {
                "80/tcp": {}
            },
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "NGINX_VERSION=1.29.3"
            ],
            "Cmd": [
                "nginx",
                "-g",
                "daemon off;"
            ],
            "Image": "nginx",
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": [
                "/docker-entrypoint.sh"
            ],
            "Labels": {
                "maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"
            },
            "StopSignal": "SIGQUIT"
        },
        "NetworkSettings": {
            "SandboxID": "9d12daf2c33f5959c8bf90aa513e4f65b561738661003029ec84830cd503a0c3",
            "SandboxKey": "/var/run/docker/netns/9d12daf2c33f",
            "Ports": {
                "80/tcp": [
                    {
                        "HostIp": "0.0.0.0",
                        "HostPort": "8080"
                    },
                    {
                        "HostIp": "::",
                        "HostPort": "8080"
                    }
                ]
            },
            "Networks": {
                "back": {
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": null,
                    "DriverOpts": null,
                    "GwPriority": 0,
                    "NetworkID": "3b6e8f21c0a4d9e7b5f1a2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b",
                    "EndpointID": "0b1e3c5a7d9f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2b4d6f8e0a2c4b6d8f0e2a",
                    "Gateway": "172.21.0.1",
                    "IPAddress": "172.21.0.2",
                    "MacAddress": "5a:9c:2e:71:0d:44",
                    "IPPrefixLen": 16,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DNSNames": [
                        "app",
                        "19a4d5d687db"
                    ]
                },
                "web": {
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": [
                        "api"
                    ],
                    "DriverOpts": null,
                    "GwPriority": 0,
                    "NetworkID": "7d86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99",
                    "EndpointID": "628cadb8bcb92de107b2a1e516cbffe463e321f548feb37697cce00ad694f21a",
                    "Gateway": "172.20.0.1",
                    "IPAddress": "172.20.0.2",
                    "MacAddress": "16:7e:3a:c2:51:0b",
                    "IPPrefixLen": 16,
                    "IPv6Gateway": "fd00:dead:beef::1",
                    "GlobalIPv6Address": "fd00:dead:beef::2",
                    "GlobalIPv6PrefixLen": 64,
                    "DNSNames": [
                        "app",
                        "api",
                        "19a4d5d687db"
                    ]
                }
            }
        },
        "ImageManifestDescriptor": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:1f0a8b9e2c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f",
            "size": 2290,
            "platform": {
                "architecture": "amd64",
                "os": "linux"
            }
        }
    }
]"#;

/// Objects whose keys are data (ids, names, ports, subnets), not field
/// names: their values are compared with the recording's first value.
/// Paths join field names with '.', `*` for a map's value, `[]` for an
/// array's element.
const MAPS: &[&str] = &[
    "Containers",
    "Options",
    "Labels",
    "IPAM.Options",
    "IPAM.Config[].AuxiliaryAddresses",
    "Status.IPAM.Subnets",
    "NetworkSettings.Ports",
    "NetworkSettings.Networks",
    "NetworkSettings.Networks.*.DriverOpts",
    "HostConfig.PortBindings",
    "HostConfig.LogConfig.Config",
    "Config.ExposedPorts",
    "Config.ExposedPorts.*",
    "Config.Labels",
    "Config.Volumes",
];

/// Fields Docker's types mark `omitempty`, which ocinet has no value for:
/// Docker leaves them out too when empty.
const OMITEMPTY: &[&str] = &[
    "Peers",
    "Services",
    "IPAM.Config[].IPRange",
    "IPAM.Config[].AuxiliaryAddresses",
    "GraphDriver",
    "Storage",
    "SizeRw",
    "SizeRootFs",
    "ImageManifestDescriptor",
    "State.Health",
    "HostConfig.Runtime",
    "HostConfig.Annotations",
    "HostConfig.StorageOpt",
    "HostConfig.Tmpfs",
    "HostConfig.Sysctls",
    "HostConfig.Mounts",
    "HostConfig.Init",
    "Config.ExposedPorts",
    "Config.Healthcheck",
    "Config.ArgsEscaped",
    "Config.NetworkDisabled",
    "Config.OnBuild",
    "Config.StopSignal",
    "Config.StopTimeout",
    "Config.Shell",
];

/// ocinet's own fields beside Docker's (docs/inspect.md), by the path of
/// the object that holds them.
const OCINET_EXTRAS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "DNSEnabled",
            "DNSUpstreams",
            "DNSRateLimit",
            "DNSAddress",
            "DNSAddress6",
            "NoMasquerade",
        ],
    ),
    (
        "Containers.*",
        &[
            "HostInterface",
            "Interface",
            "Aliases",
            "DefaultRoute",
            "NetworkNamespace",
            "State",
            "Ports",
        ],
    ),
    (
        "NetworkSettings.Networks.*",
        &["Interface", "HostInterface", "DefaultRoute"],
    ),
];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Every difference in field names and JSON types between Docker's
/// `docker` and ocinet's `ours`, below `path`. Types must be the same,
/// except that null and a list, or null and an object, stand for each
/// other: Go prints a nil slice, map or pointer as null, and decodes null
/// into one (Docker's `Aliases` is null on a network without aliases, a
/// list on one with). A null never stands for a string, number or bool.
fn shape_diff(path: &str, docker: &Value, ours: &Value, out: &mut Vec<String>) {
    match (docker, ours) {
        (Value::Object(d), Value::Object(o)) if MAPS.contains(&path) => {
            // The recording's value of the same key (network "web" with
            // "web"), else its first.
            if let Some(first) = d.values().next() {
                for (k, v) in o {
                    shape_diff(&join(path, "*"), d.get(k).unwrap_or(first), v, out);
                }
            }
        }
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                let p = join(path, k);
                match o.get(k) {
                    Some(ov) => shape_diff(&p, dv, ov, out),
                    None if OMITEMPTY.contains(&p.as_str()) => {}
                    None => out.push(format!("{p}: missing (Docker has {})", kind(dv))),
                }
            }
            let extras: &[&str] = OCINET_EXTRAS
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(&[], |(_, e)| e);
            for k in o.keys().filter(|k| !d.contains_key(*k)) {
                let p = join(path, k);
                if !extras.contains(&k.as_str()) && !OMITEMPTY.contains(&p.as_str()) {
                    out.push(format!("{p}: not a field of Docker's"));
                }
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let Some(first) = d.first() {
                for v in o {
                    shape_diff(&format!("{path}[]"), first, v, out);
                }
            }
        }
        (Value::Array(_) | Value::Object(_), Value::Null)
        | (Value::Null, Value::Array(_) | Value::Object(_)) => {}
        (d, o) if kind(d) == kind(o) => {}
        (d, o) => out.push(format!(
            "{path}: Docker has {}, ocinet {}",
            kind(d),
            kind(o)
        )),
    }
}

#[track_caller]
fn same_shape(docker: &str, ours: &Value) {
    let docker: Value = serde_json::from_str(docker).expect("recorded Docker JSON");
    let mut diff = Vec::new();
    // Each element of ours against Docker's (one-element) array.
    shape_diff("", &docker[0], &ours[0], &mut diff);
    for o in ours.as_array().into_iter().flatten().skip(1) {
        shape_diff("", &docker[0], o, &mut diff);
    }
    assert!(
        diff.is_empty(),
        "not Docker's shape:\n{}\nin {ours:#}",
        diff.join("\n")
    );
}

#[track_caller]
fn json(o: std::process::Output) -> Value {
    let s = ok(o);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[track_caller]
fn fails_naming(o: std::process::Output, words: &[&str]) -> Value {
    assert!(!o.status.success(), "should fail: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for w in words {
        assert!(err.contains(w), "{err:?} should name {w:?}");
    }
    // Like Docker, what was found is still printed (an empty array when
    // nothing was).
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout not JSON ({e}): {out:?}"))
}

fn docker_shapes_and_the_containers_values(rt: Runtime) {
    let h = Host::new();
    h.outside();
    // Every network names the test's own outside namespace as its
    // resolver's upstream: nothing is forwarded to the machine's resolvers.
    for (name, subnets) in [
        ("web", &["10.81.0.0/24", "fd81::/64"][..]),
        ("back", &["10.82.0.0/24"][..]),
    ] {
        let mut args = vec!["network", "create", name, "--dns-upstream", OUTSIDE_IP];
        for s in subnets {
            args.extend(["--subnet", s]);
        }
        ok(h.ocinet(&args));
    }
    let mut c = h.started(
        rt,
        "app",
        &Spec::on("web,back", "app")
            .ann("io.ocinet.aliases", "api")
            .ann("io.ocinet.ports", "8080:80"),
    );
    let ep = h.endpoint(&c.id).expect("ps shows the container");
    let att = |net: &str| -> Value {
        ep["attachments"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["network"] == net).cloned())
            .unwrap_or_else(|| panic!("no attachment on {net}: {ep}"))
    };
    let (web, back) = (att("web"), att("back"));
    // The MACs the container's interfaces really have.
    let mac_in = |ifname: &str| -> String {
        let l: Value = serde_json::from_str(&ok(run_cmd(
            Command::new("nsenter")
                .arg(format!("--net={}", h.netns_of(&c.id)))
                .args(["ip", "-j", "link", "show", ifname]),
        )))
        .unwrap_or_default();
        l[0]["address"].as_str().unwrap_or_default().to_string()
    };
    let (mac0, mac1) = (mac_in("eth0"), mac_in("eth1"));
    assert_eq!(web["mac"], mac0.as_str(), "{web}");
    assert_eq!(back["mac"], mac1.as_str(), "{back}");

    // docker network inspect, one network and two at once.
    let nets = json(h.ocinet(&["network", "inspect", "web", "back"]));
    assert_eq!(nets.as_array().map(Vec::len), Some(2), "{nets:#}");
    same_shape(DOCKER_NETWORK_INSPECT, &nets);
    let (nw, nb) = (&nets[0], &nets[1]);
    assert_eq!(nw["Name"], "web");
    assert_eq!(nb["Name"], "back");
    for n in [nw, nb] {
        let id = n["Id"].as_str().unwrap_or_default();
        assert!(
            id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{n}"
        );
        assert_eq!(n["Driver"], "bridge");
        assert_eq!(n["Scope"], "local");
        assert_eq!(n["EnableIPv4"], true);
        // Docker's name of the bridge, beside ocinet's.
        assert_eq!(
            n["Options"]["com.docker.network.bridge.name"], n["Options"]["bridge"],
            "{n}"
        );
    }
    assert_ne!(nw["Id"], nb["Id"]);
    assert_eq!(nw["EnableIPv6"], true);
    assert_eq!(nb["EnableIPv6"], false);
    assert_eq!(
        nw["IPAM"]["Config"],
        serde_json::json!([
            {"Subnet": "10.81.0.0/24", "Gateway": "10.81.0.1"},
            {"Subnet": "fd81::/64", "Gateway": "fd81::1"},
        ])
    );
    let mine = &nw["Containers"][&c.id];
    assert_eq!(mine["Name"], "app", "{nw}");
    assert_eq!(mine["IPv4Address"], web["address"], "{nw}");
    assert_eq!(mine["IPv6Address"], web["address6"], "{nw}");
    assert_eq!(mine["MacAddress"], mac0.as_str(), "{nw}");
    let mine_b = &nb["Containers"][&c.id];
    assert_eq!(mine_b["IPv4Address"], back["address"], "{nb}");
    assert_eq!(mine_b["IPv6Address"], "", "{nb}");
    assert_eq!(mine_b["MacAddress"], mac1.as_str(), "{nb}");
    // Addresses in use: network, broadcast, gateway and the container's;
    // the rest of the /24 is left to hand out.
    let v4 = &nw["Status"]["IPAM"]["Subnets"]["10.81.0.0/24"];
    assert_eq!(v4["IPsInUse"], 4, "{nw}");
    assert_eq!(v4["DynamicIPsAvailable"], 252, "{nw}");
    assert!(
        nw["Status"]["IPAM"]["Subnets"]["fd81::/64"]["IPsInUse"] == 3,
        "{nw}"
    );

    // docker inspect, by id, short id and name: the same object.
    let by_id = json(h.ocinet(&["inspect", &c.id]));
    same_shape(DOCKER_CONTAINER_INSPECT, &by_id);
    let short = &c.id[..12];
    assert_eq!(json(h.ocinet(&["inspect", short])), by_id);
    assert_eq!(json(h.ocinet(&["inspect", "app"])), by_id);
    let ci = &by_id[0];
    assert_eq!(ci["Id"], c.id.as_str());
    assert_eq!(ci["Name"], "/app");
    assert_eq!(ci["State"]["Running"], true, "{ci}");
    assert_eq!(ci["State"]["Status"], "running", "{ci}");
    assert_eq!(ci["State"]["Pid"], ep["pid"], "{ci}");
    assert_eq!(ci["NetworkSettings"]["SandboxKey"], ep["netns"], "{ci}");
    assert_eq!(ci["HostConfig"]["NetworkMode"], "web", "{ci}");
    assert_eq!(
        ci["NetworkSettings"]["Ports"],
        serde_json::json!({"80/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": "8080"},
            {"HostIp": "::", "HostPort": "8080"},
        ]}),
        "{ci}"
    );
    assert_eq!(
        ci["HostConfig"]["PortBindings"],
        serde_json::json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
        "{ci}"
    );
    assert_eq!(
        ci["Config"]["ExposedPorts"],
        serde_json::json!({"80/tcp": {}})
    );
    let networks = &ci["NetworkSettings"]["Networks"];
    let names: BTreeSet<&str> = networks
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(names, BTreeSet::from(["back", "web"]), "{ci}");
    let w = &networks["web"];
    let ip_and_len = |a: &Value| -> (String, u64) {
        let s = a.as_str().unwrap_or_default();
        let (ip, len) = s.split_once('/').unwrap_or((s, "0"));
        (ip.to_string(), len.parse().unwrap_or(0))
    };
    let (ip4, len4) = ip_and_len(&web["address"]);
    let (ip6, len6) = ip_and_len(&web["address6"]);
    assert_eq!(w["IPAddress"], ip4.as_str(), "{w}");
    assert_eq!(w["IPPrefixLen"], len4, "{w}");
    assert_eq!(len4, 24);
    assert_eq!(w["Gateway"], "10.81.0.1", "{w}");
    assert_eq!(w["GlobalIPv6Address"], ip6.as_str(), "{w}");
    assert_eq!(w["GlobalIPv6PrefixLen"], len6, "{w}");
    assert_eq!(len6, 64);
    assert_eq!(w["IPv6Gateway"], "fd81::1", "{w}");
    assert_eq!(w["MacAddress"], mac0.as_str(), "{w}");
    assert_eq!(w["Aliases"], serde_json::json!(["api"]), "{w}");
    assert_eq!(
        w["DNSNames"],
        serde_json::json!(["app", "api", short]),
        "{w}"
    );
    // The ids tie the two commands together, as Docker's do.
    assert_eq!(w["NetworkID"], nw["Id"], "{w}");
    assert_eq!(w["EndpointID"], mine["EndpointID"], "{w}");
    let b = &networks["back"];
    let (bip, blen) = ip_and_len(&back["address"]);
    assert_eq!(b["IPAddress"], bip.as_str(), "{b}");
    assert_eq!(b["IPPrefixLen"], blen, "{b}");
    assert_eq!(b["Gateway"], "10.82.0.1", "{b}");
    assert_eq!(b["MacAddress"], mac1.as_str(), "{b}");
    assert_eq!(b["GlobalIPv6Address"], "", "{b}");
    assert_eq!(b["GlobalIPv6PrefixLen"], 0, "{b}");
    assert_eq!(b["IPv6Gateway"], "", "{b}");
    assert_eq!(b["NetworkID"], nb["Id"], "{b}");
    assert_eq!(b["EndpointID"], mine_b["EndpointID"], "{b}");
    assert_ne!(b["EndpointID"], w["EndpointID"]);

    // A container with only lo shows Docker's `none` network, no ports.
    let solo = h.started(rt, "solo", &Spec::on("none", "solo"));
    let s = json(h.ocinet(&["inspect", "solo"]));
    same_shape(DOCKER_CONTAINER_INSPECT, &s);
    assert_eq!(s[0]["Id"], solo.id.as_str(), "{s}");
    assert_eq!(s[0]["HostConfig"]["NetworkMode"], "none", "{s}");
    assert_eq!(
        s[0]["NetworkSettings"]["Ports"],
        serde_json::json!({}),
        "{s}"
    );
    let nets = &s[0]["NetworkSettings"]["Networks"];
    assert_eq!(
        nets.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["none".to_string()]),
        "{s}"
    );
    assert_eq!(nets["none"]["IPAddress"], "", "{s}");
    assert_eq!(nets["none"]["MacAddress"], "", "{s}");
    // Both at once, in the order asked.
    let two = json(h.ocinet(&["inspect", "solo", "app"]));
    assert_eq!(two[0]["Id"], solo.id.as_str());
    assert_eq!(two[1], by_id[0]);

    // Bad input: what is unknown is named, the exit is non-zero, and what
    // was found is still printed.
    let none = fails_naming(h.ocinet(&["inspect", "nosuch"]), &["nosuch"]);
    assert_eq!(none, serde_json::json!([]));
    let some = fails_naming(h.ocinet(&["inspect", &c.id, "nosuch"]), &["nosuch"]);
    assert_eq!(some, by_id);
    let none = fails_naming(
        h.ocinet(&["network", "inspect", "nosuchnet"]),
        &["nosuchnet", "does not exist"],
    );
    assert_eq!(none, serde_json::json!([]));
    let one = fails_naming(
        h.ocinet(&["network", "inspect", "web", "nosuchnet", "other"]),
        &["nosuchnet", "other"],
    );
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one[0]["Name"], "web");
    for args in [&["inspect"][..], &["network", "inspect"][..]] {
        let o = h.ocinet(args);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
    }

    // Once the container is gone, neither knows it.
    h.stop(&mut c);
    fails_naming(h.ocinet(&["inspect", &c.id]), &[&c.id]);
    let nets = json(h.ocinet(&["network", "inspect", "web"]));
    assert_eq!(nets[0]["Containers"], serde_json::json!({}), "{nets}");
}

both_runtimes!(docker_shapes_and_the_containers_values);

/// The comparison itself (no containers): it finds a field Docker has that
/// is missing or renamed, a wrong type (also inside maps and arrays), and
/// a field Docker does not have; it lets pass ocinet's listed extras,
/// Docker's omitempty fields left out, and null for a list.
#[test]
fn the_comparison_finds_what_a_docker_client_would_trip_on() {
    let docker: Value = serde_json::from_str(DOCKER_CONTAINER_INSPECT).expect("json");
    let docker = &docker[0];
    let diff = |f: &dyn Fn(&mut Value)| {
        let mut ours = docker.clone();
        f(&mut ours);
        let mut out = Vec::new();
        shape_diff("", docker, &ours, &mut out);
        out
    };
    assert!(diff(&|_| {}).is_empty());
    let web = |v: &mut Value| v["NetworkSettings"]["Networks"]["web"].take();
    let renamed = diff(&|v| {
        let mut w = web(v);
        let len = w["IPPrefixLen"].take();
        w.as_object_mut().map(|m| m.remove("IPPrefixLen"));
        w["IpPrefixLen"] = len;
        v["NetworkSettings"]["Networks"]["web"] = w;
    });
    assert_eq!(
        renamed,
        [
            "NetworkSettings.Networks.*.IPPrefixLen: missing (Docker has number)",
            "NetworkSettings.Networks.*.IpPrefixLen: not a field of Docker's",
        ]
    );
    let mistyped = diff(&|v| {
        v["NetworkSettings"]["Ports"]["80/tcp"][1]["HostPort"] = Value::from(8080);
        v["HostConfig"]["ShmSize"] = Value::Null;
        v["NetworkSettings"]["Networks"]["new"] = serde_json::json!({"IPAddress": 1});
    });
    assert!(
        mistyped.contains(
            &"NetworkSettings.Ports.*[].HostPort: Docker has string, ocinet number".to_string()
        ) && mistyped.contains(&"HostConfig.ShmSize: Docker has number, ocinet null".to_string())
            && mistyped.contains(
                &"NetworkSettings.Networks.*.IPAddress: Docker has string, ocinet number"
                    .to_string()
            )
            && mistyped.contains(
                &"NetworkSettings.Networks.*.Gateway: missing (Docker has string)".to_string()
            ),
        "{mistyped:#?}"
    );
    let allowed = diff(&|v| {
        v.as_object_mut().map(|m| m.remove("Storage"));
        v["Config"]["Env"] = Value::Null;
        v["NetworkSettings"]["Networks"]["web"]["Interface"] = "eth0".into();
    });
    assert!(allowed.is_empty(), "{allowed:#?}");
}
