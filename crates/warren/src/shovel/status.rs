//! What a shovel is doing, as the management API and `warren ctl shovel_status` show it: RabbitMQ's states
//! (`starting`, `running`, `terminated` with its reason), the URIs connected (without passwords), and Warren's
//! additions, the messages moved and the last error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// Dynamic (a runtime parameter) or static (the config file), as RabbitMQ's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShovelType {
    /// A `shovel` runtime parameter of a vhost.
    Dynamic,
    /// A `[[shovels]]` table of the config file.
    Static,
}

impl ShovelType {
    /// RabbitMQ's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ShovelType::Dynamic => "dynamic",
            ShovelType::Static => "static",
        }
    }
}

/// Which shovel this is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShovelIdentity {
    /// The node running it (its cluster name, RabbitMQ's `shovelled-by`).
    pub node: String,
    /// Dynamic or static.
    pub kind: ShovelType,
    /// Its name.
    pub name: String,
    /// Its vhost; None for a static shovel.
    pub vhost: Option<String>,
}

/// The state of a shovel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShovelState {
    /// Connecting and declaring.
    Starting,
    /// Moving messages.
    Running,
    /// Failed; it starts again after `reconnect-delay` unless that is 0.
    Terminated {
        /// Why.
        reason: String,
    },
}

impl ShovelState {
    /// RabbitMQ's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            ShovelState::Starting => "starting",
            ShovelState::Running => "running",
            ShovelState::Terminated { .. } => "terminated",
        }
    }
}

/// A snapshot of one shovel's status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShovelStatus {
    /// Which shovel.
    pub identity: ShovelIdentity,
    /// Its state.
    pub state: ShovelState,
    /// When it entered that state.
    pub since: SystemTime,
    /// The source URI connected, without its password (the first one before any connection).
    pub source_uri: String,
    /// The destination URI connected, without its password.
    pub destination_uri: String,
    /// Messages moved since it was started on this node (acked at the source, or published with no-ack).
    pub messages_moved: u64,
    /// The last failure, kept after a reconnection.
    pub last_error: Option<String>,
}

/// A shovel's live status, written by its worker, read by the API.
pub(super) struct StatusCell {
    state: Mutex<ShovelStatus>,
    moved: AtomicU64,
}

impl StatusCell {
    pub(super) fn new(identity: ShovelIdentity, source_uri: &str, destination_uri: &str) -> Self {
        StatusCell {
            state: Mutex::new(ShovelStatus {
                identity,
                state: ShovelState::Starting,
                since: SystemTime::now(),
                source_uri: source_uri.to_owned(),
                destination_uri: destination_uri.to_owned(),
                messages_moved: 0,
                last_error: None,
            }),
            moved: AtomicU64::new(0),
        }
    }

    fn update(&self, change: impl FnOnce(&mut ShovelStatus)) {
        // A poisoned lock only means a panicking reader; the status is still whole.
        let mut status = self.state.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status);
    }

    pub(super) fn starting(&self) {
        self.update(|s| {
            s.state = ShovelState::Starting;
            s.since = SystemTime::now();
        });
    }

    pub(super) fn connected(&self, source_uri: &str, destination_uri: &str) {
        self.update(|s| {
            s.source_uri = source_uri.to_owned();
            s.destination_uri = destination_uri.to_owned();
        });
    }

    pub(super) fn running(&self) {
        self.update(|s| {
            s.state = ShovelState::Running;
            s.since = SystemTime::now();
        });
    }

    pub(super) fn terminated(&self, reason: &str) {
        self.update(|s| {
            s.state = ShovelState::Terminated {
                reason: reason.to_owned(),
            };
            s.since = SystemTime::now();
            s.last_error = Some(reason.to_owned());
        });
    }

    pub(super) fn add_moved(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn moved(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    pub(super) fn snapshot(&self) -> ShovelStatus {
        let status = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ShovelStatus {
            messages_moved: self.moved(),
            ..status.clone()
        }
    }
}
