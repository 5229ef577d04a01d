//! The data ocinet persists: networks (configuration) and endpoints (what a
//! container's setup did, so teardown can undo exactly that).

pub mod attachment;
pub mod endpoint;
mod endpoint_wire;
pub mod network;
mod network_drivers;
mod network_wire;
pub mod ports;
pub mod request;

pub use attachment::{Attachment, ChangeVerb, Changing};
pub use endpoint::{
    detached_sharers, shown_attachments, Endpoint, FirewallElement, Liveness, Mode, Origin, Phase,
    ProcessId,
};
pub use network::{
    BridgeOptions, Driver, DriverOptions, GatewayMode, MacvlanMode, MacvlanOptions, Network,
    OverlayOptions, Subnet, VXLAN_PORT,
};
pub use ports::{PortMapping, PortSpec, Protocol};
pub use request::{AddressRange, AttachmentRequest, DnsRequest, NetworkRequest, Request, Settings};
