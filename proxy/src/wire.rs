//! The control socket's exchange: one request line (`sync`: read the
//! records again and bind or close listeners to match, then answer;
//! `status`: answer), one JSON line back.

use serde::{Deserialize, Serialize};

use crate::desired::{Key, Listener};

/// The longest request line.
pub const MAX_REQUEST: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: i32,
    pub persistent: bool,
    /// Every listener the records ask for, bound or not.
    pub listeners: Vec<Served>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    #[serde(flatten)]
    pub listener: Listener,
    /// Why it is not listening (the bind's error); `None`: accepting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// TCP connections open, UDP clients with a flow.
    #[serde(default)]
    pub open: u64,
}

impl Status {
    pub fn of(&self, key: Key) -> Option<&Served> {
        self.listeners.iter().find(|s| s.listener.key == key)
    }
}
