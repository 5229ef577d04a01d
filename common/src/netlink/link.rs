use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, LinkAttribute, LinkExtentMask,
    LinkFlags, LinkMessage, State,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::socket::is_errno;
use super::Netlink;
use crate::Result;

/// An interface by index or by name.
#[derive(Debug, Clone, Copy)]
pub enum LinkRef<'a> {
    Index(u32),
    Name(&'a str),
}

/// What ocinet needs to know of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Vec<u8>,
    pub mtu: u32,
    pub up: bool,
    pub controller: Option<u32>,
    pub kind: Option<String>,
    pub oper_up: bool,
    /// Interface counters (64-bit), as the kernel keeps them: only from
    /// `link_with_stats` and `links`.
    pub stats: Option<netlink_packet_route::link::Stats64>,
    /// Whether its frames are Ethernet frames (ARPHRD_ETHER): what the
    /// kernel asks of a macvlan's lower device.
    pub ethernet: bool,
    /// IFF_LOOPBACK: the kernel refuses it as a macvlan lower.
    pub loopback: bool,
    /// IFLA_IFALIAS: the mark of a link ocinet retired (`RETIRED_ALIAS`).
    pub alias: Option<String>,
}

/// The alias a retired link carries (`Netlink::retire_link`). The mark,
/// not a name, says a link is retired: a rename runs nf_tables' netdevice
/// notifier (`NETDEV_CHANGENAME`), which queues on its `commit_mutex`
/// behind every other process's netfilter socket close for a grace
/// period, the largest wait of concurrent teardowns.
pub const RETIRED_ALIAS: &str = "ocinet: retired";

impl Link {
    /// Whether ocinet retired this link (see `RETIRED_ALIAS`).
    pub fn is_retired(&self) -> bool {
        self.alias.as_deref() == Some(RETIRED_ALIAS)
    }

    pub fn from_message(m: &LinkMessage) -> Self {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mac: Vec::new(),
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            controller: None,
            kind: None,
            oper_up: false,
            stats: None,
            ethernet: m.header.link_layer_type == netlink_packet_route::link::LinkLayerType::Ether,
            loopback: m.header.flags.contains(LinkFlags::Loopback),
            alias: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(a) => l.mac = a.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Controller(c) => l.controller = Some(*c),
                LinkAttribute::OperState(s) => l.oper_up = *s == State::Up,
                LinkAttribute::Stats64(s) => l.stats = Some(*s),
                LinkAttribute::IfAlias(a) => l.alias = Some(a.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let netlink_packet_route::link::LinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

impl Netlink {
    /// The link named `name`, without its counters: the kernel leaves out
    /// the link's and IPv6's statistics, half of the answer, which a setup
    /// would compute and parse for nothing (twice per container).
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        self.get_link(name, false)
    }

    /// The link named `name` with its counters.
    pub fn link_with_stats(&mut self, name: &str) -> Result<Option<Link>> {
        self.get_link(name, true)
    }

    fn get_link(&mut self, name: &str, stats: bool) -> Result<Option<Link>> {
        let _span = tracing::debug_span!("link_get", name).entered();
        let mut msg = LinkUnspec::new_with_name(name).build();
        if !stats {
            msg.attributes
                .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        }
        match self.get(
            RouteNetlinkMessage::GetLink(msg),
            false,
            &format!("get link {name}"),
        ) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })),
            Err(e) if is_errno(&e, nix::libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.get(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            true,
            "dump links",
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })
            .collect())
    }

    /// Create a bridge; `Ok(false)` if one of that name already existed.
    ///
    /// Multicast snooping is off: with it on, every port that comes up
    /// makes the bridge re-arm the multicast timers of *every* port
    /// (`br_port_state_selection` -> `br_multicast_enable_port`), which
    /// `perf` showed growing from 0.03 to 0.57 ms per setup between the
    /// first and the last 100 of 1,000 containers. Off, the bridge floods
    /// multicast to every port, as it does with snooping on when no querier
    /// runs; `ip link set <bridge> type bridge mcast_snooping 1` turns it
    /// back on, and ocinet leaves an existing bridge's setting alone.
    pub fn create_bridge(&mut self, name: &str, mtu: u32, mac: &[u8]) -> Result<bool> {
        let _span = tracing::debug_span!("bridge_create", name, mtu).entered();
        let msg = LinkBridge::new(name)
            .mtu(mtu)
            .address(mac.to_vec())
            .append_info_data(InfoBridge::MulticastSnooping(false))
            .up()
            .build();
        match self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_link(&mut self, msg: LinkMessage, what: &str) -> Result<()> {
        let _span = tracing::debug_span!("link_set", what).entered();
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, what)
    }

    /// No IPv6 link-local address (hence no DAD, router or MLD
    /// solicitations) on an interface that has no carrier yet. ocinet
    /// networks are IPv4-only, as Docker does for networks without IPv6;
    /// on a bridge every such multicast frame of every new container is
    /// flooded to every port, which made setups slow down with the number
    /// of containers (measured in BENCHMARKS.md, section 3).
    pub fn disable_ipv6_autoconf(&mut self, link: LinkRef<'_>) -> Result<()> {
        let _span = tracing::debug_span!("link_addrgenmode_none").entered();
        let mut msg = match link {
            LinkRef::Index(i) => LinkUnspec::new_with_index(i).build(),
            LinkRef::Name(n) => LinkUnspec::new_with_name(n).build(),
        };
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        match self.ack(
            RouteNetlinkMessage::SetLink(msg),
            0,
            "set addrgenmode none (no IPv6 link-local)",
        ) {
            // A kernel booted with ipv6.disable=1: nothing to turn off.
            Err(e) if is_errno(&e, nix::libc::EAFNOSUPPORT) => Ok(()),
            r => r,
        }
    }

    pub fn set_up_by_name(&mut self, name: &str, what: &str) -> Result<()> {
        self.set_link(LinkUnspec::new_with_name(name).up().build(), what)
    }

    pub fn set_up(&mut self, index: u32, what: &str) -> Result<()> {
        self.set_link(LinkUnspec::new_with_index(index).up().build(), what)
    }

    /// Make `index` a port of `bridge`, and up.
    pub fn attach(&mut self, index: u32, bridge: u32, what: &str) -> Result<()> {
        self.set_link(
            LinkUnspec::new_with_index(index)
                .controller(bridge)
                .up()
                .build(),
            what,
        )
    }

    /// Create a veth pair whose host end is attached to `bridge` and up, and
    /// whose peer is made directly inside the namespace `peer_ns` with the
    /// given name, MAC and MTU. The peer cannot be brought up in the same
    /// request (the kernel configures it before the pair is linked and
    /// answers ENOTCONN): set it up from inside afterwards. One request: the container end never
    /// exists in the host namespace, so nothing there can race for its name.
    #[allow(clippy::too_many_arguments)]
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: &impl AsFd,
        peer_mac: &[u8],
        mtu: u32,
        bridge: u32,
    ) -> Result<()> {
        let _span = tracing::debug_span!("veth_create", host, peer).entered();
        // One queue each way on both ends, as the kernel ends up with
        // anyway: made with its default (one per CPU), each end is cut
        // down to one after registration, and each cut waits for an
        // expedited RCU grace period under the RTNL lock (measured with
        // `ip link add`: 9.7 ms against 4.7 ms per pair on a loaded host).
        let one_queue = [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)];
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .address(peer_mac.to_vec())
            .setns_by_fd(peer_ns.as_fd().as_raw_fd())
            .build();
        peer_msg.attributes.extend(one_queue.clone());
        // The host end is made down: the caller turns IPv6 off on it
        // before it comes up (`sysctl::disable_ipv6_on_port`).
        let mut builder = LinkVeth::new(host, peer).mtu(mtu).controller(bridge);
        builder = builder.set_info_data(netlink_packet_route::link::InfoData::Veth(
            netlink_packet_route::link::InfoVeth::Peer(peer_msg),
        ));
        let mut msg = builder.build();
        msg.attributes.extend(one_queue);
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {host} with peer {peer}"),
        )
    }

    /// A macvlan sub-interface of `parent` made directly inside `ns` as
    /// `name` (it never exists in the host namespace, so it cannot clash
    /// with a host interface of that name).
    #[allow(clippy::too_many_arguments)]
    pub fn create_macvlan(
        &mut self,
        name: &str,
        parent: u32,
        mode: crate::model::MacvlanMode,
        mac: &[u8],
        mtu: u32,
        ns: &impl AsFd,
    ) -> Result<()> {
        use netlink_packet_route::link::MacVlanMode as M;
        let _span = tracing::debug_span!("macvlan_create", name, parent).entered();
        let mode = match mode {
            crate::model::MacvlanMode::Bridge => M::Bridge,
            crate::model::MacvlanMode::Private => M::Private,
            crate::model::MacvlanMode::Vepa => M::Vepa,
            crate::model::MacvlanMode::Passthru => M::Passthrough,
        };
        let msg = rtnetlink::LinkMacVlan::new(name, parent, mode)
            .mtu(mtu)
            .address(mac.to_vec())
            .setns_by_fd(ns.as_fd().as_raw_fd())
            .build();
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create macvlan {name} on parent index {parent}"),
        )
    }

    /// Bridge-port flags on a veth that is already a bridge port. Port
    /// (slave) data is only honoured by RTM_NEWLINK on an existing link,
    /// not by RTM_SETLINK.
    /// By name, the kernel finds the link itself: no RTM_GETLINK first,
    /// whose answer for a veth with its peer in another namespace costs a
    /// scan of every namespace id the host has given out (`peernet2id`).
    /// `up`: also bring it up, in the same request (the kernel applies the
    /// port data first, then the flags): one request fewer, and the port
    /// never forwards before its flags are set.
    pub fn set_bridge_port(
        &mut self,
        link: LinkRef<'_>,
        hairpin: bool,
        up: bool,
        what: &str,
    ) -> Result<()> {
        let _span = tracing::debug_span!("bridge_port_set", hairpin, up).entered();
        let index = match link {
            LinkRef::Index(i) => i,
            LinkRef::Name(_) => 0,
        };
        let port = LinkBridgePort::new(index).hairpin(hairpin);
        let mut msg = if up { port.up().build() } else { port.build() };
        if let LinkRef::Name(n) = link {
            msg.attributes.push(LinkAttribute::IfName(n.to_string()));
        }
        self.ack(RouteNetlinkMessage::NewLink(msg), 0, what)
    }

    /// Take a link out of service at once, for a later deletion (by the
    /// kernel with its peer's namespace, a reaper, or `gc`): down, out of
    /// its bridge and marked retired (`RETIRED_ALIAS`) in one request that
    /// waits for no grace period, as a deletion does, and runs no
    /// nf_tables notifier, as a rename does. It keeps its name: a new
    /// link that needs it moves it aside first (`set_aside_retired`).
    /// `rename`: also rename it (the container's end, so that a new ADD
    /// into the same namespace finds its name free; a namespace of its
    /// own has an nf_tables of its own, nobody else's mutex).
    /// `Ok(false)` if it did not exist, or stopped existing meanwhile: a
    /// veth whose peer's namespace ended (a container whose pin went with
    /// crun's private mount namespace) is deleted by the kernel's
    /// namespace cleanup at a moment of its own, between the lookup and
    /// the request.
    pub fn retire_link(&mut self, name: &str, rename: Option<&str>) -> Result<bool> {
        let _span = tracing::debug_span!("link_retire", name, ?rename).entered();
        let retired = match rename {
            // By name: the kernel finds the link itself, no RTM_GETLINK
            // first (whose answer for a veth with its peer in another
            // namespace costs a scan of the host's namespace ids).
            None => self.set_link(
                LinkUnspec::new_with_name(name)
                    .down()
                    .nocontroller()
                    .alias(RETIRED_ALIAS)
                    .build(),
                &format!("retire link {name}"),
            ),
            Some(new_name) => {
                let Some(link) = self.link_by_name(name)? else {
                    return Ok(false);
                };
                let retire = LinkUnspec::new_with_index(link.index)
                    .down()
                    .nocontroller()
                    .alias(RETIRED_ALIAS)
                    .build();
                // Renamed after it is down: kernels before 6.2 refuse to
                // rename an interface that is up (EBUSY), and rename
                // before they apply flags.
                self.set_link(retire, &format!("retire link {name}"))
                    .and_then(|()| {
                        self.set_link(
                            LinkUnspec::new_with_index(link.index)
                                .name(new_name)
                                .build(),
                            &format!("rename link {name} to {new_name}"),
                        )
                    })
            }
        };
        match retired {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Free `name` for a new link if a retired veth still holds it (a
    /// container set up again at once under the same id, before the
    /// kernel or the reaper deleted its old pair): renamed to `new_name`,
    /// still marked. Only this rare path pays the rename's wait.
    /// `Ok(false)` when `name` is not a retired veth's (somebody else's
    /// interface, or none): the caller's conflict stands.
    pub fn set_aside_retired(&mut self, name: &str, new_name: &str) -> Result<bool> {
        let _span = tracing::debug_span!("link_set_aside", name, new_name).entered();
        let Some(link) = self.link_by_name(name)? else {
            // Gone meanwhile: the name is free.
            return Ok(true);
        };
        if link.kind.as_deref() != Some("veth") || !link.is_retired() {
            return Ok(false);
        }
        let rename = LinkUnspec::new_with_index(link.index)
            .name(new_name)
            .build();
        match self.set_link(rename, &format!("rename retired link {name} to {new_name}")) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::ENODEV) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Delete a link by index (a retired one: its name may be given to a
    /// new link meanwhile, its index is not); `Ok(false)` if it did not
    /// exist.
    pub fn delete_link_by_index(&mut self, index: u32, what: &str) -> Result<bool> {
        let _span = tracing::debug_span!("link_delete", index, what).entered();
        self.delete(
            LinkUnspec::new_with_index(index).build(),
            &format!("delete link {what} (index {index})"),
        )
    }

    /// Delete a link by name; `Ok(false)` if it did not exist.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let _span = tracing::debug_span!("link_delete", name).entered();
        self.delete(
            LinkUnspec::new_with_name(name).build(),
            &format!("delete link {name}"),
        )
    }

    /// RTM_DELLINK of the link `msg` names; `Ok(false)` if there was none.
    fn delete(&mut self, msg: LinkMessage, what: &str) -> Result<bool> {
        match self.ack(RouteNetlinkMessage::DelLink(msg), 0, what) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
