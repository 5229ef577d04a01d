//! The `ocinet` hook and admin CLI as a library: `main.rs` is a thin
//! front end, and the fuzz targets reach the parsers of untrusted input
//! (`oci::read_state`, `settings::resolve`) through here.

pub mod cli;
pub mod commands;
pub mod context;
mod killpoint;
pub mod lifecycle;
pub mod logging;
pub mod networks;
pub mod oci;
pub mod settings;
