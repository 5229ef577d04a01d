//! The resolver's command line, in the library so that the package's man
//! page and completions are generated from this one definition.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "ocinet-dns",
    version,
    about = "ocinet's resolver for DNS-enabled networks (started by the hook; \
             --persistent under a service manager)"
)]
pub struct Cli {
    /// The hooks' state directory.
    #[arg(long, default_value = "/run/ocinet", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Where network definitions live.
    #[arg(long, default_value = "/etc/ocinet", value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Log level for the state directory's log file.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Keep running when no network has containers (until SIGTERM); hooks
    /// then use this one and start none.
    #[arg(long)]
    pub persistent: bool,
}
