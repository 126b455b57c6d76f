//! The Prometheus text exposition (format 0.0.4, through `prometheus-client`) of a [`NodeSnapshot`], in the three
//! shapes of RabbitMQ's rabbitmq_prometheus plugin: `/metrics` (queue figures summed over the node),
//! `/metrics/per-object` (a series per queue) and `/metrics/detailed` (the families asked for, prefixed
//! `rabbitmq_detailed_`). Names, types, help texts and labels are RabbitMQ 3.10's, checked against a live scrape
//! (docs/metrics.md); Warren's own figures are prefixed `warren_`.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::counters::{Counter, QueueCounter, QueueKind};
use super::snapshot::{NodeSnapshot, QueueRow};

/// The content type of the exposition (Prometheus text format 0.0.4), as RabbitMQ answers.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The RabbitMQ version whose behaviour Warren follows (docs/compatibility.md), for `rabbitmq_build_info`.
const RABBITMQ_VERSION: &str = "3.13.7";

/// Which of the plugin's endpoints is rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// `/metrics`: queue figures summed over the node (unless `return_per_object_metrics`).
    Aggregated,
    /// `/metrics/per-object`: a series per queue, labelled `vhost` and `queue`.
    PerObject,
    /// `/metrics/detailed`: only the families named, per object, prefixed `rabbitmq_detailed_`; queue families
    /// restricted to `vhosts` when any is named.
    Detailed {
        /// The `family` parameters.
        families: Vec<String>,
        /// The `vhost` parameters; empty: every vhost.
        vhosts: Vec<String>,
    },
}

/// The `/metrics/detailed` families Warren has figures for; any other family is answered with nothing, as
/// RabbitMQ answers an unknown one.
pub(crate) const DETAILED_FAMILIES: [&str; 6] = [
    "queue_coarse_metrics",
    "queue_consumer_count",
    "queue_metrics",
    "connection_churn_metrics",
    "node_coarse_metrics",
    "node_metrics",
];

/// Renders `snapshot` as `view` shows it.
pub(crate) fn render(snapshot: NodeSnapshot, view: View) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition { snapshot, view }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The collector a scrape registers: the snapshot and the view, encoded when the registry is.
#[derive(Debug)]
struct Exposition {
    snapshot: NodeSnapshot,
    view: View,
}

/// Labels of one series.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Writes families into the scrape's encoder.
struct Families<'e, 'w> {
    encoder: &'e mut DescriptorEncoder<'w>,
    /// `rabbitmq_` or `rabbitmq_detailed_`, before every name of the core families.
    prefix: &'static str,
}

impl Families<'_, '_> {
    /// A family of one or more series; `name` of a counter is written without `_total`, which the encoder adds.
    fn family<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        series: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) -> fmt::Result {
        let mut metric = self.encoder.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in series {
            if labels.is_empty() {
                encode_value(&mut metric, kind, value)?;
            } else {
                encode_value(&mut metric.encode_family(&labels)?, kind, value)?;
            }
        }
        Ok(())
    }

    /// A core family (`rabbitmq_` or `rabbitmq_detailed_` prefixed) of one unlabelled series.
    fn core(&mut self, name: &str, help: &str, kind: MetricType, value: u64) -> fmt::Result {
        let name = format!("{}{name}", self.prefix);
        self.family(&name, help, kind, [(Labels::new(), value)])
    }

    /// A core family of a series per queue, or of one summed series when `per_object` is false.
    fn queues(
        &mut self,
        name: &str,
        help: &str,
        rows: &[&QueueRow],
        per_object: bool,
        figure: fn(&QueueRow) -> u64,
    ) -> fmt::Result {
        let name = format!("{}{name}", self.prefix);
        if per_object {
            let series = rows
                .iter()
                .map(|q| (vec![("vhost", &*q.vhost), ("queue", &*q.name)], figure(q)));
            self.family(&name, help, MetricType::Gauge, series)
        } else {
            let sum = rows.iter().map(|q| figure(q)).sum();
            self.family(&name, help, MetricType::Gauge, [(Labels::new(), sum)])
        }
    }
}

/// One sample of a counter (`_total` added by the encoder) or of a gauge or untyped metric.
fn encode_value(metric: &mut MetricEncoder<'_>, kind: MetricType, value: u64) -> fmt::Result {
    match kind {
        MetricType::Counter => metric.encode_counter::<NoLabelSet, u64, u64>(&value, None),
        _ => metric.encode_gauge(&value),
    }
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = &self.snapshot;
        let all: Vec<&QueueRow> = s.queues.iter().collect();
        match &self.view {
            View::Aggregated | View::PerObject => {
                let per_object = self.view == View::PerObject;
                let mut out = Families {
                    encoder: &mut encoder,
                    prefix: "rabbitmq_",
                };
                alarms(&mut out, s)?;
                churn(&mut out, s)?;
                node_coarse(&mut out, s)?;
                node_limits(&mut out, s)?;
                queue_coarse(&mut out, &all, per_object)?;
                queue_consumers(&mut out, &all, per_object)?;
                out.core(
                    "channel_consumers",
                    "Consumers on a channel",
                    MetricType::Gauge,
                    s.consumers(),
                )?;
                totals(&mut out, s)?;
                identity(&mut out, s)?;
                global(&mut out, s)?;
                warren(&mut out, s)?;
            }
            View::Detailed { families, vhosts } => {
                let rows: Vec<&QueueRow> = s
                    .queues
                    .iter()
                    .filter(|q| vhosts.is_empty() || vhosts.iter().any(|v| **v == *q.vhost))
                    .collect();
                let mut out = Families {
                    encoder: &mut encoder,
                    prefix: "rabbitmq_detailed_",
                };
                for family in DETAILED_FAMILIES {
                    if !families.iter().any(|f| f == family) {
                        continue;
                    }
                    match family {
                        "queue_coarse_metrics" => queue_coarse(&mut out, &rows, true)?,
                        "connection_churn_metrics" => churn(&mut out, s)?,
                        "node_coarse_metrics" => node_coarse(&mut out, s)?,
                        "node_metrics" => node_limits(&mut out, s)?,
                        // queue_consumer_count is the part of queue_metrics Warren has: one of them is written.
                        "queue_consumer_count" if families.iter().any(|f| f == "queue_metrics") => {
                        }
                        _ => queue_consumers(&mut out, &rows, true)?,
                    }
                }
                out.prefix = "rabbitmq_";
                identity(&mut out, s)?;
            }
        }
        Ok(())
    }
}

/// `rabbitmq_alarms_*`: untyped, 1 while the alarm is in effect.
fn alarms(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let r = &s.resources;
    for (name, help, raised) in [
        (
            "alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
            false,
        ),
        (
            "alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
            r.disk_alarm,
        ),
        (
            "alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
            r.memory_alarm,
        ),
    ] {
        out.core(name, help, MetricType::Unknown, u64::from(raised))?;
    }
    Ok(())
}

/// RabbitMQ's `connection_churn_metrics`.
fn churn(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let c = &s.counters;
    for (name, help, counter) in [
        (
            "connections_opened",
            "Total number of connections opened",
            Counter::ConnectionsOpened,
        ),
        (
            "connections_closed",
            "Total number of connections closed or terminated",
            Counter::ConnectionsClosed,
        ),
        (
            "channels_opened",
            "Total number of channels opened",
            Counter::ChannelsOpened,
        ),
        (
            "channels_closed",
            "Total number of channels closed",
            Counter::ChannelsClosed,
        ),
        (
            "queues_declared",
            "Total number of queues declared",
            Counter::QueuesDeclared,
        ),
        (
            "queues_created",
            "Total number of queues created",
            Counter::QueuesCreated,
        ),
        (
            "queues_deleted",
            "Total number of queues deleted",
            Counter::QueuesDeleted,
        ),
    ] {
        out.core(name, help, MetricType::Counter, c.get(counter))?;
    }
    Ok(())
}

/// RabbitMQ's `node_coarse_metrics` that Warren has.
fn node_coarse(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let r = &s.resources;
    for (name, help, value) in [
        ("process_open_fds", "Open file descriptors", r.open_fds),
        (
            "process_open_tcp_sockets",
            "Open TCP sockets",
            s.connections,
        ),
        (
            "process_resident_memory_bytes",
            "Memory used in bytes",
            r.memory_used,
        ),
        (
            "disk_space_available_bytes",
            "Disk space available in bytes",
            r.disk_free,
        ),
    ] {
        out.core(name, help, MetricType::Gauge, value)?;
    }
    Ok(())
}

/// RabbitMQ's `node_metrics` that Warren has.
fn node_limits(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let r = &s.resources;
    for (name, help, value) in [
        ("process_max_fds", "Open file descriptors limit", r.max_fds),
        (
            "process_max_tcp_sockets",
            "Open TCP sockets limit",
            r.max_sockets,
        ),
        (
            "resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            r.memory_limit,
        ),
        (
            "disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            r.disk_free_limit,
        ),
    ] {
        out.core(name, help, MetricType::Gauge, value)?;
    }
    Ok(())
}

/// RabbitMQ's `queue_coarse_metrics` (without its reductions, which an Erlang process has).
fn queue_coarse(out: &mut Families<'_, '_>, rows: &[&QueueRow], per_object: bool) -> fmt::Result {
    out.queues(
        "queue_messages_ready",
        "Messages ready to be delivered to consumers",
        rows,
        per_object,
        |q| q.ready,
    )?;
    out.queues(
        "queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
        rows,
        per_object,
        |q| q.unacked,
    )?;
    out.queues(
        "queue_messages",
        "Sum of ready and unacknowledged messages - total queue depth",
        rows,
        per_object,
        |q| q.ready + q.unacked,
    )
}

/// RabbitMQ's `queue_consumer_count`.
fn queue_consumers(
    out: &mut Families<'_, '_>,
    rows: &[&QueueRow],
    per_object: bool,
) -> fmt::Result {
    out.queues(
        "queue_consumers",
        "Consumers on a queue",
        rows,
        per_object,
        |q| q.consumers,
    )
}

/// RabbitMQ's totals: objects that exist now.
fn totals(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    for (name, help, value) in [
        ("connections", "Connections currently open", s.connections),
        ("channels", "Channels currently open", s.channels),
        ("consumers", "Consumers currently connected", s.consumers()),
        ("queues", "Queues available", s.queues.len() as u64),
    ] {
        out.core(name, help, MetricType::Gauge, value)?;
    }
    Ok(())
}

/// `rabbitmq_build_info` and `rabbitmq_identity_info`: untyped series of value 1 whose labels carry the facts.
fn identity(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let id = &s.identity;
    out.family(
        "rabbitmq_build_info",
        "RabbitMQ & Erlang/OTP version info",
        MetricType::Unknown,
        [(
            vec![
                ("rabbitmq_version", RABBITMQ_VERSION),
                ("prometheus_plugin_version", id.version),
                ("prometheus_client_version", "prometheus-client 0.26"),
                ("product_name", "Warren"),
                ("product_version", id.version),
            ],
            1,
        )],
    )?;
    out.family(
        "rabbitmq_identity_info",
        "RabbitMQ node & cluster identity info",
        MetricType::Unknown,
        [(
            vec![
                ("rabbitmq_node", id.node.as_str()),
                ("rabbitmq_cluster", id.cluster.as_str()),
                (
                    "rabbitmq_cluster_permanent_id",
                    id.cluster_permanent_id.as_str(),
                ),
            ],
            1,
        )],
    )
}

/// RabbitMQ's `rabbitmq_global_*` families: the protocol counters, then the counters per queue type.
fn global(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let c = &s.counters;
    let protocol = || vec![("protocol", "amqp091")];
    for (name, help, counter) in [
        (
            "messages_received",
            "Total number of messages received from publishers",
            Counter::Received,
        ),
        (
            "messages_received_confirm",
            "Total number of messages received from publishers expecting confirmations",
            Counter::ReceivedConfirm,
        ),
        (
            "messages_routed",
            "Total number of messages routed to queues or streams",
            Counter::Routed,
        ),
        (
            "messages_unroutable_dropped",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
            Counter::UnroutableDropped,
        ),
        (
            "messages_unroutable_returned",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            Counter::UnroutableReturned,
        ),
        (
            "messages_confirmed",
            "Total number of messages confirmed to publishers",
            Counter::Confirmed,
        ),
    ] {
        let name = format!("rabbitmq_global_{name}");
        out.family(&name, help, MetricType::Counter, [(protocol(), c.get(counter))])?;
    }
    out.family(
        "rabbitmq_global_consumers",
        "Current number of consumers",
        MetricType::Gauge,
        [(protocol(), s.consumers())],
    )?;
    for (name, help, counter) in [
        ("messages_delivered", "Total number of messages delivered to consumers", QueueCounter::Delivered),
        (
            "messages_delivered_consume_manual_ack",
            "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
            QueueCounter::DeliveredConsumeManualAck,
        ),
        (
            "messages_delivered_consume_auto_ack",
            "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
            QueueCounter::DeliveredConsumeAutoAck,
        ),
        (
            "messages_delivered_get_manual_ack",
            "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
            QueueCounter::DeliveredGetManualAck,
        ),
        (
            "messages_delivered_get_auto_ack",
            "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
            QueueCounter::DeliveredGetAutoAck,
        ),
        (
            "messages_get_empty",
            "Total number of times basic.get operations fetched no message",
            QueueCounter::GetEmpty,
        ),
        (
            "messages_redelivered",
            "Total number of messages redelivered to consumers",
            QueueCounter::Redelivered,
        ),
        (
            "messages_acknowledged",
            "Total number of messages acknowledged by consumers",
            QueueCounter::Acknowledged,
        ),
    ] {
        let name = format!("rabbitmq_global_{name}");
        let series = QueueKind::ALL.into_iter().map(|kind| {
            let labels = vec![("protocol", "amqp091"), ("queue_type", kind.label())];
            (labels, c.queue(kind, counter))
        });
        out.family(&name, help, MetricType::Counter, series)?;
    }
    Ok(())
}

/// Warren's own families: the message store's group commit, the spill store, confirm latency.
fn warren(out: &mut Families<'_, '_>, s: &NodeSnapshot) -> fmt::Result {
    let st = &s.store;
    out.family(
        "warren_store_fsyncs",
        "Total number of fdatasyncs of the message store's write-ahead log",
        MetricType::Counter,
        [(Labels::new(), st.fsyncs)],
    )?;
    // A histogram of the batch sizes with the +Inf bucket only: rate(_sum) / rate(_count) is the mean group
    // commit, from the store's two counters (no per-batch work added to the writer thread).
    out.encoder
        .encode_descriptor(
            "warren_store_group_commit_batch_size",
            "Messages made durable per group commit of the message store's write-ahead log",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(st.batched_messages as f64, st.batches, &[], None)?;
    for (name, help, value) in [
        (
            "warren_spill_messages",
            "Transient messages held in the spill store",
            st.spill_messages,
        ),
        (
            "warren_spill_file_bytes",
            "Bytes of the spill store's files",
            st.spill_file_bytes,
        ),
        (
            "warren_spill_pending_bytes",
            "Bytes spilled and not yet written by the spill store's writer",
            st.spill_pending_bytes,
        ),
    ] {
        out.family(name, help, MetricType::Gauge, [(Labels::new(), value)])?;
    }
    let latency = &s.confirm_latency;
    out.encoder
        .encode_descriptor(
            "warren_confirm_latency_seconds",
            "Publisher confirm latency: per basic.ack batch, how long its oldest publish waited",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            latency.sum_micros as f64 / 1e6,
            latency.count,
            &latency.bucket_pairs(),
            None,
        )
}
