//! A queue's messages and consumers, as plain data: the ready list in queue order, the unacked deliveries, and the
//! consumers with their credit. The actor drives it; the tests here drive it directly.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::consumer::Consumer;
use super::SettleAction;
use crate::channel::outlet::ChannelOutlet;
use crate::message::{Message, QueuedMessage};

#[derive(Default)]
pub struct QueueState {
    /// Ordered by `seq`; requeued messages are put back at their original place.
    pub ready: VecDeque<QueuedMessage>,
    pub unacked: HashMap<u64, (QueuedMessage, Option<u64>)>,
    pub consumers: Vec<Consumer>,
    /// Index of the consumer to try first on the next delivery (round robin).
    pub next_consumer: usize,
    next_seq: u64,
    /// Set once a consumer has subscribed: an auto-delete queue is deleted when its last consumer goes, not before
    /// the first arrives.
    pub had_consumers: bool,
}

impl QueueState {
    pub fn enqueue(&mut self, message: Arc<Message>) {
        self.next_seq += 1;
        self.ready.push_back(QueuedMessage {
            seq: self.next_seq,
            message,
            redelivered: false,
        });
    }

    /// Puts a message back at the place its `seq` gives it.
    pub fn requeue(&mut self, mut msg: QueuedMessage) {
        msg.redelivered = true;
        match self.ready.front() {
            None => self.ready.push_back(msg),
            Some(front) if msg.seq < front.seq => self.ready.push_front(msg),
            Some(_) => {
                let at = self.ready.partition_point(|m| m.seq < msg.seq);
                self.ready.insert(at, msg);
            }
        }
    }

    /// Puts back a message taken for a delivery that did not happen, without marking it redelivered.
    pub fn unpop(&mut self, msg: QueuedMessage) {
        self.ready.push_front(msg);
    }

    pub fn record_unacked(&mut self, msg: QueuedMessage, consumer: Option<u64>) {
        self.unacked.insert(msg.seq, (msg, consumer));
    }

    /// Applies an ack, nack or reject to deliveries of this queue.
    pub fn settle(&mut self, deliveries: &[(u64, Option<u64>)], action: SettleAction) {
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
                SettleAction::Ack | SettleAction::Discard => drop(msg),
                SettleAction::Requeue => self.requeue(msg),
            }
        }
    }

    pub fn add_consumer(&mut self, consumer: Consumer) {
        self.had_consumers = true;
        self.consumers.push(consumer);
    }

    pub fn remove_consumer(&mut self, outlet: &Arc<ChannelOutlet>, tag: &str) -> Option<Consumer> {
        let at = self
            .consumers
            .iter()
            .position(|c| Arc::ptr_eq(&c.outlet, outlet) && &*c.tag == tag)?;
        Some(self.consumers.remove(at))
    }

    /// Removes every consumer of a channel; returns how many went.
    pub fn remove_channel(&mut self, outlet: &Arc<ChannelOutlet>) -> usize {
        let before = self.consumers.len();
        self.consumers.retain(|c| !Arc::ptr_eq(&c.outlet, outlet));
        before - self.consumers.len()
    }

    pub fn has_exclusive_consumer(&self) -> bool {
        self.consumers.iter().any(|c| c.exclusive)
    }

    /// Drops every ready message; unacked ones stay (RabbitMQ's purge).
    pub fn purge(&mut self) -> u32 {
        let n = self.ready.len() as u32;
        self.ready.clear();
        n
    }

    pub fn message_count(&self) -> u32 {
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
        state.ready.iter().map(|m| &m.message.body[..]).collect()
    }

    #[test]
    fn requeued_messages_return_to_their_original_position_marked_redelivered() {
        let mut state = QueueState::default();
        for b in ["a", "b", "c", "d"] {
            state.enqueue(msg(b));
        }
        let a = state.ready.pop_front().unwrap();
        let b = state.ready.pop_front().unwrap();
        let c = state.ready.pop_front().unwrap();
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
        state.enqueue(msg("a"));
        let a = state.ready.pop_front().unwrap();
        state.record_unacked(a.clone(), None);
        state.settle(&[(a.seq, None), (999, None)], SettleAction::Ack);
        assert!(state.unacked.is_empty());
        assert!(state.ready.is_empty());
    }

    #[test]
    fn purge_counts_ready_messages_only() {
        let mut state = QueueState::default();
        state.enqueue(msg("a"));
        state.enqueue(msg("b"));
        let a = state.ready.pop_front().unwrap();
        state.record_unacked(a, None);
        assert_eq!(state.purge(), 1);
        assert_eq!(state.unacked.len(), 1);
    }
}
