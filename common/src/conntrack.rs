//! Conntrack over ctnetlink: removing the entries of a container's published
//! ports at teardown (otherwise a UDP flow keeps being sent to the dead
//! address, a known Docker and CNI portmap bug).

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::NLM_F_ACK;
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol as CtProto, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::model::{PortMapping, Protocol};
use crate::netlink::Transport;
use crate::{Error, Result};

fn message(inner: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0), inner)
}

fn proto_matches(p: &CtProto, want: Protocol) -> bool {
    matches!((p, want), (CtProto::Tcp, Protocol::Tcp) | (CtProto::Udp, Protocol::Udp) | (CtProto::Sctp, Protocol::Sctp))
}

/// (source address, protocol, source port) of a tuple.
fn tuple_source(t: &[Tuple]) -> (Option<Ipv4Addr>, Option<CtProto>, Option<u16>) {
    let (mut ip, mut proto, mut port) = (None, None, None);
    for part in t {
        match part {
            Tuple::Ip(ips) => {
                for i in ips {
                    if let IPTuple::SourceAddress(IpAddr::V4(a)) = i {
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

/// Delete every conntrack entry whose reply comes from `ip` on one of the
/// container ports of `mappings`. One streamed dump (only the matches are
/// kept), then one delete per match. Returns how many were deleted.
pub fn delete_for(ip: Ipv4Addr, mappings: &[PortMapping]) -> Result<usize> {
    let _span = tracing::debug_span!("conntrack_delete", %ip, ports = mappings.len()).entered();
    if mappings.is_empty() {
        return Ok(0);
    }
    let mut t = Transport::new(NETLINK_NETFILTER)?;
    let mut doomed: Vec<Vec<Tuple>> = Vec::new();
    t.run(
        message(ConntrackMessage::Get(vec![])),
        netlink_packet_core::NLM_F_DUMP,
        "dump conntrack",
        &mut |m: NetfilterMessage| {
            let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner else { return };
            let mut orig = None;
            let mut matched = false;
            for a in attrs {
                match a {
                    ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t),
                    ConntrackAttribute::CtaTupleReply(t) => {
                        let (src, proto, port) = tuple_source(&t);
                        matched = src == Some(ip)
                            && mappings.iter().any(|m| {
                                port == Some(m.container_port) && proto.as_ref().is_some_and(|p| proto_matches(p, m.protocol))
                            });
                    }
                    _ => {}
                }
            }
            if let (true, Some(o)) = (matched, orig) {
                doomed.push(o);
            }
        },
    )?;
    let mut deleted = 0;
    for orig in doomed {
        match t.run(message(ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(orig)])), NLM_F_ACK, "delete conntrack entry", &mut |_| {}) {
            Ok(()) => deleted += 1,
            // Expired between the dump and the delete.
            Err(Error::Netlink { source, .. }) if source.raw_os_error() == Some(nix::libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    tracing::debug!(deleted, "conntrack entries deleted");
    Ok(deleted)
}
