//! The exporter's command line as a library, so that the package's man page
//! and completions are generated from the definition the binary parses.

pub mod cli;
