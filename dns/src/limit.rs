//! A per-client rate limit: a token bucket per source address, so one
//! container flooding the resolver cannot starve the others. Over the
//! limit, queries are dropped unanswered (a flood does not read answers,
//! and a reply would double the traffic) and counted as refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct Limiter {
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl Limiter {
    /// Whether `client` may have one more query now, at `rate` a second
    /// (0: always).
    pub fn allow(&mut self, client: IpAddr, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let (rate, burst) = (f64::from(rate), 2.0 * f64::from(rate));
        if self.buckets.len() > 65_536 {
            // Forget clients quiet for a minute (full buckets).
            self.buckets
                .retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let (tokens, last) = self.buckets.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How many of something (TCP connections, forwards in flight) each
/// client holds at once, so that one container cannot take every slot
/// from the others.
pub struct PerClient {
    most: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One of a client's slots, given back when dropped.
pub struct Held {
    of: Arc<PerClient>,
    client: IpAddr,
}

impl PerClient {
    pub fn new(most: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            most,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `client`; none while it holds `most`.
    pub fn take(self: &Arc<Self>, client: IpAddr) -> Option<Held> {
        let mut m = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(client).or_default();
        if *n >= self.most {
            return None;
        }
        *n += 1;
        Some(Held {
            of: self.clone(),
            client,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut m = self.of.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_client() {
        let p = PerClient::new(2);
        let (a, b) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let one = p.take(a).unwrap();
        let _two = p.take(a).unwrap();
        assert!(p.take(a).is_none(), "a third slot");
        assert!(p.take(b).is_some(), "another client held up");
        drop(one);
        assert!(p.take(a).is_some(), "a slot given back is not free");
        assert!(
            p.held.lock().unwrap().get(&b).is_none(),
            "a client with none is kept"
        );
    }

    /// Issue 22: IPv6 clients have slots and buckets of their own, apart
    /// from the same container's IPv4 address and from each other.
    #[test]
    fn ipv6_clients_are_clients() {
        let p = PerClient::new(1);
        let (a4, a6, b6): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.2".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            "fd00::3".parse().unwrap(),
        );
        let held = p.take(a6).unwrap();
        assert!(p.take(a6).is_none());
        assert!(p.take(b6).is_some() && p.take(a4).is_some());
        drop(held);
        assert!(p.take(a6).is_some());
        let mut l = Limiter::default();
        let t = Instant::now();
        assert_eq!((0..100).filter(|_| l.allow(a6, 10, t)).count(), 20);
        assert!(l.allow(b6, 10, t) && l.allow(a4, 10, t));
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = Limiter::default();
        let (a, b) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let t = Instant::now();
        let allowed = (0..2000).filter(|_| l.allow(a, 500, t)).count();
        assert_eq!(allowed, 1000);
        assert!(l.allow(b, 500, t), "another client is not held up");
        let later = t + std::time::Duration::from_millis(100);
        let refilled = (0..2000).filter(|_| l.allow(a, 500, later)).count();
        assert_eq!(refilled, 50);
        assert!((0..5000).all(|_| l.allow(a, 0, later)), "0 is no limit");
    }
}
