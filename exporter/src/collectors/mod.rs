//! One collector per file, node_exporter style: each reads the kernel or the
//! hook's state on every scrape into a registry of its own, so a failing
//! collector drops only its own metrics and reports itself failed while the
//! others still answer.

mod attachments;
mod conntrack;
mod dns;
mod endpoints;
mod ipam;
mod netdev;
mod portmap;

use std::sync::Arc;
use std::time::Instant;

use ocinet_common::model::{Endpoint, Network};
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::StateDir;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

pub type CollectResult = Result<(), String>;

/// What every collector sees of one scrape.
pub struct Snapshot {
    pub endpoints: Arc<Vec<Endpoint>>,
    pub networks: Vec<Network>,
    pub state: StateDir,
}

pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self, snap: &Snapshot, reg: &Registry) -> CollectResult;
}

pub struct Collectors {
    list: Vec<Box<dyn Collector>>,
    state: StateDir,
    endpoints: endpoints::EndpointCache,
    config: ConfigDir,
}

/// Register a metric in a collector's registry; names are constants, so a
/// failure is a programming error reported as a collector failure.
/// `vec` with `label` left out of the samples where it is empty, so that
/// a label added for IPv6 leaves the series that had no use for it exactly
/// as they were: the info series of an IPv4-only interface keeps the
/// labels it had before `ip6` existed, and a published port's IPv4 series
/// the labels it had before `family` (a scraper that keeps empty labels,
/// or a test comparing the exposition, sees no change). Prometheus treats
/// an empty label as an absent one, so `{ip6=""}` still selects the
/// IPv4-only ones.
#[derive(Clone)]
pub struct WithoutEmpty<C> {
    pub vec: C,
    pub label: &'static str,
}

impl<C: prometheus::core::Collector> prometheus::core::Collector for WithoutEmpty<C> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.vec.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.vec.collect();
        for f in &mut families {
            for m in f.mut_metric() {
                let labels = m
                    .take_label()
                    .into_iter()
                    .filter(|l| !(l.name() == self.label && l.value().is_empty()))
                    .collect();
                m.set_label(labels);
            }
        }
        families
    }
}

pub fn register<C: prometheus::core::Collector + Clone + 'static>(
    reg: &Registry,
    c: &C,
) -> CollectResult {
    reg.register(Box::new(c.clone())).map_err(|e| e.to_string())
}

impl Collectors {
    pub fn new(cli: &crate::cli::Cli) -> Self {
        let mut list: Vec<Box<dyn Collector>> = Vec::new();
        if !cli.no_netdev {
            list.push(Box::new(netdev::Netdev));
        }
        if !cli.no_conntrack {
            list.push(Box::new(conntrack::Conntrack::default()));
        }
        if !cli.no_portmap {
            list.push(Box::new(portmap::Portmap));
        }
        if !cli.no_ipam {
            list.push(Box::new(ipam::Ipam));
        }
        if !cli.no_dns {
            list.push(Box::new(dns::Dns));
        }
        if !cli.no_attachments {
            list.push(Box::new(attachments::Attachments));
        }
        let state = StateDir::reader(&cli.state_dir);
        Collectors {
            list,
            endpoints: endpoints::EndpointCache::new(state.clone()),
            state,
            config: ConfigDir::new(&cli.config_dir),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|c| c.name()).collect()
    }

    /// One scrape, in the exposition text format.
    pub fn scrape(&self) -> Vec<u8> {
        let (endpoints, bad_endpoints) = self.endpoints.get();
        let (networks, bad_networks) = self.config.list();
        for e in &bad_networks {
            tracing::warn!("skipping network definition: {e}");
        }
        let snap = Snapshot {
            endpoints,
            networks,
            state: self.state.clone(),
        };

        let meta = Registry::new();
        let duration = GaugeVec::new(
            Opts::new(
                "ocinet_scrape_collector_duration_seconds",
                "Duration of a collector scrape.",
            ),
            &["collector"],
        )
        .expect("valid metric");
        let success = GaugeVec::new(
            Opts::new(
                "ocinet_scrape_collector_success",
                "Whether a collector succeeded.",
            ),
            &["collector"],
        )
        .expect("valid metric");
        let build = GaugeVec::new(
            Opts::new(
                "ocinet_build_info",
                "A metric with a constant '1' value labeled by the ocinet version.",
            ),
            &["version"],
        )
        .expect("valid metric");
        // A corrupt or truncated file drops its container from every
        // collector: worth an alert of its own.
        let unreadable = GaugeVec::new(
            Opts::new(
                "ocinet_state_files_unreadable",
                "State files skipped because they could not be read or parsed (see the exporter's log for the paths).",
            ),
            &["kind"],
        )
        .expect("valid metric");
        unreadable
            .with_label_values(&["endpoint"])
            .set(bad_endpoints as f64);
        unreadable
            .with_label_values(&["network"])
            .set(bad_networks.len() as f64);
        for m in [&duration, &success, &build, &unreadable] {
            let _ = meta.register(Box::new(m.clone()));
        }
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);

        let mut families: Vec<MetricFamily> = Vec::new();
        for c in &self.list {
            let reg = Registry::new();
            let start = Instant::now();
            let result = c.collect(&snap, &reg);
            duration
                .with_label_values(&[c.name()])
                .set(start.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    success.with_label_values(&[c.name()]).set(1.0);
                    families.extend(reg.gather());
                }
                Err(e) => {
                    success.with_label_values(&[c.name()]).set(0.0);
                    tracing::warn!(collector = c.name(), "collector failed: {e}");
                }
            }
        }
        families.extend(meta.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}
