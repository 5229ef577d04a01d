//! ocinet's resolver (issue 15): containers on a DNS-enabled network
//! resolve each other's names (the ocinet name, aliases, the first 12
//! characters of the id) through the resolver on the network's gateway;
//! other names go to the network's upstreams (or the host's). One process
//! per host network namespace, started by the hook (`control`), reading
//! ocinet's state itself (`catalog`), deciding each answer without I/O
//! (`answer`), forwarding with a deadline (`forward`), limiting each
//! client (`limit`), keeping figures the exporter reads (`stats`) and
//! ending when what it serves is gone (`gone`).
//! Wire parsing and building are hickory-proto's.

pub mod answer;
pub mod catalog;
pub mod cli;
pub mod control;
pub mod forward;
/// Moved to `ocinet_common::gone` (the port proxy ends the same way).
pub use ocinet_common::gone;
pub mod limit;
pub mod server;
pub mod stats;
