//! Conntrack over ctnetlink: removing the entries of a container's published
//! ports at teardown (otherwise a UDP flow keeps being sent to the dead
//! address, a known Docker and CNI portmap bug).

use std::net::IpAddr;

use netlink_packet_core::{DefaultNla, NLM_F_ACK};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol as CtProto, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::model::{PortMapping, Protocol};
use crate::netlink::Transport;
use crate::{Error, Result};

fn message(inner: ConntrackMessage) -> NetfilterMessage {
    message_in(Family::V4, inner)
}

/// Which of the kernel's conntrack tables (a dump lists one family's
/// entries, and a delete reads its tuple in the message's family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        }
    }
}

fn message_in(family: Family, inner: ConntrackMessage) -> NetfilterMessage {
    let f = match family {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    };
    NetfilterMessage::new(NetfilterHeader::new(f, 0, 0), inner)
}

/// (source address, protocol, source port) of a tuple.
fn tuple_source(t: &[Tuple]) -> (Option<IpAddr>, Option<CtProto>, Option<u16>) {
    let (mut ip, mut proto, mut port) = (None, None, None);
    for part in t {
        match part {
            Tuple::Ip(ips) => {
                for i in ips {
                    if let IPTuple::SourceAddress(a) = i {
                        ip = Some(*a);
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(pr) => proto = Some(*pr),
                        ProtoTuple::SourcePort(sp) => port = Some(*sp),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (ip, proto, port)
}

/// (destination address, destination port) of a tuple.
fn tuple_destination(t: &[Tuple]) -> (Option<IpAddr>, Option<u16>) {
    let (mut ip, mut port) = (None, None);
    for part in t {
        match part {
            Tuple::Ip(ips) => {
                for i in ips {
                    if let IPTuple::DestinationAddress(a) = i {
                        ip = Some(*a);
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    if let ProtoTuple::DestinationPort(dp) = p {
                        port = Some(*dp);
                    }
                }
            }
            _ => {}
        }
    }
    (ip, port)
}

/// What the exporter and teardown need of one conntrack entry.
pub struct Entry {
    pub orig: Vec<Tuple>,
    /// Who started it.
    pub orig_src: Option<IpAddr>,
    /// Who answers: for a DNATed connection, the container.
    pub reply_src: Option<IpAddr>,
    pub reply_sport: Option<u16>,
    pub protocol: Option<Protocol>,
    /// Where the client sent it: for a published port, the host address and
    /// host port.
    pub orig_dst: Option<IpAddr>,
    pub orig_dport: Option<u16>,
}

fn protocol_of(p: &CtProto) -> Option<Protocol> {
    match p {
        CtProto::Tcp => Some(Protocol::Tcp),
        CtProto::Udp => Some(Protocol::Udp),
        CtProto::Sctp => Some(Protocol::Sctp),
        _ => None,
    }
}

/// Walk the IPv4 conntrack table of the current network namespace with one
/// streamed dump: entries are handed to `f` as they arrive and never
/// collected (100k entries stream in a few MB; collected they took 127 MB).
pub fn for_each_entry(t: &mut Transport, f: impl FnMut(Entry)) -> Result<()> {
    for_each_entry_in(t, Family::V4, f)
}

/// `for_each_entry` over one family's table.
pub fn for_each_entry_in(
    t: &mut Transport,
    family: Family,
    mut f: impl FnMut(Entry),
) -> Result<()> {
    t.run(
        message_in(family, ConntrackMessage::Get(vec![])),
        netlink_packet_core::NLM_F_DUMP,
        "dump conntrack",
        &mut |m: NetfilterMessage| {
            let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner else {
                return;
            };
            let mut e = Entry {
                orig: Vec::new(),
                orig_src: None,
                reply_src: None,
                reply_sport: None,
                protocol: None,
                orig_dst: None,
                orig_dport: None,
            };
            for a in attrs {
                match a {
                    ConntrackAttribute::CtaTupleOrig(t) => {
                        (e.orig_dst, e.orig_dport) = tuple_destination(&t);
                        e.orig_src = tuple_source(&t).0;
                        e.orig = t;
                    }
                    ConntrackAttribute::CtaTupleReply(t) => {
                        let (src, proto, port) = tuple_source(&t);
                        e.reply_src = src;
                        e.reply_sport = port;
                        e.protocol = proto.as_ref().and_then(protocol_of);
                    }
                    _ => {}
                }
            }
            f(e)
        },
    )
}

pub fn open() -> Result<Transport> {
    Transport::new(NETLINK_NETFILTER)
}

/// The deletions' socket: one per process, kept open until exit. Closing
/// a netfilter socket right after an nf_tables commit (a teardown removes
/// its elements first) waits out an RCU grace period (see
/// `process::exit_leaving_to_child`), so none is closed on the way.
fn with_shared<T>(f: impl FnOnce(&mut Transport) -> Result<T>) -> Result<T> {
    static SHARED: std::sync::OnceLock<std::sync::Mutex<Transport>> = std::sync::OnceLock::new();
    let shared = match SHARED.get() {
        Some(s) => s,
        None => {
            let t = open()?;
            SHARED.get_or_init(|| std::sync::Mutex::new(t))
        }
    };
    let mut t = shared.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut t)
}

/// How many entries a deletion took: counted where ctnetlink was walked
/// from here, unknown where the kernel filtered its own flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Counted(usize),
    Flushed,
}

/// Which tuple of an entry a kernel-side flush matches the address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Who started the connection.
    Orig,
    /// Who answers it: the container, for one DNATed to it.
    Reply,
}

// linux/netfilter/nfnetlink_conntrack.h
const CTA_FILTER: u16 = 25;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
const CTA_FILTER_FLAG_CTA_IP_SRC: u32 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

/// Delete, inside the kernel, every entry whose `side` tuple has the
/// source `ip`: one flush filtered by CTA_FILTER (Linux 6.5 and later),
/// which walks the table without copying it out (0.1 ms here, where the
/// dump of the same table took 8.8 ms). `Ok(false)` where the kernel
/// cannot filter a flush (it refuses the message: EOPNOTSUPP, or EINVAL
/// from older kernels that read it as an incomplete tuple); nothing was
/// deleted then.
fn flush_source(t: &mut Transport, ip: IpAddr, side: Side) -> Result<bool> {
    // The walk kernels before 6.5 need stays tested on newer ones.
    if cfg!(debug_assertions) && std::env::var_os("OCINET_TEST_CONNTRACK_WALK").is_some() {
        return Ok(false);
    }
    let (orig_flags, reply_flags) = match side {
        Side::Orig => (CTA_FILTER_FLAG_CTA_IP_SRC, 0),
        Side::Reply => (0, CTA_FILTER_FLAG_CTA_IP_SRC),
    };
    let mut flags = Vec::with_capacity(16);
    for (kind, value) in [
        (CTA_FILTER_ORIG_FLAGS, orig_flags),
        (CTA_FILTER_REPLY_FLAGS, reply_flags),
    ] {
        flags.extend_from_slice(&8u16.to_ne_bytes());
        flags.extend_from_slice(&kind.to_ne_bytes());
        flags.extend_from_slice(&value.to_ne_bytes());
    }
    let tuple = vec![Tuple::Ip(vec![IPTuple::SourceAddress(ip)])];
    let attrs = vec![
        match side {
            Side::Orig => ConntrackAttribute::CtaTupleOrig(tuple),
            Side::Reply => ConntrackAttribute::CtaTupleReply(tuple),
        },
        ConntrackAttribute::Other(DefaultNla::new(CTA_FILTER | NLA_F_NESTED, flags)),
    ];
    let family = match Family::of(ip) {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    };
    // Version 1: the flush is limited to the header's family.
    let msg = NetfilterMessage::new(
        NetfilterHeader::new(family, 1, 0),
        ConntrackMessage::Delete(attrs),
    );
    match t.run(msg, NLM_F_ACK, "flush conntrack entries", &mut |_| {}) {
        Ok(()) => Ok(true),
        Err(Error::Netlink { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(nix::libc::EOPNOTSUPP | nix::libc::EINVAL)
            ) =>
        {
            tracing::debug!("this kernel cannot filter a conntrack flush: walking the table");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Delete the conntrack entries of connections made to `ip`, an address
/// leaving its container, and so those of its published ports
/// (`mappings`): in the kernel, where it can filter a flush (every entry
/// answered from `ip`); otherwise one streamed dump (only the matches
/// are kept), then one delete per match of a published port.
pub fn delete_for(ip: impl Into<IpAddr>, mappings: &[PortMapping]) -> Result<Deleted> {
    let ip: IpAddr = ip.into();
    let _span = tracing::debug_span!("conntrack_delete", %ip, ports = mappings.len()).entered();
    if mappings.is_empty() {
        return Ok(Deleted::Counted(0));
    }
    if nothing_tracked() {
        return Ok(Deleted::Counted(0));
    }
    if with_shared(|t| flush_source(t, ip, Side::Reply))? {
        return Ok(Deleted::Flushed);
    }
    delete_where(Family::of(ip), |e| {
        e.reply_src == Some(ip)
            && mappings
                .iter()
                .any(|m| e.reply_sport == Some(m.container_port) && e.protocol == Some(m.protocol))
    })
    .map(Deleted::Counted)
}

/// Delete every conntrack entry of a connection `ip` took part in (that
/// it started, masqueraded or not, or that was made to it): an address
/// taken off a running container keeps none, or the container given it
/// next would inherit its flows.
pub fn delete_address(ip: impl Into<IpAddr>) -> Result<Deleted> {
    let ip: IpAddr = ip.into();
    let _span = tracing::debug_span!("conntrack_delete_address", %ip).entered();
    if nothing_tracked() {
        return Ok(Deleted::Counted(0));
    }
    let flushed =
        with_shared(|t| Ok(flush_source(t, ip, Side::Orig)? && flush_source(t, ip, Side::Reply)?))?;
    if flushed {
        return Ok(Deleted::Flushed);
    }
    delete_where(Family::of(ip), |e| {
        e.orig_src == Some(ip) || e.reply_src == Some(ip)
    })
    .map(Deleted::Counted)
}

/// A namespace tracking no connection at all has nothing to delete:
/// callers have removed the DNAT elements already, so none can appear.
fn nothing_tracked() -> bool {
    let none = crate::sysctl::read_u64(TRACKED_CONNECTIONS).ok() == Some(0);
    if none {
        tracing::debug!("no connections tracked in this namespace");
    }
    none
}

fn delete_where(family: Family, matches: impl Fn(&Entry) -> bool) -> Result<usize> {
    // The dump walks the kernel's whole hash table (262,144 buckets here,
    // ~8 ms however few entries there are) with bottom halves off: only
    // for kernels that cannot filter a flush.
    with_shared(|t| {
        let mut doomed: Vec<Vec<Tuple>> = Vec::new();
        for_each_entry_in(t, family, |e| {
            if matches(&e) {
                doomed.push(e.orig);
            }
        })?;
        let mut deleted = 0;
        for orig in doomed {
            match t.run(
                message_in(
                    family,
                    ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(orig)]),
                ),
                NLM_F_ACK,
                "delete conntrack entry",
                &mut |_| {},
            ) {
                Ok(()) => deleted += 1,
                // Expired between the dump and the delete.
                Err(Error::Netlink { source, .. })
                    if source.raw_os_error() == Some(nix::libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::debug!(deleted, "conntrack entries deleted");
        Ok(deleted)
    })
}

/// Connections tracked in the reader's network namespace.
pub const TRACKED_CONNECTIONS: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

/// IPCTNL_MSG_CT_GET_STATS_CPU and the CTA_STATS_* attributes the exporter
/// reports (linux/netfilter/nfnetlink_conntrack.h).
const IPCTNL_MSG_CT_GET_STATS_CPU: u8 = 4;
pub const CPU_STATS: &[(u16, &str)] = &[
    (2, "found"),
    (4, "invalid"),
    (8, "insert"),
    (9, "insert_failed"),
    (10, "drop"),
    (11, "early_drop"),
    (12, "error"),
    (13, "search_restart"),
];

/// Per-CPU conntrack statistics: (cpu, name, raw 32-bit value). Read over
/// netlink because /proc/net/stat/nf_conntrack is often compiled out.
pub fn stats_per_cpu() -> Result<Vec<(u16, &'static str, u32)>> {
    let mut t = open()?;
    let mut out = Vec::new();
    let req = message(ConntrackMessage::Other {
        message_type: IPCTNL_MSG_CT_GET_STATS_CPU,
        attributes: vec![],
    });
    t.run(
        req,
        netlink_packet_core::NLM_F_DUMP,
        "conntrack stats per cpu",
        &mut |m: NetfilterMessage| {
            let cpu = m.header.res_id;
            if let NetfilterMessageInner::Conntrack(ConntrackMessage::Other {
                attributes, ..
            }) = m.inner
            {
                for nla in attributes {
                    use netlink_packet_core::Nla;
                    let Some((_, name)) = CPU_STATS.iter().find(|(k, _)| *k == nla.kind()) else {
                        continue;
                    };
                    let mut buf = [0u8; 4];
                    if nla.value_len() == 4 {
                        nla.emit_value(&mut buf);
                        out.push((cpu, *name, u32::from_be_bytes(buf)));
                    }
                }
            }
        },
    )?;
    Ok(out)
}
