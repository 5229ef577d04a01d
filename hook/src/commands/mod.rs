pub mod firewall;
pub mod gc;
pub mod podman;
pub mod network;
pub mod ps;
