//! What a query gets, decided from the catalog alone (no I/O): a local
//! answer (a container's address, its name for a PTR, NXDOMAIN), a refusal,
//! or "forward it". Wire parsing and building are hickory-proto's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::catalog::NetworkNames;

/// Answers are not cached: a container that goes is gone at the next query.
const TTL: u32 = 0;

/// How a query ended, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    NxDomain,
    Forwarded,
    ServFail,
    Refused,
}

#[derive(Debug)]
pub enum Decision {
    Reply(Vec<u8>, Outcome),
    Forward,
    /// Not even a DNS header: nothing to answer.
    Drop,
}

/// What the client over UDP takes: 512 bytes, or the payload size its
/// EDNS record offers (never more than a buffer this size).
const UDP_MOST: u16 = 4096;

/// The longest answer the client of `msg` takes over UDP.
pub fn udp_limit(msg: &Message) -> usize {
    usize::from(msg.max_payload().clamp(512, UDP_MOST))
}

/// The decision on `query`; `udp`: it came over UDP, where an answer
/// longer than the client takes (a name many containers share as an
/// alias has as many addresses) keeps the records that fit and is marked
/// truncated (TC), as Docker's embedded DNS does: a client that asks again
/// over TCP gets them all, one that does not still has some.
pub fn decide(query: &[u8], net: Option<&NetworkNames>, udp: bool) -> Decision {
    let d = decide_in_full(query, net);
    let Decision::Reply(bytes, outcome) = &d else {
        return d;
    };
    if !udp || bytes.len() <= 512 {
        return d;
    }
    let Ok(msg) = Message::from_vec(query) else {
        return d;
    };
    let limit = udp_limit(&msg);
    if bytes.len() <= limit {
        return d;
    }
    let Ok(full) = Message::from_vec(bytes) else {
        return Decision::Drop;
    };
    let mut r = response(&msg, full.response_code(), *outcome);
    r.set_truncated(true);
    let Ok(base) = r.to_vec() else {
        return Decision::Drop;
    };
    // The records are alike (one name, one type): as many as the room
    // left takes at their mean size, fewer if that is still too long.
    let answers = full.answers();
    let each = bytes
        .len()
        .saturating_sub(base.len())
        .div_ceil(answers.len().max(1))
        .max(1);
    let mut n = (limit.saturating_sub(base.len()) / each).min(answers.len());
    loop {
        let mut t = r.clone();
        t.add_answers(answers[..n].iter().cloned());
        match t.to_vec() {
            Ok(b) if b.len() <= limit => return Decision::Reply(b, *outcome),
            // The question alone does not fit: nothing is sent.
            Ok(_) if n == 0 => return Decision::Drop,
            Ok(_) => n -= 1,
            Err(_) => return Decision::Drop,
        }
    }
}

fn decide_in_full(query: &[u8], net: Option<&NetworkNames>) -> Decision {
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return header_only(query, ResponseCode::FormErr),
    };
    if msg.message_type() != MessageType::Query {
        return Decision::Drop;
    }
    if msg.op_code() != OpCode::Query {
        return reply(&msg, ResponseCode::NotImp, Vec::new(), Outcome::Refused);
    }
    // EDNS version 0 is the one there is; a later one is answered BADVERS
    // (RFC 6891 6.1.3), so that a client speaking it falls back.
    if msg.extensions().as_ref().is_some_and(|e| e.version() > 0) {
        return reply(&msg, ResponseCode::BADVERS, Vec::new(), Outcome::Refused);
    }
    // Not one question: FORMERR, the header alone (the questions echoed
    // would make a reply as long as the query; fuzzing found one over the
    // UDP limit).
    let [q] = msg.queries() else {
        return header_only(query, ResponseCode::FormErr);
    };
    // Only the containers of a DNS-enabled network ask here.
    let Some(net) = net else {
        return reply(&msg, ResponseCode::Refused, Vec::new(), Outcome::Refused);
    };
    if q.query_class() != DNSClass::IN {
        return reply(&msg, ResponseCode::Refused, Vec::new(), Outcome::Refused);
    }
    let name = q.name().to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    if let Some(ip) = reverse_of(name) {
        // A reverse name of the network's subnet (either family) is ours
        // to answer; any other goes on, as any other name does.
        let owner = match ip {
            IpAddr::V4(ip) if net.subnet.is_some_and(|s| s.contains(&ip)) => net.reverse.get(&ip),
            IpAddr::V6(ip) if net.subnet6.is_some_and(|s| s.contains(&ip)) => net.reverse6.get(&ip),
            _ => return forward_unless_internal(&msg, net),
        };
        return match (q.query_type(), owner) {
            (RecordType::PTR, Some(owner)) => match Name::from_ascii(format!("{owner}.")) {
                Ok(target) => reply(
                    &msg,
                    ResponseCode::NoError,
                    vec![Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    )],
                    Outcome::Answered,
                ),
                Err(_) => reply(&msg, ResponseCode::ServFail, Vec::new(), Outcome::ServFail),
            },
            // The network's addresses are ours to know: one no container
            // has does not exist.
            (_, None) => reply(&msg, ResponseCode::NXDomain, Vec::new(), Outcome::NxDomain),
            (_, Some(_)) => reply(&msg, ResponseCode::NoError, Vec::new(), Outcome::Answered),
        };
    }
    let (v4, v6) = (net.names.get(name), net.names6.get(name));
    if v4.is_some() || v6.is_some() {
        let a = || {
            v4.into_iter()
                .flatten()
                .map(|ip| Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))))
        };
        let aaaa = || {
            v6.into_iter()
                .flatten()
                .map(|ip| Record::from_rdata(q.name().clone(), TTL, RData::AAAA(AAAA(*ip))))
        };
        let answers = match q.query_type() {
            RecordType::A => a().collect(),
            RecordType::AAAA => aaaa().collect(),
            RecordType::ANY => a().chain(aaaa()).collect(),
            // The name exists, with no record of that type (AAAA on an
            // IPv4-only network, A on an IPv6-only one among them:
            // NOERROR, no answer, so a client asking both goes on with
            // the record it got).
            _ => Vec::new(),
        };
        return reply(&msg, ResponseCode::NoError, answers, Outcome::Answered);
    }
    // A single label asked as an address is a container's name or
    // nothing: not a timeout waiting on an upstream that cannot know it
    // either. (The root, and TLDs asked for their NS, DS or DNSKEY, go on
    // to the upstream: validating resolvers in containers ask for them.)
    let address = matches!(
        q.query_type(),
        RecordType::A | RecordType::AAAA | RecordType::ANY
    );
    if !name.is_empty() && !name.contains('.') && address {
        return reply(&msg, ResponseCode::NXDomain, Vec::new(), Outcome::NxDomain);
    }
    forward_unless_internal(&msg, net)
}

/// Every name that is not the network's own goes to an upstream, except
/// from an internal network: it has no way out, and a resolver that
/// forwarded for it would be one (any name, reverse ones too, carries data
/// out in its labels and back in its answer).
fn forward_unless_internal(msg: &Message, net: &NetworkNames) -> Decision {
    if net.internal {
        return reply(msg, ResponseCode::Refused, Vec::new(), Outcome::Refused);
    }
    Decision::Forward
}

/// The address a `d.c.b.a.in-addr.arpa` name, or an ip6.arpa name of 32
/// nibbles (RFC 3596 2.5, lowest first), stands for. A shorter name (a
/// zone) is no address.
fn reverse_of(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let mut bits: u128 = 0;
        let mut n = 0;
        for (i, p) in rest.split('.').enumerate() {
            // One hex digit each ("0x1", "+1" and "01" are not nibbles).
            let [c] = p.as_bytes() else { return None };
            let v = char::from(*c).to_digit(16)?;
            if i >= 32 {
                return None;
            }
            bits |= u128::from(v) << (4 * i);
            n += 1;
        }
        return (n == 32).then(|| IpAddr::V6(Ipv6Addr::from(bits)));
    }
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    match o.as_slice() {
        [d, c, b, a] => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        _ => None,
    }
}

/// An answer to `msg` with the same id, question and RD flag.
fn reply(msg: &Message, code: ResponseCode, answers: Vec<Record>, outcome: Outcome) -> Decision {
    let mut r = response(msg, code, outcome);
    r.add_answers(answers);
    match r.to_vec() {
        Ok(bytes) => Decision::Reply(bytes, outcome),
        Err(_) => Decision::Drop,
    }
}

/// The response to `msg` without answers: its id, question and RD flag.
fn response(msg: &Message, code: ResponseCode, outcome: Outcome) -> Message {
    let mut r = Message::new();
    r.set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(msg.op_code())
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(matches!(outcome, Outcome::Answered | Outcome::NxDomain))
        .set_response_code(code);
    for q in msg.queries() {
        r.add_query(q.clone());
    }
    // A query with an OPT record gets one back (RFC 6891 7): version 0,
    // the payload size this resolver reads, and the DO bit as asked
    // (RFC 3225 3). BADVERS's upper bits travel in it.
    if let Some(asked) = msg.extensions() {
        let mut e = Edns::new();
        e.set_version(0)
            .set_max_payload(UDP_MOST)
            .set_dnssec_ok(asked.flags().dnssec_ok);
        r.set_edns(e);
    }
    r
}

/// SERVFAIL for a query that was to be forwarded and got no answer.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    match reply(&msg, ResponseCode::ServFail, Vec::new(), Outcome::ServFail) {
        Decision::Reply(b, _) => Some(b),
        _ => None,
    }
}

/// A reply of just the header, for a query that does not parse: its id,
/// QR set, `code`. Shorter than a header: nothing.
fn header_only(query: &[u8], code: ResponseCode) -> Decision {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Decision::Drop;
    }
    let mut h = [0u8; 12];
    h[..2].copy_from_slice(&query[..2]);
    // QR, the opcode and RD as asked; RA; the code.
    h[2] = 0x80 | (query[2] & 0x79);
    h[3] = 0x80 | (u16::from(code) as u8 & 0x0f);
    Decision::Reply(h.to_vec(), Outcome::Refused)
}

/// The common query answered straight from the wire, without parsing it
/// into a `Message` and building one back (most of an answer's cost in
/// user space): one question and no other section (no EDNS), opcode
/// QUERY, class IN, type A or AAAA, a name of plain labels (letters,
/// digits, `-`, `_`) that is a container's on `net`, and an answer of at
/// most 512 bytes. It is the reply `decide` gives, byte for byte (a test
/// holds them equal); any other query is None, and `decide` answers it.
pub fn quick(query: &[u8], net: &NetworkNames) -> Option<Vec<u8>> {
    const HEADER: usize = 12;
    // QR clear, opcode 0; one question, no answer, authority or
    // additional record.
    if query.get(2)? & 0xf8 != 0 || query.get(4..HEADER)? != [0, 1, 0, 0, 0, 0, 0, 0] {
        return None;
    }
    // The name, lower-cased, its labels joined by dots: what `decide`
    // looks up. 255 bytes at most on the wire, so shorter as text.
    let mut name = [0u8; 255];
    let mut len = 0;
    let mut at = HEADER;
    loop {
        let l = usize::from(*query.get(at)?);
        at += 1;
        if l == 0 {
            break;
        }
        // A compression pointer or an extended label type: not plain.
        if l > 63 || at + l - HEADER > 255 {
            return None;
        }
        let label = query.get(at..at + l)?;
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return None;
        }
        if len > 0 {
            name[len] = b'.';
            len += 1;
        }
        for b in label {
            name[len] = b.to_ascii_lowercase();
            len += 1;
        }
        at += l;
    }
    // The type and class end the message (anything after: `decide`).
    let tail = query.get(at..)?;
    let [t0, t1, 0, 1] = *tail else {
        return None;
    };
    let name = std::str::from_utf8(&name[..len]).ok()?;
    // The root, and reverse names (`decide` looks at those first).
    if name.is_empty() || name.ends_with(".in-addr.arpa") || name.ends_with(".ip6.arpa") {
        return None;
    }
    let (v4, v6) = (net.names.get(name), net.names6.get(name));
    if v4.is_none() && v6.is_none() {
        return None;
    }
    // How many answers, of what size; the name exists with none of the
    // type asked (NOERROR, no answer) as in `decide`.
    let qtype = u16::from_be_bytes([t0, t1]);
    let (n, each) = match qtype {
        1 => (v4.map_or(0, Vec::len), 4),
        28 => (v6.map_or(0, Vec::len), 16),
        _ => return None,
    };
    let size = at + 4 + n * (12 + each);
    if size > 512 {
        return None;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&query[..2]);
    // QR, AA (the name is ours), RD as asked; RA; NOERROR.
    out.push(0x80 | 0x04 | (query[2] & 0x01));
    out.push(0x80);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&u16::try_from(n).ok()?.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    // The question as asked, then each record: its name a pointer to the
    // question's (offset 12), the type asked, IN, TTL 0, the address.
    out.extend_from_slice(&query[HEADER..at + 4]);
    let record = |out: &mut Vec<u8>, rdata: &[u8]| {
        out.extend_from_slice(&[0xc0, 0x0c, t0, t1, 0, 1]);
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    };
    if qtype == 1 {
        v4.into_iter()
            .flatten()
            .for_each(|ip| record(&mut out, &ip.octets()));
    } else {
        v6.into_iter()
            .flatten()
            .for_each(|ip| record(&mut out, &ip.octets()));
    }
    Some(out)
}

/// A query for `name` of type `t`, for tests and the benchmark.
pub fn query_bytes(id: u16, name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_recursion_desired(true);
    if let Ok(n) = Name::from_ascii(name) {
        m.add_query(Query::query(n, t));
    }
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn net() -> NetworkNames {
        let ip = Ipv4Addr::new(10, 1, 0, 2);
        NetworkNames {
            name: "web".into(),
            address: Some(Ipv4Addr::new(10, 1, 0, 1)),
            subnet: Some("10.1.0.0/24".parse().unwrap()),
            address6: None,
            subnet6: None,
            upstreams: Vec::new(),
            rate: 0,
            internal: false,
            members_only: false,
            names: HashMap::from([("web-1".to_string(), vec![ip])]),
            reverse: HashMap::from([(ip, "web-1".to_string())]),
            names6: HashMap::new(),
            reverse6: HashMap::new(),
        }
    }

    /// `net()` made dual-stack: web-1 has fd00:1::2 too, and web-6 only an
    /// IPv6 address (as a record could say).
    fn net6() -> NetworkNames {
        let mut n = net();
        let ip6: Ipv6Addr = "fd00:1::2".parse().unwrap();
        n.address6 = Some("fd00:1::1".parse().unwrap());
        n.subnet6 = Some("fd00:1::/64".parse().unwrap());
        n.names6 = HashMap::from([("web-1".to_string(), vec![ip6])]);
        n.reverse6 = HashMap::from([(ip6, "web-1".to_string())]);
        n
    }

    /// The ip6.arpa name of `ip`.
    fn arpa6(ip: &str) -> String {
        let ip: Ipv6Addr = ip.parse().unwrap();
        let hex: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
        let mut s: String = hex.chars().rev().flat_map(|c| [c, '.']).collect();
        s += "ip6.arpa.";
        s
    }

    /// `net6()` without its IPv4 side, as an IPv6-only network's names are.
    fn net6_only() -> NetworkNames {
        let mut n = net6();
        n.address = None;
        n.subnet = None;
        n.names.clear();
        n.reverse.clear();
        n
    }

    /// Issue 22: on an IPv6-only network a name has AAAA records and no A
    /// (NOERROR, empty, so a client asking both goes on with the AAAA);
    /// PTR under ip6.arpa is answered; an in-addr.arpa name is nobody's
    /// here and goes on (refused from an internal network).
    #[test]
    fn names_on_an_ipv6_only_network() {
        let mut n = net6_only();
        let (m, o) = answer(&query_bytes(1, "web-1", RecordType::A), Some(&n));
        assert_eq!(
            (m.response_code(), o, m.answers().len()),
            (ResponseCode::NoError, Outcome::Answered, 0)
        );
        let (m, _) = answer(&query_bytes(2, "web-1", RecordType::AAAA), Some(&n));
        let got: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(got, ["fd00:1::2"]);
        let (m, _) = answer(&query_bytes(3, "web-1", RecordType::ANY), Some(&n));
        assert_eq!(m.answers().len(), 1);
        let (m, _) = answer(
            &query_bytes(4, &arpa6("fd00:1::2"), RecordType::PTR),
            Some(&n),
        );
        let got: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(got, ["web-1."]);
        let (m, _) = answer(&query_bytes(5, "nobody", RecordType::A), Some(&n));
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        let v4 = "2.0.1.10.in-addr.arpa.";
        assert!(matches!(
            decide(&query_bytes(6, v4, RecordType::PTR), Some(&n), true),
            Decision::Forward
        ));
        n.internal = true;
        let (m, _) = answer(&query_bytes(7, v4, RecordType::PTR), Some(&n));
        assert_eq!(m.response_code(), ResponseCode::Refused);
    }

    /// Issue 22: AAAA for a dual-stack network's names (alone, or beside
    /// the A records for ANY); on an IPv4-only network the name exists
    /// with no AAAA (NOERROR, empty), and A answers as before.
    #[test]
    fn aaaa_on_a_dual_stack_network() {
        let n = net6();
        let (m, o) = answer(&query_bytes(1, "web-1", RecordType::AAAA), Some(&n));
        assert_eq!(
            (m.response_code(), o),
            (ResponseCode::NoError, Outcome::Answered)
        );
        let got: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(got, ["fd00:1::2"]);
        let (m, _) = answer(&query_bytes(2, "WEB-1.", RecordType::A), Some(&n));
        let got: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(got, ["10.1.0.2"]);
        let (m, _) = answer(&query_bytes(3, "web-1", RecordType::ANY), Some(&n));
        assert_eq!(m.answers().len(), 2);
        let (m, o) = answer(&query_bytes(4, "nobody", RecordType::AAAA), Some(&n));
        assert_eq!(
            (m.response_code(), o),
            (ResponseCode::NXDomain, Outcome::NxDomain)
        );
        let (m, _) = answer(&query_bytes(5, "web-1", RecordType::TXT), Some(&n));
        assert_eq!(
            (m.response_code(), m.answers().len()),
            (ResponseCode::NoError, 0)
        );
        // IPv4-only: no AAAA, the name still exists.
        let v4 = net();
        let (m, _) = answer(&query_bytes(6, "web-1", RecordType::AAAA), Some(&v4));
        assert_eq!(
            (m.response_code(), m.answers().len()),
            (ResponseCode::NoError, 0)
        );
        let (m, _) = answer(&query_bytes(7, "web-1", RecordType::ANY), Some(&v4));
        assert_eq!(m.answers().len(), 1);
    }

    /// Issue 22: PTR under ip6.arpa for a container's IPv6 address;
    /// another full address of the IPv6 subnet is NXDOMAIN, not
    /// forwarded; one outside it (or a zone, not an address) goes on, and
    /// from an internal network nothing does.
    #[test]
    fn ptr_under_ip6_arpa() {
        let mut n = net6();
        let (m, o) = answer(
            &query_bytes(1, &arpa6("fd00:1::2"), RecordType::PTR),
            Some(&n),
        );
        assert_eq!(o, Outcome::Answered);
        assert_eq!(m.answers()[0].data().to_string(), "web-1.");
        // Upper-case nibbles are the same name.
        let upper = arpa6("fd00:1::2")
            .to_ascii_uppercase()
            .replace("IP6.ARPA", "ip6.arpa");
        let (m, _) = answer(&query_bytes(2, &upper, RecordType::PTR), Some(&n));
        assert_eq!(m.answers().len(), 1);
        for ours in ["fd00:1::9", "fd00:1::ffff:ffff:ffff:ffff"] {
            let (m, o) = answer(&query_bytes(3, &arpa6(ours), RecordType::PTR), Some(&n));
            assert_eq!(
                (m.response_code(), o),
                (ResponseCode::NXDomain, Outcome::NxDomain),
                "{ours}"
            );
        }
        let theirs = [
            arpa6("fd00:2::2"),
            arpa6("2001:db8::1"),
            // A zone, not an address: a nibble short.
            arpa6("fd00:1::2")[2..].to_string(),
            "1.0.0.d.f.ip6.arpa.".to_string(),
        ];
        for name in &theirs {
            assert!(
                matches!(
                    decide(&query_bytes(4, name, RecordType::PTR), Some(&n), true),
                    Decision::Forward
                ),
                "{name} not forwarded"
            );
        }
        // An IPv4-only network does not own any IPv6 reverse name.
        assert!(matches!(
            decide(
                &query_bytes(5, &arpa6("fd00:1::2"), RecordType::PTR),
                Some(&net()),
                true
            ),
            Decision::Forward
        ));
        n.internal = true;
        for name in &theirs {
            let (m, o) = answer(&query_bytes(6, name, RecordType::PTR), Some(&n));
            assert_eq!(
                (m.response_code(), o),
                (ResponseCode::Refused, Outcome::Refused),
                "{name}"
            );
        }
        let (m, _) = answer(
            &query_bytes(7, &arpa6("fd00:1::2"), RecordType::PTR),
            Some(&n),
        );
        assert_eq!(m.answers()[0].data().to_string(), "web-1.");
    }

    #[test]
    fn ip6_arpa_names_parse_as_nibbles_only() {
        let good = "b.a.9.8.7.6.5.4.3.2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.1.2.3.4.0.0.d.f.ip6.arpa";
        assert_eq!(
            reverse_of(good),
            Some(IpAddr::V6("fd00:4321::123:4567:89ab".parse().unwrap()))
        );
        let bad = [
            // 33 nibbles, a two-digit label, a non-hex digit, an empty label.
            format!("0.{good}"),
            good.replacen("b.a", "ba.0", 1),
            good.replacen("b.a", "g.a", 1),
            good.replacen("b.a", ".a", 1),
            "ip6.arpa".to_string(),
        ];
        for b in &bad {
            assert_eq!(reverse_of(b), None, "{b}");
        }
    }

    /// The quick path gives the reply `decide` gives, byte for byte, for
    /// every query it takes (names in any case, A and AAAA, one address or
    /// several, none of the type asked), and takes none of the others.
    #[test]
    fn quick_answers_as_decide_does() {
        let mut n = net6();
        n.names.insert(
            "many".into(),
            (2..6).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect(),
        );
        // Too many to fit 512 bytes: `decide` truncates them.
        n.names.insert(
            "crowd".into(),
            (2..40).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect(),
        );
        n.names6
            .insert("only6".into(), vec!["fd00:1::9".parse().unwrap()]);
        let mut taken = 0;
        for (i, name) in [
            "web-1",
            "WEB-1.",
            "Web-1",
            "many",
            "crowd",
            "only6",
            "nobody",
            "x.y",
            "2.0.1.10.in-addr.arpa.",
        ]
        .iter()
        .enumerate()
        {
            for t in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::ANY,
                RecordType::TXT,
                RecordType::PTR,
            ] {
                let mut q = query_bytes(i as u16 + 7, name, t);
                for rd in [true, false] {
                    if !rd {
                        q[2] &= !0x01;
                    }
                    let slow = match decide(&q, Some(&n), true) {
                        Decision::Reply(b, _) => Some(b),
                        _ => None,
                    };
                    match quick(&q, &n) {
                        Some(fast) => {
                            taken += 1;
                            assert_eq!(Some(fast), slow, "{name} {t}");
                        }
                        None => assert!(
                            !matches!(
                                (*name, t),
                                (
                                    "web-1" | "WEB-1." | "Web-1" | "many" | "only6",
                                    RecordType::A | RecordType::AAAA
                                )
                            ),
                            "{name} {t} not taken"
                        ),
                    }
                }
            }
        }
        // web-1 three ways, many and only6, A and AAAA, RD or not; crowd's
        // AAAA (none).
        assert_eq!(taken, 5 * 2 * 2 + 2);
        // Not plain: EDNS, a pointer in the question, a second question,
        // a trailing byte, a response.
        let q = query_bytes(1, "web-1", RecordType::A);
        let mut m = Message::from_vec(&q).unwrap();
        m.set_edns(Edns::new());
        assert_eq!(quick(&m.to_vec().unwrap(), &n), None);
        let mut p = q.clone();
        p[12] = 0xc0;
        assert_eq!(quick(&p, &n), None);
        let mut two = q.clone();
        two[5] = 2;
        assert_eq!(quick(&two, &n), None);
        let mut long = q.clone();
        long.push(0);
        assert_eq!(quick(&long, &n), None);
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert_eq!(quick(&resp, &n), None);
        assert_eq!(quick(&q[..q.len() - 1], &n), None);
        assert_eq!(quick(&q[..5], &n), None);
    }

    fn answer(q: &[u8], n: Option<&NetworkNames>) -> (Message, Outcome) {
        match decide(q, n, true) {
            Decision::Reply(b, o) => (Message::from_vec(&b).unwrap(), o),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn names_addresses_and_refusals() {
        let n = net();
        let (m, o) = answer(&query_bytes(7, "WEB-1.", RecordType::A), Some(&n));
        assert_eq!((m.id(), o, m.answers().len()), (7, Outcome::Answered, 1));
        let (m, _) = answer(&query_bytes(8, "web-1", RecordType::AAAA), Some(&n));
        assert_eq!(
            (m.response_code(), m.answers().len()),
            (ResponseCode::NoError, 0)
        );
        let (m, o) = answer(&query_bytes(9, "nobody", RecordType::A), Some(&n));
        assert_eq!(
            (m.response_code(), o),
            (ResponseCode::NXDomain, Outcome::NxDomain)
        );
        let (m, _) = answer(
            &query_bytes(10, "2.0.1.10.in-addr.arpa.", RecordType::PTR),
            Some(&n),
        );
        assert_eq!(m.answers()[0].data().to_string(), "web-1.");
        let (m, _) = answer(
            &query_bytes(11, "9.0.1.10.in-addr.arpa.", RecordType::PTR),
            Some(&n),
        );
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert!(matches!(
            decide(
                &query_bytes(12, "example.org.", RecordType::A),
                Some(&n),
                true
            ),
            Decision::Forward
        ));
        let (m, o) = answer(&query_bytes(13, "web-1", RecordType::A), None);
        assert_eq!(
            (m.response_code(), o),
            (ResponseCode::Refused, Outcome::Refused)
        );
        // Garbage with a header: FORMERR with its id; shorter: nothing.
        let mut junk = vec![0xab, 0xcd, 0x01, 0x00];
        junk.extend([0xff; 20]);
        let (m, _) = answer(&junk, Some(&n));
        assert_eq!((m.id(), m.response_code()), (0xabcd, ResponseCode::FormErr));
        assert!(matches!(decide(&[1, 2, 3], Some(&n), true), Decision::Drop));
        let sf = Message::from_vec(&servfail(&query_bytes(14, "x.org", RecordType::A)).unwrap())
            .unwrap();
        assert_eq!((sf.id(), sf.response_code()), (14, ResponseCode::ServFail));
    }

    /// Issue 21.1: from an internal network nothing is forwarded, reverse
    /// names outside its subnet included, whatever the type.
    #[test]
    fn an_internal_network_forwards_nothing() {
        let mut n = net();
        let out = [
            ("7.7.7.7.in-addr.arpa.", RecordType::PTR),
            ("4.3.2.1.in-addr.arpa.", RecordType::TXT),
            ("4.3.2.1.in-addr.arpa.", RecordType::ANY),
            ("data.exfil.example.", RecordType::TXT),
            ("upstream.test.", RecordType::A),
        ];
        for (name, t) in out {
            assert!(
                matches!(
                    decide(&query_bytes(1, name, t), Some(&n), true),
                    Decision::Forward
                ),
                "{name} {t} not forwarded from a routed network"
            );
        }
        n.internal = true;
        for (name, t) in out {
            let (m, o) = answer(&query_bytes(2, name, t), Some(&n));
            assert_eq!(
                (m.response_code(), o),
                (ResponseCode::Refused, Outcome::Refused),
                "{name} {t}"
            );
        }
        // What is the network's own is still answered.
        let (m, _) = answer(&query_bytes(3, "web-1", RecordType::A), Some(&n));
        assert_eq!(m.answers().len(), 1);
        let (m, _) = answer(
            &query_bytes(4, "2.0.1.10.in-addr.arpa.", RecordType::PTR),
            Some(&n),
        );
        assert_eq!(m.answers()[0].data().to_string(), "web-1.");
    }

    /// Issue 21.6: RFC 6891. An OPT record in, one out; a version past 0,
    /// BADVERS; no OPT in, none out.
    #[test]
    fn edns_as_the_rfc_says() {
        let n = net();
        let with = |version: u8, dnssec_ok: bool| {
            let mut m = Message::from_vec(&query_bytes(5, "web-1", RecordType::A)).unwrap();
            let mut e = Edns::new();
            e.set_version(version)
                .set_max_payload(1232)
                .set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
            m.to_vec().unwrap()
        };
        let (m, o) = answer(&with(0, true), Some(&n));
        let e = m.extensions().as_ref().expect("no OPT in the reply");
        assert_eq!((e.version(), e.max_payload()), (0, UDP_MOST));
        assert!(e.flags().dnssec_ok, "DO not copied");
        assert_eq!((m.answers().len(), o), (1, Outcome::Answered));
        let (m, _) = answer(&with(0, false), Some(&n));
        assert!(!m.extensions().as_ref().unwrap().flags().dnssec_ok);
        // Version 1: BADVERS (16: 0 in the header, 1 in the OPT's upper
        // bits), no answers, OPT version 0.
        let Decision::Reply(b, o) = decide(&with(1, false), Some(&n), true) else {
            panic!("no reply to EDNS version 1");
        };
        assert_eq!((b[3] & 0x0f, o), (0, Outcome::Refused));
        let m = Message::from_vec(&b).unwrap();
        let e = m.extensions().as_ref().expect("no OPT with BADVERS");
        assert_eq!((e.rcode_high(), e.version()), (1, 0));
        assert!(m.answers().is_empty());
        // Refusals and NXDOMAIN carry it too; no OPT asked, none given.
        let mut q = Message::from_vec(&with(0, false)).unwrap();
        q.take_queries();
        q.add_query(Query::query(
            Name::from_ascii("nobody.").unwrap(),
            RecordType::A,
        ));
        let (m, _) = answer(&q.to_vec().unwrap(), Some(&n));
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert!(m.extensions().is_some());
        let (m, _) = answer(&query_bytes(6, "web-1", RecordType::A), Some(&n));
        assert!(m.extensions().is_none());
    }

    #[test]
    fn an_answer_longer_than_the_client_takes_over_udp_is_truncated() {
        let mut n = net();
        let many: Vec<Ipv4Addr> = (2..=101).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
        n.names.insert("shared".into(), many);
        let q = query_bytes(21, "shared", RecordType::A);
        // UDP without EDNS: 512 bytes at most, so TC with what fits.
        let (m, o) = answer(&q, Some(&n));
        assert!(m.truncated(), "not truncated");
        assert_eq!((m.id(), o), (21, Outcome::Answered));
        assert_eq!(m.queries().len(), 1);
        let kept = m.answers().len();
        assert!((20..100).contains(&kept), "{kept} answers kept");
        assert!(m.to_vec().unwrap().len() <= 512);
        // One more would not have fitted.
        let Decision::Reply(b, _) = decide(&q, Some(&n), false) else {
            panic!("no reply over TCP");
        };
        let mut more = Message::from_vec(&b).unwrap();
        more.take_answers();
        more.add_answers(m.answers().iter().cloned());
        more.add_answer(Record::from_rdata(
            m.queries()[0].name().clone(),
            TTL,
            RData::A(A(Ipv4Addr::new(10, 1, 0, 200))),
        ));
        more.set_truncated(true);
        assert!(more.to_vec().unwrap().len() > 512);
        // Over TCP, every address.
        let Decision::Reply(b, _) = decide(&q, Some(&n), false) else {
            panic!("no reply over TCP");
        };
        let m = Message::from_vec(&b).unwrap();
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 100);
        // Over UDP with an EDNS payload of 4,096 bytes it fits.
        let mut e = Message::from_vec(&q).unwrap();
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(4096);
        e.set_edns(edns);
        let (m, _) = answer(&e.to_vec().unwrap(), Some(&n));
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 100);
        // Two questions: FORMERR, the header alone.
        let mut two = Message::from_vec(&q).unwrap();
        two.add_query(Query::query(
            Name::from_ascii("web-1.").unwrap(),
            RecordType::A,
        ));
        let Decision::Reply(b, _) = decide(&two.to_vec().unwrap(), Some(&n), true) else {
            panic!("no reply to two questions");
        };
        assert_eq!(b.len(), 12);
        assert_eq!(b[3] & 0x0f, ResponseCode::FormErr.low());
        // A short answer is never truncated.
        let (m, _) = answer(&query_bytes(22, "web-1", RecordType::A), Some(&n));
        assert!(!m.truncated() && m.answers().len() == 1);
    }
}
