//! The cluster store: what the members of an ocinet cluster share, in
//! etcd. Every value is versioned JSON, validated when read, so a value a
//! broken or hostile member wrote is refused and logged, never acted on.
//!
//! Keys (`keys.rs`), all under `/ocinet/v1/`:
//! - `members/<node>`: every host that joined, its advertise address,
//!   and since when it is down (no lease: it outlives the host);
//! - `nodes/<node>`: the host is up (on its lease, kept alive by its
//!   agent);
//! - `networks/<name>` and `vnis/<vni>`: overlay network definitions and
//!   the VXLAN identifiers they hold, created together in one transaction;
//! - `blocks/<network>/<cidr>`: a block of the network's subnet leased to
//!   one host (on its lease: a host that dies gives its blocks back once
//!   its lease expired, never before);
//! - `held/<network>/<cidr>`: the host that last held a block, off any
//!   lease, so that a host cut off past its lease (which may still run
//!   containers there) does not have its block given away while another
//!   is free, nor its network removed;
//! - `containers/<network>/<node>/<id>`: a container's name, aliases and
//!   addresses, for the other hosts' resolvers (on the host's lease).
//!
//! The store is reached synchronously (`Store`): the hook is a short-lived
//! process making a few requests, each bounded by `TIMEOUT`.

pub mod blocks;
pub mod config;
pub mod keys;
pub mod store;
pub mod values;

pub use config::ClusterConfig;
pub use store::{lease_gone, Guard, Store, TIMEOUT};
