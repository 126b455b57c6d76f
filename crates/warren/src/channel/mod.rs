//! A channel's state machine, run inside its connection's reader task: methods, content frames and queue answers
//! in, [`ChannelEffects`] out (reply frames, queue commands, waits), which `runtime::execute` carries out. The
//! channel does no I/O and awaits nothing. Publishing is split out into `publish`, consuming and acknowledging
//! into `consume`, exchange and queue class methods into `exchange_queue_methods`, transactions into `tx`, continuations into `answer`.

mod answer;
mod consume;
pub(crate) mod consumer_timeout;
pub(crate) mod delivery_state;
mod direct_reply;
pub(crate) mod effect;
mod exchange_queue_methods;
mod permissions;
mod publish;
pub(crate) mod publish_runs;
mod route_cache;
pub(crate) mod runtime;
#[cfg(test)]
mod tests;
mod tx;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::Broker;
use crate::exchange::stats::PendingExchangeCounts;
use crate::message::Message;
use crate::metrics::counters::LocalCounts;
use crate::queue::{QueueCommand, QueueHandle, SettleAction};
use crate::registry::CloseSignal;
use crate::reply_to::ReplyRegistration;
use crate::session::{ConfirmTracker, ConnectionShared};
use crate::vhost::Vhost;
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{access, channel, confirm as confirm_class, AMQPClass};

use self::delivery_state::{DeliveryState, Unacked};
pub(crate) use self::effect::ChannelEffects;
use self::effect::Effect;
use self::publish::PendingPublish;
pub(crate) use self::publish::{Publisher, COPY_BODY_BELOW};
use self::publish_runs::PublishRuns;
use self::route_cache::RouteCache;

/// What a channel method handler needs of its connection.
pub(crate) struct ChannelContext<'a> {
    /// The broker: the store's back-pressure and node-wide ids.
    pub(crate) broker: &'a Arc<Broker>,
    /// The vhost the connection opened: where methods route and declare.
    pub(crate) vhost: &'a Arc<Vhost>,
    /// The connection's shared state: its outbound queue, frame_max, user.
    pub(crate) conn: &'a Arc<ConnectionShared>,
    /// Exclusive queues this connection declared, deleted when it closes.
    pub(crate) exclusive_queues: &'a mut Vec<Arc<QueueHandle>>,
    /// Routed messages not yet handed to their queues.
    pub(crate) publish_runs: &'a mut PublishRuns,
    /// The connection's close requests, which end a wait for a queue that holds its publishers.
    pub(crate) close: Option<&'a CloseSignal>,
    /// The connection's publish counters (received, routed, unroutable), flushed by the reader once per read.
    pub(crate) counts: &'a mut LocalCounts,
    /// The connection's publishes per exchange, flushed with `counts`.
    pub(crate) exchange_counts: &'a mut PendingExchangeCounts,
}

impl ChannelContext<'_> {
    /// This connection as the publisher a [`publish::Backlog`] waits for.
    pub(crate) fn publisher(&self) -> publish::Publisher<'_> {
        publish::Publisher {
            connection: self.conn.id,
            close: self.close,
        }
    }
}

/// An ack, nack or reject held by a transaction until commit: the deliveries it named, already taken out of the
/// channel's unacked set (by tag), and what to do with them.
struct HeldAck {
    deliveries: BTreeMap<u64, Unacked>,
    action: SettleAction,
}

/// What tx.commit applies and tx.rollback drops: publishes and settlements held in order.
#[derive(Default)]
struct Transaction {
    publishes: Vec<(Arc<Message>, bool)>,
    acks: Vec<HeldAck>,
}

/// One AMQP channel's state: the publish being assembled, the confirm and transaction modes, the consumer
/// prefetch and the last declared queue. Deliveries, unacked tags and consumer tags live in its [`DeliveryState`],
/// which queue actors share.
///
/// Every `handle_*` method takes one event and pushes what must happen into a [`ChannelEffects`]; the caller then
/// executes those in order ([`runtime::execute`]) before it hands this channel its next frame. A returned error
/// closes the channel (or the connection, by its scope) after the effects emitted before it are executed.
pub(crate) struct Channel {
    /// The channel number.
    pub(crate) id: u16,
    /// What queue actors deliver through: delivery tags, unacked deliveries, consumer tags.
    pub(crate) deliveries: Arc<DeliveryState>,
    pending: Option<PendingPublish>,
    confirms: Option<Arc<ConfirmTracker>>,
    tx: Option<Transaction>,
    /// basic.qos global=false: the prefetch new consumers on this channel get.
    consumer_prefetch: u16,
    /// The queue name an empty name in queue methods stands for.
    last_queue: Option<Arc<str>>,
    route_cache: RouteCache,
    /// Its direct reply-to consumer, registered with the node while it lasts.
    reply_consumer: Option<ReplyRegistration>,
    /// Its "pid" in events (`channel.created`, `consumer.*`); set at open only when the event exchange is on.
    pub(crate) event_pid: Option<Arc<str>>,
}

impl Channel {
    /// A channel just opened (the reader has answered channel.open).
    pub(crate) fn new(conn: Arc<ConnectionShared>, id: u16) -> Channel {
        Channel {
            id,
            deliveries: DeliveryState::new(conn, id),
            pending: None,
            confirms: None,
            tx: None,
            consumer_prefetch: 0,
            last_queue: None,
            route_cache: RouteCache::default(),
            reply_consumer: None,
            event_pid: None,
        }
    }

    /// Whether a content header or body frame is expected next.
    #[cfg(test)]
    pub(crate) fn expects_content(&self) -> bool {
        self.pending.is_some()
    }

    /// Handles one method other than channel.open / channel.close (the reader handles those). Call it once every
    /// effect of this channel's previous event has been executed, and after the connection's publish runs are flushed
    /// (a method may reach a queue that publishes waiting in the publish runs must reach first).
    pub(crate) fn handle_method(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: AMQPClass,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if let Some(pending) = &self.pending {
            return Err(pending.unexpected_frame());
        }
        let id = self.id;
        let result = match method {
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
                if !flow.active {
                    return Err(AmqpError::not_implemented("active=false"));
                }
                effects.reply(
                    id,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: true,
                    })),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(()),
            AMQPClass::Exchange(m) => self.handle_exchange(ctx, m, effects),
            AMQPClass::Queue(m) => self.handle_queue(ctx, m, effects),
            AMQPClass::Basic(m) => self.handle_basic(ctx, m, effects),
            AMQPClass::Confirm(confirm_class::AMQPMethod::Select(select)) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                if self.confirms.is_none() {
                    let tracker = ConfirmTracker::new(ctx.conn.clone(), id);
                    self.deliveries.set_confirm_mode(tracker.clone());
                    self.confirms = Some(tracker);
                }
                if !select.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Confirm(confirm_class::AMQPMethod::SelectOk(
                            confirm_class::SelectOk {},
                        )),
                    );
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.handle_tx(ctx, m, effects),
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                effects.reply(
                    id,
                    AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                );
                Ok(())
            }
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!(
                    "unexpected method {}.{} on channel",
                    other.get_amqp_class_id(),
                    other.get_amqp_method_id()
                ),
            )),
        };
        result.map_err(|e| e.on_method(class_id, method_id))
    }

    /// Applies an ack, nack or reject now.
    fn settle(
        &mut self,
        tag: u64,
        multiple: bool,
        action: SettleAction,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let acked = matches!(action, SettleAction::Ack);
        let taken = self.deliveries.take_unacked(tag, multiple, acked)?;
        send_settlements(effects, taken, action);
        Ok(())
    }

    /// Closes the channel: no more deliveries, consumers cancelled, unacked deliveries requeued. Call it when the
    /// channel ends for any reason (channel.close, a channel error, the connection closing) and execute the
    /// effects before the channel number is used again.
    pub(crate) fn shutdown(&mut self, effects: &mut ChannelEffects) {
        self.pending = None;
        self.reply_consumer = None;
        if let Some(tracker) = self.confirms.take() {
            tracker.close();
        }
        let (mut unacked, queues) = self.deliveries.close();
        // Acks of an uncommitted transaction never happened: those deliveries are requeued too.
        if let Some(held) = self.tx.take() {
            unacked.extend(
                held.acks
                    .into_iter()
                    .flat_map(|a| a.deliveries.into_values()),
            );
        }
        for queue in queues {
            let command = QueueCommand::ChannelClosed {
                sink: self.deliveries.clone(),
            };
            effects.push(Effect::Settle { queue, command });
        }
        send_settlements(effects, unacked, SettleAction::Requeue);
    }
}

/// A queue and the (queue position, consumer) pairs of its deliveries being settled.
type QueueSettlements = (Arc<QueueHandle>, Vec<(u64, Option<u64>)>);

/// Groups deliveries by queue and emits one settle command per queue.
fn send_settlements(effects: &mut ChannelEffects, unacked: Vec<Unacked>, action: SettleAction) {
    let mut by_queue: Vec<QueueSettlements> = Vec::new();
    for u in unacked {
        match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, list)) => list.push((u.seq, u.consumer)),
            None => by_queue.push((u.queue, vec![(u.seq, u.consumer)])),
        }
    }
    for (queue, deliveries) in by_queue {
        let command = QueueCommand::Settle { deliveries, action };
        effects.push(Effect::Settle { queue, command });
    }
}
