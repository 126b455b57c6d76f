//! Metrics: the node-wide counters RabbitMQ's Prometheus plugin exposes, fed in batches by their owners
//! (`counters`, `latency`), and the Prometheus endpoint that shows them (`exposition`, `http`). It imports nothing
//! of the crate: the broker fills a [`snapshot::NodeSnapshot`] through [`snapshot::MetricsSource`].
//!
//! Where each counter is fed, and why it is cheap, is in docs/metrics.md.

pub(crate) mod counters;
pub(crate) mod exposition;
pub(crate) mod http;
pub(crate) mod latency;
pub(crate) mod snapshot;

use counters::NodeCounters;
use latency::LatencyHistogram;

/// The node's metrics that owners feed: one per broker, shared as an `Arc` with every connection and queue.
#[derive(Debug, Default)]
pub(crate) struct NodeMetrics {
    /// The message and churn counters.
    pub(crate) counters: NodeCounters,
    /// Publisher confirm latency, per ack batch.
    pub(crate) confirm_latency: LatencyHistogram,
}
