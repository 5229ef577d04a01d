//! `ocinet-dns`: the resolver as a binary of its own, which the hook starts
//! when it is installed beside `ocinet` (else it runs `ocinet dns-server`,
//! the same code): a process that lives as long as DNS containers do
//! keeps only the pages serving names needs resident.

use std::process::ExitCode;

use clap::Parser;
use ocinet_common::logging;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use ocinet_dns::cli::Cli;
use ocinet_dns::server::{self, Lifetime};

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
