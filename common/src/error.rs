use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure names what it was working on, so a one-line message on
/// stderr (all runc shows of a failing hook) is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables: {0}")]
    Firewall(String),
    /// ocinet's table (or this version's layout of it) is not there: someone
    /// flushed the ruleset, or an older version made it. Rebuild from state.
    #[error("nftables: ocinet's table is missing or outdated")]
    FirewallMissing,
    #[error("network namespace {what}: {source}")]
    Netns {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("state file {}: {reason}", path.display())]
    CorruptState { path: PathBuf, reason: String },
    #[error("no address left in network {network} ({range})")]
    PoolExhausted { network: String, range: String },
    #[error("address {ip} in network {network} is already in use by container {holder}")]
    AddressInUse {
        ip: std::net::IpAddr,
        network: String,
        holder: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
    #[error("{0}")]
    NotFound(String),
    /// Several independent failures, e.g. every step of a teardown that
    /// could not be completed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

impl Error {
    pub fn invalid(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
