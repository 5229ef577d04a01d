//! One collector per file, node_exporter style: each reads the kernel or the
//! hook's state on every scrape into an output of its own (a registry, or
//! families it wrote in the text format), so a failing collector drops only
//! its own metrics and reports itself failed while the others still answer.

mod attachments;
mod conntrack;
mod dns;
mod endpoints;
mod ipam;
mod netdev;
mod portmap;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
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
    fn collect(&self, snap: &Snapshot, out: &mut Out) -> CollectResult;
}

/// Where a collector puts its metrics: a registry of its own, or, for a
/// collector with thousands of series, families it wrote in the text format
/// itself (building the prometheus crate's objects for each series, to have
/// them sorted and encoded, was most of a scrape with 1,000 containers).
#[derive(Default)]
pub struct Out {
    pub reg: Registry,
    pub text: Vec<TextFamily>,
}

/// One metric family already in the text format, `# HELP` and `# TYPE`
/// lines included, written exactly as `TextEncoder` writes one: the scrape
/// sorts it among the others by name.
pub struct TextFamily {
    pub name: &'static str,
    text: String,
}

impl TextFamily {
    /// `help` must need no escaping (no backslash, no newline): they are
    /// constants.
    pub fn new(name: &'static str, help: &str, kind: &str, capacity: usize) -> Self {
        debug_assert!(!help.contains(['\\', '\n']));
        let mut text = String::with_capacity(capacity);
        for part in [
            "# HELP ",
            name,
            " ",
            help,
            "\n# TYPE ",
            name,
            " ",
            kind,
            "\n",
        ] {
            text.push_str(part);
        }
        TextFamily { name, text }
    }

    /// One sample: `labels` already written (`{a="x",...}`, values escaped
    /// by `push_label_value`), the value as the encoder writes a float.
    pub fn sample(&mut self, labels: &str, value: f64) {
        use std::fmt::Write;
        self.text.push_str(self.name);
        self.text.push_str(labels);
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, " {value}");
    }

    /// A counter's sample. The registry keeps counters as floats; an
    /// integer below 2^53 is written the same either way, and formatting it
    /// as one was a tenth of the netdev collector's time.
    pub fn sample_u64(&mut self, labels: &str, value: u64) {
        use std::fmt::Write;
        const EXACT: u64 = 1 << f64::MANTISSA_DIGITS;
        if value >= EXACT {
            return self.sample(labels, value as f64);
        }
        self.text.push_str(self.name);
        self.text.push_str(labels);
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format escapes it (backslash, newline and
/// double quote), as `TextEncoder` does.
pub fn push_label_value(out: &mut String, v: &str) {
    if !v.contains(['\\', '\n', '"']) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
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

    /// One scrape, in the exposition text format: the buffers to send, in
    /// order.
    pub fn scrape(&self) -> Vec<Bytes> {
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

        let mut families: Vec<Family> = Vec::new();
        for c in &self.list {
            let mut out = Out::default();
            let start = Instant::now();
            let result = c.collect(&snap, &mut out);
            duration
                .with_label_values(&[c.name()])
                .set(start.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    success.with_label_values(&[c.name()]).set(1.0);
                    families.extend(out.reg.gather().into_iter().map(Family::Proto));
                    families.extend(out.text.into_iter().map(Family::Text));
                }
                Err(e) => {
                    success.with_label_values(&[c.name()]).set(0.0);
                    tracing::warn!(collector = c.name(), "collector failed: {e}");
                }
            }
        }
        families.extend(meta.gather().into_iter().map(Family::Proto));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        // The families go out as they are, one buffer after the other:
        // copying a megabyte of them into one buffer held both copies at
        // the peak. Neighbouring small families share a buffer.
        let mut out = Vec::new();
        let mut small = Vec::new();
        let encoder = TextEncoder::new();
        for f in families {
            match f {
                Family::Proto(mf) => {
                    if let Err(e) = encoder.encode(std::slice::from_ref(&mf), &mut small) {
                        tracing::error!("encoding metrics: {e}");
                    }
                }
                Family::Text(t) => {
                    out.push(Bytes::from(std::mem::take(&mut small)));
                    out.push(Bytes::from(t.text));
                }
            }
        }
        out.push(Bytes::from(small));
        out
    }
}

/// A family of one scrape, as its collector made it.
enum Family {
    Proto(MetricFamily),
    Text(TextFamily),
}

impl Family {
    fn name(&self) -> &str {
        match self {
            Family::Proto(f) => f.name(),
            Family::Text(t) => t.name,
        }
    }
}
