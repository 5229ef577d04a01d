//! Address pool use and endpoint count per network, from the hook's state.

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
            let range = n.range();
            let size = (u64::from(u32::from(range.broadcast()))
                - u64::from(u32::from(range.network()))
                + 1) as i64;
            let reserved = [n.subnet().network(), n.subnet().broadcast(), n.gateway()]
                .iter()
                .filter(|a| range.contains(*a))
                .count() as i64;
            let leased = snap
                .state
                .pool(&n.name)
                .and_then(|p| p.addresses())
                .map_err(|e| e.to_string())?;
            let allocated = leased.len() as i64;
            // Static addresses may lie outside --ip-range: they take nothing
            // from the range's free pool.
            let in_range = leased.iter().filter(|ip| range.contains(*ip)).count() as i64;
            addresses
                .with_label_values(&[&n.name, "allocated"])
                .set(allocated);
            addresses
                .with_label_values(&[&n.name, "free"])
                .set((size - reserved - in_range).max(0));
            let count = snap.endpoints.iter().filter(|e| e.is_on(&n.name)).count() as i64;
            endpoints.with_label_values(&[&n.name]).set(count);
        }
        Ok(())
    }
}
