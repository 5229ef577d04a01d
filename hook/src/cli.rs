use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ocinet",
    version,
    about = "Bridge networking for OCI containers, as an OCI runtime hook"
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

const DEFAULT_STATE_DIR: &str = "/run/ocinet";
const DEFAULT_CONFIG_DIR: &str = "/etc/ocinet";
const DEFAULT_LOG_LEVEL: &str = "info";

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Globals {
    /// Where endpoints, leases, the lock and the log live.
    #[arg(long, global = true, default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Where network definitions live.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_DIR, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Log level for the log file (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = DEFAULT_LOG_LEVEL, value_name = "LEVEL")]
    pub log_level: String,
}

impl Cli {
    /// `args` parsed: a hook's plain command line by `hook_line`; the rest,
    /// and anything `hook_line` leaves alone (help, a mistake, a form it
    /// does not read), by clap, which answers as it always did.
    pub fn parse_args<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        if args.get(1).is_some_and(|a| a == "hook") {
            if let Some(cli) = hook_line(&args[2..]) {
                return cli;
            }
        }
        Cli::parse_from(args)
    }
}

/// `ocinet hook STAGE [--OPTION VALUE | --OPTION=VALUE | -p VALUE]...`,
/// what runtimes and hooks.d files pass, read without clap: clap builds
/// the arguments of every subcommand before it parses, and even the hook's
/// alone cost ~0.1 ms of each start (runc and crun start the hook twice per
/// container). `None` for anything else, clap's to read or refuse; where
/// this reads a line, clap reads the same (`hook_line_agrees_with_clap`).
fn hook_line(rest: &[std::ffi::OsString]) -> Option<Cli> {
    let mut words = rest.iter().map(|w| w.to_str());
    let stage = Stage::from_str(words.next()??, false).ok()?;
    let mut globals = Globals {
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        config_dir: PathBuf::from(DEFAULT_CONFIG_DIR),
        log_level: DEFAULT_LOG_LEVEL.into(),
    };
    let mut defaults = ContainerDefaults::default();
    let mut seen = std::collections::HashSet::new();
    while let Some(word) = words.next() {
        let word = word?;
        let (name, value) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, value),
            _ => (word, words.next()??),
        };
        // What clap might read otherwise (an option for a value, an empty
        // value) or refuses (a single-valued option twice) is left to it.
        if value.is_empty()
            || value.starts_with('-')
            || (name != "--publish" && name != "-p" && !seen.insert(name))
        {
            return None;
        }
        let value = value.to_string();
        match name {
            "--state-dir" => globals.state_dir = value.into(),
            "--config-dir" => globals.config_dir = value.into(),
            "--log-level" => globals.log_level = value,
            "--network" => defaults.network = Some(value),
            "--ip" => defaults.ip = Some(value),
            "--mac" => defaults.mac = Some(value),
            "--name" => defaults.name = Some(value),
            "--publish" | "-p" => defaults.publish.push(value),
            _ => return None,
        }
    }
    Some(Cli {
        globals,
        command: Command::Hook(HookArgs { stage, defaults }),
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as an OCI hook: reads the container state on stdin.
    Hook(HookArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// List container endpoints.
    Ps(PsArgs),
    /// Show containers' networking as JSON, in the shape of `docker
    /// inspect` (by id, short id or name).
    Inspect {
        #[arg(required = true, value_name = "CONTAINER")]
        containers: Vec<String>,
    },
    /// List every address lease and its holder, with those no record
    /// accounts for (what `gc` releases).
    Leases(LeasesArgs),
    /// List every claimed host port and its holder, with those no record
    /// accounts for (what `gc` releases).
    Ports(PsArgs),
    /// Remove endpoints whose container no longer exists.
    Gc,
    /// The resolver of DNS-enabled networks.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// Manage ocinet's nftables table.
    #[command(subcommand)]
    Firewall(FirewallCommand),
    /// Write podman hooks.d files that run this binary for containers
    /// carrying an io.ocinet.* annotation.
    InstallPodmanHook(InstallPodmanHookArgs),
    /// The resolver of DNS-enabled networks. The hook starts it when the
    /// first container joins one, and it ends when none has containers;
    /// run it with --persistent under a service manager on a host without
    /// systemd where containers are run by a foreground `crun run`.
    #[command(name = "dns-server")]
    DnsServer {
        /// Keep running when no network has containers (until SIGTERM);
        /// hooks then use this one and start none.
        #[arg(long)]
        persistent: bool,
    },
    /// The port proxy that serves published ports on the host's IPv6
    /// loopback [::1]. The hook starts it when the first container with
    /// such a port is set up, and it ends when none is left; run it with
    /// --persistent under a service manager where a foreground `crun run`
    /// must not wait on it (see docs/ports.md).
    #[command(name = "port-proxy")]
    PortProxy {
        /// Keep running when no port is published on [::1] (until
        /// SIGTERM); hooks then use this one and start none.
        #[arg(long)]
        persistent: bool,
    },
    /// This host's membership of a cluster (overlay networks across
    /// hosts, coordinated through etcd).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The overlay agent: keeps this host's cluster lease alive and the
    /// kernel's VXLAN routes in step with the cluster store. The hook
    /// starts it at the first overlay container and `cluster join` does;
    /// run it with --persistent under a service manager.
    Agent {
        /// Started by a service manager (recorded for `cluster status`).
        #[arg(long)]
        persistent: bool,
    },
    /// The port proxy serving published ports on [::1].
    #[command(subcommand)]
    Proxy(ProxyCommand),
    /// Delete host veths a teardown retired (started by it, detached).
    #[command(name = "reap-links", hide = true)]
    ReapLinks { names: Vec<String> },
}

#[derive(Debug, Args)]
pub struct InstallPodmanHookArgs {
    /// The hooks.d directory (pass the same to podman --hooks-dir).
    #[arg(
        long,
        default_value = "/etc/containers/oci/hooks.d",
        value_name = "DIR"
    )]
    pub hooks_dir: PathBuf,
    #[command(flatten)]
    pub defaults: ContainerDefaults,
}

#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// Rebuild the table from the saved state (after someone flushed the
    /// ruleset, say).
    Reload,
    /// Print the number of rules in ocinet's table.
    Rules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    #[value(name = "prestart")]
    Prestart,
    #[value(name = "createRuntime")]
    CreateRuntime,
    #[value(name = "poststop")]
    Poststop,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::Poststop => "poststop",
        })
    }
}

/// Per-container defaults; the container's `io.ocinet.*` annotations
/// override them.
#[derive(Debug, Clone, Default, Args)]
pub struct ContainerDefaults {
    /// Network name, or none, host, container:<id>.
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Static IPv4 address.
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// MAC address of eth0.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Human name for ps, inspect and metrics.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Publish ports: [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]
    /// (repeatable, or a comma list).
    #[arg(long = "publish", short = 'p', value_name = "SPEC")]
    pub publish: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    pub stage: Stage,
    #[command(flatten)]
    pub defaults: ContainerDefaults,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network (bridge, macvlan or overlay).
    Create {
        name: String,
        /// The network's subnet, one per family (repeat it with an IPv6
        /// one for dual stack).
        #[arg(long, value_name = "CIDR")]
        subnet: Vec<ipnet::IpNet>,
        /// The gateway of the subnet of its family (default: its first
        /// address); one per family.
        #[arg(long, value_name = "IP")]
        gateway: Vec<std::net::IpAddr>,
        /// Where addresses are handed out from, inside the subnet of its
        /// family; one per family.
        #[arg(long, value_name = "CIDR")]
        ip_range: Vec<ipnet::IpNet>,
        /// Dual stack: containers get an IPv6 address too (from a free /64
        /// of fd87:6f63:6900::/48 unless --subnet gives an IPv6 one).
        #[arg(long)]
        ipv6: bool,
        /// IPv4 on the network; `--ipv4=false` would make it IPv6-only,
        /// which is refused for now.
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        ipv4: bool,
        #[arg(long, value_name = "IFNAME")]
        bridge: Option<String>,
        #[arg(long)]
        mtu: Option<u32>,
        /// No outbound access and no masquerade.
        #[arg(long)]
        internal: bool,
        /// Both families' gateway mode. nat (the default): masqueraded, and
        /// from outside the network only published ports reach its
        /// containers; nat-unprotected: whoever routes the subnet via this
        /// host reaches every port (Docker before 28); routed: not
        /// masqueraded, and from outside only published container ports
        /// answer, at the containers' own addresses.
        #[arg(long, value_name = "MODE")]
        gateway_mode: Option<ocinet_common::model::GatewayMode>,
        /// IPv4's gateway mode (overrides --gateway-mode for IPv4).
        #[arg(long = "gateway-mode-ipv4", value_name = "MODE")]
        gateway_mode_ipv4: Option<ocinet_common::model::GatewayMode>,
        /// IPv6's gateway mode (overrides --gateway-mode for IPv6).
        #[arg(long = "gateway-mode-ipv6", value_name = "MODE")]
        gateway_mode_ipv6: Option<ocinet_common::model::GatewayMode>,
        /// NAME=IP: an address of the subnet that IPAM never hands out
        /// (repeatable).
        #[arg(long = "aux-address", value_name = "NAME=IP")]
        aux_address: Vec<String>,
        /// The host address ports are published on when a mapping names
        /// none (default: every address of the host).
        #[arg(long, value_name = "IP")]
        host_binding_ip: Option<Ipv4Addr>,
        /// bridge (a Linux bridge with NAT and published ports), macvlan
        /// (sub-interfaces of --parent on its segment) or overlay (one
        /// subnet across the hosts of a cluster: `ocinet cluster join`).
        #[arg(long, value_name = "DRIVER", default_value = "bridge")]
        driver: ocinet_common::model::Driver,
        /// macvlan: the host interface the containers hang off.
        #[arg(long, value_name = "IFNAME")]
        parent: Option<String>,
        /// macvlan: bridge (containers of one parent reach each other),
        /// private, vepa or passthru.
        #[arg(long, value_name = "MODE")]
        mode: Option<ocinet_common::model::MacvlanMode>,
        /// No name resolution between the network's containers (bridge
        /// networks and macvlan ones in mode bridge have it by default).
        #[arg(long)]
        disable_dns: bool,
        /// Where the network's resolver forwards names that are not its
        /// containers' (repeatable; default: the host's /etc/resolv.conf).
        #[arg(long = "dns-upstream", value_name = "IP")]
        dns_upstream: Vec<std::net::IpAddr>,
        /// Queries per second the resolver takes from one container (twice
        /// that in a burst; 0: no limit; default 2000).
        #[arg(long = "dns-rate-limit", value_name = "QPS")]
        dns_rate_limit: Option<u32>,
        /// macvlan: the resolver's address on the parent's segment, which
        /// must be free there, once per family (default: the highest free
        /// address of each range).
        #[arg(long = "dns-address", value_name = "IP")]
        dns_address: Vec<std::net::IpAddr>,
        /// Neither masquerade traffic to CIDR nor keep its sources out
        /// (repeatable): a cluster's pod CIDR, whose nodes route each
        /// other's pod subnets.
        #[arg(long = "no-masquerade", value_name = "CIDR")]
        no_masquerade: Vec<ipnet::Ipv4Net>,
        /// overlay: the VXLAN network identifier, 1-16777215 (default: the
        /// lowest free one from 4096, as the cluster store says).
        #[arg(long, value_name = "N")]
        vni: Option<u32>,
    },
    /// List networks.
    Ls,
    /// Show networks and their containers as JSON, in the shape of
    /// `docker network inspect` (with ocinet's own fields beside Docker's).
    Inspect {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove a network (refused while containers are attached).
    Rm { name: String },
    /// Attach a running container to one more network: the next free ethN
    /// appears inside it with an address and a route.
    Connect {
        network: String,
        /// The runtime's container id, or the container's ocinet name.
        container: String,
        /// Static address on this network (IPv4; an IPv6 one is taken as
        /// --ip6).
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::IpAddr>,
        /// Static IPv6 address on this network (a dual-stack one).
        #[arg(long, value_name = "IP")]
        ip6: Option<std::net::Ipv6Addr>,
        /// Another name for the container on this network (repeatable).
        #[arg(long = "alias", value_name = "NAME")]
        alias: Vec<String>,
    },
    /// Take a running container off a network, and everything its
    /// attachment made (interface, address, firewall elements, conntrack
    /// entries).
    Disconnect {
        network: String,
        /// The runtime's container id, or the container's ocinet name.
        container: String,
    },
}

#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// Only this network's leases.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Whether the resolver runs, its pid, where it listens, and the
    /// queries it counted.
    Status(PsArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Whether the port proxy runs, its pid, and each port it serves on
    /// [::1] (the container it goes to, whether it is accepting).
    Status(PsArgs),
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Make this host a member: its config (0600) names the store, the
    /// host registers there on a lease its agent keeps alive.
    Join(JoinArgs),
    /// The members: advertise address, up or down since when, and their
    /// overlay containers.
    Ls(PsArgs),
    /// Leave the cluster (refused while overlay containers run here,
    /// naming them): this host's keys leave the store, its overlay
    /// devices go.
    Leave,
    /// Forget a member that is gone for good (Docker's `node rm`), so its
    /// addresses can be given again and `network rm` no longer waits for it.
    ///
    /// Its member key, last-holder keys and any block or container entry
    /// of it leave the store in one transaction (a node with more keys
    /// than one carries: several, its member key last), which holds only
    /// while the node is still down and the keys are as they were read. Refused while the node is up (its lease is
    /// alive: it may run containers; `cluster leave` on it instead), for
    /// this host and for a node the store does not name.
    ///
    /// Make sure the host is really gone first (its machine powered off,
    /// or its containers stopped, checked on the host itself): one merely
    /// cut off from the store looks the same from here, runs on, registers
    /// again when it is back, and the addresses it used may have been
    /// given to containers of other hosts meanwhile.
    Rm(ClusterRmArgs),
    /// This host's membership and agent, from local files only (works
    /// with the store down).
    Status(PsArgs),
}

#[derive(Debug, Args)]
pub struct ClusterRmArgs {
    /// The node to forget, as `cluster ls` names it.
    #[arg(value_name = "NODE")]
    pub node: String,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The etcd endpoints, comma-separated: http://IP:2379 or https://...
    #[arg(long, value_name = "URL[,URL]", value_delimiter = ',', required = true)]
    pub store: Vec<String>,
    /// This host's address the other hosts reach it at (VXLAN goes there).
    #[arg(long = "advertise-addr", value_name = "IP")]
    pub advertise_addr: std::net::Ipv4Addr,
    /// This host's name in the cluster (default: its hostname).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// TLS to the store: the CA that signed its certificate.
    #[arg(long = "store-cacert", value_name = "FILE")]
    pub store_cacert: Option<std::path::PathBuf>,
    /// TLS to the store: this host's client certificate.
    #[arg(long = "store-cert", value_name = "FILE")]
    pub store_cert: Option<std::path::PathBuf>,
    /// TLS to the store: this host's client key.
    #[arg(long = "store-key", value_name = "FILE")]
    pub store_key: Option<std::path::PathBuf>,
    /// Seconds this host's lease lives without its agent: how soon the
    /// other hosts forget a host that died.
    #[arg(long = "lease-ttl", value_name = "SECONDS", default_value_t = 10)]
    pub lease_ttl: u32,
}

#[cfg(test)]
mod hook_parser_tests {
    use super::*;

    fn line(argv: &[&str]) -> Option<Cli> {
        let words: Vec<std::ffi::OsString> = argv.iter().skip(2).map(Into::into).collect();
        hook_line(&words)
    }

    /// Where `hook_line` reads a command line, clap reads the same; what
    /// it does not read, clap does (or refuses, as always).
    #[test]
    fn hook_line_agrees_with_clap() {
        let read: &[&[&str]] = &[
            &["ocinet", "hook", "prestart"],
            &[
                "ocinet",
                "hook",
                "createRuntime",
                "--state-dir",
                "/s",
                "--config-dir",
                "/c",
            ],
            &["ocinet", "hook", "poststop", "--log-level", "debug"],
            &[
                "ocinet",
                "hook",
                "prestart",
                "--network",
                "n1",
                "--ip",
                "10.1.0.5",
                "--mac",
                "02:00:00:00:00:01",
                "--name",
                "web",
                "-p",
                "8080:80",
                "--publish",
                "53:53/udp",
            ],
            &[
                "ocinet",
                "hook",
                "createRuntime",
                "--state-dir=/x",
                "-p",
                "1:2,3:4",
                "-p",
                "5:6",
            ],
            &[
                "ocinet",
                "hook",
                "poststop",
                "--network=a=b",
                "--name",
                "x y",
            ],
        ];
        for argv in read {
            let fast = line(argv).unwrap_or_else(|| panic!("not read: {argv:?}"));
            let clap = Cli::try_parse_from(argv.iter()).expect("clap reads it");
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{argv:?}");
            let whole = Cli::parse_args(argv.iter());
            assert_eq!(format!("{whole:?}"), format!("{clap:?}"), "{argv:?}");
        }
        // Left to clap, which reads some and refuses the rest.
        let left: &[&[&str]] = &[
            &["ocinet", "hook"],
            &["ocinet", "hook", "sometime"],
            &["ocinet", "hook", "Prestart"],
            &["ocinet", "hook", "prestart", "--bogus", "x"],
            &["ocinet", "hook", "prestart", "--network"],
            &[
                "ocinet",
                "hook",
                "prestart",
                "--network",
                "a",
                "--network",
                "b",
            ],
            &[
                "ocinet",
                "hook",
                "prestart",
                "--state-dir",
                "/a",
                "--state-dir",
                "/b",
            ],
            &["ocinet", "hook", "prestart", "--network", "--ip"],
            &["ocinet", "hook", "prestart", "--network="],
            &["ocinet", "hook", "prestart", "-p8080:80"],
            &["ocinet", "hook", "prestart", "-p=8080:80"],
            &["ocinet", "hook", "prestart", "--help"],
            &["ocinet", "hook", "prestart", "--", "x"],
            &["ocinet", "hook", "prestart", "extra"],
        ];
        for argv in left {
            assert!(line(argv).is_none(), "read: {argv:?}");
        }
    }
}
