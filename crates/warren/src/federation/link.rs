//! One federation link's session: a connection to the upstream and one to this node, the upstream side declared,
//! then messages consumed there and republished here with confirms, acknowledged upstream once confirmed
//! (`ack-mode`).
//!
//! - An exchange link binds a queue on the upstream (`federation: X -> NODE`) to the upstream exchange with every
//!   binding the federated exchange has here, kept in step as bindings come and go; messages get an
//!   `x-received-from` entry and are dropped once they crossed `max-hops` links or already passed through this
//!   node (RabbitMQ drops them at the upstream with its own exchange type; Warren's links work against any broker,
//!   so the check is made here).
//! - A queue link consumes from the upstream queue only while the local queue has consumers and few ready
//!   messages, and publishes into the local queue.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::status::LinkStatusCell;
use super::upstream::{LinkAckMode, Upstream};
use crate::shovel::endpoint::{Endpoint, LocalNode};
use crate::shovel::liveness::Liveness;
use crate::shovel::worker::{confirm_in_order, connect_any, ensure_queue, field_table, finished};

/// A binding of the federated exchange, as the upstream queue is bound: routing key and arguments (as JSON text,
/// so bindings order and compare).
pub(crate) type BindingKey = (String, String);

fn arguments(json: &str) -> FieldTable {
    match serde_json::from_str::<Map<String, Value>>(json) {
        Ok(args) => field_table(&args),
        Err(_) => FieldTable::default(),
    }
}

/// What one link federates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Federated {
    /// An exchange, with its type and durability (the upstream exchange is declared alike if missing).
    Exchange {
        /// Its name.
        name: String,
        /// Its type.
        kind: String,
        /// Its durability.
        durable: bool,
    },
    /// A queue.
    Queue {
        /// Its name.
        name: String,
    },
}

/// Everything a link runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkSpec {
    /// The vhost of the federated object.
    pub(crate) vhost: String,
    /// The federated exchange or queue.
    pub(crate) federated: Federated,
    /// The upstream, with its set's overrides.
    pub(crate) upstream: Upstream,
    /// This node's name (RabbitMQ's cluster name), for the upstream queue's name and loop detection.
    pub(crate) node: String,
}

impl LinkSpec {
    /// The upstream exchange (its `exchange`, or the federated exchange's own name).
    pub(crate) fn upstream_exchange(&self) -> Option<String> {
        match &self.federated {
            Federated::Exchange { name, .. } => Some(
                self.upstream
                    .exchange
                    .clone()
                    .unwrap_or_else(|| name.clone()),
            ),
            Federated::Queue { .. } => None,
        }
    }

    /// The upstream queue: RabbitMQ's `federation: X -> NODE` for an exchange, the queue's own name (or the
    /// upstream's `queue`) for a queue.
    pub(crate) fn upstream_queue(&self) -> String {
        match &self.federated {
            Federated::Exchange { name, .. } => format!("federation: {name} -> {}", self.node),
            Federated::Queue { name } => {
                self.upstream.queue.clone().unwrap_or_else(|| name.clone())
            }
        }
    }
}

/// What a queue link needs to know of its local queue to decide whether to pull.
pub(crate) type Demand = watch::Receiver<bool>;

/// How often a queue link without demand looks again (demand changes are also sent at once).
const DEMAND_RECHECK: Duration = Duration::from_millis(500);

/// Runs one session of a link; returns Ok when stopped, Err(reason) when it failed.
pub(crate) async fn run_session(
    spec: &LinkSpec,
    status: &Arc<LinkStatusCell>,
    stop: &mut watch::Receiver<bool>,
    bindings: &mut watch::Receiver<BTreeSet<BindingKey>>,
    demand: &mut Demand,
    local: &LocalNode,
) -> Result<(), String> {
    let name = format!("Federation link {}", spec.upstream.name);
    let (upstream_conn, upstream_uri) = connect_any(&spec.upstream.uris, &name, local).await?;
    let here = Endpoint::parse(&format!(
        "amqp:///{}",
        percent_encoding::utf8_percent_encode(&spec.vhost, percent_encoding::NON_ALPHANUMERIC)
    ))?;
    let local_conn = match here.connect(&name, local).await {
        Ok(conn) => conn,
        Err(e) => {
            let _ = upstream_conn.close(200, "link stopped".into()).await;
            return Err(e);
        }
    };
    let upstream_cluster = super::probe::cluster_name(upstream_uri, local).await;
    let result = transfer(
        spec,
        status,
        stop,
        bindings,
        demand,
        (&upstream_conn, &local_conn),
        (upstream_uri, upstream_cluster),
    )
    .await;
    let _ = upstream_conn.close(200, "link stopped".into()).await;
    let _ = local_conn.close(200, "link stopped".into()).await;
    result
}

/// Declares the upstream exchange like the federated one unless it exists.
async fn ensure_exchange(
    conn: &Connection,
    name: &str,
    kind: &str,
    durable: bool,
) -> Result<(), String> {
    let probe = conn.create_channel().await.map_err(|e| e.to_string())?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let kind = ExchangeKind::Custom(kind.to_owned());
    if probe
        .exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
        .await
        .is_ok()
    {
        let _ = probe.close(200, "".into()).await;
        return Ok(());
    }
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    let options = ExchangeDeclareOptions {
        durable,
        ..Default::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .map_err(|e| format!("declaring the upstream exchange '{name}': {e}"))?;
    let _ = channel.close(200, "".into()).await;
    Ok(())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    (key, args): &BindingKey,
    nowait: bool,
) -> Result<(), String> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.as_str().into(),
            QueueBindOptions { nowait },
            arguments(args),
        )
        .await
        .map_err(|e| format!("binding at the upstream: {e}"))
}

async fn unbind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    (key, args): &BindingKey,
) -> Result<(), String> {
    channel
        .queue_unbind(
            queue.into(),
            exchange.into(),
            key.as_str().into(),
            arguments(args),
        )
        .await
        .map_err(|e| format!("unbinding at the upstream: {e}"))
}

/// The upstream side: its queue (declared), its bindings (exchange links), and the channel consuming from it.
async fn prepare_upstream(
    spec: &LinkSpec,
    conn: &Connection,
    bindings: &BTreeSet<BindingKey>,
) -> Result<Channel, String> {
    let queue = spec.upstream_queue();
    match &spec.federated {
        Federated::Exchange { kind, durable, .. } => {
            let exchange = spec.upstream_exchange().unwrap_or_default();
            ensure_exchange(conn, &exchange, kind, *durable).await?;
            let mut args = Map::new();
            if let Some(expires) = spec.upstream.expires {
                args.insert("x-expires".into(), Value::from(expires));
            }
            if let Some(ttl) = spec.upstream.message_ttl {
                args.insert("x-message-ttl".into(), Value::from(ttl));
            }
            ensure_queue(conn, &queue, &args).await?;
            let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
            for binding in bindings {
                bind(
                    &channel,
                    &queue,
                    &exchange,
                    binding,
                    spec.upstream.bind_nowait,
                )
                .await?;
            }
            Ok(channel)
        }
        Federated::Queue { .. } => {
            ensure_queue(conn, &queue, &Map::new()).await?;
            conn.create_channel().await.map_err(|e| e.to_string())
        }
    }
}

/// Whether a message crossed enough links, or this node's vhost already (RabbitMQ's loop prevention).
fn seen_enough(delivery: &Delivery, spec: &LinkSpec) -> bool {
    let headers = delivery.properties.headers().as_ref();
    !super::loops::may_cross(
        headers,
        spec.upstream.max_hops,
        &spec.node,
        Some(&spec.vhost),
    )
}

/// The upstream's vhost as its URI names it.
fn upstream_vhost(uri: &Endpoint) -> String {
    uri.vhost().to_owned()
}

/// The message's properties as republished here: an `x-received-from` entry first, `user_id` removed unless
/// trusted.
fn republished(
    delivery: &Delivery,
    spec: &LinkSpec,
    uri: &Endpoint,
    cluster: &str,
) -> BasicProperties {
    let mut properties = delivery.properties.clone();
    if !spec.upstream.trust_user_id && properties.user_id().is_some() {
        let mut without = BasicProperties::default();
        // BasicProperties has no unset: copy every field but user_id.
        if let Some(v) = properties.content_type() {
            without = without.with_content_type(v.clone());
        }
        if let Some(v) = properties.content_encoding() {
            without = without.with_content_encoding(v.clone());
        }
        if let Some(v) = properties.headers() {
            without = without.with_headers(v.clone());
        }
        if let Some(v) = properties.delivery_mode() {
            without = without.with_delivery_mode(*v);
        }
        if let Some(v) = properties.priority() {
            without = without.with_priority(*v);
        }
        if let Some(v) = properties.correlation_id() {
            without = without.with_correlation_id(v.clone());
        }
        if let Some(v) = properties.reply_to() {
            without = without.with_reply_to(v.clone());
        }
        if let Some(v) = properties.expiration() {
            without = without.with_expiration(v.clone());
        }
        if let Some(v) = properties.message_id() {
            without = without.with_message_id(v.clone());
        }
        if let Some(v) = properties.timestamp() {
            without = without.with_timestamp(*v);
        }
        if let Some(v) = properties.kind() {
            without = without.with_type(v.clone());
        }
        if let Some(v) = properties.app_id() {
            without = without.with_app_id(v.clone());
        }
        if let Some(v) = properties.cluster_id() {
            without = without.with_cluster_id(v.clone());
        }
        properties = without;
    }
    if spec.upstream_exchange().is_none() {
        return properties;
    }
    let mut entry = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    entry.insert("uri".into(), text(uri.display()));
    entry.insert(
        "exchange".into(),
        text(&spec.upstream_exchange().unwrap_or_default()),
    );
    entry.insert(
        "redelivered".into(),
        AMQPValue::Boolean(delivery.redelivered),
    );
    entry.insert("cluster-name".into(), text(cluster));
    entry.insert("vhost".into(), text(&upstream_vhost(uri)));
    let mut headers = properties.headers().clone().unwrap_or_default();
    let mut trail = FieldArray::default();
    trail.push(AMQPValue::FieldTable(entry));
    if let Some(AMQPValue::FieldArray(earlier)) = headers.inner().get("x-received-from") {
        for e in earlier.as_slice() {
            trail.push(e.clone());
        }
    }
    headers.insert("x-received-from".into(), AMQPValue::FieldArray(trail));
    properties.with_headers(headers)
}

#[allow(clippy::too_many_arguments)]
async fn transfer(
    spec: &LinkSpec,
    status: &Arc<LinkStatusCell>,
    stop: &mut watch::Receiver<bool>,
    bindings: &mut watch::Receiver<BTreeSet<BindingKey>>,
    demand: &mut Demand,
    (upstream_conn, local_conn): (&Connection, &Connection),
    (upstream_uri, upstream_cluster): (&Endpoint, String),
) -> Result<(), String> {
    let mut bound = bindings.borrow_and_update().clone();
    let upstream = prepare_upstream(spec, upstream_conn, &bound).await?;
    // Running once the upstream side is in place: from here on nothing published there is missed.
    status.running(upstream_uri.display());
    let queue = spec.upstream_queue();
    let exchange = spec.upstream_exchange();
    let downstream = local_conn
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    let no_ack = spec.upstream.ack_mode == LinkAckMode::NoAck;
    if spec.upstream.ack_mode == LinkAckMode::OnConfirm {
        downstream
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm.select here: {e}"))?;
    }
    if !no_ack {
        upstream
            .basic_qos(spec.upstream.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| format!("basic.qos at the upstream: {e}"))?;
    }
    let (confirmer, mut confirmer_done) = match spec.upstream.ack_mode {
        LinkAckMode::OnConfirm => {
            let (sender, receiver) = mpsc::channel(usize::from(spec.upstream.prefetch).max(1));
            let counter = status.clone();
            let task = tokio::spawn(confirm_in_order(upstream.clone(), receiver, move |n| {
                counter.add_moved(n)
            }));
            (Some(sender), Some(task))
        }
        _ => (None, None),
    };
    let tag = spec
        .upstream
        .consumer_tag
        .clone()
        .unwrap_or_else(|| format!("federation-link-{}-{}", spec.upstream.name, queue));
    // An exchange link always consumes; a queue link only while there is demand here.
    let is_exchange = exchange.is_some();
    let mut consumer: Option<lapin::Consumer> = None;
    // A cancelled consumer is read to its end: what the upstream delivered before its cancel-ok is held unacked
    // there on this channel, and dropped unread it would stay so (neither here nor requeued) until the channel
    // closed. Until then it is not consumed again (the tag is still taken).
    let mut cancelling = false;
    let mut liveness = Liveness::new(vec![("upstream", upstream_conn), ("local", local_conn)]);
    loop {
        let wanted = is_exchange || *demand.borrow();
        match (wanted, consumer.is_some(), cancelling) {
            (true, false, _) => {
                let options = BasicConsumeOptions {
                    no_ack,
                    ..Default::default()
                };
                consumer = Some(
                    upstream
                        .basic_consume(
                            queue.as_str().into(),
                            tag.as_str().into(),
                            options,
                            FieldTable::default(),
                        )
                        .await
                        .map_err(|e| format!("consuming from the upstream queue '{queue}': {e}"))?,
                );
            }
            (false, true, false) => {
                upstream
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await
                    .map_err(|e| format!("basic.cancel at the upstream: {e}"))?;
                cancelling = true;
            }
            _ => {}
        }
        let next = async {
            match consumer.as_mut() {
                Some(c) => c.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(());
                }
            }
            reason = liveness.lost() => return Err(reason),
            ended = finished(&mut confirmer_done), if confirmer_done.is_some() => {
                return Err(match ended {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "the confirmer stopped".to_owned(),
                    Err(e) => format!("the confirmer failed: {e}"),
                });
            }
            changed = bindings.changed(), if is_exchange => {
                if changed.is_err() {
                    return Ok(());
                }
                let want = bindings.borrow_and_update().clone();
                let exchange = exchange.clone().unwrap_or_default();
                for gone in bound.difference(&want) {
                    unbind(&upstream, &queue, &exchange, gone).await?;
                }
                for new in want.difference(&bound) {
                    bind(&upstream, &queue, &exchange, new, spec.upstream.bind_nowait).await?;
                }
                bound = want;
            }
            _ = demand.changed(), if !is_exchange => {}
            _ = tokio::time::sleep(DEMAND_RECHECK), if !is_exchange => {}
            next = next => {
                let delivery = match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(e)) => return Err(format!("upstream: {e}")),
                    None if cancelling => {
                        consumer = None;
                        cancelling = false;
                        continue;
                    }
                    None => return Err(format!("the upstream cancelled the consumer of '{queue}'")),
                };
                if is_exchange && seen_enough(&delivery, spec) {
                    if !no_ack {
                        upstream
                            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                            .await
                            .map_err(|e| format!("acking at the upstream: {e}"))?;
                    }
                    continue;
                }
                let (target_exchange, key) = match &spec.federated {
                    Federated::Exchange { name, .. } => (name.clone(), delivery.routing_key.to_string()),
                    Federated::Queue { name } => (String::new(), name.clone()),
                };
                let properties = republished(&delivery, spec, upstream_uri, &upstream_cluster);
                let confirm = downstream
                    .basic_publish(
                        target_exchange.as_str().into(),
                        key.as_str().into(),
                        BasicPublishOptions::default(),
                        &delivery.data,
                        properties,
                    )
                    .await
                    .map_err(|e| format!("publishing here: {e}"))?;
                match &confirmer {
                    Some(confirmer) => {
                        if confirmer.send((delivery.delivery_tag, confirm)).await.is_err() {
                            return Err("the confirmer stopped".to_owned());
                        }
                    }
                    None if no_ack => status.add_moved(1),
                    None => {
                        upstream
                            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                            .await
                            .map_err(|e| format!("acking at the upstream: {e}"))?;
                        status.add_moved(1);
                    }
                }
            }
        }
    }
}
