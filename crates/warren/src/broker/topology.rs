//! Topology changes and message operations made outside any AMQP channel, for the management API: declaring and
//! deleting queues and exchanges, binding, purging, publishing and getting messages. Each goes through the same
//! vhost code a channel uses (same checks, same reply texts, same stored definitions), as connection 0, which no
//! client connection ever is. Changes that may commit to the definitions store run on the blocking pool.

use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use super::Broker;
use crate::message::{Message, QueuedMessage};
use crate::queue::sink::{DeliverOutcome, DeliverySink, QueueReply};
use crate::queue::{QueueCommand, QueueHandle, SettleAction};
use crate::vhost::{ExchangeDeclare, QueueDeclare, Vhost};
use warren_protocol::error::AmqpError;
use warren_protocol::FieldTable;

/// The connection id of the management API's operations: connection ids start at 1.
const NO_CONNECTION: u64 = 0;

/// Why a management operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TopologyError {
    /// The vhost does not exist.
    #[error("no vhost '{0}'")]
    NoSuchVhost(String),
    /// The queue or exchange the operation names does not exist.
    #[error("not found")]
    NotFound,
    /// Refused as a channel would refuse it (inequivalent redeclare, reserved name, in use, ...).
    #[error("{}", .0.text)]
    Refused(AmqpError),
}

impl From<AmqpError> for TopologyError {
    fn from(error: AmqpError) -> TopologyError {
        TopologyError::Refused(error)
    }
}

/// A queue or exchange declaration by the management API.
pub(crate) struct Declaration {
    /// Its name.
    pub(crate) name: String,
    /// Survives a restart.
    pub(crate) durable: bool,
    /// Deleted when unused.
    pub(crate) auto_delete: bool,
    /// Exchanges only: clients cannot publish to it.
    pub(crate) internal: bool,
    /// Exchanges only: the type.
    pub(crate) kind: String,
    /// Its arguments.
    pub(crate) arguments: FieldTable,
}

/// What the management API's get does with the messages it takes (RabbitMQ's `ackmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GetAckMode {
    /// Taken, then put back (redelivered) once all are read.
    Requeue,
    /// Taken and acknowledged (gone).
    Ack,
    /// Taken and rejected without requeue: dead-lettered if the queue says so.
    RejectDrop,
}

/// One message the management API got from a queue.
#[derive(Clone, Debug)]
pub(crate) struct GotMessage {
    /// The message.
    pub(crate) message: Arc<Message>,
    /// Delivered before.
    pub(crate) redelivered: bool,
    /// Ready messages left in the queue after this one.
    pub(crate) message_count: u32,
}

impl Broker {
    fn vhost_or_error(&self, vhost: &str) -> Result<Arc<Vhost>, TopologyError> {
        self.vhost(vhost)
            .ok_or_else(|| TopologyError::NoSuchVhost(vhost.to_owned()))
    }

    /// Declares queue `d` in `vhost` for `user`; returns whether it was created (false: it existed, equivalent).
    pub(crate) async fn declare_queue_by_api(
        &self,
        vhost: &str,
        d: Declaration,
        user: &str,
    ) -> Result<bool, TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        let user = user.to_owned();
        let created = host
            .change_topology(move |host| {
                let existed = host.queue(&d.name).is_some();
                host.declare_queue(&QueueDeclare {
                    name: &d.name,
                    server_named: false,
                    passive: false,
                    durable: d.durable,
                    exclusive: false,
                    auto_delete: d.auto_delete,
                    arguments: d.arguments,
                    connection_id: NO_CONNECTION,
                    user: &user,
                })?;
                Ok(!existed)
            })
            .await?;
        Ok(created)
    }

    /// Deletes queue `name` of `vhost`; NotFound if there is none.
    pub(crate) async fn delete_queue_by_api(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        user: &str,
    ) -> Result<(), TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        if host.queue(name).is_none() {
            return Err(TopologyError::NotFound);
        }
        host.delete_queue(name, if_unused, if_empty, NO_CONNECTION, user)
            .await?;
        Ok(())
    }

    /// Drops the ready messages of queue `name` of `vhost`; returns how many.
    pub(crate) async fn purge_queue_by_api(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<u32, TopologyError> {
        let queue = self.queue_by_api(vhost, name)?;
        let (reply, answer) = oneshot::channel();
        if !queue.send(QueueCommand::Purge { reply }).await {
            return Err(TopologyError::NotFound);
        }
        answer.await.map_err(|_| TopologyError::NotFound)
    }

    /// Takes up to `count` messages from queue `name` of `vhost`, one basic.get after another, then settles them
    /// all as `mode` says: as RabbitMQ's management plugin does on its channel, so a requeued message is not
    /// taken twice by one call.
    pub(crate) async fn get_by_api(
        &self,
        vhost: &str,
        name: &str,
        count: usize,
        mode: GetAckMode,
    ) -> Result<Vec<GotMessage>, TopologyError> {
        let queue = self.queue_by_api(vhost, name)?;
        let no_ack = mode == GetAckMode::Ack;
        let mut got = Vec::new();
        let mut taken = Vec::new();
        for _ in 0..count {
            let (sink, answer) = GetSink::new();
            let command = QueueCommand::Get {
                sink: sink.clone(),
                no_ack,
            };
            if !queue.send(command).await {
                break;
            }
            let Ok(Some((seq, message))) = answer.await else {
                break;
            };
            taken.push((seq, None));
            got.push(message);
        }
        if !no_ack && !taken.is_empty() {
            let action = match mode {
                GetAckMode::RejectDrop => SettleAction::Discard,
                _ => SettleAction::Requeue,
            };
            queue.settle(QueueCommand::Settle {
                deliveries: taken,
                action,
            });
        }
        Ok(got)
    }

    /// Publishes `message` to `exchange` of `vhost` without confirm; returns whether it was routed.
    pub(crate) fn publish_by_api(
        &self,
        vhost: &str,
        exchange: &str,
        message: Message,
    ) -> Result<bool, TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        Ok(host.publish_unconfirmed(exchange, message)?)
    }

    /// Declares exchange `d` in `vhost` for `user`; returns whether it was created.
    pub(crate) async fn declare_exchange_by_api(
        &self,
        vhost: &str,
        d: Declaration,
        user: &str,
    ) -> Result<bool, TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        let user = user.to_owned();
        let created = host
            .change_topology(move |host| {
                let existed = host.exchange(&d.name).is_some();
                host.declare_exchange(&ExchangeDeclare {
                    name: &d.name,
                    kind: &d.kind,
                    passive: false,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                    user: &user,
                })?;
                Ok(!existed)
            })
            .await?;
        Ok(created)
    }

    /// Deletes exchange `name` of `vhost`; NotFound if there is none.
    pub(crate) async fn delete_exchange_by_api(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
        user: &str,
    ) -> Result<(), TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        if !name.is_empty() && host.exchange(name).is_none() {
            return Err(TopologyError::NotFound);
        }
        let (name, user) = (name.to_owned(), user.to_owned());
        host.change_topology(move |host| host.delete_exchange(&name, if_unused, &user))
            .await?;
        Ok(())
    }

    /// Binds `destination` (a queue when `to_queue`, else an exchange) to exchange `source` of `vhost`; NotFound
    /// when either is missing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn bind_by_api(
        &self,
        vhost: &str,
        source: &str,
        destination: &str,
        to_queue: bool,
        key: &str,
        arguments: FieldTable,
        user: &str,
    ) -> Result<(), TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        let destination_exists = match to_queue {
            true => host.queue(destination).is_some(),
            false => host.exchange(destination).is_some(),
        };
        if host.exchange(source).is_none() || !destination_exists {
            return Err(TopologyError::NotFound);
        }
        let (source, destination, key, user) = (
            source.to_owned(),
            destination.to_owned(),
            key.to_owned(),
            user.to_owned(),
        );
        host.change_topology(move |host| match to_queue {
            true => host.bind_queue(&destination, &source, &key, arguments, NO_CONNECTION, &user),
            false => host.bind_exchange(&destination, &source, &key, arguments, &user),
        })
        .await?;
        Ok(())
    }

    /// Removes that binding of `vhost`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn unbind_by_api(
        &self,
        vhost: &str,
        source: &str,
        destination: &str,
        to_queue: bool,
        key: &str,
        arguments: FieldTable,
        user: &str,
    ) -> Result<(), TopologyError> {
        let host = self.vhost_or_error(vhost)?;
        let (source, destination, key, user) = (
            source.to_owned(),
            destination.to_owned(),
            key.to_owned(),
            user.to_owned(),
        );
        host.change_topology(move |host| match to_queue {
            true => host.unbind_queue(&destination, &source, &key, arguments, NO_CONNECTION, &user),
            false => host.unbind_exchange(&destination, &source, &key, arguments, &user),
        })
        .await?;
        Ok(())
    }

    fn queue_by_api(&self, vhost: &str, name: &str) -> Result<Arc<QueueHandle>, TopologyError> {
        self.vhost_or_error(vhost)?
            .queue(name)
            .ok_or(TopologyError::NotFound)
    }
}

/// What one basic.get of the management API answers: the message with its queue sequence number, or None when
/// the queue was empty.
type GetAnswer = Option<(u64, GotMessage)>;

/// The sink of one basic.get made by the management API: takes get-ok or get-empty and hands it to the waiting
/// call. It never has consumers, so the other methods have nothing to do.
struct GetSink {
    /// Taken by the first answer.
    answer: Mutex<Option<oneshot::Sender<GetAnswer>>>,
}

impl GetSink {
    fn new() -> (Arc<GetSink>, oneshot::Receiver<GetAnswer>) {
        let (sender, receiver) = oneshot::channel();
        let sink = Arc::new(GetSink {
            answer: Mutex::new(Some(sender)),
        });
        (sink, receiver)
    }

    fn answer(&self, answer: GetAnswer) -> bool {
        let sender = self.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The waiting call is gone (its HTTP request was dropped): the queue keeps the message.
        sender.is_some_and(|s| s.send(answer).is_ok())
    }
}

impl DeliverySink for GetSink {
    fn deliver(
        &self,
        _queue: &Arc<QueueHandle>,
        _consumer_id: u64,
        _consumer_tag: &str,
        _no_ack: bool,
        _msg: &QueuedMessage,
        _credit_waiter: &Arc<Notify>,
    ) -> DeliverOutcome {
        DeliverOutcome::Closed
    }

    fn deliver_get(
        &self,
        _queue: &Arc<QueueHandle>,
        _no_ack: bool,
        msg: &QueuedMessage,
        message_count: u32,
    ) -> bool {
        self.answer(Some((
            msg.seq,
            GotMessage {
                message: msg.message.clone(),
                redelivered: msg.redelivered,
                message_count,
            },
        )))
    }

    fn reply(&self, reply: QueueReply) {
        if reply == QueueReply::GetEmpty {
            self.answer(None);
        }
    }

    fn is_closed(&self) -> bool {
        false
    }

    fn over_budget(&self) -> bool {
        false
    }

    fn wake_when_drained(&self, waiter: Arc<Notify>) {
        waiter.notify_one();
    }

    fn forget_consumer(&self, _tag: &str) {}

    fn wants_cancel_notify(&self) -> bool {
        false
    }

    fn connection_id(&self) -> u64 {
        NO_CONNECTION
    }
}

/// A refusal as RabbitMQ's management plugin words it for an AMQP error raised on its internal channel:
/// "<code> <NAME> - <text>".
pub(crate) fn channel_error_text(error: &AmqpError) -> String {
    format!("{} {}", error.code as u16, error.text)
}

/// A refusal's text without its "<NAME> - " prefix, as the management plugin reports declare refusals
/// ("inequivalent arg 'durable' for queue ...").
pub(crate) fn bare_error_text(error: &AmqpError) -> &str {
    error
        .text
        .split_once(" - ")
        .map_or(error.text.as_str(), |(_, rest)| rest)
}
