//! One shovel's work: connect to both ends, declare what the definition asks, then consume from the source and
//! publish to the destination, acknowledging each message at the source as `ack-mode` says; a failure on either
//! side ends the session, and the supervisor ([`super::registry`]) starts another after `reconnect-delay`.
//!
//! With `on-confirm` a message is acked at the source only once the destination confirmed it, so a failure
//! anywhere leaves it unacked there and it is delivered again to the next session: at least once, never lost.

use std::sync::Arc;

use futures_lite::future::poll_once;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, PublisherConfirm};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::definition::{AckMode, DeleteAfter, DestinationKind, ShovelDefinition, SourceKind};
use super::endpoint::{Endpoint, LocalNode};
use super::liveness::Liveness;
use super::status::{ShovelIdentity, StatusCell};

/// How a session ended without an error.
pub(super) enum Ended {
    /// `src-delete-after` was reached: the shovel is done.
    Completed,
    /// The supervisor asked it to stop.
    Stopped,
}

/// A session's two connections, closed when it ends so that the source requeues what was not acked.
struct Connections {
    source: Connection,
    destination: Connection,
}

impl Connections {
    async fn close(&self) {
        let _ = self.source.close(200, "shovel stopped".into()).await;
        let _ = self.destination.close(200, "shovel stopped".into()).await;
    }
}

/// Runs one session: returns how it ended, or why it failed.
pub(super) async fn run_session(
    identity: &ShovelIdentity,
    definition: &ShovelDefinition,
    status: &Arc<StatusCell>,
    stop: &mut watch::Receiver<bool>,
    local: &LocalNode,
) -> Result<Ended, String> {
    let name = format!("Shovel {}", identity.name);
    let (source_conn, source_uri) = connect_any(&definition.source.uris, &name, local).await?;
    let (destination_conn, destination_uri) =
        match connect_any(&definition.destination.uris, &name, local).await {
            Ok(connected) => connected,
            Err(e) => {
                let _ = source_conn.close(200, "shovel stopped".into()).await;
                return Err(e);
            }
        };
    let connections = Connections {
        source: source_conn,
        destination: destination_conn,
    };
    status.connected(source_uri.display(), destination_uri.display());
    let result = transfer(
        identity,
        definition,
        status,
        stop,
        &connections,
        (source_uri, destination_uri),
    )
    .await;
    connections.close().await;
    result
}

/// Tries each URI in turn; the first that connects is used.
pub(crate) async fn connect_any<'a>(
    uris: &'a [Endpoint],
    name: &str,
    local: &LocalNode,
) -> Result<(Connection, &'a Endpoint), String> {
    let mut failures = Vec::new();
    for uri in uris {
        match uri.connect(name, local).await {
            Ok(connection) => return Ok((connection, uri)),
            Err(e) => failures.push(e),
        }
    }
    Err(failures.join("; "))
}

/// What the loop publishes where.
struct Publisher<'a> {
    channel: Channel,
    definition: &'a ShovelDefinition,
    /// The `x-shovelled` table, when forward headers are on.
    forward: Option<FieldTable>,
}

impl Publisher<'_> {
    async fn publish(&self, delivery: &Delivery) -> Result<PublisherConfirm, String> {
        let (exchange, key) = match &self.definition.destination.kind {
            DestinationKind::Queue { name, .. } => (String::new(), name.clone()),
            DestinationKind::Exchange { name, key } => (
                name.clone(),
                key.clone()
                    .unwrap_or_else(|| delivery.routing_key.to_string()),
            ),
            DestinationKind::Original { key } => (
                delivery.exchange.to_string(),
                key.clone()
                    .unwrap_or_else(|| delivery.routing_key.to_string()),
            ),
        };
        let properties = self.properties(delivery.properties.clone());
        self.channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await
            .map_err(|e| format!("publishing to the destination: {e}"))
    }

    /// The message's properties with `dest-publish-properties` set over them and the shovel's headers added.
    fn properties(&self, mut properties: BasicProperties) -> BasicProperties {
        for (key, value) in &self.definition.destination.publish_properties {
            properties = set_property(properties, key, value);
        }
        let add_timestamp = self.definition.destination.add_timestamp_header;
        if self.forward.is_none() && !add_timestamp {
            return properties;
        }
        let mut headers = properties.headers().clone().unwrap_or_default();
        if let Some(forward) = &self.forward {
            // Prepended to an existing `x-shovelled` array, as RabbitMQ does, so a chain of shovels is traced.
            let mut trail = FieldArray::default();
            trail.push(AMQPValue::FieldTable(forward.clone()));
            if let Some(AMQPValue::FieldArray(earlier)) = headers.inner().get("x-shovelled") {
                for entry in earlier.as_slice() {
                    trail.push(entry.clone());
                }
            }
            headers.insert("x-shovelled".into(), AMQPValue::FieldArray(trail));
        }
        if add_timestamp {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            headers.insert(
                "x-shovelled-timestamp".into(),
                AMQPValue::LongLongInt(i64::try_from(now).unwrap_or(i64::MAX)),
            );
        }
        properties.with_headers(headers)
    }
}

/// Sets one of `dest-publish-properties` (checked when the definition was read).
fn set_property(p: BasicProperties, key: &str, value: &Value) -> BasicProperties {
    let text = || ShortString::from(value.as_str().unwrap_or_default());
    let number = || value.as_u64().unwrap_or(0);
    match key {
        "content_type" => p.with_content_type(text()),
        "content_encoding" => p.with_content_encoding(text()),
        "delivery_mode" => p.with_delivery_mode(u8::try_from(number()).unwrap_or(2)),
        "priority" => p.with_priority(u8::try_from(number()).unwrap_or(u8::MAX)),
        "correlation_id" => p.with_correlation_id(text()),
        "reply_to" => p.with_reply_to(text()),
        "expiration" => p.with_expiration(text()),
        "message_id" => p.with_message_id(text()),
        "timestamp" => p.with_timestamp(number()),
        "type" => p.with_type(text()),
        "user_id" => p.with_user_id(text()),
        "app_id" => p.with_app_id(text()),
        "cluster_id" => p.with_cluster_id(text()),
        _ => p,
    }
}

/// The `x-shovelled` entry of this shovel: RabbitMQ's keys, the URIs without passwords.
fn forward_table(
    identity: &ShovelIdentity,
    definition: &ShovelDefinition,
    source_uri: &Endpoint,
    destination_uri: &Endpoint,
) -> FieldTable {
    let mut table = FieldTable::default();
    let mut put = |key: &str, value: &str| {
        table.insert(
            key.into(),
            AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
        );
    };
    put("shovelled-by", &identity.node);
    put("shovel-type", identity.kind.name());
    put("shovel-name", &identity.name);
    if let Some(vhost) = &identity.vhost {
        put("shovel-vhost", vhost);
    }
    put("src-uri", source_uri.display());
    put("dest-uri", destination_uri.display());
    match &definition.source.kind {
        SourceKind::Queue { name, .. } => put("src-queue", name),
        SourceKind::Exchange { name, key } => {
            put("src-exchange", name);
            put("src-exchange-key", key);
        }
    }
    match &definition.destination.kind {
        DestinationKind::Queue { name, .. } => put("dest-queue", name),
        DestinationKind::Exchange { name, key } => {
            put("dest-exchange", name);
            if let Some(key) = key {
                put("dest-exchange-key", key);
            }
        }
        DestinationKind::Original { key: Some(key) } => put("dest-exchange-key", key),
        DestinationKind::Original { key: None } => {}
    }
    table
}

/// Declares `queue` durable with `args` unless it exists (RabbitMQ's shovels do the same); returns its message
/// count.
pub(crate) async fn ensure_queue(
    connection: &Connection,
    queue: &str,
    args: &Map<String, Value>,
) -> Result<u32, String> {
    let probe = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match probe
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
    {
        Ok(found) => {
            let _ = probe.close(200, "".into()).await;
            Ok(found.message_count())
        }
        // 404 closed the probe's channel; declare on a fresh one.
        Err(_) => {
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| e.to_string())?;
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let declared = channel
                .queue_declare(queue.into(), durable, field_table(args))
                .await
                .map_err(|e| format!("declaring queue '{queue}': {e}"))?;
            let _ = channel.close(200, "".into()).await;
            Ok(declared.message_count())
        }
    }
}

/// The consuming side's queue: the source queue, or an exclusive server-named one bound to the source exchange.
/// Returns its name and the message count it had.
async fn source_queue(
    connection: &Connection,
    channel: &Channel,
    kind: &SourceKind,
) -> Result<(String, u32), String> {
    match kind {
        SourceKind::Queue { name, args } => {
            Ok((name.clone(), ensure_queue(connection, name, args).await?))
        }
        SourceKind::Exchange { name, key } => {
            let exclusive = QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            };
            let queue = channel
                .queue_declare("".into(), exclusive, FieldTable::default())
                .await
                .map_err(|e| format!("declaring the source queue: {e}"))?;
            let queue_name = queue.name().to_string();
            channel
                .queue_bind(
                    queue_name.as_str().into(),
                    name.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("binding to the source exchange '{name}': {e}"))?;
            Ok((queue_name, 0))
        }
    }
}

/// The transfer loop of one session.
async fn transfer(
    identity: &ShovelIdentity,
    definition: &ShovelDefinition,
    status: &Arc<StatusCell>,
    stop: &mut watch::Receiver<bool>,
    connections: &Connections,
    (source_uri, destination_uri): (&Endpoint, &Endpoint),
) -> Result<Ended, String> {
    let source = connections
        .source
        .create_channel()
        .await
        .map_err(|e| format!("source channel: {e}"))?;
    let (queue, queue_length) =
        source_queue(&connections.source, &source, &definition.source.kind).await?;
    if let DestinationKind::Queue { name, args } = &definition.destination.kind {
        ensure_queue(&connections.destination, name, args).await?;
    }
    let destination = connections
        .destination
        .create_channel()
        .await
        .map_err(|e| format!("destination channel: {e}"))?;
    if definition.ack_mode == AckMode::OnConfirm {
        destination
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm.select at the destination: {e}"))?;
    }
    // The limit of this session: what remains of `src-delete-after`.
    let remaining = match definition.source.delete_after {
        DeleteAfter::Never => None,
        DeleteAfter::QueueLength => Some(u64::from(queue_length)),
        DeleteAfter::Count(n) => Some(n.saturating_sub(status.moved())),
    };
    if remaining == Some(0) {
        return Ok(Ended::Completed);
    }
    let no_ack = definition.ack_mode == AckMode::NoAck;
    if !no_ack {
        source
            .basic_qos(definition.source.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| format!("basic.qos at the source: {e}"))?;
    }
    let mut consumer = source
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consuming from '{queue}': {e}"))?;
    status.running();
    let publisher = Publisher {
        channel: destination,
        definition,
        forward: definition
            .destination
            .add_forward_headers
            .then(|| forward_table(identity, definition, source_uri, destination_uri)),
    };
    // With on-confirm, each publish goes to the confirmer with its source tag; it acks at the source in order.
    let (confirmer, mut confirmer_done) = match definition.ack_mode {
        AckMode::OnConfirm => {
            let (sender, receiver) = mpsc::channel(usize::from(definition.source.prefetch).max(1));
            let counter = status.clone();
            let task = tokio::spawn(confirm_in_order(source.clone(), receiver, move |n| {
                counter.add_moved(n)
            }));
            (Some(sender), Some(task))
        }
        _ => (None, None),
    };
    let mut liveness = Liveness::new(vec![
        ("source", &connections.source),
        ("destination", &connections.destination),
    ]);
    // Taken from the source and counted against `remaining`.
    let mut taken: u64 = 0;
    loop {
        if remaining.is_some_and(|limit| taken >= limit) {
            // Every message of the limit is published: wait for the confirmer to settle them, then end.
            drop(confirmer);
            if let Some(task) = confirmer_done.take() {
                task.await
                    .map_err(|e| format!("the confirmer failed: {e}"))??;
            }
            return Ok(Ended::Completed);
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(Ended::Stopped);
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
            next = consumer.next() => {
                let delivery = match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(e)) => return Err(format!("source: {e}")),
                    None => return Err(format!("the source cancelled the consumer of '{queue}'")),
                };
                let confirm = publisher.publish(&delivery).await?;
                taken += 1;
                match &confirmer {
                    Some(confirmer) => {
                        if confirmer.send((delivery.delivery_tag, confirm)).await.is_err() {
                            return Err("the confirmer stopped".to_owned());
                        }
                    }
                    None if no_ack => status.add_moved(1),
                    None => {
                        source
                            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                            .await
                            .map_err(|e| format!("acking at the source: {e}"))?;
                        status.add_moved(1);
                    }
                }
            }
        }
    }
}

/// The confirmer's end; pending forever when there is none (its `select!` branch is disabled then).
pub(crate) async fn finished(
    task: &mut Option<JoinHandle<Result<(), String>>>,
) -> Result<Result<(), String>, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// Settles published messages in source delivery-tag order as the destination answers: consecutive acks become
/// one multiple ack at the source; a nack is nacked back with requeue, as RabbitMQ's shovel does. Ends when the
/// loop drops its sender and everything is settled, or at the first failure.
pub(crate) async fn confirm_in_order(
    source: Channel,
    mut published: mpsc::Receiver<(u64, PublisherConfirm)>,
    moved: impl Fn(u64),
) -> Result<(), String> {
    while let Some((tag, confirm)) = published.recv().await {
        let mut answers = vec![(tag, confirm.await)];
        // Whatever else is already answered joins this batch.
        while let Ok((tag, mut confirm)) = published.try_recv() {
            match poll_once(&mut confirm).await {
                Some(answer) => answers.push((tag, answer)),
                None => {
                    answers.push((tag, confirm.await));
                    break;
                }
            }
        }
        let mut ack_up_to: Option<u64> = None;
        let mut acked = 0;
        for (tag, answer) in answers {
            match answer {
                Ok(confirmation) if !confirmation.is_nack() => {
                    ack_up_to = Some(tag);
                    acked += 1;
                }
                Ok(_) => {
                    flush_acks(&source, &mut ack_up_to).await?;
                    source
                        .basic_nack(
                            tag,
                            BasicNackOptions {
                                multiple: false,
                                requeue: true,
                            },
                        )
                        .await
                        .map_err(|e| format!("nacking at the source: {e}"))?;
                }
                Err(e) => return Err(format!("destination: {e}")),
            }
        }
        flush_acks(&source, &mut ack_up_to).await?;
        moved(acked);
    }
    Ok(())
}

async fn flush_acks(source: &Channel, up_to: &mut Option<u64>) -> Result<(), String> {
    if let Some(tag) = up_to.take() {
        source
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| format!("acking at the source: {e}"))?;
    }
    Ok(())
}

/// A JSON object of queue arguments as an AMQP table.
pub(crate) fn field_table(args: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in args {
        table.insert(key.as_str().into(), amqp_value(value));
    }
    table
}

fn amqp_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(items) => {
            let mut array = FieldArray::default();
            for item in items {
                array.push(amqp_value(item));
            }
            AMQPValue::FieldArray(array)
        }
        Value::Object(fields) => AMQPValue::FieldTable(field_table(fields)),
    }
}
