//! The HTTP side: exporter-toolkit web config (TLS, basic auth), the landing
//! page, the telemetry path, bounded concurrency, clean shutdown.

pub mod auth;
mod body;
pub use ocinet_exporter::web_config as config;
mod server;
mod tls;

pub use server::{serve, ServerOptions};
