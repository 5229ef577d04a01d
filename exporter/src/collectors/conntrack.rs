//! Conntrack table fill and the kernel's per-CPU conntrack statistics.

use std::collections::HashMap;
use std::sync::Mutex;

use ocinet_common::conntrack;
use prometheus::{Gauge, IntCounterVec, Opts};

use super::{register, CollectResult, Collector, Out, Snapshot};

/// The kernel's per-CPU statistics are 32-bit and wrap; the exporter keeps
/// the last raw value of each and accumulates the differences modulo 2^32
/// into a 64-bit counter, so a wrap never shows as a counter reset.
#[derive(Default)]
pub struct Conntrack {
    totals: Mutex<Totals>,
}

/// (cpu, statistic) -> (last raw value, accumulated total).
type Totals = HashMap<(u16, &'static str), (u32, u64)>;

impl Conntrack {
    fn accumulate(&self, cpu: u16, stat: &'static str, raw: u32) -> u64 {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let e = totals.entry((cpu, stat)).or_insert((raw, u64::from(raw)));
        let delta = raw.wrapping_sub(e.0);
        e.0 = raw;
        e.1 += u64::from(delta);
        e.1
    }
}

fn read_u64(path: &str) -> Result<u64, String> {
    ocinet_common::sysctl::read_u64(path).map_err(|e| e.to_string())
}

impl Collector for Conntrack {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn collect(&self, _snap: &Snapshot, out: &mut Out) -> CollectResult {
        let reg = &out.reg;
        let entries = Gauge::new(
            "ocinet_nf_conntrack_entries",
            "Number of conntrack entries in the namespace.",
        )
        .expect("valid metric");
        let limit = Gauge::new(
            "ocinet_nf_conntrack_entries_limit",
            "Maximum number of conntrack entries.",
        )
        .expect("valid metric");
        register(reg, &entries)?;
        register(reg, &limit)?;
        entries.set(read_u64(conntrack::TRACKED_CONNECTIONS)? as f64);
        limit.set(read_u64("/proc/sys/net/netfilter/nf_conntrack_max")? as f64);

        let stats = conntrack::stats_per_cpu().map_err(|e| e.to_string())?;
        let mut vecs: HashMap<&'static str, IntCounterVec> = HashMap::new();
        for (_, name) in conntrack::CPU_STATS {
            let v = IntCounterVec::new(
                Opts::new(
                    format!("ocinet_nf_conntrack_stat_{name}_total"),
                    format!("Conntrack per-CPU statistic '{name}'."),
                ),
                &["cpu"],
            )
            .expect("valid metric");
            register(reg, &v)?;
            vecs.insert(name, v);
        }
        for (cpu, name, raw) in stats {
            let total = self.accumulate(cpu, name, raw);
            if let Some(v) = vecs.get(name) {
                v.with_label_values(&[&cpu.to_string()]).inc_by(total);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_are_accumulated() {
        let c = Conntrack::default();
        assert_eq!(
            c.accumulate(0, "found", u32::MAX - 1),
            u64::from(u32::MAX - 1)
        );
        assert_eq!(c.accumulate(0, "found", 3), u64::from(u32::MAX) + 4);
        assert_eq!(c.accumulate(0, "found", 3), u64::from(u32::MAX) + 4);
        assert_eq!(c.accumulate(1, "found", 7), 7);
    }
}
