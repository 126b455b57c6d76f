//! Messages recovered from the store at start: put back at their priority level, their TTLs counted from their
//! original publish (the store keeps the publish time, own deadline and priority of every persistent message).

use warren_store::IndexEntry;

use super::{Payload, QueueState, ReadyEntry};

impl QueueState {
    /// Appends a message recovered from the store at start (`now`, milliseconds since the epoch): on disk, marked
    /// redelivered (RabbitMQ's behaviour for messages that were in a queue when the broker stopped), at its
    /// priority level, and expiring when it would have without the restart: the queue's message TTL counts from
    /// the message's original publish and its own deadline (from its `expiration`) stands, the sooner of the two
    /// applying. One whose deadline passed while the broker was down expires (and is dead-lettered) in the actor's
    /// first round: the expiry timer of a past deadline fires at once. A message stored without metadata (by a Warren
    /// before store format version 2) counts its TTL from `now` and waits at the lowest level.
    pub(crate) fn enqueue_recovered(&mut self, entry: &IndexEntry, now: u64) {
        let published_at = entry.meta.map_or(now, |m| m.published_at_ms);
        let own_deadline = entry.meta.and_then(|m| m.expires_at_ms);
        let queue_deadline = self
            .rules
            .message_ttl
            .map(|ttl| published_at.saturating_add(ttl));
        let expires_at = match (queue_deadline, own_deadline) {
            (Some(queue), Some(own)) => Some(queue.min(own)),
            (queue, own) => queue.or(own),
        };
        self.next_seq += 1;
        self.push_back(ReadyEntry {
            seq: self.next_seq,
            payload: Payload::OnDisk {
                msg_id: entry.msg_id,
                body_size: entry.body_size,
            },
            redelivered: true,
            expires_at: expires_at.into(),
            // As for a message just published: its own deadline may come before those of the messages ahead.
            expiry_indexed: own_deadline.is_some(),
            level: self.ready.level_for(entry.meta.map(|m| m.priority)),
            // The store keeps no return count: it starts again after a restart.
            returns: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ready::ReadyList;
    use crate::queue::state::ReadyRules;
    use warren_store::MessageMeta;

    /// A recovered entry published at `published_at_ms` with `priority` and, optionally, a deadline of its own.
    fn recovered(
        msg_id: u64,
        published_at_ms: u64,
        own_deadline: Option<u64>,
        priority: u8,
    ) -> IndexEntry {
        IndexEntry {
            msg_id,
            body_size: 1,
            meta: Some(MessageMeta {
                published_at_ms,
                expires_at_ms: own_deadline,
                priority,
            }),
        }
    }

    fn ids(entries: &[ReadyEntry]) -> Vec<u64> {
        entries
            .iter()
            .map(|e| match &e.payload {
                Payload::OnDisk { msg_id, .. } | Payload::Spilled { msg_id, .. } => *msg_id,
                Payload::Loaded(m) => m.id,
            })
            .collect()
    }

    fn with_ttl(ttl: Option<u64>) -> QueueState {
        QueueState {
            rules: ReadyRules {
                message_ttl: ttl,
                ..ReadyRules::default()
            },
            ..QueueState::default()
        }
    }

    #[test]
    fn queue_ttl_of_a_recovered_message_counts_from_its_original_publish() {
        let mut state = with_ttl(Some(3_000));
        // Published at 10_000, recovered at 11_500: it expires at 13_000, not at 14_500.
        state.enqueue_recovered(&recovered(1, 10_000, None, 0), 11_500);
        assert_eq!(state.next_expiry(), Some(13_000));
        assert!(
            state.expire(13_000).is_empty(),
            "alive at its expiry instant"
        );
        assert_eq!(ids(&state.expire(13_001)), vec![1]);
    }

    #[test]
    fn a_recovered_message_keeps_its_own_deadline_when_it_is_the_sooner() {
        let mut state = with_ttl(Some(3_000));
        state.enqueue_recovered(&recovered(1, 10_000, None, 0), 11_000);
        state.enqueue_recovered(&recovered(2, 10_000, Some(10_500), 0), 11_000);
        state.enqueue_recovered(&recovered(3, 10_000, Some(20_000), 0), 11_000);
        let expiries: Vec<_> = state.ready.iter().map(|e| e.expires_at.get()).collect();
        assert_eq!(expiries, vec![Some(13_000), Some(10_500), Some(13_000)]);
        // Its own deadline comes before the head's: it is found in the expiry index, behind the head.
        assert_eq!(ids(&state.expire(11_000)), vec![2]);
        let mut without_queue_ttl = with_ttl(None);
        without_queue_ttl.enqueue_recovered(&recovered(4, 10_000, Some(12_000), 0), 11_000);
        assert_eq!(without_queue_ttl.next_expiry(), Some(12_000));
    }

    #[test]
    fn a_message_whose_deadline_passed_during_the_restart_expires_at_once() {
        let mut state = with_ttl(Some(3_000));
        let now = 20_000;
        state.enqueue_recovered(&recovered(1, 10_000, None, 0), now);
        state.enqueue_recovered(&recovered(2, 19_000, None, 0), now);
        assert!(state.next_expiry().is_some_and(|deadline| deadline < now));
        assert_eq!(ids(&state.expire(now)), vec![1]);
        assert_eq!(state.message_count(), 1);
    }

    #[test]
    fn a_message_stored_without_metadata_counts_its_ttl_from_the_restart_at_level_0() {
        let mut state = with_ttl(Some(3_000));
        state.ready = ReadyList::with_max_priority(5);
        let old = IndexEntry {
            msg_id: 1,
            body_size: 1,
            meta: None,
        };
        state.enqueue_recovered(&old, 11_500);
        let entry = state.ready.iter().next().cloned();
        assert_eq!(
            entry.as_ref().and_then(|e| e.expires_at.get()),
            Some(14_500)
        );
        assert_eq!(entry.map(|e| e.level), Some(0));
    }

    #[test]
    fn recovered_messages_come_back_at_their_priority_level() {
        let mut state = QueueState {
            ready: ReadyList::with_max_priority(5),
            ..QueueState::default()
        };
        for (id, priority) in [(1, 0), (2, 3), (3, 9), (4, 3), (5, 5), (6, 1)] {
            state.enqueue_recovered(&recovered(id, 1_000, None, priority), 2_000);
        }
        let order: Vec<u64> = std::iter::from_fn(|| state.pop_ready())
            .map(|e| match e.payload {
                Payload::OnDisk { msg_id, .. } | Payload::Spilled { msg_id, .. } => msg_id,
                Payload::Loaded(m) => m.id,
            })
            .collect();
        // Highest level first, publish order within a level; 9 is above the queue's maximum and counts as 5.
        assert_eq!(order, vec![3, 5, 2, 4, 6, 1]);
    }
}
