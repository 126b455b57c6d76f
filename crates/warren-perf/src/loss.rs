//! The loss check: which messages of each producer a consumer group received, one bit per sequence number, so a
//! run can state how many confirmed messages never arrived and how many arrived twice. A second copy flagged
//! `redelivered` is not a duplicate (the broker is allowed to redeliver what was not acked).

use std::collections::HashSet;

/// Sequence numbers above this are not tracked (a bitset of 1 GiB per producer): they are counted as stale.
pub(crate) const MAX_TRACKED_SEQ: u64 = 1 << 33;

/// What recording one delivery found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    First,
    /// Seen before, and this copy is flagged redelivered.
    Redelivery,
    /// Seen before, and this copy is not flagged redelivered.
    Duplicate,
}

/// The messages one consumer (or, merged, one consumer group) received.
#[derive(Clone, Debug, Default)]
pub(crate) struct Received {
    /// A bitset per producer, indexed by sequence number.
    bits: Vec<Vec<u64>>,
    /// Copies received with the redelivered flag, by (producer, seq).
    redelivered: HashSet<(u16, u64)>,
    pub duplicates: u64,
}

impl Received {
    pub(crate) fn new(producers: usize) -> Received {
        Received {
            bits: vec![Vec::new(); producers],
            ..Received::default()
        }
    }

    /// Records one delivery; `None` if it is not tracked (a producer of another run, a sequence number of 0 or
    /// above [`MAX_TRACKED_SEQ`]).
    pub(crate) fn record(&mut self, producer: u16, seq: u64, redelivered: bool) -> Option<Seen> {
        if seq == 0 || seq > MAX_TRACKED_SEQ {
            return None;
        }
        let bits = self.bits.get_mut(usize::from(producer))?;
        let word = (seq / 64) as usize;
        if word >= bits.len() {
            bits.resize((word + 1).max(bits.len() * 2), 0);
        }
        let mask = 1u64 << (seq % 64);
        let first = bits[word] & mask == 0;
        bits[word] |= mask;
        if redelivered {
            self.redelivered.insert((producer, seq));
        }
        Some(match (first, redelivered) {
            (true, _) => Seen::First,
            (false, true) => Seen::Redelivery,
            (false, false) => {
                self.duplicates += 1;
                Seen::Duplicate
            }
        })
    }

    /// Folds another consumer's receipts of the same group into this one: a message both received is a duplicate
    /// unless one of the copies was flagged redelivered.
    pub(crate) fn merge(&mut self, other: Received) {
        self.duplicates += other.duplicates;
        for (producer, theirs) in other.bits.into_iter().enumerate() {
            let Some(mine) = self.bits.get_mut(producer) else {
                continue;
            };
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (word, (m, t)) in mine.iter_mut().zip(&theirs).enumerate() {
                let mut both = *m & t;
                while both != 0 {
                    let bit = both.trailing_zeros() as u64;
                    both &= both - 1;
                    let key = (producer as u16, word as u64 * 64 + bit);
                    if !self.redelivered.contains(&key) && !other.redelivered.contains(&key) {
                        self.duplicates += 1;
                    }
                }
                *m |= t;
            }
        }
        self.redelivered.extend(other.redelivered);
    }

    /// How many of `producer`'s messages `1..=sent`, less those in `not_expected` (nacked or never confirmed),
    /// were not received.
    pub(crate) fn missing(&self, producer: usize, sent: u64, not_expected: &HashSet<u64>) -> u64 {
        let bits = self.bits.get(producer).map_or(&[][..], |b| &b[..]);
        let mut received = 0u64;
        let full_words = ((sent + 1) / 64) as usize;
        for word in bits.iter().take(full_words) {
            received += u64::from(word.count_ones());
        }
        let rest_bits = (sent + 1) % 64;
        if rest_bits > 0 {
            if let Some(word) = bits.get(full_words) {
                received += u64::from((word & ((1u64 << rest_bits) - 1)).count_ones());
            }
        }
        // Sequence 0 is never sent.
        if bits.first().is_some_and(|w| w & 1 != 0) {
            received -= 1;
        }
        let excluded_received = not_expected
            .iter()
            .filter(|&&seq| seq >= 1 && seq <= sent && self.contains(producer, seq))
            .count() as u64;
        let expected = sent
            - not_expected
                .iter()
                .filter(|&&s| s >= 1 && s <= sent)
                .count() as u64;
        expected.saturating_sub(received - excluded_received)
    }

    fn contains(&self, producer: usize, seq: u64) -> bool {
        self.bits
            .get(producer)
            .and_then(|b| b.get((seq / 64) as usize))
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_missing_and_duplicates() {
        let mut r = Received::new(2);
        for seq in 1..=1000 {
            if seq != 500 {
                assert_eq!(r.record(0, seq, false), Some(Seen::First));
            }
        }
        assert_eq!(r.record(0, 10, false), Some(Seen::Duplicate));
        assert_eq!(r.record(0, 11, true), Some(Seen::Redelivery));
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.missing(0, 1000, &HashSet::new()), 1);
        assert_eq!(r.missing(0, 1000, &HashSet::from([500])), 0);
        assert_eq!(r.missing(0, 999, &HashSet::from([1000])), 1);
        assert_eq!(r.missing(1, 3, &HashSet::new()), 3);
        assert_eq!(r.missing(0, 0, &HashSet::new()), 0);
        assert_eq!(r.missing(0, 63, &HashSet::new()), 0);
        assert_eq!(r.missing(0, 64, &HashSet::new()), 0);
    }

    #[test]
    fn merging_consumers_of_a_group_finds_cross_duplicates() {
        let mut a = Received::new(1);
        let mut b = Received::new(1);
        for seq in 1..=100 {
            if seq % 2 == 0 {
                a.record(0, seq, false);
            } else {
                b.record(0, seq, false);
            }
        }
        b.record(0, 2, false);
        b.record(0, 4, true);
        b.record(0, 1000, false);
        a.merge(b);
        assert_eq!(a.duplicates, 1, "seq 2 twice; seq 4 was a redelivery");
        assert_eq!(a.missing(0, 100, &HashSet::new()), 0);
        assert_eq!(a.missing(0, 1000, &HashSet::new()), 899);
    }

    #[test]
    fn unknown_producers_are_not_tracked() {
        let mut r = Received::new(1);
        assert_eq!(r.record(3, 1, false), None);
        assert_eq!(r.record(0, 0, false), None);
        assert_eq!(r.record(0, MAX_TRACKED_SEQ + 1, false), None);
        assert_eq!(r.duplicates, 0);
    }
}
