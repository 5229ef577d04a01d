//! `ocinet-proxy`: the port proxy as a binary of its own, which the hook
//! starts when it is installed beside `ocinet` (else it runs `ocinet
//! port-proxy`, the same code): a process that lives as long as ports are
//! published on `[::1]` keeps only the pages copying bytes needs resident.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ocinet_common::logging;
use ocinet_common::store::StateDir;
use ocinet_proxy::server::{self, Lifetime};

#[derive(Debug, Parser)]
#[command(
    name = "ocinet-proxy",
    version,
    about = "ocinet's port proxy for published ports on the host's IPv6 loopback [::1] \
             (started by the hook; --persistent under a service manager)"
)]
struct Cli {
    /// The hooks' state directory.
    #[arg(long, default_value = "/run/ocinet", value_name = "DIR")]
    state_dir: PathBuf,
    /// Log level for the state directory's log file.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Keep running when no port is published on [::1] (until SIGTERM);
    /// hooks then use this one and start none.
    #[arg(long)]
    persistent: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let state = StateDir::new(&cli.state_dir);
    if let Err(e) = state.ensure_root() {
        eprintln!("ocinet-proxy: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = logging::init(&state.log_file(), &cli.log_level) {
        eprintln!("ocinet-proxy: {e}");
        return ExitCode::FAILURE;
    }
    let _span = tracing::info_span!("proxy", pid = std::process::id()).entered();
    let lifetime = if cli.persistent {
        Lifetime::Persistent
    } else {
        Lifetime::OnDemand
    };
    match server::run(state, lifetime) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ocinet-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
