//! A per-client rate limit: a token bucket per source address, so one
//! container flooding the resolver cannot starve the others. Over the
//! limit, queries are dropped unanswered (a flood does not read answers,
//! and a reply would double the traffic) and counted as refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Sustained queries per second per client, and the burst above it.
pub const RATE: f64 = 500.0;
pub const BURST: f64 = 1000.0;

#[derive(Default)]
pub struct Limiter {
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl Limiter {
    /// Whether `client` may have one more query now.
    pub fn allow(&mut self, client: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > 65_536 {
            // Forget clients quiet for a minute (full buckets).
            self.buckets
                .retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let (tokens, last) = self.buckets.entry(client).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * RATE).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = Limiter::default();
        let (a, b) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let t = Instant::now();
        let allowed = (0..2000).filter(|_| l.allow(a, t)).count();
        assert_eq!(allowed, BURST as usize);
        assert!(l.allow(b, t), "another client is not held up");
        let later = t + std::time::Duration::from_millis(100);
        let refilled = (0..2000).filter(|_| l.allow(a, later)).count();
        assert_eq!(refilled, (RATE / 10.0) as usize);
    }
}
