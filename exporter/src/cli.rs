use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// 9100-9999, the range Prometheus' default port allocations started with,
/// is fully allocated; 19870 is outside it and unlisted.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:19870";

#[derive(Debug, Parser)]
#[command(
    name = "ocinet-exporter",
    version,
    about = "Prometheus exporter for ocinet container networking"
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long = "web.listen-address", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen_address: SocketAddr,
    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,
    /// exporter-toolkit web configuration (TLS, basic auth).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Most scrapes served at once; more get 503 (0: no limit).
    #[arg(long = "web.max-requests", default_value_t = 40, value_name = "N")]
    pub max_requests: usize,
    /// The hook's state directory.
    #[arg(long = "state-dir", default_value = "/run/ocinet", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The hook's configuration directory (network definitions).
    #[arg(long = "config-dir", default_value = "/etc/ocinet", value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Log level: error, warn, info, debug.
    #[arg(long = "log.level", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    #[arg(
        long = "no-collector.netdev",
        help = "Disable the netdev collector (per-container veth counters)"
    )]
    pub no_netdev: bool,
    #[arg(
        long = "no-collector.conntrack",
        help = "Disable the conntrack collector (entries, limit, per-CPU stats)"
    )]
    pub no_conntrack: bool,
    #[arg(
        long = "no-collector.portmap",
        help = "Disable the portmap collector (connections per published port)"
    )]
    pub no_portmap: bool,
    #[arg(
        long = "no-collector.ipam",
        help = "Disable the ipam collector (addresses and endpoints per network)"
    )]
    pub no_ipam: bool,
    /// Disable the dns collector (the resolver's queries and forward latency).
    #[arg(long = "no-collector.dns")]
    pub no_dns: bool,
    /// Disable the attachments collector (macvlan attachments that lost
    /// their interface with their parent).
    #[arg(long = "no-collector.attachments")]
    pub no_attachments: bool,
}
