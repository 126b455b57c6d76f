//! A queue's messages and consumers, as plain data: the ready list in queue order, the unacked deliveries, and the
//! consumers with their credit. Ready messages are either in memory or, for persistent messages of a durable queue
//! past its memory budget, only on disk (the actor reads them back when it delivers them). The actor drives it;
//! the tests here drive it directly.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::consumer::QueueConsumer;
use super::sink::{same_sink, DeliverySink};
use super::SettleAction;
use crate::message::{Message, QueuedMessage};

/// A ready message's body: in memory, or only in the message store.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    /// The message, shared with the other queues it was routed to.
    Loaded(Arc<Message>),
    /// Only the id and size are kept; the actor reads the body back from the store when it delivers it.
    OnDisk { msg_id: u64, body_size: u64 },
}

/// One ready message in queue order.
#[derive(Clone, Debug)]
pub(crate) struct ReadyEntry {
    /// The queue's sequence number: orders the ready list and names the delivery in settlements.
    pub(crate) seq: u64,
    /// The body, in memory or on disk.
    pub(crate) payload: Payload,
    /// Delivered before and requeued: the next delivery carries redelivered=true.
    pub(crate) redelivered: bool,
}

impl ReadyEntry {
    /// Body bytes this entry holds in memory.
    fn loaded_bytes(&self) -> u64 {
        match &self.payload {
            Payload::Loaded(m) => m.body_size(),
            Payload::OnDisk { .. } => 0,
        }
    }
}

/// One queue's messages and consumers as plain data, without I/O; owned by its actor, tested directly.
#[derive(Default)]
pub(crate) struct QueueState {
    /// Ordered by `seq`; requeued messages are put back at their original place.
    pub(crate) ready: VecDeque<ReadyEntry>,
    /// Body bytes of the ready messages held in memory.
    pub(crate) loaded_bytes: u64,
    /// Delivered and not yet settled, by queue sequence number, with the consumer id (None for basic.get): a
    /// requeue puts the message back at its place, an ack releases that consumer's credit.
    pub(crate) unacked: HashMap<u64, (QueuedMessage, Option<u64>)>,
    /// Consumers in subscription order, served round robin.
    pub(crate) consumers: Vec<QueueConsumer>,
    /// Index of the consumer to try first on the next delivery (round robin).
    pub(crate) next_consumer: usize,
    /// The sequence number the next enqueued message gets.
    next_seq: u64,
    /// Moves on whenever a consumer joins or leaves, so the flow control knows when to recompute the connections
    /// it exempts.
    pub(crate) consumer_generation: u64,
    /// Set once a consumer has subscribed: an auto-delete queue is deleted when its last consumer goes, not before
    /// the first arrives.
    pub(crate) had_consumers: bool,
}

impl QueueState {
    /// Appends a message; with `on_disk`, only its id is kept (the store holds the body).
    pub(crate) fn enqueue(&mut self, message: Arc<Message>, on_disk: bool) {
        self.next_seq += 1;
        let payload = if on_disk {
            Payload::OnDisk {
                msg_id: message.id,
                body_size: message.body_size(),
            }
        } else {
            Payload::Loaded(message)
        };
        self.push_back(ReadyEntry {
            seq: self.next_seq,
            payload,
            redelivered: false,
        });
    }

    /// Appends a message recovered from the store at start: on disk, marked redelivered (RabbitMQ's behaviour
    /// for messages that were in a queue when the broker stopped).
    pub(crate) fn enqueue_recovered(&mut self, msg_id: u64, body_size: u64) {
        self.next_seq += 1;
        self.push_back(ReadyEntry {
            seq: self.next_seq,
            payload: Payload::OnDisk { msg_id, body_size },
            redelivered: true,
        });
    }

    /// Appends an entry at the end of the ready list, counting its loaded bytes.
    fn push_back(&mut self, entry: ReadyEntry) {
        self.loaded_bytes += entry.loaded_bytes();
        self.ready.push_back(entry);
    }

    /// Takes the first ready message.
    pub(crate) fn pop_ready(&mut self) -> Option<ReadyEntry> {
        let entry = self.ready.pop_front()?;
        self.loaded_bytes -= entry.loaded_bytes();
        Some(entry)
    }

    /// Puts a message back at the place its `seq` gives it, marked redelivered.
    pub(crate) fn requeue(&mut self, msg: QueuedMessage) {
        let entry = ReadyEntry {
            seq: msg.seq,
            payload: Payload::Loaded(msg.message),
            redelivered: true,
        };
        self.loaded_bytes += entry.loaded_bytes();
        match self.ready.front() {
            None => self.ready.push_back(entry),
            Some(front) if entry.seq < front.seq => self.ready.push_front(entry),
            Some(_) => {
                let at = self.ready.partition_point(|m| m.seq < entry.seq);
                self.ready.insert(at, entry);
            }
        }
    }

    /// Puts back a message taken for a delivery that did not happen, keeping its redelivered flag.
    pub(crate) fn unpop(&mut self, msg: QueuedMessage) {
        let entry = ReadyEntry {
            seq: msg.seq,
            payload: Payload::Loaded(msg.message),
            redelivered: msg.redelivered,
        };
        self.loaded_bytes += entry.loaded_bytes();
        self.ready.push_front(entry);
    }

    /// The store ids of the paged-out messages at the front of the ready list, in queue order: as many as fit in
    /// `max_bytes` of body (at least one, if the first is paged out) and `max_count`.
    pub(crate) fn paged_out_front(&self, max_bytes: u64, max_count: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut bytes = 0;
        for entry in self.ready.iter().take(max_count) {
            let Payload::OnDisk { msg_id, body_size } = entry.payload else {
                break;
            };
            if !ids.is_empty() && bytes + body_size > max_bytes {
                break;
            }
            bytes += body_size;
            ids.push(msg_id);
        }
        ids
    }

    /// Puts back an entry taken but not delivered.
    pub(crate) fn unpop_entry(&mut self, entry: ReadyEntry) {
        self.loaded_bytes += entry.loaded_bytes();
        self.ready.push_front(entry);
    }

    /// Records a delivery that awaits its ack; `consumer` is None for basic.get.
    pub(crate) fn record_unacked(&mut self, msg: QueuedMessage, consumer: Option<u64>) {
        self.unacked.insert(msg.seq, (msg, consumer));
    }

    /// Applies an ack, nack or reject to deliveries of this queue; returns the messages that left the queue.
    pub(crate) fn settle(
        &mut self,
        deliveries: &[(u64, Option<u64>)],
        action: SettleAction,
    ) -> Vec<Arc<Message>> {
        let mut gone = Vec::new();
        for &(seq, _) in deliveries {
            let Some((msg, consumer)) = self.unacked.remove(&seq) else {
                continue;
            };
            if let Some(id) = consumer {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.id == id) {
                    c.in_flight = c.in_flight.saturating_sub(1);
                }
            }
            match action {
                SettleAction::Ack | SettleAction::Discard => gone.push(msg.message),
                SettleAction::Requeue => self.requeue(msg),
            }
        }
        gone
    }

    /// Adds a consumer at the end of the round robin; the queue counts as having had consumers from here on.
    pub(crate) fn add_consumer(&mut self, consumer: QueueConsumer) {
        self.had_consumers = true;
        self.consumer_generation += 1;
        self.consumers.push(consumer);
    }

    /// Removes the consumer `tag` of `sink`; returns it, or None if it is not here.
    pub(crate) fn remove_consumer(
        &mut self,
        sink: &Arc<dyn DeliverySink>,
        tag: &str,
    ) -> Option<QueueConsumer> {
        let at = self
            .consumers
            .iter()
            .position(|c| same_sink(&c.sink, sink) && &*c.tag == tag)?;
        self.consumer_generation += 1;
        Some(self.consumers.remove(at))
    }

    /// Removes every consumer of a channel; returns how many went.
    pub(crate) fn remove_channel(&mut self, sink: &Arc<dyn DeliverySink>) -> usize {
        let before = self.consumers.len();
        self.consumers.retain(|c| !same_sink(&c.sink, sink));
        let removed = before - self.consumers.len();
        if removed > 0 {
            self.consumer_generation += 1;
        }
        removed
    }

    /// Whether an exclusive consumer holds the queue (another consume is refused with 403).
    pub(crate) fn has_exclusive_consumer(&self) -> bool {
        self.consumers.iter().any(|c| c.exclusive)
    }

    /// Drops every ready message (unacked ones stay, as in RabbitMQ's purge); returns them.
    pub(crate) fn purge(&mut self) -> Vec<ReadyEntry> {
        self.loaded_bytes = 0;
        self.ready.drain(..).collect()
    }

    /// Ready messages (unacked ones are not counted, as in queue.declare-ok).
    pub(crate) fn message_count(&self) -> u32 {
        self.ready.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            "".into(),
            "q".into(),
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(body.as_bytes()),
        ))
    }

    fn bodies(state: &QueueState) -> Vec<&[u8]> {
        state
            .ready
            .iter()
            .map(|m| match &m.payload {
                Payload::Loaded(m) => &m.body[..],
                Payload::OnDisk { .. } => &b"<disk>"[..],
            })
            .collect()
    }

    fn take(state: &mut QueueState) -> QueuedMessage {
        let entry = state.pop_ready().unwrap();
        let Payload::Loaded(message) = entry.payload else {
            panic!("expected a loaded message");
        };
        QueuedMessage {
            seq: entry.seq,
            message,
            redelivered: entry.redelivered,
        }
    }

    #[test]
    fn requeued_messages_return_to_their_original_position_marked_redelivered() {
        let mut state = QueueState::default();
        for b in ["a", "b", "c", "d"] {
            state.enqueue(msg(b), false);
        }
        let a = take(&mut state);
        let b = take(&mut state);
        let c = take(&mut state);
        state.record_unacked(a.clone(), None);
        state.record_unacked(b.clone(), None);
        state.record_unacked(c.clone(), None);
        state.settle(&[(b.seq, None)], SettleAction::Requeue);
        assert_eq!(bodies(&state), vec![b"b", b"d"]);
        state.settle(&[(c.seq, None), (a.seq, None)], SettleAction::Requeue);
        assert_eq!(bodies(&state), vec![b"a", b"b", b"c", b"d"]);
        assert!(state.ready.iter().take(3).all(|m| m.redelivered));
        assert!(!state.ready[3].redelivered);
    }

    #[test]
    fn ack_and_discard_drop_and_unknown_seqs_are_ignored() {
        let mut state = QueueState::default();
        state.enqueue(msg("a"), false);
        let a = take(&mut state);
        state.record_unacked(a.clone(), None);
        let gone = state.settle(&[(a.seq, None), (999, None)], SettleAction::Ack);
        assert_eq!(gone.len(), 1);
        assert!(state.unacked.is_empty());
        assert!(state.ready.is_empty());
    }

    #[test]
    fn purge_counts_ready_messages_only() {
        let mut state = QueueState::default();
        state.enqueue(msg("a"), false);
        state.enqueue(msg("b"), false);
        let a = take(&mut state);
        state.record_unacked(a, None);
        assert_eq!(state.purge().len(), 1);
        assert_eq!(state.unacked.len(), 1);
        assert_eq!(state.loaded_bytes, 0);
    }

    #[test]
    fn paged_out_messages_keep_their_place_and_cost_no_body_memory() {
        let mut state = QueueState::default();
        state.enqueue(msg("aa"), false);
        state.enqueue(msg("bbb"), true);
        assert_eq!(state.loaded_bytes, 2);
        assert_eq!(bodies(&state), vec![&b"aa"[..], &b"<disk>"[..]]);
        let a = take(&mut state);
        assert_eq!(state.loaded_bytes, 0);
        state.record_unacked(a.clone(), None);
        state.settle(&[(a.seq, None)], SettleAction::Requeue);
        assert_eq!(state.loaded_bytes, 2);
        state.enqueue_recovered(77, 10);
        assert!(state.ready.back().unwrap().redelivered);
    }
}
