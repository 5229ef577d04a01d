pub mod firewall;
pub mod gc;
pub mod network;
pub mod podman;
pub mod ps;
