//! The `ocinet` OCI hook and admin CLI, front ends over `ocinet-core`:
//! `hook` turns the runtime's state and bundle into the core's request,
//! `commands` are the admin verbs. As a library so that the fuzz targets
//! reach the parsers of untrusted input (`oci::read_state`,
//! `settings::resolve`).

pub mod cli;
pub mod commands;
pub mod hook;
pub use ocinet_common::logging;
pub mod oci;
pub mod settings;
