//! The log goes to a file under the state dir: crun discards a hook's stdout
//! and stderr, and runc shows them only when the hook fails.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::store::fsutil;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init(log_file: &Path, level: &str) -> Result<(), String> {
    // Appended to in place: never through a symlink or a second name, or
    // root's log lines would land in someone else's file.
    let file = fsutil::open_nofollow(
        log_file,
        OpenOptions::new().create(true).append(true).mode(0o600),
        0,
    )
    .and_then(|f| fsutil::check_own_file(&f, log_file).map(|()| f))
    .map_err(|e| format!("log file: {e}"))?;
    // Our crates at `level`, nothing else: a fixed list of targets, for
    // which `Targets` does what an EnvFilter of the same directives did,
    // without compiling the regular expressions EnvFilter parses its
    // directives with at every start (a hook's start, and pages of the
    // resolver's resident set).
    let level: LevelFilter = level
        .parse()
        .map_err(|e| format!("invalid --log-level {level:?}: {e}"))?;
    let filter = Targets::new().with_targets(
        [
            "ocinet",
            "ocinet_common",
            "ocinet_core",
            "ocinet_dns",
            "ocinet_cni",
            "ocinet_proxy",
            "ocinet_cluster",
        ]
        .map(|t| (t, level)),
    );
    // At debug and trace, every kernel operation's span logs its duration
    // when it closes: the cheapest profile of a slow hook.
    let spans = if level >= LevelFilter::DEBUG {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    // The builder's own ceiling (INFO unless told) filters before the
    // `Targets` layer sees anything: without it `--log-level debug` logs
    // no more than info.
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(spans)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .finish()
        .with(filter)
        .try_init()
        .map_err(|e| e.to_string())
}
