//! `ocinet-dns`: the resolver as a binary of its own, which the hook starts
//! when it is installed beside `ocinet` (else it runs `ocinet dns-server`,
//! the same code): a process that lives as long as DNS containers do
//! keeps only the pages serving names needs resident.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ocinet_common::logging;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use ocinet_dns::server::{self, Lifetime};

#[derive(Debug, Parser)]
#[command(
    name = "ocinet-dns",
    version,
    about = "ocinet's resolver for DNS-enabled networks (started by the hook; \
             --persistent under a service manager)"
)]
struct Cli {
    /// The hooks' state directory.
    #[arg(long, default_value = "/run/ocinet", value_name = "DIR")]
    state_dir: PathBuf,
    /// Where network definitions live.
    #[arg(long, default_value = "/etc/ocinet", value_name = "DIR")]
    config_dir: PathBuf,
    /// Log level for the state directory's log file.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Keep running when no network has containers (until SIGTERM); hooks
    /// then use this one and start none.
    #[arg(long)]
    persistent: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let state = StateDir::new(&cli.state_dir);
    if let Err(e) = state.ensure_root() {
        eprintln!("ocinet-dns: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = logging::init(&state.log_file(), &cli.log_level) {
        eprintln!("ocinet-dns: {e}");
        return ExitCode::FAILURE;
    }
    let _span = tracing::info_span!("resolver", pid = std::process::id()).entered();
    let lifetime = if cli.persistent {
        Lifetime::Persistent
    } else {
        Lifetime::OnDemand
    };
    match server::run(state, ConfigDir::new(&cli.config_dir), lifetime) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ocinet-dns: {e}");
            ExitCode::FAILURE
        }
    }
}
