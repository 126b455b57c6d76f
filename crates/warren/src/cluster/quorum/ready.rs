//! The order a replicated quorum queue hands out its ready messages, as RabbitMQ 4.0's quorum queues do: returned
//! messages first (in the order of their sequence numbers), then the two priority levels, high (a `priority` above
//! 4) and normal (4 or less, or none), two high for every normal one while both have messages, so normal ones
//! always make progress. Expiry and `drop-head` go by the oldest ready message whatever its level.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Highest `priority` property of a normal message: above it, high (RabbitMQ 4.0's threshold).
const NORMAL_MAX: u8 = 4;

/// High messages handed out in a row before a normal one, when both wait.
const HIGH_PER_NORMAL: u8 = 2;

/// The ready messages by sequence number, in their delivery classes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReadyOrder {
    /// Every ready message.
    all: BTreeSet<u64>,
    /// Those that came back (rejected with requeue, returned by a gone consumer).
    returned: BTreeSet<u64>,
    /// Those never handed out, of high priority.
    high: BTreeSet<u64>,
    /// Those never handed out, of normal priority.
    normal: BTreeSet<u64>,
    /// High messages handed out since the last normal one.
    high_in_a_row: u8,
}

/// Whether a message of `priority` is of the high level.
pub(crate) fn is_high(priority: u8) -> bool {
    priority > NORMAL_MAX
}

impl ReadyOrder {
    /// Ready messages.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// The oldest ready message: the head for expiry and `drop-head`.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.all.first().copied()
    }

    /// Makes `seq` ready: with the returned ones if it `returned`, else at its priority's level. False if it was
    /// ready already.
    pub(crate) fn insert(&mut self, seq: u64, returned: bool, priority: u8) -> bool {
        if !self.all.insert(seq) {
            return false;
        }
        let class = match (returned, is_high(priority)) {
            (true, _) => &mut self.returned,
            (false, true) => &mut self.high,
            (false, false) => &mut self.normal,
        };
        class.insert(seq);
        true
    }

    /// Takes `seq` out; whether it was ready.
    pub(crate) fn remove(&mut self, seq: u64) -> bool {
        if !self.all.remove(&seq) {
            return false;
        }
        let _ = self.returned.remove(&seq) || self.high.remove(&seq) || self.normal.remove(&seq);
        true
    }

    /// The message to hand out next, without taking it.
    pub(crate) fn next(&self) -> Option<u64> {
        if let Some(seq) = self.returned.first() {
            return Some(*seq);
        }
        match (self.high.first(), self.normal.first()) {
            (Some(high), Some(_)) if self.high_in_a_row < HIGH_PER_NORMAL => Some(*high),
            (_, Some(normal)) => Some(*normal),
            (high, None) => high.copied(),
        }
    }

    /// Takes `seq` out as handed out (after [`ReadyOrder::next`]), counting the levels' turns.
    pub(crate) fn take(&mut self, seq: u64) {
        if self.high.contains(&seq) {
            self.high_in_a_row = self.high_in_a_row.saturating_add(1);
        } else if self.normal.contains(&seq) {
            self.high_in_a_row = 0;
        }
        self.remove(seq);
    }

    /// Takes every ready message out (queue.purge).
    pub(crate) fn take_all(&mut self) -> BTreeSet<u64> {
        self.returned.clear();
        self.high.clear();
        self.normal.clear();
        std::mem::take(&mut self.all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed_out(order: &mut ReadyOrder) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(seq) = order.next() {
            order.take(seq);
            out.push(seq);
        }
        out
    }

    #[test]
    fn returned_first_then_two_high_for_each_normal() {
        let mut order = ReadyOrder::default();
        for seq in 1..=4 {
            order.insert(seq, false, 0);
        }
        for seq in 5..=10 {
            order.insert(seq, false, 9);
        }
        order.insert(11, true, 0);
        assert_eq!(order.oldest(), Some(1));
        assert_eq!(handed_out(&mut order), [11, 5, 6, 1, 7, 8, 2, 9, 10, 3, 4]);
        assert_eq!(order.len(), 0);
    }

    #[test]
    fn without_priorities_the_order_is_fifo() {
        let mut order = ReadyOrder::default();
        for seq in [3, 1, 2] {
            order.insert(seq, false, 4);
        }
        assert!(!order.insert(2, false, 4), "ready already");
        assert!(order.remove(1));
        assert_eq!(handed_out(&mut order), [2, 3]);
    }
}
