//! A queue's ready messages in delivery order: one FIFO per priority level (`x-max-priority`; a queue without it
//! has a single level), the highest level delivered first. Within a level entries are in sequence order, so a
//! requeued message goes back to its place by binary search.

use std::collections::VecDeque;

use super::state::ReadyEntry;

/// The ready messages, by priority level.
#[derive(Debug, Default)]
pub(crate) struct ReadyList {
    /// Level 0: every message of a queue without priorities, which so pays no indirection for the others.
    lowest: VecDeque<ReadyEntry>,
    /// Levels 1 to the queue's maximum priority (index = level - 1); empty in a queue without priorities.
    upper: Vec<VecDeque<ReadyEntry>>,
    /// Entries over all levels.
    len: usize,
}

impl ReadyList {
    /// A list for priorities 0 to `max` (RabbitMQ's `x-max-priority`; 0 for a queue without priorities).
    pub(crate) fn with_max_priority(max: u8) -> ReadyList {
        ReadyList {
            lowest: VecDeque::new(),
            upper: (0..max).map(|_| VecDeque::new()).collect(),
            len: 0,
        }
    }

    /// The level a message of `priority` waits at: priorities above the queue's maximum count as the maximum.
    pub(crate) fn level_for(&self, priority: Option<u8>) -> u8 {
        let top = self.upper.len() as u8;
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

    /// The entries of `level`; a level above the queue's maximum (never made by [`ReadyList::level_for`]) counts as
    /// the maximum, so an entry is never lost.
    fn level_mut(&mut self, level: u8) -> &mut VecDeque<ReadyEntry> {
        match (usize::from(level).min(self.upper.len())).checked_sub(1) {
            None => &mut self.lowest,
            Some(index) => &mut self.upper[index],
        }
    }

    /// The levels, highest first.
    fn levels(&self) -> impl Iterator<Item = &VecDeque<ReadyEntry>> {
        self.upper.iter().rev().chain(std::iter::once(&self.lowest))
    }

    /// The levels, mutably, highest first.
    fn levels_mut(&mut self) -> impl Iterator<Item = &mut VecDeque<ReadyEntry>> {
        self.upper
            .iter_mut()
            .rev()
            .chain(std::iter::once(&mut self.lowest))
    }

    /// Takes the next message to deliver.
    pub(crate) fn pop_front(&mut self) -> Option<ReadyEntry> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        if self.upper.is_empty() {
            // A queue without priorities: no search.
            return self.lowest.pop_front();
        }
        self.levels_mut().find_map(|l| l.pop_front())
    }

    /// Appends an entry at the end of its level.
    pub(crate) fn push_back(&mut self, entry: ReadyEntry) {
        self.len += 1;
        self.level_mut(entry.level).push_back(entry);
    }

    /// Puts an entry just taken back at the front of its level.
    pub(crate) fn push_front(&mut self, entry: ReadyEntry) {
        self.len += 1;
        self.level_mut(entry.level).push_front(entry);
    }

    /// Puts an entry back at the place its sequence number gives it in its level.
    pub(crate) fn insert_by_seq(&mut self, entry: ReadyEntry) {
        self.len += 1;
        let level = self.level_mut(entry.level);
        match level.front() {
            None => level.push_back(entry),
            Some(front) if entry.seq < front.seq => level.push_front(entry),
            Some(_) => {
                let at = level.partition_point(|m| m.seq < entry.seq);
                level.insert(at, entry);
            }
        }
    }

    /// Whether entry `seq` is ready, at any level (a binary search per level).
    pub(crate) fn contains_seq(&self, seq: u64) -> bool {
        self.levels().any(|level| {
            let at = level.partition_point(|e| e.seq < seq);
            level.get(at).is_some_and(|e| e.seq == seq)
        })
    }

    /// Removes entry `seq` of `level` if it is there and `keep` says so of it.
    pub(crate) fn remove_if(
        &mut self,
        level: u8,
        seq: u64,
        keep: impl FnOnce(&ReadyEntry) -> bool,
    ) -> Option<ReadyEntry> {
        if usize::from(level) > self.upper.len() {
            return None;
        }
        let level = self.level_mut(level);
        let at = level.partition_point(|e| e.seq < seq);
        if !level.get(at).is_some_and(|e| e.seq == seq && keep(e)) {
            return None;
        }
        let removed = level.remove(at);
        self.len -= 1;
        removed
    }

    /// Takes, level by level, the entries at the head of each level that `dead` says are dead.
    pub(crate) fn pop_dead_heads(&mut self, dead: impl Fn(&ReadyEntry) -> bool) -> Vec<ReadyEntry> {
        let mut taken = Vec::new();
        for level in self.levels_mut() {
            while level.front().is_some_and(&dead) {
                taken.extend(level.pop_front());
            }
        }
        self.len -= taken.len();
        taken
    }

    /// The heads of the levels, highest level first.
    pub(crate) fn heads(&self) -> impl Iterator<Item = &ReadyEntry> {
        self.levels().filter_map(|level| level.front())
    }

    /// Every entry in delivery order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &ReadyEntry> {
        self.levels().flat_map(|level| level.iter())
    }

    /// Every entry, mutably, in no particular order (the caller keeps each level's sequence order).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut ReadyEntry> {
        self.levels_mut().flat_map(|level| level.iter_mut())
    }

    /// Every entry, mutably, the last to be delivered first (the lowest level's newest first).
    pub(crate) fn iter_newest_first_mut(&mut self) -> impl Iterator<Item = &mut ReadyEntry> {
        std::iter::once(&mut self.lowest)
            .chain(self.upper.iter_mut())
            .flat_map(|level| level.iter_mut().rev())
    }

    /// Takes every entry, in delivery order.
    pub(crate) fn drain(&mut self) -> Vec<ReadyEntry> {
        self.len = 0;
        self.levels_mut()
            .flat_map(|level| level.drain(..))
            .collect()
    }
}
