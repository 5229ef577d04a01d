//! Whether each running container's macvlan attachment still has its
//! interface: a deleted parent takes it away while the record still says
//! the container is ready (`ocinet ps` shows the same states).

use ocinet_common::health::{self, Health};
use prometheus::{IntGaugeVec, Opts};

use super::{register, CollectResult, Collector, Out, Snapshot};

pub struct Attachments;

impl Collector for Attachments {
    fn name(&self) -> &'static str {
        "attachments"
    }

    fn collect(&self, snap: &Snapshot, out: &mut Out) -> CollectResult {
        let reg = &out.reg;
        // A state set, as node_exporter's systemd unit states: one series
        // per state, 1 for the one it is in.
        let state = IntGaugeVec::new(
            Opts::new(
                "ocinet_attachment_state",
                "A running container's macvlan attachment by state: ok, parent-gone (the parent interface is not on the host) or interface-gone (the parent is, the container's interface is not); 1 for the state it is in.",
            ),
            &["container_id", "container", "network", "interface", "parent", "state"],
        )
        .expect("valid metric");
        register(reg, &state)?;
        let found = health::of_macvlans(&snap.endpoints).map_err(|e| e.to_string())?;
        for e in snap.endpoints.iter() {
            for a in &e.attachments {
                let Some(h) = found.get(&(e.id.clone(), a.network.clone())) else {
                    continue;
                };
                let parent = a.parent.as_deref().unwrap_or_default();
                for s in Health::ALL {
                    state
                        .with_label_values(&[
                            &e.id,
                            &e.name,
                            &a.network,
                            &a.interface,
                            parent,
                            s.as_str(),
                        ])
                        .set(i64::from(*h == s));
                }
            }
        }
        Ok(())
    }
}
