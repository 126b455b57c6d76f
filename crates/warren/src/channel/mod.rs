//! A channel's state machine, run inside its connection's reader task: methods and content frames in, replies
//! and queue commands out. Publishing is split out into `publish`, consuming and acknowledging into `consume`,
//! topology methods into `topology`.

mod consume;
pub mod outbox;
pub mod outlet;
mod publish;
mod route_cache;
mod topology;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::Broker;
use crate::message::Message;
use crate::queue::{QueueCommand, QueueHandle, SettleAction};
use crate::session::{ConfirmTracker, ConnectionShared};
use crate::vhost::Vhost;
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{access, channel, confirm as confirm_class, put_method, tx, AMQPClass};

use self::outbox::Outbox;
use self::outlet::{ChannelOutlet, Unacked};
use self::publish::PendingPublish;
pub use self::publish::{Backlog, COPY_BODY_BELOW};
use self::route_cache::RouteCache;

/// What a channel method handler needs of its connection.
pub struct ChannelContext<'a> {
    pub broker: &'a Arc<Broker>,
    pub vhost: &'a Arc<Vhost>,
    pub conn: &'a Arc<ConnectionShared>,
    /// Exclusive queues this connection declared, deleted when it closes.
    pub exclusive_queues: &'a mut Vec<Arc<QueueHandle>>,
    /// Routed messages not yet handed to their queues.
    pub outbox: &'a mut Outbox,
}

/// An ack, nack or reject held by a transaction until commit: the deliveries it named, already taken out of the
/// channel's unacked set (by tag), and what to do with them.
struct HeldAck {
    deliveries: BTreeMap<u64, Unacked>,
    action: SettleAction,
}

#[derive(Default)]
struct Transaction {
    publishes: Vec<(Arc<Message>, bool)>,
    acks: Vec<HeldAck>,
}

pub struct Channel {
    pub id: u16,
    pub outlet: Arc<ChannelOutlet>,
    pending: Option<PendingPublish>,
    confirms: Option<Arc<ConfirmTracker>>,
    tx: Option<Transaction>,
    /// basic.qos global=false: the prefetch new consumers on this channel get.
    consumer_prefetch: u16,
    /// The queue name an empty name in queue methods stands for.
    last_queue: Option<Arc<str>>,
    route_cache: RouteCache,
}

impl Channel {
    pub fn new(conn: Arc<ConnectionShared>, id: u16) -> Channel {
        Channel {
            id,
            outlet: ChannelOutlet::new(conn, id),
            pending: None,
            confirms: None,
            tx: None,
            consumer_prefetch: 0,
            last_queue: None,
            route_cache: RouteCache::default(),
        }
    }

    fn reply(&self, method: AMQPClass) {
        let id = self.id;
        self.outlet
            .conn
            .outbound
            .write(|out| put_method(out, id, method));
    }

    /// Whether a content header or body frame is expected next.
    pub fn expects_content(&self) -> bool {
        self.pending.is_some()
    }

    /// Handles one method other than channel.open / channel.close (the reader handles those).
    pub async fn handle_method(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: AMQPClass,
    ) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if let Some(pending) = &self.pending {
            return Err(pending.unexpected_frame());
        }
        let result = match method {
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
                if !flow.active {
                    return Err(AmqpError::not_implemented("active=false"));
                }
                self.reply(AMQPClass::Channel(channel::AMQPMethod::FlowOk(
                    channel::FlowOk { active: true },
                )));
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(()),
            AMQPClass::Exchange(m) => self.handle_exchange(ctx, m).await,
            AMQPClass::Queue(m) => self.handle_queue(ctx, m).await,
            AMQPClass::Basic(m) => self.handle_basic(ctx, m).await,
            AMQPClass::Confirm(confirm_class::AMQPMethod::Select(select)) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                if self.confirms.is_none() {
                    self.confirms = Some(ConfirmTracker::new(ctx.conn.clone(), self.id));
                }
                if !select.nowait {
                    self.reply(AMQPClass::Confirm(confirm_class::AMQPMethod::SelectOk(
                        confirm_class::SelectOk {},
                    )));
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.handle_tx(ctx, m).await,
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                self.reply(AMQPClass::Access(access::AMQPMethod::RequestOk(
                    access::RequestOk {},
                )));
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

    async fn handle_tx(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: tx::AMQPMethod,
    ) -> Result<(), AmqpError> {
        match method {
            tx::AMQPMethod::Select(_) => {
                if self.confirms.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                if self.tx.is_none() {
                    self.tx = Some(Transaction::default());
                }
                self.reply(AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
                Ok(())
            }
            tx::AMQPMethod::Commit(_) => {
                let Some(held) = self.tx.as_mut().map(std::mem::take) else {
                    return Err(AmqpError::precondition("channel is not transactional"));
                };
                for ack in held.acks {
                    let settled: Vec<Unacked> = ack.deliveries.into_values().collect();
                    self.outlet.release_held(&settled);
                    send_settlements(settled, ack.action);
                }
                for (message, mandatory) in held.publishes {
                    self.route(ctx, message, mandatory)?.wait(ctx.broker).await;
                }
                ctx.outbox.flush().wait(ctx.broker).await;
                self.reply(AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
                Ok(())
            }
            tx::AMQPMethod::Rollback(_) => {
                let Some(held) = self.tx.as_mut() else {
                    return Err(AmqpError::precondition("channel is not transactional"));
                };
                for ack in std::mem::take(held).acks {
                    self.outlet.restore_unacked(ack.deliveries);
                }
                self.reply(AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})));
                Ok(())
            }
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!(
                    "unexpected method {}.{}",
                    90,
                    AMQPClass::Tx(other).get_amqp_method_id()
                ),
            )),
        }
    }

    /// Applies an ack, nack or reject now.
    async fn settle(
        &mut self,
        tag: u64,
        multiple: bool,
        action: SettleAction,
    ) -> Result<(), AmqpError> {
        let taken = self.outlet.take_unacked(tag, multiple)?;
        send_settlements(taken, action);
        Ok(())
    }

    /// Closes the channel: no more deliveries, consumers cancelled, unacked deliveries requeued.
    pub async fn shutdown(&mut self) {
        self.pending = None;
        if let Some(tracker) = self.confirms.take() {
            tracker.close();
        }
        let (mut unacked, queues) = self.outlet.close();
        // Acks of an uncommitted transaction never happened: those deliveries are requeued too.
        if let Some(held) = self.tx.take() {
            unacked.extend(
                held.acks
                    .into_iter()
                    .flat_map(|a| a.deliveries.into_values()),
            );
        }
        for queue in queues {
            queue.settle(QueueCommand::ChannelClosed {
                sink: self.outlet.clone(),
            });
        }
        send_settlements(unacked, SettleAction::Requeue);
    }
}

/// A queue and the (queue position, consumer) pairs of its deliveries being settled.
type QueueSettlements = (Arc<QueueHandle>, Vec<(u64, Option<u64>)>);

/// Groups deliveries by queue and sends each queue one settle command.
fn send_settlements(unacked: Vec<Unacked>, action: SettleAction) {
    let mut by_queue: Vec<QueueSettlements> = Vec::new();
    for u in unacked {
        match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, list)) => list.push((u.seq, u.consumer)),
            None => by_queue.push((u.queue, vec![(u.seq, u.consumer)])),
        }
    }
    for (queue, deliveries) in by_queue {
        queue.settle(QueueCommand::Settle { deliveries, action });
    }
}
