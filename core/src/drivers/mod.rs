//! The network-driver seam: how one attachment of a container is made on
//! a network of one kind (netavark's `NetworkDriver` + factory is the
//! model). The steps every driver shares (lease, intent record, firewall,
//! pin, rollback) are the lifecycle's (`attachments.rs`); a driver only
//! says what it refuses, what it will make, and makes it. Teardown is one
//! shared path driven by what the record says was made (`release.rs`), so
//! it does not depend on the network definition still being there or of
//! the same kind (no driver is built for it: a record's attachment names
//! a host veth or a macvlan parent); the removal of each kind of device
//! lives in its driver's module (`bridge::veth::remove_host_ends`,
//! `macvlan::remove`).

use std::fs::File;

use ocinet_common::model::{Attachment, Driver, Network, PortSpec};
use ocinet_common::netlink::Netlink;
use ocinet_common::Result;

pub mod bridge;
pub mod macvlan;

use crate::attach::Lease;
use crate::context::Locked;

/// What the host side of a network gave `prepare`: the index of the link
/// its attachments hang from (a bridge, a macvlan parent), and of the one
/// its resolver is reached through (a macvlan network's shim, made once
/// per setup rather than for each attachment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    pub link: Option<u32>,
    pub dns_link: Option<u32>,
}

pub trait NetworkDriver {
    fn network(&self) -> &Network;

    /// Refuse, before anything is taken, what this driver cannot do with
    /// these published ports (`[]` for an attachment that publishes none).
    fn check(&self, ports: &[PortSpec], ports_field: &str, host: &mut Netlink) -> Result<()>;

    /// The attachment `interface` of container `id` as it will be made with
    /// `lease`: recorded before it is made.
    fn describe(
        &self,
        id: &str,
        interface: &str,
        lease: &Lease,
        default_route: bool,
        ports: &[PortSpec],
    ) -> Attachment;

    /// What the network's containers share on the host (a bridge), made or
    /// checked before any of them is wired.
    fn prepare(&self, ctx: &Locked, host: &mut Netlink) -> Result<Prepared>;

    /// Make `att` in the namespace `ns`. What was made may differ from
    /// what was described (`att` is corrected): passthru's MAC, or a name
    /// that turned out to be someone else's, which is then not ours to
    /// delete.
    fn wire(
        &self,
        host: &mut Netlink,
        att: &mut Attachment,
        ns: &File,
        prepared: Prepared,
    ) -> Result<()>;

    /// After a failed `wire`, remove what only the namespace reaches (the
    /// shared teardown finds the namespace only once it is pinned).
    fn unwire_inside(&self, _ns: &File, _att: &Attachment) -> Result<()> {
        Ok(())
    }

    /// Whether its attachments have firewall elements (a macvlan
    /// container's traffic never crosses the host's forwarding path).
    fn uses_firewall(&self) -> bool;

    /// Put running attachments back after the host lost what they stand on
    /// (a deleted bridge). Returns (devices made, ports put back).
    fn restore(
        &self,
        ctx: &Locked,
        host: &mut Netlink,
        running: &[&Attachment],
    ) -> Result<(usize, usize)>;
}

/// What every driver's attachment has: the leased address with the
/// network's prefix, the MAC, and the default route via the network's
/// gateway when it carries it (never on an internal network).
pub(crate) fn described(
    net: &Network,
    interface: &str,
    lease: &Lease,
    default_route: bool,
) -> Attachment {
    Attachment {
        addresses: vec![lease.net(net).into()],
        gateway: (default_route && !net.internal).then_some(std::net::IpAddr::V4(net.gateway())),
        mac: Some(ocinet_common::validate::format_mac(&lease.mac)),
        ..Attachment::new(&net.name, interface)
    }
}

/// The driver of `net`.
pub fn for_network(net: Network) -> Box<dyn NetworkDriver> {
    match net.driver {
        Driver::Bridge => Box::new(bridge::BridgeDriver { net }),
        Driver::Macvlan => Box::new(macvlan::MacvlanDriver { net }),
    }
}
