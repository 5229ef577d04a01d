//! `ocinet-exporter`: serves per-container veth counters and conntrack/NAT
//! statistics to Prometheus. It only reads: the hook's state files and the
//! kernel, over netlink, on every scrape.

mod collectors;
mod web;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
// `crate::cli` for the collectors and the web server: the library's module.
use ocinet_exporter::cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(format!(
        "ocinet_exporter={0},ocinet_common={0}",
        cli.log_level
    )) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "ocinet-exporter: invalid --log.level {:?}: {e}",
                cli.log_level
            );
            return ExitCode::FAILURE;
        }
    };
    // Colour only for a person at a terminal: a redirected log (journald,
    // a file) would get raw escape codes.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    if !cli.telemetry_path.starts_with('/') || cli.telemetry_path == "/" {
        eprintln!(
            "ocinet-exporter: invalid --web.telemetry-path {:?}: must start with / and not be /",
            cli.telemetry_path
        );
        return ExitCode::FAILURE;
    }
    let web_config = match &cli.web_config_file {
        Some(p) => match web::config::WebConfig::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ocinet-exporter: --web.config.file: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => web::config::WebConfig::default(),
    };
    let collectors = collectors::Collectors::new(&cli);
    let opts = web::ServerOptions {
        listen: cli.listen_address,
        telemetry_path: cli.telemetry_path.clone(),
        web_config,
        max_requests: cli.max_requests,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ocinet-exporter: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(web::serve(opts, collectors)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocinet-exporter: {e}");
            ExitCode::FAILURE
        }
    }
}
