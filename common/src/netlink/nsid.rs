//! Namespace ids: the number a namespace knows another one by, which the
//! kernel puts in every link notification about a link whose peer lives
//! in that other namespace (`IFLA_LINK_NETNSID`).

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::socket::is_errno;
use super::Netlink;
use crate::Result;

impl Netlink {
    /// Give the namespace `peer` the id `id` in this socket's namespace.
    /// `Ok(false)`: `peer` has an id here already, or `id` is taken (the
    /// kernel answers EEXIST to both); nothing changed.
    pub fn assign_nsid(&mut self, peer: &impl AsFd, id: i32) -> Result<bool> {
        let _span = tracing::debug_span!("nsid_assign", id).entered();
        let mut msg = NsidMessage::default();
        msg.attributes
            .push(NsidAttribute::Fd(peer.as_fd().as_raw_fd() as u32));
        msg.attributes.push(NsidAttribute::Id(id));
        match self.ack(
            RouteNetlinkMessage::NewNsId(msg),
            0,
            &format!("assign namespace id {id}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
