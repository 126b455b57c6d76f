//! RabbitMQ's resource alarms: when the broker's memory use passes the high watermark or the free disk space
//! under the data directory falls below its limit (or the message store cannot write), publishing connections are
//! blocked (`connection.blocked`, their sockets no longer read) until the alarm clears; consumers go on consuming
//! and acknowledging. The monitor task (`monitor`) samples both and raises or clears the alarms here; connection
//! readers check [`Alarms::raised`] on each publish (one atomic load) and wait on [`Alarms::cleared`].

mod limits;
pub(crate) mod monitor;

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::watch;

pub(crate) use monitor::spawn_monitor;

/// A resource that can run short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Memory: the broker's resident set size is over the high watermark.
    Memory,
    /// Disk: the free space under the data directory is below the limit, or the message store cannot write (a
    /// full disk or an I/O error) and has not repaired itself yet.
    Disk,
}

impl Resource {
    fn bit(self) -> u8 {
        match self {
            Resource::Memory => 1,
            Resource::Disk => 2,
        }
    }

    /// RabbitMQ's name for it, in logs, `connection.blocked` reasons and the management API.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }
}

/// The node's resource alarms.
pub(crate) struct Alarms {
    /// The raised alarms as bits of [`Resource::bit`]; read on every publish.
    raised: AtomicU8,
    /// The same, for readers waiting for the alarms to clear.
    changes: watch::Sender<u8>,
    /// The node's name in the log lines, as RabbitMQ prints it.
    node: String,
}

impl Alarms {
    /// No alarm raised.
    pub(crate) fn new(node: String) -> Alarms {
        Alarms {
            raised: AtomicU8::new(0),
            changes: watch::Sender::new(0),
            node,
        }
    }

    /// Whether any alarm is raised: publishers are to be blocked.
    pub(crate) fn raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed) != 0
    }

    /// The raised alarms.
    pub(crate) fn list(&self) -> Vec<Resource> {
        let bits = self.raised.load(Ordering::Relaxed);
        [Resource::Memory, Resource::Disk]
            .into_iter()
            .filter(|r| bits & r.bit() != 0)
            .collect()
    }

    /// The reason `connection.blocked` gives, as RabbitMQ words it: "low on memory", "low on disk", "low on memory &
    /// disk".
    pub(crate) fn blocked_reason(&self) -> String {
        let names: Vec<&str> = self.list().into_iter().map(Resource::name).collect();
        format!("low on {}", names.join(" & "))
    }

    /// Raises or clears the alarm of `resource`, logging the change as RabbitMQ logs it.
    pub(crate) fn set(&self, resource: Resource, on: bool) {
        let bit = resource.bit();
        let before = match on {
            true => self.raised.fetch_or(bit, Ordering::AcqRel),
            false => self.raised.fetch_and(!bit, Ordering::AcqRel),
        };
        if (before & bit != 0) == on {
            return;
        }
        let node = &self.node;
        let name = resource.name();
        if on {
            tracing::warn!(
                "{name} resource limit alarm set on node {node}.\n\n\
                 **********************************************************\n\
                 *** Publishers will be blocked until this alarm clears ***\n\
                 **********************************************************"
            );
        } else {
            tracing::warn!("{name} resource limit alarm cleared on node {node}");
        }
        self.changes
            .send_replace(self.raised.load(Ordering::Acquire));
    }

    /// Resolves once no alarm is raised.
    pub(crate) async fn cleared(&self) {
        let mut changes = self.changes.subscribe();
        // The sender lives as long as the broker, which outlives every reader waiting here.
        let _ = changes.wait_for(|bits| *bits == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_rabbitmq_words_them() {
        let alarms = Alarms::new("warren@test".into());
        assert!(!alarms.raised());
        alarms.set(Resource::Memory, true);
        assert!(alarms.raised());
        assert_eq!(alarms.blocked_reason(), "low on memory");
        alarms.set(Resource::Disk, true);
        assert_eq!(alarms.blocked_reason(), "low on memory & disk");
        alarms.set(Resource::Memory, false);
        assert_eq!(alarms.blocked_reason(), "low on disk");
        alarms.set(Resource::Disk, false);
        assert!(!alarms.raised());
    }

    #[tokio::test]
    async fn waiters_wake_when_the_last_alarm_clears() {
        let alarms = std::sync::Arc::new(Alarms::new("n".into()));
        alarms.set(Resource::Memory, true);
        alarms.set(Resource::Disk, true);
        let waiter = tokio::spawn({
            let alarms = alarms.clone();
            async move { alarms.cleared().await }
        });
        alarms.set(Resource::Memory, false);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        alarms.set(Resource::Disk, false);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("ran");
    }
}
