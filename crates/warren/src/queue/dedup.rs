//! Queue-level deduplication (`x-message-deduplication`, rabbitmq-message-deduplication's queue): the
//! deduplication keys of the messages in the queue, ready or delivered and unacknowledged. A message whose key is
//! one of them is not enqueued.
//!
//! The plugin deletes a key on every way a message leaves (ack, no-ack delivery, drop, purge) and lets it expire
//! with the message's TTL. Here each key maps to the queue sequence number of its message, and a key whose message
//! is no longer in the queue is stale: found stale when looked up, and swept once stale keys outnumber the
//! messages. So no path by which a message leaves (delivery, ack, expiry, drop-head, dead-lettering, purge) has to
//! know about deduplication.

use rustc_hash::FxHashMap;

use crate::message::dedup::DedupKey;

/// The keys of the messages a deduplicating queue holds, each with its message's sequence number.
#[derive(Debug, Default)]
pub(crate) struct DedupSet {
    /// Key -> sequence number of the message that brought it; possibly stale (see the module docs).
    keys: FxHashMap<DedupKey, u64>,
}

impl DedupSet {
    /// Records `key` for the message `seq` unless a message still in the queue (`in_queue`) holds it; returns
    /// whether the key was taken (false: the message is a duplicate).
    pub(crate) fn admit(
        &mut self,
        key: DedupKey,
        seq: u64,
        in_queue: impl Fn(u64) -> bool,
    ) -> bool {
        match self.keys.get(&key) {
            Some(&holder) if in_queue(holder) => false,
            _ => {
                self.keys.insert(key, seq);
                true
            }
        }
    }

    /// Drops the stale keys once they may outnumber the `messages` in the queue (plus some slack), so the set
    /// stays within twice the queue's messages; amortised O(1) per publish.
    pub(crate) fn sweep(&mut self, messages: usize, in_queue: impl Fn(u64) -> bool) {
        if self.keys.len() > 2 * messages + 1024 {
            self.keys.retain(|_, seq| in_queue(*seq));
        }
    }

    /// Keys recorded, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keys held by a message still in the queue (`in_queue`): what the management API shows. A pass over the
    /// keys, for an occasional question, never on a publish.
    pub(crate) fn live(&self, in_queue: impl Fn(u64) -> bool) -> usize {
        self.keys.values().filter(|seq| in_queue(**seq)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(s: &str) -> DedupKey {
        DedupKey::from_bytes(s.as_bytes())
    }

    #[test]
    fn a_key_is_refused_while_its_message_is_in_the_queue() {
        let mut set = DedupSet::default();
        let mut queue: HashSet<u64> = HashSet::new();
        assert!(set.admit(key("a"), 1, |s| queue.contains(&s)));
        queue.insert(1);
        assert!(!set.admit(key("a"), 2, |s| queue.contains(&s)));
        assert!(set.admit(key("b"), 3, |s| queue.contains(&s)));
        // The message left (acked, expired, dropped...): the key is free again.
        queue.remove(&1);
        assert!(set.admit(key("a"), 4, |s| queue.contains(&s)));
        queue.insert(4);
        assert!(!set.admit(key("a"), 5, |s| queue.contains(&s)));
    }

    #[test]
    fn stale_keys_are_swept_once_they_outnumber_the_messages() {
        let mut set = DedupSet::default();
        for seq in 0..5_000u64 {
            assert!(set.admit(key(&seq.to_string()), seq, |_| false));
        }
        set.sweep(10, |seq| seq >= 4_990);
        assert_eq!(set.len(), 10);
        set.sweep(0, |_| false);
        assert_eq!(set.len(), 10, "under the slack: no sweep");
    }
}
