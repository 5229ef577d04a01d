use std::io;
use std::os::fd::AsFd;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::{Error, Result};

/// A blocking request/response netlink socket for any message family.
pub struct Transport {
    socket: Socket,
    seq: u32,
}

/// rtnetlink: links, addresses, routes.
pub struct Netlink {
    t: Transport,
}

impl Netlink {
    /// A socket in the calling thread's current network namespace.
    pub fn new() -> Result<Self> {
        Ok(Netlink {
            t: Transport::new(NETLINK_ROUTE)?,
        })
    }

    /// A socket bound to the namespace `ns` (the calling thread returns to
    /// its own namespace before this returns).
    pub fn new_in(ns: &impl AsFd) -> Result<Self> {
        crate::netns::with_netns(ns, Netlink::new)?
    }

    /// Have the kernel apply a dump request's filters (table, output
    /// interface) instead of dumping everything (NETLINK_GET_STRICT_CHK,
    /// Linux 4.20 and later; an older kernel dumps all, which callers
    /// filter again).
    pub fn strict_dumps(&mut self) -> Result<()> {
        self.t
            .socket
            .set_netlink_get_strict_chk(true)
            .map_err(|e| Error::io("netlink socket (strict dump checking)", e))
    }

    /// Send one request and wait for its ACK (or error).
    pub fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16, op: &str) -> Result<()> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags, op)
            .map(|_| ())
    }

    /// Send a request and collect its replies (a dump or a single answer).
    pub fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST
        };
        self.exchange(msg, flags, op)
    }

    /// As `get`, but calls `f` per reply instead of collecting (used for
    /// large dumps, which must stream).
    pub fn dump_each(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
        mut f: impl FnMut(RouteNetlinkMessage),
    ) -> Result<()> {
        self.run(msg, NLM_F_REQUEST | NLM_F_DUMP, op, &mut |m| f(m))
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        self.run(msg, flags, op, &mut |m| out.push(m))?;
        Ok(out)
    }

    fn run(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        f: &mut dyn FnMut(RouteNetlinkMessage),
    ) -> Result<()> {
        self.t.run(msg, flags, op, f)
    }
}

/// The longest any netlink receive waits. The kernel answers requests to
/// its own sockets inside sendmsg, so a real answer is already queued when
/// the receive starts; this only bounds a kernel (or a dump) that stalls,
/// and stays well under the 10 s hook timeout runtimes are given, so a
/// hook holding the state lock never waits past it.
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A netlink socket of `protocol` talking to the kernel, in the calling
/// thread's network namespace, with receives bounded by `ANSWER_TIMEOUT`.
pub fn open_socket(protocol: isize) -> Result<Socket> {
    let err = |source| Error::Netlink {
        op: "open socket".into(),
        source,
    };
    let mut socket = Socket::new(protocol).map_err(err)?;
    socket.bind_auto().map_err(err)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(err)?;
    // Extended acks make the kernel explain EINVAL and friends; best effort.
    let _ = socket.set_ext_ack(true);
    // Error answers carry only the failed message's header, not all of it
    // (a batch message can be 60 KiB).
    let _ = socket.set_cap_ack(true);
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as i64, 0),
    )
    .map_err(|e| err(e.into()))?;
    Ok(socket)
}

/// A failed receive, saying so plainly when it was the timeout.
pub fn recv_error(op: &str, source: io::Error) -> Error {
    let source = if source.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from the kernel within {} s",
                ANSWER_TIMEOUT.as_secs()
            ),
        )
    } else {
        source
    };
    Error::Netlink {
        op: op.to_string(),
        source,
    }
}

impl Transport {
    pub fn new(protocol: isize) -> Result<Self> {
        Ok(Transport {
            socket: open_socket(protocol)?,
            seq: 0,
        })
    }

    /// Send `msg` and hand every reply to `f` as it arrives (dumps stream:
    /// nothing is collected here).
    pub fn run<I>(&mut self, msg: I, flags: u16, op: &str, f: &mut dyn FnMut(I)) -> Result<()>
    where
        I: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        let err = |source: io::Error| Error::Netlink {
            op: op.to_string(),
            source,
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(err)?;

        let expect_multi = flags & NLM_F_DUMP == NLM_F_DUMP;
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| recv_error(op, e))?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<I>::deserialize(&data[offset..])
                    .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-length message",
                    )));
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue;
                }
                let multi = reply.header.flags & NLM_F_MULTIPART != 0;
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(()),
                            Some(code) => Err(err(io::Error::from_raw_os_error(-code.get()))),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => {
                        f(m);
                        if !multi && !expect_multi && flags & NLM_F_ACK == 0 {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Whether a netlink error is the given errno.
pub fn is_errno(e: &Error, errno: i32) -> bool {
    match e {
        Error::Netlink { source, .. } => source.raw_os_error() == Some(errno),
        _ => false,
    }
}
