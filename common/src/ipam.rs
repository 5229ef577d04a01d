//! IPAM: which addresses of a network are leased, to whom. Every caller
//! reaches it through `Ipam`, opened by `open`, so a network whose
//! addresses are managed elsewhere (the overlay's cluster-wide IPAM,
//! leasing through etcd transactions) is one more implementation chosen
//! there, not a change in every caller. The first implementation is the
//! host's lease store (`store::ipam::Pool`).
//!
//! Addresses are `IpAddr` and leases are per address, so an IPv6 subnet
//! (a /64) is never walked or stored whole: an implementation serving one
//! finds a free address without enumerating the subnet.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::Network;
use crate::store::StateDir;
use crate::Result;

/// One network's address leases. Callers that change leases hold the
/// state lock; readers (`leases`, `addresses`, `fill`) need not.
pub trait Ipam: Send + Sync {
    /// The network whose addresses these are.
    fn network(&self) -> &str;

    /// Lease `requested` to `id` (refused, naming `field`, when `net` may
    /// not hand it out or another container holds it), or else a free
    /// address of `net`'s range, never its gateway, auxiliary or reserved
    /// addresses. An address `id` holds already counts as free for it: a
    /// setup killed after leasing and before recording gets it again.
    fn allocate(
        &self,
        net: &Network,
        id: &str,
        requested: Option<IpAddr>,
        field: &str,
    ) -> Result<IpAddr>;

    /// `allocate` on `net`'s IPv6 subnet (a dual-stack network): the
    /// requested address, or a free one found by searching from the last
    /// one handed out, never by walking the subnet: at most as many steps
    /// as there are leases and reserved addresses, plus one.
    fn allocate6(
        &self,
        net: &Network,
        id: &str,
        requested: Option<std::net::Ipv6Addr>,
        field: &str,
    ) -> Result<std::net::Ipv6Addr>;

    /// A free address of `first..=last` (one family, inside `net`'s
    /// subnet of it: a runtime's narrower range, CNI's `ipRanges`) leased
    /// to `id`, found as `allocate6` finds one, never by walking; `None`
    /// when every address there is taken.
    fn allocate_between(
        &self,
        net: &Network,
        id: &str,
        first: IpAddr,
        last: IpAddr,
    ) -> Result<Option<IpAddr>>;

    /// A dynamically found `ip` is recorded: the next search starts after
    /// it (a freed address is not reused at once, while stale conntrack
    /// entries or neighbour caches may still point at it).
    fn remember_last(&self, ip: IpAddr) -> Result<()>;

    /// Give `ip` back if `id` holds it; whether it did.
    fn release(&self, ip: IpAddr, id: &str) -> Result<bool>;

    /// Who holds `ip`, if anyone.
    fn holder(&self, ip: IpAddr) -> Result<Option<String>>;

    /// Every lease: address -> holder.
    fn leases(&self) -> Result<BTreeMap<IpAddr, String>>;

    /// The leased addresses, without who holds them.
    fn addresses(&self) -> Result<Vec<IpAddr>>;

    /// How full `net`'s range is (the exporter's gauges).
    fn fill(&self, net: &Network) -> Result<Fill>;

    /// How full `net`'s IPv6 range is, if it has one (`free` saturates at
    /// `u64::MAX` for a range of 2^64 addresses or more).
    fn fill6(&self, net: &Network) -> Result<Option<Fill>>;

    /// Forget every lease (`network rm`, with nothing attached).
    fn remove(&self) -> Result<()>;
}

/// How full a network's range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Leased addresses, static ones outside the range included.
    pub allocated: u64,
    /// Addresses of the range still to hand out.
    pub free: u64,
}

/// The IPAM of network `network`. Every network's addresses are leased
/// from this host's store today; a driver whose IPAM lives elsewhere is
/// an arm here.
pub fn open(state: &StateDir, network: &str) -> Result<Box<dyn Ipam>> {
    Ok(Box::new(state.pool(network)?))
}

/// The networks with leases in this host's store (or that had them: an
/// emptied pool stays until its network is removed), including those
/// whose definition is gone or broken, whose leases still hold addresses.
pub fn leased_networks(state: &StateDir) -> Result<Vec<String>> {
    state.leased_networks()
}
