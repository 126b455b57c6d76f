//! [`DedupTable`]: a bounded set of keys, each with an optional deadline, that forgets its oldest key when full.
//! The broker keeps one per deduplicating exchange (what it has seen), and the store one per durable owner (which
//! of its dedup records are still live, so retiring a WAL file carries only those forward). Pure: no I/O.

use std::collections::{HashMap, VecDeque};

/// One key's place in a [`DedupTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot<V> {
    /// Milliseconds since the epoch after which the key is forgotten; None: kept until evicted.
    expires_at: Option<u64>,
    /// Its insertion number: orders eviction, and tells a live record in `order` from a stale one.
    inserted: u64,
    /// What the owner keeps with the key (the store: where its record is).
    value: V,
}

/// Whether [`DedupTable::insert`] took the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupInsert {
    /// The key was absent (or its deadline had passed): it is now held until the deadline given.
    Inserted,
    /// The key is held and its deadline has not passed: a duplicate.
    Present,
}

/// A set of at most `capacity` keys with deadlines. Inserting into a full table evicts the key inserted first
/// (the plugin evicts an unspecified one; oldest first is what it says it would prefer). A key past its deadline
/// counts as absent; it still takes room until it is evicted, looked up or swept by [`DedupTable::expire`].
#[derive(Debug)]
pub struct DedupTable<V = ()> {
    capacity: usize,
    slots: HashMap<Box<[u8]>, Slot<V>>,
    /// Keys in insertion order, with their insertion number; a record whose number is not the key's slot's is
    /// stale (the key was removed or inserted again) and skipped.
    order: VecDeque<(u64, Box<[u8]>)>,
    next: u64,
}

impl<V: Default> DedupTable<V> {
    /// Takes `key` until `expires_at` unless it is held and alive at `now`; a full table first evicts its oldest key.
    pub fn insert(&mut self, key: &[u8], expires_at: Option<u64>, now: u64) -> DedupInsert {
        if self.contains(key, now) {
            return DedupInsert::Present;
        }
        self.put(key, expires_at, V::default());
        DedupInsert::Inserted
    }
}

impl<V> DedupTable<V> {
    /// An empty table holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> DedupTable<V> {
        DedupTable {
            capacity: capacity.max(1),
            slots: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `key` is held and not past its deadline at `now`.
    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        self.slots
            .get(key)
            .is_some_and(|slot| slot.expires_at.is_none_or(|at| at > now))
    }

    /// Holds `key` until `expires_at` with `value`, whether or not it was held: it becomes the newest key. A full
    /// table first evicts its oldest key.
    pub fn put(&mut self, key: &[u8], expires_at: Option<u64>, value: V) {
        self.slots.remove(key);
        while self.slots.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
        self.next += 1;
        let key: Box<[u8]> = key.into();
        self.slots.insert(
            key.clone(),
            Slot {
                expires_at,
                inserted: self.next,
                value,
            },
        );
        self.order.push_back((self.next, key));
        self.compact_order();
    }

    /// The value kept with `key`, mutably, if it is held.
    pub fn value_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.slots.get_mut(key).map(|slot| &mut slot.value)
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.slots.remove(key);
        self.compact_order();
    }

    /// Forgets every key past its deadline at `now`.
    pub fn expire(&mut self, now: u64) {
        self.slots
            .retain(|_, slot| slot.expires_at.is_none_or(|at| at > now));
        self.compact_order();
    }

    /// The keys held and alive at `now` with their deadlines and values, oldest first.
    pub fn live(&self, now: u64) -> impl Iterator<Item = (&[u8], Option<u64>, &V)> {
        self.order.iter().filter_map(move |(inserted, key)| {
            let slot = self.slots.get(key)?;
            (slot.inserted == *inserted && slot.expires_at.is_none_or(|at| at > now)).then_some((
                &**key,
                slot.expires_at,
                &slot.value,
            ))
        })
    }

    /// Removes the oldest key still held; false when none is.
    fn evict_oldest(&mut self) -> bool {
        while let Some((inserted, key)) = self.order.pop_front() {
            if self.slots.get(&key).is_some_and(|s| s.inserted == inserted) {
                self.slots.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops the stale records of `order` once they outnumber the live ones (plus some slack), so removals and
    /// re-insertions cannot grow it without bound; amortised O(1) per change.
    fn compact_order(&mut self) {
        if self.order.len() <= 2 * self.slots.len() + 1024 {
            return;
        }
        let slots = &self.slots;
        self.order
            .retain(|(inserted, key)| slots.get(key).is_some_and(|s| s.inserted == *inserted));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<V>(table: &DedupTable<V>, now: u64) -> Vec<Vec<u8>> {
        table.live(now).map(|(k, _, _)| k.to_vec()).collect()
    }

    #[test]
    fn a_held_key_is_present_until_its_deadline() {
        let mut table: DedupTable = DedupTable::new(10);
        assert_eq!(table.insert(b"a", Some(100), 0), DedupInsert::Inserted);
        assert_eq!(table.insert(b"a", Some(500), 99), DedupInsert::Present);
        // The deadline stays the first insert's: a duplicate does not extend it.
        assert_eq!(table.insert(b"a", Some(500), 100), DedupInsert::Inserted);
        assert!(table.contains(b"a", 499));
        assert!(!table.contains(b"a", 500));
    }

    #[test]
    fn a_key_without_deadline_stays_until_evicted() {
        let mut table: DedupTable = DedupTable::new(2);
        table.insert(b"a", None, 0);
        assert!(table.contains(b"a", u64::MAX));
        table.insert(b"b", None, 1);
        table.insert(b"c", None, 2);
        assert!(!table.contains(b"a", 3), "the oldest went for the third");
        assert_eq!(keys(&table, 3), vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn the_table_never_holds_more_than_its_capacity() {
        let mut table: DedupTable = DedupTable::new(100);
        for i in 0..10_000u32 {
            table.insert(&i.to_be_bytes(), None, 0);
            assert!(table.len() <= 100);
        }
        let held: Vec<Vec<u8>> = (9_900..10_000u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(keys(&table, 0), held);
    }

    #[test]
    fn a_key_inserted_again_after_expiry_moves_to_the_back() {
        let mut table: DedupTable = DedupTable::new(2);
        table.insert(b"a", Some(10), 0);
        table.insert(b"b", None, 1);
        table.insert(b"a", None, 20);
        table.insert(b"c", None, 21);
        assert_eq!(keys(&table, 22), vec![b"a".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn put_replaces_a_held_key_and_keeps_its_value() {
        let mut table: DedupTable<u32> = DedupTable::new(2);
        table.put(b"a", Some(10), 1);
        table.put(b"b", None, 2);
        table.put(b"a", Some(20), 3);
        let held: Vec<_> = table.live(0).map(|(k, e, v)| (k.to_vec(), e, *v)).collect();
        assert_eq!(
            held,
            vec![(b"b".to_vec(), None, 2), (b"a".to_vec(), Some(20), 3)]
        );
        if let Some(v) = table.value_mut(b"b") {
            *v = 7;
        }
        table.put(b"c", None, 4);
        assert_eq!(keys(&table, 0), vec![b"a".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn expire_and_remove_forget_keys_and_the_order_stays_bounded() {
        let mut table: DedupTable = DedupTable::new(5);
        for i in 0..5u8 {
            table.insert(&[i], Some(u64::from(i) * 10), 0);
        }
        table.expire(25);
        assert_eq!(keys(&table, 25), vec![vec![3], vec![4]]);
        table.remove(&[3]);
        assert_eq!(keys(&table, 25), vec![vec![4]]);
        for round in 0..5_000u64 {
            table.insert(b"k", Some(round + 1), round);
            table.remove(b"k");
        }
        assert!(table.order.len() <= 2 * table.len() + 1024);
    }
}
