//! `ocinet-proxy`: the port proxy as a binary of its own, which the hook
//! starts when it is installed beside `ocinet` (else it runs `ocinet
//! port-proxy`, the same code): a process that lives as long as ports are
//! published on `[::1]` keeps only the pages copying bytes needs resident.

use std::process::ExitCode;

use clap::Parser;
use ocinet_common::logging;
use ocinet_common::store::StateDir;
use ocinet_proxy::cli::Cli;
use ocinet_proxy::server::{self, Lifetime};

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
