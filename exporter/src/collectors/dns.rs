//! The resolver's figures (issue 15), from the stats file it keeps under
//! the state directory (not from its log): queries by result and the
//! latency of forwarded ones. Absent while no resolver has run.

use std::collections::HashMap;

use ocinet_dns::stats::Snapshot as DnsStats;
use prometheus::core::{Collector as PromCollector, Desc};
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
use prometheus::{IntCounterVec, Opts};

use super::{register, CollectResult, Collector, Out, Snapshot};

pub struct Dns;

impl Collector for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn collect(&self, snap: &Snapshot, out: &mut Out) -> CollectResult {
        let reg = &out.reg;
        let Some(stats) = snap
            .state
            .dns_stats::<DnsStats>()
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let queries = IntCounterVec::new(
            Opts::new(
                "ocinet_dns_queries_total",
                "Queries the resolver handled, by result (since it started).",
            ),
            &["result"],
        )
        .expect("valid metric");
        register(reg, &queries)?;
        for (result, n) in [
            ("answered", stats.answered),
            ("nxdomain", stats.nxdomain),
            ("forwarded", stats.forwarded),
            ("servfail", stats.servfail),
            ("refused", stats.refused),
        ] {
            queries.with_label_values(&[result]).inc_by(n);
        }
        let latency = ForwardLatency::new(stats)?;
        reg.register(Box::new(latency)).map_err(|e| e.to_string())
    }
}

/// A histogram whose buckets were counted by the resolver.
#[derive(Clone)]
struct ForwardLatency {
    desc: Desc,
    stats: DnsStats,
}

const LATENCY: &str = "ocinet_dns_forward_duration_seconds";
const LATENCY_HELP: &str =
    "Time from receiving a query to an upstream's answer, for forwarded queries.";

impl ForwardLatency {
    fn new(stats: DnsStats) -> Result<Self, String> {
        let desc = Desc::new(
            LATENCY.into(),
            LATENCY_HELP.into(),
            Vec::new(),
            HashMap::new(),
        )
        .map_err(|e| e.to_string())?;
        Ok(ForwardLatency { desc, stats })
    }
}

impl PromCollector for ForwardLatency {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut h = Histogram::default();
        h.set_sample_count(self.stats.forward_count);
        h.set_sample_sum(self.stats.forward_seconds);
        h.set_bucket(
            self.stats
                .forward_buckets
                .iter()
                .map(|(le, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*le);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        let mut m = Metric::default();
        m.set_histogram(h);
        let mut f = MetricFamily::default();
        f.set_name(LATENCY.into());
        f.set_help(LATENCY_HELP.into());
        f.set_field_type(MetricType::HISTOGRAM);
        f.set_metric(vec![m]);
        vec![f]
    }
}
