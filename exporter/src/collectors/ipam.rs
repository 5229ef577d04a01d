//! Address pool use and endpoint count per network, from the hook's state.

use ocinet_common::ipam;
use prometheus::{IntGaugeVec, Opts, Registry};

use super::{register, CollectResult, Collector, Snapshot};

pub struct Ipam;

impl Collector for Ipam {
    fn name(&self) -> &'static str {
        "ipam"
    }

    fn collect(&self, snap: &Snapshot, reg: &Registry) -> CollectResult {
        let addresses = IntGaugeVec::new(
            Opts::new(
                "ocinet_network_addresses",
                "Assignable addresses of a network, by state.",
            ),
            &["network", "state"],
        )
        .expect("valid metric");
        let endpoints = IntGaugeVec::new(
            Opts::new(
                "ocinet_network_endpoints",
                "Containers attached to a network.",
            ),
            &["network"],
        )
        .expect("valid metric");
        register(reg, &addresses)?;
        register(reg, &endpoints)?;
        for n in &snap.networks {
            let fill = ipam::open(&snap.state, &n.name)
                .and_then(|p| p.fill(n))
                .map_err(|e| e.to_string())?;
            addresses
                .with_label_values(&[&n.name, "allocated"])
                .set(gauge(fill.allocated));
            addresses
                .with_label_values(&[&n.name, "free"])
                .set(gauge(fill.free));
            let count = snap.endpoints.iter().filter(|e| e.is_on(&n.name)).count() as i64;
            endpoints.with_label_values(&[&n.name]).set(count);
        }
        Ok(())
    }
}

/// A count as a gauge's value (no range of 2^63 addresses is leased).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
