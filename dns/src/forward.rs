//! Forwarding a query that is not a container's name: the client's own
//! bytes to each upstream in turn (so its id and flags are kept), over UDP
//! and again over TCP when the answer is truncated, within one deadline
//! after which the client gets SERVFAIL rather than its own timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Each upstream gets at most this long.
pub const PER_UPSTREAM: Duration = Duration::from_millis(1000);
/// The whole forward: well under the 5 s clients wait by default.
pub const DEADLINE: Duration = Duration::from_millis(2500);
/// An upstream that did not answer a client is skipped for that client
/// this long, so that the queries behind the first (its retries, its AAAA
/// beside its A) get SERVFAIL at once instead of each waiting out the
/// timeout.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

/// Consecutive unanswered queries that mark an upstream down: one slow
/// answer (a recursion's cache miss) does not.
pub const DOWN_AFTER: u32 = 2;

/// Bounds on what `UpstreamHealth` remembers (clients and upstreams that missed).
const REMEMBERED: usize = 4096;

/// What the forwarder knows of its upstreams. A query that went unanswered
/// while its upstream answered someone else is a slow name, not a dead
/// server, and counts for nothing; a miss counts only against the client
/// that asked (issue 21: one container asking for names its upstream
/// never answers made every other container's forwards fail), so a client
/// only ever skips an upstream on its own evidence.
#[derive(Default)]
pub struct UpstreamHealth(std::sync::Mutex<HealthInner>);

#[derive(Default)]
struct HealthInner {
    /// When each upstream last answered anyone.
    answered: HashMap<IpAddr, Instant>,
    /// Per (client, upstream): consecutive misses, and since when it is
    /// skipped once there were `DOWN_AFTER`.
    misses: HashMap<(IpAddr, IpAddr), (u32, Option<Instant>)>,
}

impl UpstreamHealth {
    fn inner(&self) -> std::sync::MutexGuard<'_, HealthInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_down(&self, client: IpAddr, u: IpAddr) -> bool {
        self.inner()
            .misses
            .get(&(client, u))
            .is_some_and(|(_, since)| since.is_some_and(|t| t.elapsed() < DOWN_FOR))
    }

    pub fn answered(&self, client: IpAddr, u: IpAddr) {
        let mut h = self.inner();
        if h.answered.len() >= REMEMBERED && !h.answered.contains_key(&u) {
            h.answered.clear();
        }
        h.answered.insert(u, Instant::now());
        h.misses.remove(&(client, u));
    }

    /// `client`'s query, sent to `u` at `sent`, got no answer.
    pub fn missed(&self, client: IpAddr, u: IpAddr, sent: Instant) {
        let mut h = self.inner();
        if h.answered.get(&u).is_some_and(|t| *t >= sent) {
            return;
        }
        if h.misses.len() >= REMEMBERED && !h.misses.contains_key(&(client, u)) {
            // Forget what ran out first; past that, everything (a client
            // that keeps missing is back within DOWN_AFTER queries).
            h.misses
                .retain(|_, (_, since)| since.is_some_and(|t| t.elapsed() < DOWN_FOR));
            if h.misses.len() >= REMEMBERED {
                h.misses.clear();
            }
        }
        let e = h.misses.entry((client, u)).or_insert((0, None));
        if e.1.is_some_and(|t| t.elapsed() >= DOWN_FOR) {
            // The skip ran out: counting starts again.
            *e = (0, None);
        }
        e.0 += 1;
        if e.0 >= DOWN_AFTER {
            e.1 = Some(Instant::now());
        }
    }
}

/// The first upstream's answer to `query`, or `None` when none answered
/// in time. `limit`: the largest answer the client takes (its UDP payload
/// size, or 65535 over TCP).
pub async fn forward(
    query: &[u8],
    upstreams: &[IpAddr],
    limit: usize,
    health: &UpstreamHealth,
    client: IpAddr,
) -> Option<Vec<u8>> {
    let start = Instant::now();
    for u in upstreams.iter().filter(|u| !health.is_down(client, **u)) {
        let left = DEADLINE.checked_sub(start.elapsed())?;
        let budget = left.min(PER_UPSTREAM);
        let addr = SocketAddr::from((*u, 53));
        let sent = Instant::now();
        match timeout(budget, ask_udp(query, addr)).await {
            Ok(Some(reply)) if truncated(&reply) => {
                health.answered(client, *u);
                let left = DEADLINE.checked_sub(start.elapsed())?;
                // Over TCP; relayed to a UDP client only if it fits what
                // that client takes (no amplification): else the
                // truncated answer, and the client asks again over TCP.
                let full = timeout(left.min(PER_UPSTREAM), ask_tcp(query, addr)).await;
                if let Ok(Some(full)) = full {
                    if full.len() <= limit {
                        return Some(full);
                    }
                }
                return Some(reply);
            }
            Ok(Some(reply)) => {
                health.answered(client, *u);
                return Some(reply);
            }
            _ => {
                tracing::debug!(upstream = %u, "no answer");
                health.missed(client, *u, sent);
            }
        }
    }
    None
}

fn truncated(reply: &[u8]) -> bool {
    reply.len() > 2 && reply[2] & 0x02 != 0
}

/// An answer carries the query's id (anything else on the socket is not
/// ours and is ignored).
async fn ask_udp(query: &[u8], to: SocketAddr) -> Option<Vec<u8>> {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((any, 0)).await.ok()?;
    sock.connect(to).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.ok()?;
        if n >= 12 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn ask_tcp(query: &[u8], to: SocketAddr) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(to).await.ok()?;
    let len = u16::try_from(query.len()).ok()?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(query);
    s.write_all(&out).await.ok()?;
    let mut lb = [0u8; 2];
    s.read_exact(&mut lb).await.ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lb))];
    s.read_exact(&mut buf).await.ok()?;
    (buf.len() >= 12 && buf[..2] == query[..2]).then_some(buf)
}

/// The nameservers of a resolv.conf, of either family (at most three, as
/// the C library takes them). An IPv6 link-local one is skipped: it is
/// reached only through the interface its zone names (`fe80::1%eth0`),
/// which a socket address here does not carry, and every bridge has a
/// link-local route of its own.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|a| match a {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow name (the upstream answered someone meanwhile) marks
    /// nothing; misses count per client.
    #[test]
    fn a_slow_name_is_not_a_dead_server_and_misses_are_the_clients_own() {
        let h = UpstreamHealth::default();
        let (flood, calm): (IpAddr, IpAddr) =
            ("10.1.0.2".parse().unwrap(), "10.2.0.2".parse().unwrap());
        let up: IpAddr = "192.0.2.53".parse().unwrap();
        let sent = Instant::now();
        h.answered(calm, up);
        for _ in 0..10 {
            h.missed(flood, up, sent);
        }
        assert!(
            !h.is_down(flood, up),
            "a slow name marked the upstream down"
        );
        // Nobody answered since: the flooder's own misses mark it, for the
        // flooder alone.
        let later = Instant::now();
        for _ in 0..DOWN_AFTER {
            h.missed(flood, up, later);
        }
        assert!(h.is_down(flood, up));
        assert!(!h.is_down(calm, up), "another client's misses counted");
        h.answered(flood, up);
        assert!(!h.is_down(flood, up));
    }

    /// Issue 22: IPv6 clients and IPv6 upstreams are kept apart like any
    /// others.
    #[test]
    fn ipv6_clients_and_upstreams() {
        let h = UpstreamHealth::default();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (c6, c4, up6, up4) = (
            ip("fd00:1::2"),
            ip("10.1.0.2"),
            ip("fd00:53::1"),
            ip("192.0.2.53"),
        );
        let sent = Instant::now();
        for _ in 0..DOWN_AFTER {
            h.missed(c6, up6, sent);
        }
        assert!(h.is_down(c6, up6));
        assert!(!h.is_down(c4, up6), "another client's misses counted");
        assert!(!h.is_down(c6, up4), "another upstream marked");
        h.answered(c6, up6);
        assert!(!h.is_down(c6, up6));
    }

    #[test]
    fn nameservers_of_a_resolv_conf() {
        let t = "# x\nnameserver 10.0.0.1\nsearch a\nnameserver fe80::1\nnameserver fe80::1%eth0\nnameserver 10.0.0.2 # c\nnameserver fd00::53\nnameserver 10.0.0.3\n";
        let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "fd00::53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(super::nameservers(t), want);
    }
}
