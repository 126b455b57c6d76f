//! The part of a channel that queue actors deliver through. Delivery tags are assigned here, under one short lock
//! together with the write to the outbound queue, so tags reach the client in increasing order whichever queue
//! delivers. The channel's unacknowledged deliveries and its consumer tags live here too, because both the
//! channel (acks, cancels) and queue actors (deliveries, server-side cancels) change them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::message::{Message, QueuedMessage};
use crate::queue::settings::ConsumerTimeoutAction;
use crate::queue::sink::{DeliverOutcome, DeliverySink, QueueReply};
use crate::queue::QueueHandle;
use crate::registry::{add_single_writer, ChannelMessageStats, ChannelProbe, ChannelSummary};
use crate::reply_to::ReplySink;
use crate::session::confirm::ConfirmTracker;
use crate::session::ConnectionShared;
use warren_protocol::content::{put_content_header, put_deliver, put_get_ok, DeliverArgs};
use warren_protocol::error::AmqpError;
use warren_protocol::{basic, put_method, AMQPClass};

/// A delivery awaiting basic.ack / nack / reject.
#[derive(Clone)]
pub(crate) struct Unacked {
    /// The queue the message came from, which the settlement goes back to.
    pub(crate) queue: Arc<QueueHandle>,
    /// The message's sequence number in that queue.
    pub(crate) seq: u64,
    /// The consumer it went to; None for basic.get.
    pub(crate) consumer: Option<u64>,
}

/// A delivery unacknowledged past its consumer timeout, found by [`DeliveryState::overdue`].
pub(crate) struct Overdue {
    /// The timeout it is past.
    pub(crate) timeout: Duration,
    /// Under the `cancel-consumer` action, the late delivery taken out of the unacked ones and its consumer: it is
    /// requeued and that consumer cancelled. None: the channel is closed (RabbitMQ's behaviour).
    pub(crate) cancel: Option<LateDelivery>,
}

/// The delivery and consumer a `cancel-consumer` consumer timeout acts on.
pub(crate) struct LateDelivery {
    /// The delivery, no longer unacked on the channel.
    pub(crate) unacked: Unacked,
    /// Its consumer's tag, no longer on the channel.
    pub(crate) consumer_tag: Arc<str>,
}

/// What [`DeliveryState`] guards with its one lock.
#[derive(Default)]
struct DeliveryTables {
    /// The channel closed: deliveries are refused, so queues keep their messages.
    closed: bool,
    /// The delivery tag the next delivery gets; tags start at 1 and only grow.
    next_tag: u64,
    /// Deliveries awaiting ack, nack or reject, by delivery tag (ordered, for `multiple`).
    unacked: BTreeMap<u64, Unacked>,
    /// What the global prefetch is compared with, counted as RabbitMQ's limiter counts its "volume": set to the
    /// number of unacked deliveries (basic.get ones too) when a limit is set where there was none, raised by each
    /// delivery to a consumer that must ack, lowered by every delivery settled (get ones too; never below 0), kept
    /// at 0 while there is no limit.
    volume: u32,
    /// basic.qos global=true; 0 means no limit.
    global_prefetch: u16,
    /// Queue actors held back by the global prefetch, woken when credit frees.
    credit_waiters: Vec<Arc<Notify>>,
    /// This channel's consumer tags with their queues and consumer ids: duplicate tags are refused, and a close
    /// cancels each.
    consumers: HashMap<Arc<str>, (Arc<QueueHandle>, u64)>,
    /// (when, next delivery tag then), taken by the consumer-timeout check while deliveries are unacked: a tag below
    /// a mark's was delivered before that mark's time. Deliveries carry no timestamp, so the hot path reads no clock.
    marks: VecDeque<(Instant, u64)>,
    /// The channel's modes as listings show them, set by the methods that change them.
    modes: ChannelModes,
    /// Its deliveries, gets and acks so far (the delivery half of its `message_stats`), counted under this lock,
    /// which every delivery and ack takes anyway.
    counts: ChannelMessageStats,
}

/// The publish half of a channel's `message_stats`: written by the channel alone (its connection's reader), so a
/// count is a load and a store, no atomic read-modify-write; read by listings.
#[derive(Default)]
pub(crate) struct PublishCounts {
    publish: AtomicU64,
    return_unroutable: AtomicU64,
    drop_unroutable: AtomicU64,
}

impl PublishCounts {
    /// A message was published on the channel.
    pub(crate) fn published(&self) {
        add_single_writer(&self.publish, 1);
    }

    /// A publish routed nowhere: returned when `mandatory`, dropped otherwise.
    pub(crate) fn unroutable(&self, mandatory: bool) {
        let counter = if mandatory {
            &self.return_unroutable
        } else {
            &self.drop_unroutable
        };
        add_single_writer(counter, 1);
    }
}

/// What a channel listing shows of the channel's own state (which otherwise lives in the channel, out of a
/// listing's reach): written by confirm.select, tx.select and basic.qos only.
#[derive(Default)]
struct ChannelModes {
    confirms: Option<Arc<ConfirmTracker>>,
    transactional: bool,
    consumer_prefetch: u16,
}

/// A channel's delivery side, shared by the channel and the queue actors that deliver to it (the
/// [`DeliverySink`] they deliver through). One std Mutex: held for a tag assignment and a buffer copy, never
/// across an await.
pub(crate) struct DeliveryState {
    /// The connection whose outbound queue deliveries are written to.
    pub(crate) conn: Arc<ConnectionShared>,
    /// The channel number the frames carry.
    pub(crate) channel: u16,
    /// Tags, unacked deliveries, prefetch, consumers: one lock, so a tag's assignment and its frame's place
    /// in the outbound queue agree.
    state: Mutex<DeliveryTables>,
    /// What the channel published.
    pub(crate) publish_counts: PublishCounts,
}

impl ChannelProbe for DeliveryState {
    fn summary(&self) -> ChannelSummary {
        let (mut summary, confirms) = {
            let state = self.lock();
            let summary = ChannelSummary {
                number: self.channel,
                confirm: state.modes.confirms.is_some(),
                transactional: state.modes.transactional,
                prefetch_count: state.modes.consumer_prefetch,
                global_prefetch_count: state.global_prefetch,
                consumer_count: state.consumers.len(),
                messages_unacknowledged: state.unacked.len(),
                messages_unconfirmed: 0,
                stats: state.counts,
            };
            (summary, state.modes.confirms.clone())
        };
        let published = &self.publish_counts;
        summary.stats.publish = published.publish.load(Ordering::Relaxed);
        summary.stats.return_unroutable = published.return_unroutable.load(Ordering::Relaxed);
        summary.stats.drop_unroutable = published.drop_unroutable.load(Ordering::Relaxed);
        // The tracker's own lock, not taken under this one.
        if let Some(confirms) = confirms {
            summary.messages_unconfirmed = confirms.unconfirmed();
            summary.stats.confirm = confirms.acked();
        }
        summary
    }
}

impl DeliveryState {
    /// The delivery state of a channel just opened.
    pub(crate) fn new(conn: Arc<ConnectionShared>, channel: u16) -> Arc<DeliveryState> {
        Arc::new(DeliveryState {
            conn,
            channel,
            state: Mutex::new(DeliveryTables {
                next_tag: 1,
                ..DeliveryTables::default()
            }),
            publish_counts: PublishCounts::default(),
        })
    }

    /// The oldest unacknowledged delivery, if it has been unacknowledged longer than its consumer timeout at
    /// `now`: its queue's (`x-consumer-timeout` or a policy's `consumer-timeout`), else `default`. Under the queue's
    /// `cancel-consumer` action the delivery and its consumer are taken off the channel here. Called about once a
    /// second by the connection's reader; precise to about 1/32 of the timeout.
    pub(crate) fn overdue(&self, now: Instant, default: Option<Duration>) -> Option<Overdue> {
        let mut state = self.lock();
        let Some((&oldest, unacked)) = state.unacked.first_key_value() else {
            state.marks.clear();
            return None;
        };
        let settings = unacked.queue.settings();
        let oldest_consumer = unacked.consumer;
        let timeout = match settings.consumer_timeout {
            Some(ms) => Duration::from_millis(ms),
            None => default?,
        };
        let next_tag = state.next_tag;
        let spacing = timeout / 32;
        let due = match state.marks.back() {
            None => true,
            Some(&(at, tag)) => tag != next_tag && now.duration_since(at) >= spacing,
        };
        if due {
            state.marks.push_back((now, next_tag));
        }
        let horizon = now.checked_sub(timeout)?;
        // Only the newest mark at or before the horizon matters; older ones go.
        while state.marks.len() >= 2 && state.marks[1].0 <= horizon {
            state.marks.pop_front();
        }
        let delivered_before = state
            .marks
            .iter()
            .rev()
            .find(|(at, _)| *at <= horizon)
            .map(|&(_, tag)| tag)?;
        if oldest >= delivered_before {
            return None;
        }
        let cancel = match (settings.consumer_timeout_action, oldest_consumer) {
            (ConsumerTimeoutAction::CancelConsumer, Some(id)) => {
                let tag = state
                    .consumers
                    .iter()
                    .find(|(_, (_, consumer))| *consumer == id)
                    .map(|(tag, _)| tag.clone());
                match tag {
                    Some(tag) => {
                        state.consumers.remove(&tag);
                        let taken: Vec<Unacked> =
                            state.unacked.remove(&oldest).into_iter().collect();
                        self.release_credit(&mut state, &taken);
                        taken.into_iter().next().map(|unacked| LateDelivery {
                            unacked,
                            consumer_tag: tag,
                        })
                    }
                    // Cancelled already: its deliveries stay unacked on the channel, which times out as RabbitMQ's.
                    None => None,
                }
            }
            _ => None,
        };
        Some(Overdue { timeout, cancel })
    }

    /// Locks the tables; a poisoned lock is taken over, as everywhere in the broker.
    fn lock(&self) -> MutexGuard<'_, DeliveryTables> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers `msg` to a consumer with basic.deliver.
    pub(crate) fn deliver(
        &self,
        queue: &Arc<QueueHandle>,
        consumer_id: u64,
        consumer_tag: &str,
        no_ack: bool,
        msg: &QueuedMessage,
        credit_waiter: &Arc<Notify>,
    ) -> DeliverOutcome {
        // Outside the lock: a quorum queue's redelivery re-encodes the properties.
        let counted = msg.counted_properties();
        let mut state = self.lock();
        if state.closed {
            return DeliverOutcome::Closed;
        }
        // No-ack consumers are held back too, as RabbitMQ's limiter holds them (`can_send` is asked for every
        // delivery to a consumer on a limited channel); only their deliveries do not count.
        if state.global_prefetch > 0 && state.volume >= u32::from(state.global_prefetch) {
            if !state
                .credit_waiters
                .iter()
                .any(|w| Arc::ptr_eq(w, credit_waiter))
            {
                state.credit_waiters.push(credit_waiter.clone());
            }
            return DeliverOutcome::NoChannelCredit;
        }
        let tag = state.next_tag;
        state.next_tag += 1;
        let counts = &mut state.counts;
        if no_ack {
            counts.deliver_no_ack += 1;
        } else {
            counts.deliver += 1;
        }
        counts.redeliver += u64::from(msg.redelivered);
        if !no_ack {
            state.unacked.insert(
                tag,
                Unacked {
                    queue: queue.clone(),
                    seq: msg.seq,
                    consumer: Some(consumer_id),
                },
            );
            if state.global_prefetch > 0 {
                state.volume += 1;
            }
        }
        let m = &msg.message;
        let properties = counted.as_ref().unwrap_or(&m.properties_raw);
        self.conn
            .outbound
            .write_message(self.channel, self.conn.frame_max, &m.body, |out| {
                put_deliver(
                    out,
                    self.channel,
                    &DeliverArgs {
                        consumer_tag,
                        delivery_tag: tag,
                        redelivered: msg.redelivered,
                        exchange: &m.exchange,
                        routing_key: &m.routing_key,
                    },
                );
                put_content_header(out, self.channel, m.body_size(), properties);
            });
        drop(state);
        self.conn
            .trace_delivery(m, &queue.spec.name, msg.redelivered, self.channel);
        DeliverOutcome::Delivered
    }

    /// Answers basic.get with get-ok. Returns false if the channel is closed (the message stays in the queue).
    pub(crate) fn deliver_get(
        &self,
        queue: &Arc<QueueHandle>,
        no_ack: bool,
        msg: &QueuedMessage,
        message_count: u32,
    ) -> bool {
        // Outside the lock: a quorum queue's redelivery re-encodes the properties.
        let counted = msg.counted_properties();
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let tag = state.next_tag;
        state.next_tag += 1;
        let counts = &mut state.counts;
        if no_ack {
            counts.get_no_ack += 1;
        } else {
            counts.get += 1;
        }
        counts.redeliver += u64::from(msg.redelivered);
        if !no_ack {
            state.unacked.insert(
                tag,
                Unacked {
                    queue: queue.clone(),
                    seq: msg.seq,
                    consumer: None,
                },
            );
        }
        let m = &msg.message;
        let properties = counted.as_ref().unwrap_or(&m.properties_raw);
        self.conn
            .outbound
            .write_message(self.channel, self.conn.frame_max, &m.body, |out| {
                put_get_ok(
                    out,
                    self.channel,
                    tag,
                    msg.redelivered,
                    &m.exchange,
                    &m.routing_key,
                    message_count,
                );
                put_content_header(out, self.channel, m.body_size(), properties);
            });
        drop(state);
        self.conn
            .trace_delivery(m, &queue.spec.name, msg.redelivered, self.channel);
        true
    }

    /// Removes the deliveries an ack (`acked`), nack or reject names. `multiple` covers every tag up to `tag`;
    /// tag 0 with multiple covers all. An unknown tag is 406 PRECONDITION_FAILED and removes nothing.
    pub(crate) fn take_unacked(
        &self,
        tag: u64,
        multiple: bool,
        acked: bool,
    ) -> Result<Vec<Unacked>, AmqpError> {
        let mut state = self.lock();
        let taken: Vec<Unacked> = remove_tags(&mut state.unacked, tag, multiple)?
            .into_values()
            .collect();
        if acked {
            state.counts.ack += taken.len() as u64;
        }
        self.release_credit(&mut state, &taken);
        Ok(taken)
    }

    /// Removes the deliveries a transactional ack, nack or reject names, as RabbitMQ does when the method arrives
    /// (an unknown or already acked tag is refused then, not at commit). Their prefetch credit stays taken until
    /// the commit settles them ([`Self::release_held`]) or a rollback puts them back ([`Self::restore_unacked`]).
    pub(crate) fn hold_unacked(
        &self,
        tag: u64,
        multiple: bool,
    ) -> Result<BTreeMap<u64, Unacked>, AmqpError> {
        remove_tags(&mut self.lock().unacked, tag, multiple)
    }

    /// tx.rollback: held deliveries are unacked again, under their old tags.
    pub(crate) fn restore_unacked(&self, held: BTreeMap<u64, Unacked>) {
        self.lock().unacked.extend(held);
    }

    /// tx.commit: held deliveries are settled (acked, when `acked`), so their prefetch credit returns.
    pub(crate) fn release_held(&self, settled: &[Unacked], acked: bool) {
        let mut state = self.lock();
        if acked {
            state.counts.ack += settled.len() as u64;
        }
        self.release_credit(&mut state, settled);
    }

    /// Takes every unacked delivery (basic.recover, channel close).
    pub(crate) fn take_all_unacked(&self) -> Vec<Unacked> {
        let mut state = self.lock();
        let taken: Vec<Unacked> = std::mem::take(&mut state.unacked).into_values().collect();
        self.release_credit(&mut state, &taken);
        taken
    }

    /// Returns the global prefetch credit of `taken` deliveries (any, as RabbitMQ's channel tells its limiter of
    /// every settled delivery) and wakes the queues waiting on it.
    fn release_credit(&self, state: &mut DeliveryTables, taken: &[Unacked]) {
        if state.global_prefetch == 0 {
            return;
        }
        let freed = u32::try_from(taken.len()).unwrap_or(u32::MAX);
        state.volume = state.volume.saturating_sub(freed);
        if freed > 0 && !state.credit_waiters.is_empty() {
            for waiter in state.credit_waiters.drain(..) {
                waiter.notify_one();
            }
        }
    }

    /// The channel entered confirm mode with `tracker`: listings count its unconfirmed publishes.
    pub(crate) fn set_confirm_mode(&self, tracker: Arc<ConfirmTracker>) {
        self.lock().modes.confirms = Some(tracker);
    }

    /// The channel entered transaction mode.
    pub(crate) fn set_transactional(&self) {
        self.lock().modes.transactional = true;
    }

    /// basic.qos global=false set the prefetch new consumers get.
    pub(crate) fn set_consumer_prefetch(&self, prefetch: u16) {
        self.lock().modes.consumer_prefetch = prefetch;
    }

    /// basic.qos global=true sets the channel-wide prefetch (0: none); any basic.qos global=false removes it, as
    /// in RabbitMQ 3.13 (its channel unlimits the limiter for a per-consumer qos). Wakes waiting queues to
    /// re-check. A limit set where there was none starts counting from the deliveries unacked now, as
    /// RabbitMQ's `limit_prefetch` does.
    pub(crate) fn set_global_prefetch(&self, prefetch: u16) {
        let mut state = self.lock();
        state.volume = match (state.global_prefetch, prefetch) {
            (_, 0) => 0,
            (0, _) => u32::try_from(state.unacked.len()).unwrap_or(u32::MAX),
            (_, _) => state.volume,
        };
        state.global_prefetch = prefetch;
        for waiter in state.credit_waiters.drain(..) {
            waiter.notify_one();
        }
    }

    /// Registers a consumer tag with its queue and consumer id; false if the channel already has the tag.
    pub(crate) fn add_consumer(&self, tag: Arc<str>, queue: Arc<QueueHandle>, id: u64) -> bool {
        let mut state = self.lock();
        if state.consumers.contains_key(&tag) {
            return false;
        }
        state.consumers.insert(tag, (queue, id));
        true
    }

    /// Whether the channel has a queue consumer with `tag`.
    pub(crate) fn has_consumer(&self, tag: &str) -> bool {
        self.lock().consumers.contains_key(tag)
    }

    /// The channel's consumers: tag and queue (for their `consumer.deleted` events when it closes).
    pub(crate) fn consumers(&self) -> Vec<(Arc<str>, Arc<QueueHandle>)> {
        let state = self.lock();
        state
            .consumers
            .iter()
            .map(|(tag, (queue, _))| (tag.clone(), queue.clone()))
            .collect()
    }

    /// Forgets consumer `tag`; returns its queue if it was one of this channel's.
    pub(crate) fn remove_consumer(&self, tag: &str) -> Option<Arc<QueueHandle>> {
        self.lock().consumers.remove(tag).map(|(queue, _)| queue)
    }

    /// Closes the deliveries: no more deliveries. Returns the unacked deliveries and the consumers, for the channel to
    /// requeue and cancel.
    pub(crate) fn close(&self) -> (Vec<Unacked>, Vec<Arc<QueueHandle>>) {
        let mut state = self.lock();
        state.closed = true;
        let unacked = std::mem::take(&mut state.unacked).into_values().collect();
        let mut queues: Vec<Arc<QueueHandle>> = Vec::new();
        for (_, (queue, _)) in state.consumers.drain() {
            if !queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
                queues.push(queue);
            }
        }
        for waiter in state.credit_waiters.drain(..) {
            waiter.notify_one();
        }
        (unacked, queues)
    }

    /// True once [`DeliveryState::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Queues deliver through the delivery state; everything is written to the connection's one outbound queue in call order,
/// which keeps the ordering the trait asks for.
impl DeliverySink for DeliveryState {
    fn deliver(
        &self,
        queue: &Arc<QueueHandle>,
        consumer_id: u64,
        consumer_tag: &str,
        no_ack: bool,
        msg: &QueuedMessage,
        credit_waiter: &Arc<Notify>,
    ) -> DeliverOutcome {
        DeliveryState::deliver(
            self,
            queue,
            consumer_id,
            consumer_tag,
            no_ack,
            msg,
            credit_waiter,
        )
    }

    fn deliver_get(
        &self,
        queue: &Arc<QueueHandle>,
        no_ack: bool,
        msg: &QueuedMessage,
        message_count: u32,
    ) -> bool {
        DeliveryState::deliver_get(self, queue, no_ack, msg, message_count)
    }

    fn reply(&self, reply: QueueReply) {
        let method = match reply {
            QueueReply::ConsumeOk { tag } => basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_ref().into(),
            }),
            QueueReply::CancelOk { tag } => basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: tag.as_ref().into(),
            }),
            QueueReply::GetEmpty => {
                self.lock().counts.get_empty += 1;
                basic::AMQPMethod::GetEmpty(basic::GetEmpty {})
            }
            QueueReply::Cancel { tag } => basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: tag.as_ref().into(),
                nowait: true,
            }),
        };
        let channel = self.channel;
        self.conn
            .outbound
            .write(|out| put_method(out, channel, AMQPClass::Basic(method)));
    }

    fn is_closed(&self) -> bool {
        DeliveryState::is_closed(self)
    }

    fn over_budget(&self) -> bool {
        self.conn.outbound.over_budget()
    }

    fn wake_when_drained(&self, waiter: Arc<Notify>) {
        self.conn.outbound.wake_when_drained(waiter);
    }

    fn forget_consumer(&self, tag: &str) {
        self.remove_consumer(tag);
    }

    fn wants_cancel_notify(&self) -> bool {
        self.conn.consumer_cancel_notify
    }

    fn connection_id(&self) -> u64 {
        self.conn.id
    }
}

/// Direct replies: delivered at once with the channel's next delivery tag, nothing to ack (the reply consumer is
/// no-ack), past any prefetch limit as in RabbitMQ.
impl ReplySink for DeliveryState {
    fn deliver_reply(&self, consumer_tag: &str, message: &Message) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let tag = state.next_tag;
        state.next_tag += 1;
        self.conn
            .outbound
            .write_message(self.channel, self.conn.frame_max, &message.body, |out| {
                put_deliver(
                    out,
                    self.channel,
                    &DeliverArgs {
                        consumer_tag,
                        delivery_tag: tag,
                        redelivered: false,
                        exchange: &message.exchange,
                        routing_key: &message.routing_key,
                    },
                );
                put_content_header(
                    out,
                    self.channel,
                    message.body_size(),
                    &message.properties_raw,
                );
            });
        true
    }

    fn over_budget(&self) -> bool {
        self.conn.outbound.over_budget()
    }

    fn wake_when_drained(&self, waiter: Arc<Notify>) {
        self.conn.outbound.wake_when_drained(waiter);
    }
}

/// Removes `tag` (with `multiple`, every tag up to it; tag 0 with `multiple`, all) or nothing if `tag` is unknown.
fn remove_tags(
    unacked: &mut BTreeMap<u64, Unacked>,
    tag: u64,
    multiple: bool,
) -> Result<BTreeMap<u64, Unacked>, AmqpError> {
    if multiple && tag == 0 {
        return Ok(std::mem::take(unacked));
    }
    if !unacked.contains_key(&tag) {
        return Err(unknown_tag(tag));
    }
    if multiple {
        let rest = unacked.split_off(&(tag + 1));
        return Ok(std::mem::replace(unacked, rest));
    }
    Ok(unacked.remove_entry(&tag).into_iter().collect())
}

/// 406 for an ack, nack or reject naming a tag not awaiting one.
fn unknown_tag(tag: u64) -> AmqpError {
    AmqpError::precondition(format!("unknown delivery tag {tag}"))
}
