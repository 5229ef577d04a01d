//! The resolver's figures, kept in memory and written to
//! `<state>/dns/stats.json` (atomically, at most once a second, when they
//! changed), which the exporter reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::answer::Outcome;

/// Forward latency histogram bounds, in seconds.
pub const BUCKETS: [f64; 9] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 3.0];

#[derive(Default)]
pub struct Stats {
    outcomes: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    forward_count: AtomicU64,
    forward_micros: AtomicU64,
}

/// What the file holds.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub answered: u64,
    pub nxdomain: u64,
    pub forwarded: u64,
    pub servfail: u64,
    pub refused: u64,
    /// Cumulative counts per bound of `BUCKETS` (Prometheus' `le`).
    pub forward_buckets: Vec<(f64, u64)>,
    pub forward_count: u64,
    pub forward_seconds: f64,
}

fn index(o: Outcome) -> usize {
    match o {
        Outcome::Answered => 0,
        Outcome::NxDomain => 1,
        Outcome::Forwarded => 2,
        Outcome::ServFail => 3,
        Outcome::Refused => 4,
    }
}

impl Stats {
    pub fn count(&self, o: Outcome) {
        self.outcomes[index(o)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn forward_took(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.forward_count.fetch_add(1, Ordering::Relaxed);
        self.forward_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let o = |i: usize| self.outcomes[i].load(Ordering::Relaxed);
        Snapshot {
            answered: o(0),
            nxdomain: o(1),
            forwarded: o(2),
            servfail: o(3),
            refused: o(4),
            forward_buckets: BUCKETS
                .iter()
                .zip(&self.buckets)
                .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
                .collect(),
            forward_count: self.forward_count.load(Ordering::Relaxed),
            forward_seconds: self.forward_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}
