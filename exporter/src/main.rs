//! `ocinet-exporter`: the Prometheus exporter (issue 4, not built yet). The
//! crate exists so the workspace layout is final; it reads the hook's state
//! through `ocinet-common`.

fn main() -> std::process::ExitCode {
    eprintln!("ocinet-exporter {}: not implemented yet", env!("CARGO_PKG_VERSION"));
    std::process::ExitCode::FAILURE
}
