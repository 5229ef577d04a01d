//! Synchronous rtnetlink. Messages are built with rtnetlink's builders; the
//! transport is a blocking socket, because the hook is a short-lived process
//! that makes a handful of requests and a socket is bound to the namespace it
//! was opened in: open one per namespace and no thread ever has to juggle
//! namespaces while an async runtime schedules work on it.

pub mod addr;
pub mod link;
pub mod neigh;
pub mod nsid;
pub mod route;
mod socket;
pub mod vxlan;

pub use link::{LinkRef, RETIRED_ALIAS};
pub use netlink_packet_route::link::Stats64;
pub use socket::{open_socket, recv_error, Netlink, Transport, ANSWER_TIMEOUT};
