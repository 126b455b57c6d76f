//! A federation link's status as `/api/federation-links` and `warren ctl federation_status` show it: RabbitMQ's
//! `starting`, `running` and `error` (with the error), and Warren's `messages_moved` and `last_error`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// The state of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Connecting and declaring.
    Starting,
    /// Moving messages.
    Running,
    /// Failed; it starts again after the upstream's `reconnect-delay`.
    Error {
        /// Why.
        reason: String,
    },
}

impl LinkState {
    /// RabbitMQ's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Starting => "starting",
            LinkState::Running => "running",
            LinkState::Error { .. } => "error",
        }
    }
}

/// A snapshot of one link's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Its state.
    pub state: LinkState,
    /// When it entered it.
    pub since: SystemTime,
    /// The upstream URI connected (or the first), without its password.
    pub uri: String,
    /// Messages moved since the link started on this node.
    pub messages_moved: u64,
    /// The last failure, kept after a reconnection.
    pub last_error: Option<String>,
}

/// A link's live status, written by its task, read by the API.
pub(crate) struct LinkStatusCell {
    state: Mutex<LinkStatus>,
    moved: AtomicU64,
}

impl LinkStatusCell {
    pub(crate) fn new(uri: &str) -> LinkStatusCell {
        LinkStatusCell {
            state: Mutex::new(LinkStatus {
                state: LinkState::Starting,
                since: SystemTime::now(),
                uri: uri.to_owned(),
                messages_moved: 0,
                last_error: None,
            }),
            moved: AtomicU64::new(0),
        }
    }

    fn update(&self, change: impl FnOnce(&mut LinkStatus)) {
        // A poisoned lock only means a panicking reader; the status is still whole.
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub(crate) fn starting(&self) {
        self.update(|s| {
            s.state = LinkState::Starting;
            s.since = SystemTime::now();
        });
    }

    pub(crate) fn running(&self, uri: &str) {
        self.update(|s| {
            s.state = LinkState::Running;
            s.since = SystemTime::now();
            s.uri = uri.to_owned();
        });
    }

    pub(crate) fn failed(&self, reason: &str) {
        self.update(|s| {
            s.state = LinkState::Error {
                reason: reason.to_owned(),
            };
            s.since = SystemTime::now();
            s.last_error = Some(reason.to_owned());
        });
    }

    pub(crate) fn add_moved(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LinkStatus {
        let status = self.state.lock().unwrap_or_else(|p| p.into_inner());
        LinkStatus {
            messages_moved: self.moved.load(Ordering::Relaxed),
            ..status.clone()
        }
    }
}
