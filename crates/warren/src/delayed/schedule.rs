//! The timer structure of one delayed exchange, pure: its delayed messages ordered by (due time, id), so the next
//! due message is the first entry and serving due messages never scans. An entry is the index of a message, not
//! the message: its id, size, routing key and where its body is (the payload type, chosen by the caller).

use std::collections::BTreeMap;
use std::sync::Arc;

/// What one delayed message costs in the index besides its payload: its size and routing key. The (due, id) key
/// is the map's.
#[derive(Debug)]
pub(crate) struct Slot<P> {
    /// Body size in bytes.
    pub(crate) size: u32,
    /// Its routing key; None for a message recovered from the store until something reads it back (recovery
    /// returns ids, sizes and deadlines, not properties).
    pub(crate) routing_key: Option<Arc<str>>,
    /// Where its body is.
    pub(crate) payload: P,
}

/// A delayed message taken out of the schedule.
#[derive(Debug)]
pub(crate) struct Due<P> {
    /// The message id.
    pub(crate) id: u64,
    /// When it was due (ms since the epoch).
    pub(crate) due_ms: u64,
    /// Its index entry.
    pub(crate) slot: Slot<P>,
}

/// Delayed messages by (due time in ms since the epoch, message id). Ids are unique, so two messages due at the
/// same millisecond keep their publish order.
#[derive(Debug)]
pub(crate) struct DelaySchedule<P> {
    entries: BTreeMap<(u64, u64), Slot<P>>,
}

impl<P> Default for DelaySchedule<P> {
    fn default() -> Self {
        DelaySchedule {
            entries: BTreeMap::new(),
        }
    }
}

impl<P> DelaySchedule<P> {
    /// Adds message `id`, due at `due_ms`. Returns true when it is now the first due, so the timer must be
    /// re-armed earlier.
    pub(crate) fn insert(&mut self, id: u64, due_ms: u64, slot: Slot<P>) -> bool {
        self.entries.insert((due_ms, id), slot);
        self.entries
            .first_key_value()
            .is_some_and(|(&(_, first), _)| first == id)
    }

    /// When the first message is due, if any.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.entries.first_key_value().map(|(&(due, _), _)| due)
    }

    /// Takes out, in due order, at most `max` messages due at or before `now_ms`.
    pub(crate) fn pop_due(&mut self, now_ms: u64, max: usize) -> Vec<Due<P>> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.entries.first_entry() {
                Some(first) if first.key().0 <= now_ms => {
                    let ((due_ms, id), slot) = first.remove_entry();
                    out.push(Due { id, due_ms, slot });
                }
                _ => break,
            }
        }
        out
    }

    /// Takes out message `id`. Ids are not indexed on their own (an index would cost about 20 bytes a message
    /// more), so this scans: about a millisecond per 200,000 messages; it serves an operator's cancel.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Due<P>> {
        let key = *self.entries.keys().find(|(_, i)| *i == id)?;
        self.remove_at(key.0, id)
    }

    /// Takes out message `id` known to be due at `due_ms`, without a scan.
    pub(crate) fn remove_at(&mut self, due_ms: u64, id: u64) -> Option<Due<P>> {
        let slot = self.entries.remove(&(due_ms, id))?;
        Some(Due { id, due_ms, slot })
    }

    /// Message `id` known to be due at `due_ms`.
    pub(crate) fn get_mut(&mut self, due_ms: u64, id: u64) -> Option<&mut Slot<P>> {
        self.entries.get_mut(&(due_ms, id))
    }

    /// How many messages wait.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Up to `limit` messages from the `offset`-th in due order, as (id, due, slot).
    pub(crate) fn page(
        &mut self,
        offset: usize,
        limit: usize,
    ) -> impl Iterator<Item = (u64, u64, &mut Slot<P>)> {
        self.entries
            .iter_mut()
            .skip(offset)
            .take(limit)
            .map(|(&(due, id), slot)| (id, due, slot))
    }

    /// Takes out every message (the exchange is deleted).
    pub(crate) fn drain(&mut self) -> Vec<Due<P>> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|((due_ms, id), slot)| Due { id, due_ms, slot })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(tag: &str) -> Slot<String> {
        Slot {
            size: 1,
            routing_key: Some(Arc::from(tag)),
            payload: tag.to_owned(),
        }
    }

    fn ids(due: &[Due<String>]) -> Vec<u64> {
        due.iter().map(|d| d.id).collect()
    }

    #[test]
    fn messages_come_out_in_due_order_whatever_the_publish_order() {
        let mut s = DelaySchedule::default();
        assert!(s.insert(1, 5_000, slot("a")));
        assert!(s.insert(2, 1_000, slot("b")), "earlier: re-arm");
        assert!(
            !s.insert(3, 3_000, slot("c")),
            "later than the first: no re-arm"
        );
        assert_eq!(s.next_due(), Some(1_000));
        assert_eq!(ids(&s.pop_due(10_000, 10)), vec![2, 3, 1]);
        assert_eq!(s.len(), 0);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn only_due_messages_are_taken_and_at_most_max() {
        let mut s = DelaySchedule::default();
        for id in 1..=5 {
            s.insert(id, id * 100, slot("k"));
        }
        assert!(s.pop_due(99, 10).is_empty(), "nothing due before the first");
        assert_eq!(ids(&s.pop_due(300, 2)), vec![1, 2], "capped at max");
        assert_eq!(
            ids(&s.pop_due(300, 10)),
            vec![3],
            "a due time equal to now is due"
        );
        assert_eq!(s.next_due(), Some(400));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn same_due_time_keeps_publish_order() {
        let mut s = DelaySchedule::default();
        for id in [7, 3, 9] {
            s.insert(id, 1_000, slot("k"));
        }
        assert_eq!(ids(&s.pop_due(1_000, 10)), vec![3, 7, 9]);
    }

    #[test]
    fn removed_messages_are_not_served_and_pages_follow_due_order() {
        let mut s = DelaySchedule::default();
        s.insert(1, 300, slot("a"));
        s.insert(2, 100, slot("b"));
        s.insert(3, 200, slot("c"));
        assert_eq!(
            s.remove(3).map(|d| (d.due_ms, d.slot.payload)),
            Some((200, "c".to_owned()))
        );
        assert!(s.remove(3).is_none());
        let page: Vec<(u64, u64)> = s.page(0, 10).map(|(id, due, _)| (id, due)).collect();
        assert_eq!(page, vec![(2, 100), (1, 300)]);
        let page: Vec<u64> = s.page(1, 10).map(|(id, _, _)| id).collect();
        assert_eq!(page, vec![1]);
        assert!(s.get_mut(300, 1).is_some());
        assert!(s.remove_at(300, 1).is_some());
        assert_eq!(ids(&s.drain()), vec![2]);
        assert_eq!(s.len(), 0);
    }
}
