//! Shared core of ocinet: the data model, the on-disk state, and the kernel
//! plumbing (netlink, nftables, namespaces) used by the hook and the exporter.

pub mod conntrack;
pub mod error;
pub mod firewall;
pub mod gone;
pub mod health;
pub mod ipam;
pub mod logging;
pub mod memory;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod process;
pub mod store;
pub mod sysctl;
pub mod validate;

pub use error::{Error, Result};
