//! The network-driver seam. A driver owns everything that differs between
//! kinds of network, in two traits:
//!
//! - `NetworkKind`, one per driver (`kind(Driver)`): a network's life
//!   (the defaults and host checks of `network create`, what `network rm`
//!   removes, what `inspect` and `ls` show) and the teardown of what its
//!   attachments made, by record;
//! - `NetworkDriver`, one per network definition (`for_network`): how one
//!   attachment of a container is made (netavark's `NetworkDriver` +
//!   factory is the model).
//!
//! The steps every driver shares (lease, intent record, firewall, pin,
//! rollback; the order of `network create`'s checks) are the lifecycle's
//! (`attachments.rs`, `networks.rs`). Adding a driver is a module that
//! implements both traits, a `Driver` variant (with the definition's
//! checks, `Network::validate`), one arm in `kind` and one entry in
//! `KINDS` (a unit test fails when the two disagree).
//!
//! Teardown is driven by what the record says was made, not by the
//! network definition: the definition may be gone, broken, or a network
//! of another kind by now (removed and made again under the same name),
//! while the record's attachment still names what was made (a host veth
//! and a bridge, or a macvlan parent). So `release.rs` asks each kind
//! which attachments it `made`, judged from the attachment alone, and
//! never builds a `NetworkDriver` for teardown.

use std::fs::File;

use ipnet::Ipv4Net;
use ocinet_common::model::{
    Attachment, Driver, Endpoint, GatewayMode, Network, NetworkRequest, Phase, PortSpec,
};
use ocinet_common::netlink::Netlink;
use ocinet_common::store::networks::Broken;
use ocinet_common::{Error, Result};

pub mod bridge;
pub mod macvlan;
pub mod overlay;
pub mod owned;

use crate::context::{Context, Locked};
use crate::ipam::Lease;

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

    /// Whether its attachments are veth pairs, a host end for a container
    /// end: the host's link notifications about them name the container's
    /// namespace (see `crate::nsid`).
    fn uses_veths(&self) -> bool {
        false
    }

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
    let route = default_route && !net.internal;
    Attachment {
        addresses: lease.nets(net),
        gateway: net
            .v4()
            .filter(|_| route && lease.ip4.is_some())
            .map(|v4| std::net::IpAddr::V4(v4.gateway)),
        gateway6: net.gateway6().filter(|_| route && lease.ip6.is_some()),
        mac: Some(ocinet_common::validate::format_mac(&lease.mac)),
        routed_ipv4: lease.ip4.is_some() && net.gateway_mode_v4() == GatewayMode::Routed,
        routed_ipv6: lease.ip6.is_some() && net.gateway_mode_v6() == GatewayMode::Routed,
        ..Attachment::new(&net.name, interface)
    }
}

/// A kind of network (one per `Driver`): its life outside any one
/// attachment. What decides from the state and then changes it or the
/// host takes `&Locked`.
pub trait NetworkKind: Sync {
    fn driver(&self) -> Driver;

    /// The attachment wiring of `net`, a definition of this kind.
    fn for_network(&self, net: Network) -> Box<dyn NetworkDriver>;

    // `network create`, in the order `networks::create` calls them.

    /// The subnet of a new network whose request names none.
    fn default_subnet(&self, ctx: &Locked, host: &mut Netlink) -> Result<Ipv4Net>;

    /// This kind's part of a new definition built from `req`: its own
    /// fields and their defaults (name resolution on or off, the mode).
    /// `Network::validate` checks the result.
    fn shape(&self, req: &NetworkRequest, net: &mut Network);

    /// Check a new, valid definition against the host just before it is
    /// saved, and take from the host what it says (a macvlan network's
    /// MTU from its parent's); `mtu` is the one the request gave.
    fn check_host(
        &self,
        ctx: &Locked,
        host: &mut Netlink,
        net: &mut Network,
        mtu: Option<u32>,
    ) -> Result<()>;

    // `network rm`, once no container is on the network.

    /// Remove what the network has on the host (its bridge, its DNS
    /// shim), only what ocinet made; the caller found no container on it.
    fn remove(&self, ctx: &Locked, host: &mut Netlink, net: &Network) -> Result<()>;

    /// Remove what a network of this kind named `b.name` may have made,
    /// when its definition cannot be used: the kind is not known, so every
    /// kind is asked, each deleting only what it can prove is its own and
    /// no good definition (`good`) names.
    fn remove_broken(
        &self,
        ctx: &Locked,
        host: &mut Netlink,
        b: &Broken,
        good: &[Network],
    ) -> Result<()>;

    // What `network inspect` and `ls` show of it.

    /// `network inspect`'s `Options` (Docker's per-driver options).
    fn options(&self, net: &Network) -> serde_json::Value;

    /// The host device `network ls` shows in its BRIDGE column, if the
    /// network has one.
    fn device<'a>(&self, net: &'a Network) -> Option<&'a str>;

    // Teardown, by record (see the module's documentation).

    /// Whether this kind made `att`, judged from the record alone.
    fn made(&self, att: &Attachment) -> bool;

    /// Before anything else of `ep`'s teardown, when the caller waits on
    /// it (`Veths::Retire`): free the names inside the container that an
    /// ADD into the same namespace may want at once.
    fn retire_inside(&self, _ep: &Endpoint, _atts: &[&Attachment]) {}

    /// Remove the devices `atts` (all `made` by this kind) made, host
    /// veths as `how` says; push every failure to `errors` and go on.
    fn remove_devices(
        &self,
        ctx: &Locked,
        ep: &Endpoint,
        atts: &[&Attachment],
        how: Veths,
        errors: &mut Vec<Error>,
    );
}

pub use bridge::Veths;

/// The kind of network `driver` makes: the factory.
pub fn kind(driver: Driver) -> &'static dyn NetworkKind {
    match driver {
        Driver::Bridge => &bridge::Bridge,
        Driver::Macvlan => &macvlan::Macvlan,
        Driver::Overlay => &overlay::Overlay,
    }
}

/// Every kind, in the order teardown visits them: a record does not say
/// which driver made it (records of every earlier version must still be
/// torn down), so each kind is asked whether it `made` an attachment.
static KINDS: [&dyn NetworkKind; 3] = [&bridge::Bridge, &macvlan::Macvlan, &overlay::Overlay];

/// The attachment wiring of `net`.
pub fn for_network(net: Network) -> Box<dyn NetworkDriver> {
    kind(net.driver()).for_network(net)
}

/// Every kind of network, for what must ask each (a broken definition's
/// removal).
pub fn kinds() -> &'static [&'static dyn NetworkKind] {
    &KINDS
}

/// `retire_inside` of each kind for the attachments it made.
pub(crate) fn retire_inside(ep: &Endpoint, atts: &[Attachment]) {
    for k in KINDS {
        let mine: Vec<&Attachment> = atts.iter().filter(|a| k.made(a)).collect();
        if !mine.is_empty() {
            k.retire_inside(ep, &mine);
        }
    }
}

/// Remove the devices `atts` made, each by the kind whose record it is.
pub(crate) fn remove_devices(
    ctx: &Locked,
    ep: &Endpoint,
    atts: &[Attachment],
    how: Veths,
    errors: &mut Vec<Error>,
) {
    for k in KINDS {
        let mine: Vec<&Attachment> = atts.iter().filter(|a| k.made(a)).collect();
        if !mine.is_empty() {
            k.remove_devices(ctx, ep, &mine, how, errors);
        }
    }
}

/// The records that can be read; the others are logged and skipped.
pub(crate) fn readable_endpoints(ctx: &Context) -> Vec<Endpoint> {
    let (endpoints, bad) = ctx.state.list_endpoints();
    for e in bad {
        tracing::warn!("restore: skipping {e}");
    }
    endpoints
}

/// Attachments on `net` that should be in place now.
pub(crate) fn running_on<'a>(endpoints: &'a [Endpoint], net: &str) -> Vec<&'a Attachment> {
    endpoints
        .iter()
        .filter(|e| e.phase == Phase::Ready && !e.is_stale())
        .filter_map(|e| e.attachment_on(net))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_driver_has_a_kind_that_teardown_visits() {
        for d in [Driver::Bridge, Driver::Macvlan, Driver::Overlay] {
            // Exhaustive: a new driver does not compile until listed here.
            match d {
                Driver::Bridge | Driver::Macvlan | Driver::Overlay => {}
            }
            assert_eq!(kind(d).driver(), d);
            assert!(KINDS.iter().any(|k| k.driver() == d), "{d:?}");
        }
    }

    #[test]
    fn teardown_goes_by_the_record() {
        let mut veth = Attachment::new("web", "eth0");
        veth.host_veth = Some("veth0123".into());
        veth.bridge = Some("br-web".into());
        let mut sub = Attachment::new("web", "eth1");
        sub.parent = Some("eth0".into());
        let owners = |a: &Attachment| {
            KINDS
                .iter()
                .filter(|k| k.made(a))
                .map(|k| k.driver())
                .collect::<Vec<_>>()
        };
        // Whatever network "web" is now: the record decides.
        assert_eq!(owners(&veth), [Driver::Bridge]);
        assert_eq!(owners(&sub), [Driver::Macvlan]);
    }
}
