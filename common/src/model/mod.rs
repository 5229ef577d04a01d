//! The data ocinet persists: networks (configuration) and endpoints (what a
//! container's setup did, so teardown can undo exactly that).

pub mod endpoint;
pub mod network;
pub mod ports;

pub use endpoint::{detached_sharers, Endpoint, FirewallElement, Mode, Phase, ProcessId};
pub use network::{Driver, GatewayMode, MacvlanMode, Network};
pub use ports::{PortMapping, PortSpec, Protocol};
