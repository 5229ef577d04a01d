//! The log goes to a file under the state dir: crun discards a hook's stdout
//! and stderr, and runc shows them only when the hook fails.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::store::fsutil;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

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
    let filter = EnvFilter::try_new(format!(
        "ocinet={level},ocinet_common={level},ocinet_core={level},ocinet_dns={level},ocinet_cni={level}"
    ))
    .map_err(|e| format!("invalid --log-level {level:?}: {e}"))?;
    // At debug and trace, every kernel operation's span logs its duration
    // when it closes: the cheapest profile of a slow hook.
    let spans = if matches!(level, "debug" | "trace") {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    tracing_subscriber::fmt()
        .with_span_events(spans)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .with_target(false)
        .try_init()
        .map_err(|e| e.to_string())
}
