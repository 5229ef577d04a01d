//! The exporter's command line and web-config loader as a library, so that
//! the package's man page and completions are generated from the definition
//! the binary parses, and the docs' examples are checked by the loader the
//! binary runs (integration/tests/docs.rs).

pub mod cli;
#[path = "web/config.rs"]
pub mod web_config;
