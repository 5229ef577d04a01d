//! Set and map elements over nf_tables netlink: the per-container fast
//! path. One batch (one atomic transaction) per hook call, sent straight to
//! the kernel: no `nft` process, no JSON, no ruleset cache. The skeleton
//! itself (tables, chains, rules) is still declared by `nft` (`nft.rs`);
//! only elements come this way, encoded from the same `ruleset::SETS` table
//! the skeleton is declared from.
//!
//! Hand-written rather than through a crate: rustables is GPL-3.0 and has no
//! map data or concatenated keys, nftnl binds the C libnftnl. The wire format
//! is small and checked against the kernel and `nft`'s own listing in
//! `integration/tests/firewall_wire.rs`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLA_F_NESTED, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::Socket;
use serde_json::Value;

use super::ruleset::{self, Field, SetSpec, TABLE};
use crate::model::Protocol;
use crate::{validate, Error, Result};

// linux/netfilter/nfnetlink.h, nf_tables.h, netlink.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
/// The inclusive end of a range in a concatenated interval set.
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NFPROTO_INET: u8 = 1;
const NFPROTO_BRIDGE: u8 = 7;
const IFNAMSIZ: usize = 16;
const NLM_F_APPEND: u16 = 0x800;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_DROP: u32 = 0;
/// Registers as the kernel numbers them: the verdict, the first 16-byte
/// one, and the 4-byte ones (NFT_REG32_04 starts right after NFT_REG_1's
/// 16 bytes, so a concatenation can continue there).
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG32_04: u32 = 12;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_LL_HEADER: u32 = 0;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_LOOKUP_F_INV: u32 = 1;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_ADVERT: u8 = 136;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Delete,
}

/// One element as the kernel sees it: key (and data) bytes, and the
/// interval-end flag for the upper bound of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireElement {
    pub key: Vec<u8>,
    /// A concatenated interval set's element is one range: the start in
    /// `key`, the inclusive end here (no interval-end element).
    pub key_end: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
    pub interval_end: bool,
}

fn bad(set: &str, what: &Value, reason: impl std::fmt::Display) -> Error {
    Error::Firewall(format!("element {what} of set {set}: {reason}"))
}

/// Bytes of one field, padded to the 4-byte register size when part of a
/// concatenation (which is how the kernel lays concatenated keys out).
fn encode_field(field: Field, v: &Value, set: &str, concat: bool) -> Result<Vec<u8>> {
    let text = || match v {
        Value::String(s) => Ok(s.as_str()),
        _ => Err(bad(
            set,
            v,
            format!("{} must be a string", field.nft_type()),
        )),
    };
    let number = || -> Result<u64> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| bad(set, v, format!("{} must be a number", field.nft_type())))
    };
    let mut out = match field {
        // nft's mark type is in host byte order.
        Field::Mark => u32::try_from(number()?)
            .map_err(|_| bad(set, v, "mark out of range"))?
            .to_ne_bytes()
            .to_vec(),
        Field::Ifname => {
            let name = text()?;
            validate::ifname(&format!("element of set {set}"), name)?;
            let mut b = name.as_bytes().to_vec();
            b.resize(IFNAMSIZ, 0);
            b
        }
        Field::Ipv4 => text()?
            .parse::<Ipv4Addr>()
            .map_err(|e| bad(set, v, e))?
            .octets()
            .to_vec(),
        Field::Ipv6 => text()?
            .parse::<Ipv6Addr>()
            .map_err(|e| bad(set, v, e))?
            .octets()
            .to_vec(),
        Field::EtherAddr => validate::mac(&format!("element of set {set}"), text()?)?.to_vec(),
        Field::InetProto => vec![match v {
            Value::String(s) => Protocol::from_name(s)
                .ok_or_else(|| bad(set, v, "unknown protocol"))?
                .number(),
            _ => u8::try_from(number()?).map_err(|_| bad(set, v, "protocol out of range"))?,
        }],
        Field::InetService => u16::try_from(number()?)
            .map_err(|_| bad(set, v, "port out of range"))?
            .to_be_bytes()
            .to_vec(),
    };
    if concat {
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    Ok(out)
}

fn encode_key(spec: &SetSpec, key: &Value) -> Result<Vec<u8>> {
    match spec.key {
        [one] => encode_field(*one, key, spec.name, false),
        fields => {
            let parts = key
                .get("concat")
                .and_then(Value::as_array)
                .filter(|p| p.len() == fields.len())
                .ok_or_else(|| {
                    bad(
                        spec.name,
                        key,
                        format!("expected a concatenation of {} fields", fields.len()),
                    )
                })?;
            let mut out = Vec::new();
            for (f, p) in fields.iter().zip(parts) {
                out.extend(encode_field(*f, p, spec.name, true)?);
            }
            Ok(out)
        }
    }
}

/// The kernel elements for one element of `set` as ocinet records it (the
/// nftables JSON form). An interval set's prefix becomes two: its first
/// address and, flagged as an interval end, the address after its last.
pub fn encode(set: &str, key: &Value, value: Option<&Value>) -> Result<Vec<WireElement>> {
    let spec = ruleset::spec(set)
        .ok_or_else(|| Error::Firewall(format!("unknown set {set} in ocinet's tables")))?;
    let data = match (spec.data, value) {
        (Some(f), Some(v)) => Some(encode_field(f, v, set, false)?),
        (None, None) => None,
        (Some(_), None) => return Err(bad(set, key, "a map element needs a value")),
        (None, Some(_)) => return Err(bad(set, key, "a set element takes no value")),
    };
    if let (true, Some(prefix), [Field::Ipv6]) = (spec.interval, key.get("prefix"), spec.key) {
        let net = parse_prefix6(set, key, prefix)?;
        let mut out = vec![WireElement {
            key: net.network().octets().to_vec(),
            key_end: None,
            data,
            interval_end: false,
        }];
        if let Some(end) = u128::from(net.broadcast()).checked_add(1) {
            out.push(WireElement {
                key: end.to_be_bytes().to_vec(),
                key_end: None,
                data: None,
                interval_end: true,
            });
        }
        return Ok(out);
    }
    if let (true, Some(prefix)) = (spec.interval, key.get("prefix")) {
        let (start, end) = match spec.key {
            [Field::Ipv6] => {
                let net = parse_prefix6(set, key, prefix)?;
                let end = u128::from(net.broadcast()).checked_add(1);
                (
                    net.network().octets().to_vec(),
                    end.map(|e| e.to_be_bytes().to_vec()),
                )
            }
            _ => {
                let net = parse_prefix(set, key, prefix)?;
                let end = u32::from(net.broadcast()).checked_add(1);
                (
                    net.network().octets().to_vec(),
                    end.map(|e| e.to_be_bytes().to_vec()),
                )
            }
        };
        let mut out = vec![WireElement {
            key: start,
            key_end: None,
            data,
            interval_end: false,
        }];
        // A range reaching the family's last address has no end element
        // (as nft).
        if let Some(end) = end {
            out.push(WireElement {
                key: end,
                key_end: None,
                data: None,
                interval_end: true,
            });
        }
        return Ok(out);
    }
    if spec.interval && spec.key.len() > 1 {
        let (start, end) = encode_range(spec, key)?;
        return Ok(vec![WireElement {
            key: start,
            key_end: Some(end),
            data,
            interval_end: false,
        }]);
    }
    Ok(vec![WireElement {
        key: encode_key(spec, key)?,
        key_end: None,
        data,
        interval_end: false,
    }])
}

/// `{"addr": "10.0.0.0", "len": 8}` (nftables JSON's prefix), of `key`.
fn parse_prefix(set: &str, key: &Value, prefix: &Value) -> Result<ipnet::Ipv4Net> {
    let addr = prefix
        .get("addr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Ipv4Addr>().ok());
    let len = prefix
        .get("len")
        .and_then(Value::as_u64)
        .filter(|l| *l <= 32);
    let (Some(addr), Some(len)) = (addr, len) else {
        return Err(bad(set, key, "not an IPv4 prefix"));
    };
    ipnet::Ipv4Net::new(addr, len as u8).map_err(|e| bad(set, key, e))
}

/// `{"addr": "fd00::", "len": 64}`, of `key`.
fn parse_prefix6(set: &str, key: &Value, prefix: &Value) -> Result<ipnet::Ipv6Net> {
    let addr = prefix
        .get("addr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Ipv6Addr>().ok());
    let len = prefix
        .get("len")
        .and_then(Value::as_u64)
        .filter(|l| *l <= 128);
    let (Some(addr), Some(len)) = (addr, len) else {
        return Err(bad(set, key, "not an IPv6 prefix"));
    };
    ipnet::Ipv6Net::new(addr, len as u8).map_err(|e| bad(set, key, e))
}

/// A concatenated interval element: each part a value or an IPv4 prefix;
/// the start of every part, then the (inclusive) end of every part.
fn encode_range(spec: &SetSpec, key: &Value) -> Result<(Vec<u8>, Vec<u8>)> {
    let parts = key
        .get("concat")
        .and_then(Value::as_array)
        .filter(|p| p.len() == spec.key.len())
        .ok_or_else(|| {
            bad(
                spec.name,
                key,
                format!("expected a concatenation of {} fields", spec.key.len()),
            )
        })?;
    let (mut start, mut end) = (Vec::new(), Vec::new());
    for (f, p) in spec.key.iter().zip(parts) {
        match (f, p.get("prefix")) {
            (Field::Ipv4, Some(prefix)) => {
                let net = parse_prefix(spec.name, key, prefix)?;
                start.extend(net.network().octets());
                end.extend(net.broadcast().octets());
            }
            _ => {
                let b = encode_field(*f, p, spec.name, true)?;
                start.extend(&b);
                end.extend(&b);
            }
        }
    }
    Ok((start, end))
}

/// Builds one nfnetlink batch.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// The batch's begin message; its messages are numbered from here on.
    first: u32,
    /// (sequence number, description) of every message that is acked.
    acked: Vec<(u32, String)>,
}

/// Sequence numbers are unique within the process, so an answer left
/// unread by an earlier transaction on the shared socket is recognised as
/// not this one's.
static NEXT_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend((len as u16).to_ne_bytes());
    buf.extend(ty.to_ne_bytes());
    buf.extend(payload);
    buf.resize(buf.len().div_ceil(4) * 4, 0);
}

/// A nested attribute whose contents `f` writes.
fn push_nested(buf: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend([0u8; 4]);
    f(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

impl Batch {
    fn new(messages: u32) -> Self {
        // Begin, the elements and end.
        let mut b = Batch::numbered(messages + 2);
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, |_| {});
        b
    }

    /// An empty buffer with `count` process-unique sequence numbers
    /// reserved for its messages.
    fn numbered(count: u32) -> Self {
        let first = NEXT_SEQ.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        Batch {
            buf: Vec::with_capacity(4096),
            seq: first.wrapping_sub(1),
            first,
            acked: Vec::new(),
        }
    }

    /// Append one message; returns its sequence number.
    fn message(&mut self, ty: u16, flags: u16, family: u8, f: impl FnOnce(&mut Vec<u8>)) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        let start = self.buf.len();
        self.buf.extend(0u32.to_ne_bytes()); // length, below
        self.buf.extend(ty.to_ne_bytes());
        self.buf.extend(flags.to_ne_bytes());
        self.buf.extend(self.seq.to_ne_bytes());
        self.buf.extend(0u32.to_ne_bytes()); // port id: the kernel's
                                             // nfgenmsg: family, version 0, resource id (the subsystem, for the
                                             // batch messages) in network byte order.
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend(NFNL_SUBSYS_NFTABLES.to_be_bytes());
        f(&mut self.buf);
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.seq
    }

    fn elements(&mut self, verb: Verb, set: &str, elements: &[WireElement], what: String) {
        let (ty, flags) = match verb {
            Verb::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
            Verb::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
        };
        let seq = self.elements_message(ty, flags, set, elements, verb == Verb::Add);
        self.acked.push((seq, what));
    }

    /// One set-element message carrying `elements`, all of `set`;
    /// `with_data` sends map elements' values.
    fn elements_message(
        &mut self,
        ty: u16,
        flags: u16,
        set: &str,
        elements: &[WireElement],
        with_data: bool,
    ) -> u32 {
        let family = if ruleset::family_of(set) == ruleset::BRIDGE_FAMILY {
            NFPROTO_BRIDGE
        } else {
            NFPROTO_INET
        };
        let cstr = |s: &str| {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        };
        self.message((NFNL_SUBSYS_NFTABLES << 8) | ty, flags, family, |buf| {
            push_attr(buf, NFTA_SET_ELEM_LIST_TABLE, &cstr(TABLE));
            push_attr(buf, NFTA_SET_ELEM_LIST_SET, &cstr(set));
            push_nested(buf, NFTA_SET_ELEM_LIST_ELEMENTS, |buf| {
                for e in elements {
                    push_nested(buf, NFTA_LIST_ELEM, |buf| {
                        push_nested(buf, NFTA_SET_ELEM_KEY, |buf| {
                            push_attr(buf, NFTA_DATA_VALUE, &e.key)
                        });
                        if let Some(end) = &e.key_end {
                            push_nested(buf, NFTA_SET_ELEM_KEY_END, |buf| {
                                push_attr(buf, NFTA_DATA_VALUE, end)
                            });
                        }
                        if let (true, Some(d)) = (with_data, &e.data) {
                            push_nested(buf, NFTA_SET_ELEM_DATA, |buf| {
                                push_attr(buf, NFTA_DATA_VALUE, d)
                            });
                        }
                        if e.interval_end {
                            push_attr(
                                buf,
                                NFTA_SET_ELEM_FLAGS,
                                &NFT_SET_ELEM_INTERVAL_END.to_be_bytes(),
                            );
                        }
                    });
                }
            });
        })
    }

    fn finish(mut self) -> Self {
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, |_| {});
        self
    }
}

/// One expression of a rule: its name and its attributes (type, bytes).
struct Expr(&'static str, Vec<(u16, ExprValue)>);

enum ExprValue {
    U32(u32),
    Str(&'static str),
    /// NFTA_DATA_VALUE bytes, nested.
    Data(Vec<u8>),
    /// A verdict, nested as NFTA_DATA_VERDICT { NFTA_VERDICT_CODE }.
    Verdict(u32),
}

fn meta(key: u32, dreg: u32) -> Expr {
    // NFTA_META_DREG, NFTA_META_KEY
    Expr(
        "meta",
        vec![(1, ExprValue::U32(dreg)), (2, ExprValue::U32(key))],
    )
}

fn payload(base: u32, offset: u32, len: u32, dreg: u32) -> Expr {
    // NFTA_PAYLOAD_DREG, _BASE, _OFFSET, _LEN
    Expr(
        "payload",
        vec![
            (1, ExprValue::U32(dreg)),
            (2, ExprValue::U32(base)),
            (3, ExprValue::U32(offset)),
            (4, ExprValue::U32(len)),
        ],
    )
}

fn cmp_eq(data: Vec<u8>) -> Expr {
    // NFTA_CMP_SREG, _OP, _DATA
    Expr(
        "cmp",
        vec![
            (1, ExprValue::U32(NFT_REG_1)),
            (2, ExprValue::U32(NFT_CMP_EQ)),
            (3, ExprValue::Data(data)),
        ],
    )
}

fn lookup(set: &'static str, flags: u32) -> Expr {
    // NFTA_LOOKUP_SET, _SREG, _FLAGS
    Expr(
        "lookup",
        vec![
            (1, ExprValue::Str(set)),
            (2, ExprValue::U32(NFT_REG_1)),
            (5, ExprValue::U32(flags)),
        ],
    )
}

/// `iifname @guarded_ports ether type ip6 meta l4proto ipv6-icmp
/// @th,0,8 136 iifname . @th,64,128 != @port_ip6 drop`: a neighbour
/// advertisement from a container names its own address as the target.
/// Written here, not by `nft`, because nft 1.0.6 refuses to look a raw
/// payload (the target; it has no name for it) up in an `ipv6_addr` set,
/// and its JSON cannot declare a `typeof` set; the kernel compares bytes.
fn nd_target_guard() -> Vec<Expr> {
    vec![
        meta(NFT_META_IIFNAME, NFT_REG_1),
        lookup(ruleset::SET_GUARDED_PORTS, 0),
        payload(NFT_PAYLOAD_LL_HEADER, 12, 2, NFT_REG_1),
        cmp_eq(ETH_P_IPV6.to_be_bytes().to_vec()),
        meta(NFT_META_L4PROTO, NFT_REG_1),
        cmp_eq(vec![IPPROTO_ICMPV6]),
        payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1),
        cmp_eq(vec![ND_NEIGHBOR_ADVERT]),
        meta(NFT_META_IIFNAME, NFT_REG_1),
        payload(NFT_PAYLOAD_TRANSPORT_HEADER, 8, 16, NFT_REG32_04),
        lookup(ruleset::SET_PORT_IP6, NFT_LOOKUP_F_INV),
        // NFTA_IMMEDIATE_DREG, _DATA
        Expr(
            "immediate",
            vec![
                (1, ExprValue::U32(NFT_REG_VERDICT)),
                (2, ExprValue::Verdict(NF_DROP)),
            ],
        ),
    ]
}

impl Batch {
    /// Append `exprs` as a rule at the end of `chain` in ocinet's table of
    /// `family`.
    fn rule(&mut self, family: u8, chain: &str, exprs: &[Expr], what: String) {
        let cstr = |s: &str| {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        };
        let seq = self.message(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            family,
            |buf| {
                push_attr(buf, NFTA_RULE_TABLE, &cstr(TABLE));
                push_attr(buf, NFTA_RULE_CHAIN, &cstr(chain));
                push_nested(buf, NFTA_RULE_EXPRESSIONS, |buf| {
                    for Expr(name, attrs) in exprs {
                        push_nested(buf, NFTA_LIST_ELEM, |buf| {
                            push_attr(buf, NFTA_EXPR_NAME, &cstr(name));
                            push_nested(buf, NFTA_EXPR_DATA, |buf| {
                                for (ty, v) in attrs {
                                    match v {
                                        ExprValue::U32(n) => push_attr(buf, *ty, &n.to_be_bytes()),
                                        ExprValue::Str(s) => push_attr(buf, *ty, &cstr(s)),
                                        ExprValue::Data(d) => push_nested(buf, *ty, |buf| {
                                            push_attr(buf, NFTA_DATA_VALUE, d)
                                        }),
                                        ExprValue::Verdict(code) => push_nested(buf, *ty, |buf| {
                                            push_nested(buf, NFTA_DATA_VERDICT, |buf| {
                                                push_attr(
                                                    buf,
                                                    NFTA_VERDICT_CODE,
                                                    &code.to_be_bytes(),
                                                )
                                            })
                                        }),
                                    }
                                }
                            });
                        });
                    }
                });
            },
        );
        self.acked.push((seq, what));
    }
}

/// The rules of the skeleton that `nft` cannot write (`nd_target_guard`),
/// with the schema marker's element, as the last step of a rebuild: the
/// marker says "this version's table is complete", and every element batch
/// checks for it (`Op` on the marker: delete, then add), so a table left
/// without these rules by a rebuild cut short is rebuilt by the next one.
pub fn prepare_rebuild_tail(marker: &Value) -> Result<Transaction> {
    let marker = encode(ruleset::SCHEMA_MARKER, marker, None)?;
    let mut batch = Batch::new(2);
    batch.rule(
        NFPROTO_BRIDGE,
        "port_guard",
        &nd_target_guard(),
        "add the neighbour advertisement guard".into(),
    );
    batch.elements(
        Verb::Add,
        ruleset::SCHEMA_MARKER,
        &marker,
        "add the schema marker".into(),
    );
    Ok(Transaction(batch.finish()))
}

/// One element change, as ocinet records elements.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    pub verb: Verb,
    pub set: &'a str,
    pub key: &'a Value,
    pub value: Option<&'a Value>,
}

/// A batch encoded and ready to commit.
pub struct Transaction(Batch);

/// The most element-list bytes one message carries: the list is one
/// netlink attribute, and an attribute's length is 16 bits.
const MAX_LIST_BYTES: usize = 60 * 1024;

fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl WireElement {
    /// Bytes of its NFTA_LIST_ELEM attribute (as `elements_message` writes it).
    fn list_bytes(&self) -> usize {
        let data = self.data.as_ref().map_or(0, |d| 8 + padded(d.len()));
        let flags = if self.interval_end { 8 } else { 0 };
        let end = self.key_end.as_ref().map_or(0, |k| 8 + padded(k.len()));
        4 + 8 + padded(self.key.len()) + end + data + flags
    }
}

/// One message's worth: elements of one set, added or deleted.
struct Group<'a> {
    verb: Verb,
    set: &'a str,
    elements: Vec<WireElement>,
    first: String,
}

/// Encode `ops` into one batch; a bad element is refused here, before
/// anything reaches the kernel. A run of ops with the same verb and set
/// becomes one message (several past `MAX_LIST_BYTES`), so a batch has a
/// handful of answers however many elements it carries: one message (and
/// one ack) per element made some 8,000 answers for 4,096 published ports,
/// which overflowed the socket's receive queue (ENOBUFS) and left the
/// outcome unknown.
pub fn prepare(ops: &[Op]) -> Result<Transaction> {
    let mut groups: Vec<Group> = Vec::new();
    for op in ops {
        let encoded = encode(op.set, op.key, op.value)?;
        match groups.last_mut() {
            Some(g) if g.verb == op.verb && g.set == op.set => g.elements.extend(encoded),
            _ => groups.push(Group {
                verb: op.verb,
                set: op.set,
                elements: encoded,
                first: op.key.to_string(),
            }),
        }
    }
    let mut messages: Vec<(Verb, &str, Vec<WireElement>, String)> = Vec::new();
    for g in groups {
        let mut chunk: Vec<WireElement> = Vec::new();
        let mut bytes = 0;
        for e in g.elements {
            let size = e.list_bytes();
            // An interval's end stays with its start.
            if bytes + size > MAX_LIST_BYTES && !chunk.is_empty() && !e.interval_end {
                messages.push((g.verb, g.set, std::mem::take(&mut chunk), g.first.clone()));
                bytes = 0;
            }
            bytes += size;
            chunk.push(e);
        }
        if !chunk.is_empty() {
            messages.push((g.verb, g.set, chunk, g.first));
        }
    }
    let mut batch = Batch::new(messages.len() as u32);
    for (verb, set, elements, first) in messages {
        let what = format!(
            "{} {} element(s) of set {set} (starting with {first})",
            match verb {
                Verb::Add => "add",
                Verb::Delete => "delete",
            },
            elements.len(),
        );
        batch.elements(verb, set, &elements, what);
    }
    Ok(Transaction(batch.finish()))
}

impl Transaction {
    /// Apply the batch: all or nothing. A missing table or set (a flushed
    /// ruleset, another version's layout) is `FirewallMissing`.
    pub fn commit(self) -> Result<()> {
        let _span = tracing::debug_span!("nft_netlink", messages = self.0.acked.len()).entered();
        transact(&self.0)
    }
}

/// Whether `key` is in `set`: one lookup (GETSETELEM without a dump), not
/// a listing. A missing table or set answers false as well (the kernel says
/// ENOENT for all three); callers that must tell them apart look up the
/// schema marker too.
pub fn contains(set: &str, key: &Value) -> Result<bool> {
    let _span = tracing::debug_span!("nft_lookup", set, %key).entered();
    let encoded = encode(set, key, None)?;
    let [e] = encoded.as_slice() else {
        return Err(bad(set, key, "a lookup takes one plain element"));
    };
    // Not a batch: a lone request, answered on its own.
    let mut b = Batch::numbered(1);
    let seq = b.elements_message(
        NFT_MSG_GETSETELEM,
        NLM_F_REQUEST | NLM_F_ACK,
        set,
        std::slice::from_ref(e),
        false,
    );
    let socket = socket()?;
    socket
        .send(&b.buf, 0)
        .map_err(|e| io_err("nf_tables element lookup", e))?;
    // The element comes back as a NEWSETELEM message, then the ack; not
    // found is an error answer instead.
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        socket
            .recv(&mut buf, 0)
            .map_err(|e| crate::netlink::recv_error("nf_tables element lookup answer", e))?;
        for (ty, msg_seq, code) in answers(&buf)? {
            if msg_seq != seq || ty != NLMSG_ERROR {
                continue;
            }
            return match code {
                0 => Ok(true),
                c if c == nix::libc::ENOENT => Ok(false),
                c => Err(io_err(
                    &format!("looking up {key} in set {set}"),
                    io::Error::from_raw_os_error(c),
                )),
            };
        }
    }
}

/// (type, sequence number, error code for error answers) of each message
/// in one datagram of answers.
fn answers(buf: &[u8]) -> Result<Vec<(u16, u32, i32)>> {
    let word = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = word(off) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            return Err(io_err(
                "nf_tables answer",
                io::Error::new(io::ErrorKind::InvalidData, "truncated message"),
            ));
        }
        let code = if ty == NLMSG_ERROR && len >= 20 {
            -(word(off + 16) as i32)
        } else {
            0
        };
        out.push((ty, word(off + 8), code));
        off += len.div_ceil(4) * 4;
    }
    Ok(out)
}

fn io_err(op: &str, source: io::Error) -> Error {
    Error::Netlink {
        op: op.into(),
        source,
    }
}

/// Send the batch and collect one answer per acked message. The kernel
/// processes a batch inside sendmsg, so every answer is queued by the time
/// it returns; a failing message fails (aborts) the whole batch.
fn transact(batch: &Batch) -> Result<()> {
    let socket = socket()?;
    reserve_send_buffer(socket, batch.buf.len())?;
    socket
        .send(&batch.buf, 0)
        .map_err(|e| io_err("nf_tables batch send", e))?;
    let mut pending: Vec<(u32, &str)> = batch.acked.iter().map(|(s, w)| (*s, w.as_str())).collect();
    let mut failures = Vec::new();
    let mut missing = false;
    // One buffer for every answer: a batch is answered one datagram per
    // acked message, and a fresh 64 KiB each time was, under musl's
    // allocator, an mmap, its page faults and an munmap per answer.
    let mut buf = Vec::with_capacity(64 * 1024);
    while !pending.is_empty() {
        buf.clear();
        socket
            .recv(&mut buf, 0)
            .map_err(|e| crate::netlink::recv_error("nf_tables batch answer", e))?;
        for (ty, seq, code) in answers(&buf)? {
            if ty != NLMSG_ERROR {
                continue;
            }
            match pending.iter().position(|(s, _)| *s == seq) {
                Some(i) => {
                    let (_, what) = pending.swap_remove(i);
                    if code == nix::libc::ENOENT {
                        missing = true;
                    } else if code != 0 {
                        failures.push(format!("{what}: {}", io::Error::from_raw_os_error(code)));
                    }
                }
                // The batch itself was refused (begin or end message).
                None if code != 0 && (seq == batch.first || seq == batch.seq) => {
                    return Err(io_err(
                        "nf_tables batch",
                        io::Error::from_raw_os_error(code),
                    ))
                }
                // Left over from an earlier transaction.
                None => {}
            }
        }
    }
    if !failures.is_empty() {
        return Err(Error::Firewall(failures.join("; ")));
    }
    if missing {
        return Err(Error::FirewallMissing);
    }
    Ok(())
}

/// One socket per process, never closed before exit: closing a netfilter
/// socket right after a deletion waits for the kernel to free the deleted
/// elements (`nft`'s close() of its socket after deleting one element takes
/// ~9 ms here); by exit that work has long run. Its receives are bounded
/// (`netlink::ANSWER_TIMEOUT`): every acked message is answered inside
/// sendmsg, so the bound only guards against a kernel that leaves one
/// unanswered.
fn socket() -> Result<&'static Socket> {
    // One per process, never closed before exit: a close waits for the
    // release of committed transactions (see
    // `process::exit_leaving_to_child`).
    static SOCKET: std::sync::OnceLock<Socket> = std::sync::OnceLock::new();
    if let Some(s) = SOCKET.get() {
        return Ok(s);
    }
    let s = crate::netlink::open_socket(NETLINK_NETFILTER)?;
    Ok(SOCKET.get_or_init(|| s))
}

/// A batch is one datagram, and the kernel refuses one larger than the
/// socket's send buffer (EMSGSIZE; 208 KiB by default, ~1,300 published
/// ports' worth): grow it to fit, as nft does. Needs CAP_NET_ADMIN, which
/// changing the firewall needs anyway.
fn reserve_send_buffer(socket: &Socket, len: usize) -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RESERVED: AtomicUsize = AtomicUsize::new(128 * 1024);
    let want = len + 16 * 1024;
    if want <= RESERVED.load(Ordering::Relaxed) {
        return Ok(());
    }
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::SndBufForce, &want).map_err(
        |e| {
            io_err(
                &format!("nf_tables socket send buffer of {want} bytes"),
                e.into(),
            )
        },
    )?;
    RESERVED.store(want, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn concatenations_are_register_aligned() {
        let e = encode(
            ruleset::MAP_PUB_ANY_ADDR,
            &json!({"concat": ["tcp", 8080]}),
            Some(&json!("10.88.0.2")),
        )
        .unwrap();
        assert_eq!(e[0].key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e[0].data.as_deref(), Some(&[10, 88, 0, 2][..]));
        let e = encode(
            ruleset::SET_PORT_MAC,
            &json!({"concat": ["oc1", "02:6f:0a:58:00:02"]}),
            None,
        )
        .unwrap();
        assert_eq!(e[0].key.len(), 24);
        assert_eq!(&e[0].key[16..], &[2, 0x6f, 10, 88, 0, 2, 0, 0]);
    }

    #[test]
    fn a_prefix_is_a_start_and_an_end() {
        let e = encode(
            ruleset::SET_MASQ_SUBNETS,
            &json!({"prefix": {"addr": "10.88.0.0", "len": 16}}),
            None,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].key.as_slice(), e[0].interval_end),
            (&[10, 88, 0, 0][..], false)
        );
        assert_eq!(
            (e[1].key.as_slice(), e[1].interval_end),
            (&[10, 89, 0, 0][..], true)
        );
    }

    #[test]
    fn an_ipv6_prefix_is_a_start_and_an_end() {
        let e = encode(
            ruleset::SET_MASQ_SUBNETS6,
            &json!({"prefix": {"addr": "fd61::", "len": 64}}),
            None,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        let start: std::net::Ipv6Addr = "fd61::".parse().unwrap();
        let end: std::net::Ipv6Addr = "fd61:0:0:1::".parse().unwrap();
        assert_eq!(
            (e[0].key.as_slice(), e[0].interval_end),
            (&start.octets()[..], false)
        );
        assert_eq!(
            (e[1].key.as_slice(), e[1].interval_end),
            (&end.octets()[..], true)
        );
        // A port and its IPv6 address: 16 + 16 bytes.
        let e = encode(
            ruleset::SET_PORT_IP6,
            &json!({"concat": ["oc1", "fd61::2"]}),
            None,
        )
        .unwrap();
        assert_eq!(e[0].key.len(), 32);
        assert_eq!(e[0].key[31], 2);
        // An IPv4 address is not one.
        assert!(encode(
            ruleset::SET_OWN_SOURCES6,
            &json!({"prefix": {"addr": "10.0.0.0", "len": 8}}),
            None
        )
        .is_err());
    }

    #[test]
    fn bad_elements_name_the_set_and_value() {
        for (set, key) in [
            (ruleset::SET_BRIDGES, json!("a-name-far-too-long")),
            (ruleset::SET_PORT_IP, json!({"concat": ["oc1"]})),
            (
                ruleset::SET_PORT_IP,
                json!({"concat": ["oc1", "10.0.0.300"]}),
            ),
            ("nosuchset", json!("x")),
        ] {
            let e = encode(set, &key, None).unwrap_err().to_string();
            assert!(e.contains(set), "{e}");
        }
    }
}
