//! Forwarding a query that is not a container's name: the client's own
//! bytes to each upstream in turn (so its id and flags are kept), over UDP
//! and again over TCP when the answer is truncated, within one deadline
//! after which the client gets SERVFAIL rather than its own timeout.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Each upstream gets at most this long.
pub const PER_UPSTREAM: Duration = Duration::from_millis(1000);
/// The whole forward: well under the 5 s clients wait by default.
pub const DEADLINE: Duration = Duration::from_millis(2500);
/// An upstream that did not answer is skipped this long, so that the
/// queries behind the first (a client's retries, its AAAA beside its A)
/// get SERVFAIL at once instead of each waiting out the timeout.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

/// Consecutive unanswered queries that mark an upstream down: one slow
/// answer (a recursion's cache miss) does not.
pub const DOWN_AFTER: u32 = 2;

/// Per upstream that missed lately: consecutive unanswered queries, and
/// since when it is skipped once there were `DOWN_AFTER`.
static HEALTH: std::sync::Mutex<Vec<(Ipv4Addr, u32, Option<Instant>)>> =
    std::sync::Mutex::new(Vec::new());

fn is_down(u: Ipv4Addr) -> bool {
    let h = HEALTH.lock().unwrap_or_else(|p| p.into_inner());
    h.iter()
        .any(|(a, _, since)| *a == u && since.is_some_and(|t| t.elapsed() < DOWN_FOR))
}

fn mark(u: Ipv4Addr, answered: bool) {
    let mut h = HEALTH.lock().unwrap_or_else(|p| p.into_inner());
    // An answer, or a skip that ran out, starts the count again.
    h.retain(|(a, _, since)| {
        *a != u || !(answered || since.is_some_and(|t| t.elapsed() >= DOWN_FOR))
    });
    if answered {
        return;
    }
    let e = match h.iter().position(|(a, _, _)| *a == u) {
        Some(i) => &mut h[i],
        None => {
            // Bounded: the oldest upstream that missed makes room.
            if h.len() >= 1024 {
                h.remove(0);
            }
            h.push((u, 0, None));
            h.last_mut().expect("just pushed")
        }
    };
    e.1 += 1;
    if e.1 >= DOWN_AFTER {
        e.2 = Some(Instant::now());
    }
}

/// The first upstream's answer to `query`, or `None` when none answered
/// in time. `limit`: the largest answer the client takes (its UDP payload
/// size, or 65535 over TCP).
pub async fn forward(query: &[u8], upstreams: &[Ipv4Addr], limit: usize) -> Option<Vec<u8>> {
    let start = Instant::now();
    for u in upstreams.iter().filter(|u| !is_down(**u)) {
        let left = DEADLINE.checked_sub(start.elapsed())?;
        let budget = left.min(PER_UPSTREAM);
        let addr = SocketAddr::from((*u, 53));
        match timeout(budget, ask_udp(query, addr)).await {
            Ok(Some(reply)) if truncated(&reply) => {
                mark(*u, true);
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
                mark(*u, true);
                return Some(reply);
            }
            _ => {
                tracing::debug!(upstream = %u, "no answer");
                mark(*u, false);
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
    let sock = UdpSocket::bind(("0.0.0.0", 0)).await.ok()?;
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

/// The nameservers of a resolv.conf (IPv4 only, at most three, as the C
/// library takes them).
pub fn nameservers(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse().ok())
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn nameservers_of_a_resolv_conf() {
        let t = "# x\nnameserver 10.0.0.1\nsearch a\nnameserver fe80::1\nnameserver 10.0.0.2 # c\n";
        assert_eq!(
            super::nameservers(t),
            [
                "10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
    }
}
