//! The port proxy's command line, in the library so that the package's man
//! page and completions are generated from this one definition.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "ocinet-proxy",
    version,
    about = "ocinet's port proxy for published ports on the host's IPv6 loopback [::1] \
             (started by the hook; --persistent under a service manager)"
)]
pub struct Cli {
    /// The hooks' state directory.
    #[arg(long, default_value = "/run/ocinet", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Log level for the state directory's log file.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Keep running when no port is published on [::1] (until SIGTERM);
    /// hooks then use this one and start none.
    #[arg(long)]
    pub persistent: bool,
}
