//! What one scrape reads of the node: plain figures, gathered by the broker ([`MetricsSource`]) and turned into
//! the exposition by `exposition`. Kept as data so that the exposition is tested without a broker.

use std::sync::Arc;

use super::counters::CounterTotals;

/// Who the node is: `rabbitmq_identity_info` and `rabbitmq_build_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `rabbitmq_node`: the node's name (`cluster_name` with `warren@` as RabbitMQ's `rabbit@host`).
    pub(crate) node: String,
    /// `rabbitmq_cluster`: the cluster name.
    pub(crate) cluster: String,
    /// `rabbitmq_cluster_permanent_id`.
    pub(crate) cluster_permanent_id: String,
    /// Warren's version (`rabbitmq_version` is the RabbitMQ version Warren behaves as).
    pub(crate) version: &'static str,
}

/// One queue's figures, as its actor last published them (once per round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueRow {
    /// Its vhost.
    pub(crate) vhost: Arc<str>,
    /// Its name.
    pub(crate) name: Arc<str>,
    /// Messages ready for delivery.
    pub(crate) ready: u64,
    /// Messages delivered and not yet acknowledged.
    pub(crate) unacked: u64,
    /// Consumers.
    pub(crate) consumers: u64,
}

/// The node's resources: memory, disk and file descriptors, with their limits and alarms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    /// Resident memory, bytes.
    pub(crate) memory_used: u64,
    /// The memory high watermark, bytes.
    pub(crate) memory_limit: u64,
    /// Free disk where the data directory is, bytes.
    pub(crate) disk_free: u64,
    /// The free disk limit, bytes.
    pub(crate) disk_free_limit: u64,
    /// Open file descriptors.
    pub(crate) open_fds: u64,
    /// The file descriptor limit (soft `RLIMIT_NOFILE`).
    pub(crate) max_fds: u64,
    /// The connections the node accepts (`connection_max`, or the file descriptor limit when unlimited).
    pub(crate) max_sockets: u64,
    /// The memory alarm is raised.
    pub(crate) memory_alarm: bool,
    /// The disk alarm is raised.
    pub(crate) disk_alarm: bool,
}

/// Warren's own figures: the message store's group commit and the spill store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StoreFigures {
    /// WAL fdatasyncs.
    pub(crate) fsyncs: u64,
    /// WAL write batches (one group commit each).
    pub(crate) batches: u64,
    /// Publishes made durable, over all batches.
    pub(crate) batched_messages: u64,
    /// Messages in the spill store.
    pub(crate) spill_messages: u64,
    /// Bytes in spill files.
    pub(crate) spill_file_bytes: u64,
    /// Bytes spilled and not yet written.
    pub(crate) spill_pending_bytes: u64,
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NodeSnapshot {
    /// Who the node is.
    pub(crate) identity: Identity,
    /// The message and churn counters.
    pub(crate) counters: CounterTotals,
    /// Open connections.
    pub(crate) connections: u64,
    /// Open channels.
    pub(crate) channels: u64,
    /// Every queue of every vhost, in vhost then name order.
    pub(crate) queues: Vec<QueueRow>,
    /// Memory, disk, file descriptors and alarms.
    pub(crate) resources: Resources,
    /// The stores' figures.
    pub(crate) store: StoreFigures,
    /// Publisher confirm latency, per ack batch.
    pub(crate) confirm_latency: super::latency::LatencyTotals,
}

impl NodeSnapshot {
    /// Consumers on every queue.
    pub(crate) fn consumers(&self) -> u64 {
        self.queues.iter().map(|q| q.consumers).sum()
    }
}

/// Where the endpoint reads the node from: the broker implements it, so this module names no broker.
pub(crate) trait MetricsSource: Send + Sync + 'static {
    /// The node's figures now. Reads atomics and walks the queue tables; never waits on a queue or a disk.
    fn snapshot(&self) -> NodeSnapshot;
}
