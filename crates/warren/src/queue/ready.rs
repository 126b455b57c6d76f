//! A queue's ready messages in delivery order: one FIFO per priority level (`x-max-priority`; a queue without it
//! has a single level), the highest level delivered first. Within a level entries are in sequence order, so a
//! requeued message goes back to its place by binary search.

use std::collections::VecDeque;

use super::state::ReadyEntry;

/// The ready messages, by priority level.
#[derive(Debug)]
pub(crate) struct ReadyList {
    /// Index = priority level; never empty.
    levels: Vec<VecDeque<ReadyEntry>>,
    /// Entries over all levels.
    len: usize,
}

impl Default for ReadyList {
    fn default() -> Self {
        ReadyList::with_max_priority(0)
    }
}

impl ReadyList {
    /// A list for priorities 0 to `max` (RabbitMQ's `x-max-priority`; 0 for a queue without priorities).
    pub(crate) fn with_max_priority(max: u8) -> ReadyList {
        ReadyList {
            levels: (0..=max).map(|_| VecDeque::new()).collect(),
            len: 0,
        }
    }

    /// The level a message of `priority` waits at: priorities above the queue's maximum count as the maximum.
    pub(crate) fn level_for(&self, priority: Option<u8>) -> u8 {
        let top = (self.levels.len() - 1) as u8;
        priority.unwrap_or(0).min(top)
    }

    /// Ready messages over all levels.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is ready.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the next message to deliver.
    pub(crate) fn pop_front(&mut self) -> Option<ReadyEntry> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        match self.levels.as_mut_slice() {
            // A queue without priorities: no search.
            [only] => only.pop_front(),
            levels => levels.iter_mut().rev().find_map(|l| l.pop_front()),
        }
    }

    /// Appends an entry at the end of its level.
    pub(crate) fn push_back(&mut self, entry: ReadyEntry) {
        self.len += 1;
        self.levels[usize::from(entry.level)].push_back(entry);
    }

    /// Puts an entry just taken back at the front of its level.
    pub(crate) fn push_front(&mut self, entry: ReadyEntry) {
        self.len += 1;
        self.levels[usize::from(entry.level)].push_front(entry);
    }

    /// Puts an entry back at the place its sequence number gives it in its level.
    pub(crate) fn insert_by_seq(&mut self, entry: ReadyEntry) {
        self.len += 1;
        let level = &mut self.levels[usize::from(entry.level)];
        match level.front() {
            None => level.push_back(entry),
            Some(front) if entry.seq < front.seq => level.push_front(entry),
            Some(_) => {
                let at = level.partition_point(|m| m.seq < entry.seq);
                level.insert(at, entry);
            }
        }
    }

    /// Removes entry `seq` of `level` if it is there and `keep` says so of it.
    pub(crate) fn remove_if(
        &mut self,
        level: u8,
        seq: u64,
        keep: impl FnOnce(&ReadyEntry) -> bool,
    ) -> Option<ReadyEntry> {
        let level = self.levels.get_mut(usize::from(level))?;
        let at = level.partition_point(|e| e.seq < seq);
        if !level.get(at).is_some_and(|e| e.seq == seq && keep(e)) {
            return None;
        }
        self.len -= 1;
        level.remove(at)
    }

    /// Takes, level by level, the entries at the head of each level that `dead` says are dead.
    pub(crate) fn pop_dead_heads(&mut self, dead: impl Fn(&ReadyEntry) -> bool) -> Vec<ReadyEntry> {
        let mut taken = Vec::new();
        for level in self.levels.iter_mut().rev() {
            while level.front().is_some_and(&dead) {
                taken.extend(level.pop_front());
            }
        }
        self.len -= taken.len();
        taken
    }

    /// The heads of the levels, highest level first.
    pub(crate) fn heads(&self) -> impl Iterator<Item = &ReadyEntry> {
        self.levels.iter().rev().filter_map(|level| level.front())
    }

    /// Every entry in delivery order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &ReadyEntry> {
        self.levels.iter().rev().flat_map(|level| level.iter())
    }

    /// Every entry, mutably, in no particular order (the caller keeps each level's sequence order).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut ReadyEntry> {
        self.levels.iter_mut().flat_map(|level| level.iter_mut())
    }

    /// Takes every entry, in delivery order.
    pub(crate) fn drain(&mut self) -> Vec<ReadyEntry> {
        self.len = 0;
        self.levels
            .iter_mut()
            .rev()
            .flat_map(|level| level.drain(..))
            .collect()
    }
}
