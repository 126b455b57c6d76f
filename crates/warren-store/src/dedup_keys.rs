//! Deduplication keys kept for the broker (`Store::remember_key`): each is a DedupKey WAL record, written with
//! the same group commit as the messages, and `DedupKeys`, which of those records are still live, per owner. An
//! owner is a `QueueId` (a deduplicating exchange's store id); its keys form a [`DedupTable`] bounded by the
//! capacity its records carry, so a retired WAL file carries forward at most that many records per owner, and the
//! WAL never grows with keys that were evicted or expired.

use std::collections::HashMap;

use super::dedup_table::DedupTable;
use super::index::FileId;
use super::record::{Cursor, DecodeError};
use super::QueueId;

/// A key the store keeps for an owner until its deadline, or until newer keys push it out of the owner's capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupEntry {
    /// The key's bytes, as the broker gave them.
    pub key: Box<[u8]>,
    /// Milliseconds since the epoch after which the key is forgotten; None: kept until evicted.
    pub expires_at_ms: Option<u64>,
    /// When the broker first took the key (milliseconds since the epoch): recovery orders an owner's keys by it,
    /// so eviction after a restart goes oldest first as before.
    pub inserted_at_ms: u64,
}

/// Where a live key's newest record is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// The WAL file holding it.
    pub(crate) file: FileId,
    /// Its [`DedupEntry::inserted_at_ms`].
    pub(crate) inserted_at_ms: u64,
}

/// The live keys of every owner, with where their records are.
#[derive(Debug, Default)]
pub(crate) struct DedupKeys {
    owners: HashMap<QueueId, DedupTable<Held>>,
}

impl DedupKeys {
    /// Records that `entry` of `owner` (at most `capacity` keys) is now in WAL file `file`.
    pub(crate) fn put(&mut self, owner: QueueId, capacity: u32, entry: &DedupEntry, file: FileId) {
        let table = self
            .owners
            .entry(owner)
            .or_insert_with(|| DedupTable::new(capacity as usize));
        let held = Held {
            file,
            inserted_at_ms: entry.inserted_at_ms,
        };
        table.put(&entry.key, entry.expires_at_ms, held);
    }

    /// Forgets every key of `owner` (its queue was dropped).
    pub(crate) fn drop_owner(&mut self, owner: QueueId) {
        self.owners.remove(&owner);
    }

    /// Whether `owner` has keys here: false once it was dropped.
    pub(crate) fn has_owner(&self, owner: QueueId) -> bool {
        self.owners.contains_key(&owner)
    }

    /// The keys alive at `now` whose newest record is in `file`, by owner with the owner's capacity: what must be
    /// written again before `file` is deleted.
    pub(crate) fn live_in(&mut self, file: FileId, now: u64) -> Vec<(QueueId, u32, DedupEntry)> {
        let mut out = Vec::new();
        for (owner, table) in &mut self.owners {
            table.expire(now);
            let capacity = u32::try_from(table.capacity()).unwrap_or(u32::MAX);
            for (key, expires_at_ms, held) in table.live(now) {
                if held.file == file {
                    let entry = DedupEntry {
                        key: key.into(),
                        expires_at_ms,
                        inserted_at_ms: held.inserted_at_ms,
                    };
                    out.push((*owner, capacity, entry));
                }
            }
        }
        out
    }

    /// Points a key just carried forward at its new `file`, unless a newer record of it came meanwhile (the
    /// broker took it again): then the newer one stays the key's record (recovery, too, keeps the record taken last).
    pub(crate) fn carried(&mut self, owner: QueueId, entry: &DedupEntry, file: FileId) {
        if let Some(held) = self
            .owners
            .get_mut(&owner)
            .and_then(|table| table.value_mut(&entry.key))
        {
            if held.inserted_at_ms == entry.inserted_at_ms {
                held.file = file;
            }
        }
    }

    /// Every owner's keys alive at `now`, oldest first (what `Recovery::dedup` reports).
    pub(crate) fn report(&self, now: u64) -> HashMap<QueueId, Vec<DedupEntry>> {
        self.owners
            .iter()
            .map(|(owner, table)| {
                let entries = table
                    .live(now)
                    .map(|(key, expires_at_ms, held)| DedupEntry {
                        key: key.into(),
                        expires_at_ms,
                        inserted_at_ms: held.inserted_at_ms,
                    })
                    .collect();
                (*owner, entries)
            })
            .collect()
    }
}

/// A key's newest record as recovery found it: the entry, its WAL file, and its place in the replay.
type FoundRecord = (DedupEntry, FileId, u64);

/// One owner's records as recovery found them: its capacity, and each key's newest record.
type FoundOwner = (u32, HashMap<Box<[u8]>, FoundRecord>);

/// The records recovery found, newest record of each key kept, before they are ordered into [`DedupKeys`].
#[derive(Default)]
pub(crate) struct FoundKeys {
    /// Per owner: its capacity, and each key's newest record.
    owners: HashMap<QueueId, FoundOwner>,
    /// Records read so far: orders keys taken in the same millisecond as the WAL does.
    read: u64,
}

impl FoundKeys {
    /// A record of `owner` read from `file`. Of two records of one key, the one taken last wins (a record carried
    /// forward may come after a newer one in the WAL); of two taken at once, the later in the WAL.
    pub(crate) fn record(
        &mut self,
        owner: QueueId,
        capacity: u32,
        entry: DedupEntry,
        file: FileId,
    ) {
        self.read += 1;
        let (cap, keys) = self.owners.entry(owner).or_default();
        *cap = capacity;
        match keys.get(&entry.key) {
            Some((held, _, _)) if held.inserted_at_ms > entry.inserted_at_ms => {}
            _ => {
                keys.insert(entry.key.clone(), (entry, file, self.read));
            }
        }
    }

    /// A drop record of `owner`: its keys go.
    pub(crate) fn drop_owner(&mut self, owner: QueueId) {
        self.owners.remove(&owner);
    }

    /// The live keys of the owners in `durable`, each owner's in the order they were first taken, bounded by its
    /// capacity.
    pub(crate) fn into_keys(self, durable: impl Fn(QueueId) -> bool, now: u64) -> DedupKeys {
        let mut keys = DedupKeys::default();
        for (owner, (capacity, found)) in self.owners {
            if !durable(owner) {
                continue;
            }
            let mut entries: Vec<FoundRecord> = found
                .into_values()
                .filter(|(e, _, _)| e.expires_at_ms.is_none_or(|at| at > now))
                .collect();
            entries.sort_by_key(|(e, _, read)| (e.inserted_at_ms, *read));
            for (entry, file, _) in entries {
                keys.put(owner, capacity, &entry, file);
            }
        }
        keys
    }
}

/// Milliseconds since the Unix epoch, the clock key deadlines are in (the broker's wall clock).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The payload of a DedupKey record: owner (u64), capacity (u32), inserted at (u64), expires at (u64, `u64::MAX`
/// for never), then the key's bytes.
pub(crate) fn encode(owner: QueueId, capacity: u32, entry: &DedupEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + entry.key.len());
    out.extend_from_slice(&owner.to_le_bytes());
    out.extend_from_slice(&capacity.to_le_bytes());
    out.extend_from_slice(&entry.inserted_at_ms.to_le_bytes());
    out.extend_from_slice(&entry.expires_at_ms.unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(&entry.key);
    out
}

/// Reads a DedupKey record's payload: (owner, capacity, entry).
pub(crate) fn decode(payload: &[u8]) -> Result<(QueueId, u32, DedupEntry), DecodeError> {
    let mut c = Cursor::new(payload);
    let owner = c.u64()?;
    let capacity = c.u32()?;
    let inserted_at_ms = c.u64()?;
    let expires_at_ms = Some(c.u64()?).filter(|&at| at != u64::MAX);
    let key = payload
        .get(c.position()..)
        .ok_or("key runs past the record")?;
    if capacity == 0 {
        return Err("dedup key record with capacity 0");
    }
    Ok((
        owner,
        capacity,
        DedupEntry {
            key: key.into(),
            expires_at_ms,
            inserted_at_ms,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &[u8], inserted_at_ms: u64, expires_at_ms: Option<u64>) -> DedupEntry {
        DedupEntry {
            key: key.into(),
            expires_at_ms,
            inserted_at_ms,
        }
    }

    #[test]
    fn a_record_round_trips() {
        for e in [entry(b"Sabc", 5, Some(10)), entry(b"", 0, None)] {
            assert_eq!(decode(&encode(7, 3, &e)), Ok((7, 3, e)));
        }
        assert!(decode(&[0; 10]).is_err());
    }

    #[test]
    fn recovery_orders_keys_by_first_insertion_and_bounds_them() {
        let mut found = FoundKeys::default();
        // "a" was carried forward into a later file: it comes later in the WAL but is still the oldest.
        found.record(1, 2, entry(b"b", 20, None), 1);
        found.record(1, 2, entry(b"c", 30, None), 2);
        found.record(1, 2, entry(b"a", 10, None), 2);
        found.record(1, 2, entry(b"x", 5, Some(50)), 2);
        found.record(9, 2, entry(b"gone", 5, None), 1);
        found.drop_owner(9);
        let keys = found.into_keys(|owner| owner != 2, 100);
        let report = keys.report(100);
        let held: Vec<&[u8]> = report[&1].iter().map(|e| &*e.key).collect();
        assert_eq!(
            held,
            vec![&b"b"[..], b"c"],
            "a, the oldest, went for the capacity of 2"
        );
        assert!(!report.contains_key(&9));
    }

    #[test]
    fn only_live_keys_of_a_retired_file_are_carried() {
        let mut keys = DedupKeys::default();
        keys.put(1, 10, &entry(b"old", 1, Some(50)), 1);
        keys.put(1, 10, &entry(b"kept", 2, None), 1);
        keys.put(1, 10, &entry(b"newer", 3, None), 2);
        let carried = keys.live_in(1, 100);
        assert_eq!(carried, vec![(1, 10, entry(b"kept", 2, None))]);
        for (owner, _, entry) in &carried {
            keys.carried(*owner, entry, 3);
        }
        assert!(keys.live_in(1, 100).is_empty());
        assert_eq!(keys.live_in(3, 100).len(), 1);
        keys.drop_owner(1);
        assert!(keys.live_in(3, 100).is_empty());
    }
}
