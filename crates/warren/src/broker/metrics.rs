//! The broker as the Prometheus endpoint's [`MetricsSource`]: the counters its connections and queues feed, the
//! gauges its queues publish, its registry, resource monitor and stores, read without waiting on anything.

use std::sync::Arc;

use super::{Broker, Resource};
use crate::metrics::snapshot::{
    Identity, MetricsSource, NodeSnapshot, QueueRow, Resources, StoreFigures,
};

impl MetricsSource for Broker {
    fn snapshot(&self) -> NodeSnapshot {
        let usage = self.resource_usage();
        let alarms = self.alarms();
        let max_fds = max_open_files();
        let limits = &self.config.limits;
        let store = self.stores.store.stats();
        let spill = self.spill_stats();
        let metrics = &self.metrics;
        NodeSnapshot {
            identity: identity(&self.config.server.cluster_name),
            counters: metrics.counters.totals(),
            connections: self.connections.len() as u64,
            channels: self.connections.channels(|_| true),
            queues: self.queue_rows(),
            resources: Resources {
                memory_used: usage.mem_used,
                memory_limit: usage.mem_limit,
                disk_free: usage.disk_free,
                disk_free_limit: usage.disk_free_limit,
                open_fds: open_files(),
                max_fds,
                max_sockets: match limits.max_connections {
                    0 => max_fds,
                    n => n as u64,
                },
                memory_alarm: alarms.contains(&Resource::Memory),
                disk_alarm: alarms.contains(&Resource::Disk),
            },
            store: StoreFigures {
                fsyncs: store.wal_syncs,
                batches: store.batches,
                batched_messages: store.publishes,
                spill_messages: spill.messages,
                spill_file_bytes: spill.file_bytes,
                spill_pending_bytes: spill.pending_bytes,
            },
            confirm_latency: metrics.confirm_latency.totals(),
        }
    }
}

impl Broker {
    /// Every queue with its counts as its actor last published them, in vhost then queue name order.
    fn queue_rows(&self) -> Vec<QueueRow> {
        let mut rows = Vec::new();
        for vhost in self.vhosts.iter() {
            for queue in vhost.queue_handles() {
                let counts = queue.gauges.read();
                rows.push(QueueRow {
                    vhost: vhost.name.clone(),
                    name: queue.spec.name.clone(),
                    ready: counts.ready,
                    unacked: counts.unacked,
                    consumers: counts.consumers,
                });
            }
        }
        rows.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        rows
    }

    /// The Prometheus endpoint's view of this broker.
    pub(crate) fn metrics_source(self: &Arc<Self>) -> Arc<dyn MetricsSource> {
        self.clone()
    }
}

/// The node's identity labels. Warren's node is its cluster name (`warren@<host>`, as RabbitMQ's `rabbit@<host>`
/// names both); the permanent id is derived from it, so it is stable across restarts (Warren keeps no other id).
fn identity(cluster_name: &str) -> Identity {
    // FNV-1a: a fixed hash, unlike std's, so the id is the same on every start.
    let hash = cluster_name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Identity {
        node: cluster_name.to_owned(),
        cluster: cluster_name.to_owned(),
        cluster_permanent_id: format!("warren-cluster-id-{hash:016x}"),
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// File descriptors open now (entries of `/proc/self/fd`, less the one reading it); 0 where there is no procfs.
fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count().saturating_sub(1) as u64)
}

/// The soft limit on open files (`Max open files` of `/proc/self/limits`); 0 if unknown or unlimited.
fn max_open_files() -> u64 {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return 0;
    };
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(0)
}
