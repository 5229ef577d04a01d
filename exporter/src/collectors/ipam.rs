//! Address pool use per subnet and endpoint count per network, from the
//! hook's state.

use ocinet_common::ipam;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use super::{register, CollectResult, Collector, Out, Snapshot};

pub struct Ipam;

impl Collector for Ipam {
    fn name(&self) -> &'static str {
        "ipam"
    }

    fn collect(&self, snap: &Snapshot, out: &mut Out) -> CollectResult {
        let reg = &out.reg;
        // A float gauge: an IPv6 range's free count (2^64 for a /64,
        // saturated at u64::MAX by fill6) does not fit an i64, and a
        // float is what Prometheus stores anyway; IPv4 counts print as
        // the same integers as before.
        let addresses = GaugeVec::new(
            Opts::new(
                "ocinet_network_addresses",
                "Assignable addresses of a network's subnet, by state.",
            ),
            &["network", "subnet", "state"],
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
            let pool = ipam::open(&snap.state, &n.name).map_err(|e| e.to_string())?;
            let fill = pool.fill(n).map_err(|e| e.to_string())?;
            let fill6 = pool.fill6(n).map_err(|e| e.to_string())?;
            let v4 = n.v4().map(|v| v.subnet.to_string());
            let v6 = n.subnet6().map(|s| s.to_string());
            let per_subnet = v4
                .as_deref()
                .map(|v4| (v4, fill))
                .into_iter()
                .chain(v6.as_deref().zip(fill6));
            for (subnet, fill) in per_subnet {
                addresses
                    .with_label_values(&[&n.name, subnet, "allocated"])
                    .set(fill.allocated as f64);
                addresses
                    .with_label_values(&[&n.name, subnet, "free"])
                    .set(fill.free as f64);
            }
            let count = snap.endpoints.iter().filter(|e| e.is_on(&n.name)).count() as i64;
            endpoints.with_label_values(&[&n.name]).set(count);
        }
        Ok(())
    }
}
