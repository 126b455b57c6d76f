//! At-least-once dead-lettering, the source queue's side, as plain data: messages that died here wait in a
//! pending list, their stored copies kept, until every queue the dead-letter exchange routes them to holds them.
//! One batch at a time is out with the owner; letters it could not deliver (no exchange, no route, a target that
//! refused) go back to the front and wait for a retry, sooner at first and then at most every
//! [`RETRY_MAX_MS`]. RabbitMQ's quorum queues keep these messages in their `dlx` state (counted, not ready) and
//! have a worker retry them (`rabbit_fifo_dlx`, `rabbit_fifo_dlx_worker`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::Payload;
use crate::message::dead_letter::DeathReason;
use crate::queue::dead_letter_batch::LetterOutcome;

/// The first retry of letters that could not be delivered comes this long (milliseconds) after the attempt.
pub(crate) const RETRY_MIN_MS: u64 = 100;

/// Retries come at most this long (milliseconds) apart: each attempt that fails doubles the wait up to it, one
/// that delivers everything resets it. RabbitMQ retries every `dead_letter_worker_publisher_confirm_timeout`
/// (3 minutes in 3.13).
pub(crate) const RETRY_MAX_MS: u64 = 10_000;

/// One message that died here and waits until its dead-letter targets hold it.
#[derive(Clone, Debug)]
pub(crate) struct PendingLetter {
    /// The pending list's id for it, named in the batch's outcomes.
    pub(crate) id: u64,
    /// The message, in memory or only on disk: in the message store (a persistent message of a durable queue) or
    /// in the spill store (this queue still holds its share).
    pub(crate) payload: Payload,
    /// Why it died.
    pub(crate) reason: DeathReason,
    /// When it died: the time its `x-death` entry records, whichever attempt delivers it.
    pub(crate) died_at: SystemTime,
    /// The target queues that already hold a copy (from an attempt a target refused): not sent to again.
    pub(crate) held_by: Vec<Arc<str>>,
}

impl PendingLetter {
    /// The store id of the message's copy in this queue, if it has one (a persistent message).
    pub(crate) fn stored_id(&self) -> Option<u64> {
        match &self.payload {
            Payload::Loaded(m) => m.persistent().then_some(m.id),
            Payload::OnDisk { msg_id, .. } => Some(*msg_id),
            Payload::Spilled { .. } => None,
        }
    }

    /// The id of the spilled message this queue holds a share of, if the letter is in the spill store.
    pub(crate) fn spilled_id(&self) -> Option<u64> {
        match &self.payload {
            Payload::Spilled { msg_id, .. } => Some(*msg_id),
            _ => None,
        }
    }

    fn body_bytes(&self) -> u64 {
        match &self.payload {
            Payload::Loaded(m) => m.body_size(),
            Payload::OnDisk { body_size, .. } | Payload::Spilled { body_size, .. } => {
                u64::from(*body_size)
            }
        }
    }
}

/// The batch out with the owner: its number and how many letters, from the front of the list, it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    number: u64,
    len: usize,
}

/// The messages a queue keeps for at-least-once dead-lettering, in the order they died.
#[derive(Debug)]
pub(crate) struct PendingDeadLetters {
    /// Oldest first; the batch in flight, if any, is the front.
    letters: VecDeque<PendingLetter>,
    /// The batch out with the owner.
    in_flight: Option<InFlight>,
    /// Body bytes of every pending letter (they count against `x-max-length-bytes`).
    bytes: u64,
    /// When letters that could not be delivered are tried again (milliseconds since the epoch); None: at once.
    retry_at: Option<u64>,
    /// The wait before the next retry, should this one fail.
    backoff: u64,
    next_id: u64,
    next_batch: u64,
}

impl Default for PendingDeadLetters {
    fn default() -> Self {
        PendingDeadLetters {
            letters: VecDeque::new(),
            in_flight: None,
            bytes: 0,
            retry_at: None,
            backoff: RETRY_MIN_MS,
            next_id: 0,
            next_batch: 0,
        }
    }
}

impl PendingDeadLetters {
    /// Keeps a message that died at `died_at` for `reason`.
    pub(crate) fn push(&mut self, payload: Payload, reason: DeathReason, died_at: SystemTime) {
        self.next_id += 1;
        let letter = PendingLetter {
            id: self.next_id,
            payload,
            reason,
            died_at,
            held_by: Vec::new(),
        };
        self.bytes += letter.body_bytes();
        self.letters.push_back(letter);
    }

    /// Letters kept, in flight or waiting.
    pub(crate) fn len(&self) -> usize {
        self.letters.len()
    }

    /// Body bytes of the letters kept.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The next batch to hand the owner at `now`: the oldest letters, up to `max_count` and (past the first)
    /// `max_bytes` of body, with its number. None while a batch is in flight, before the retry time, or when
    /// nothing waits. The letters stay here until [`PendingDeadLetters::settle`].
    pub(crate) fn take_batch(
        &mut self,
        now: u64,
        max_count: usize,
        max_bytes: u64,
    ) -> Option<(u64, Vec<PendingLetter>)> {
        if self.in_flight.is_some() || self.letters.is_empty() {
            return None;
        }
        if self.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        let mut bytes = 0;
        let mut batch = Vec::new();
        for letter in self.letters.iter().take(max_count) {
            if !batch.is_empty() && bytes + letter.body_bytes() > max_bytes {
                break;
            }
            bytes += letter.body_bytes();
            batch.push(letter.clone());
        }
        self.next_batch += 1;
        self.in_flight = Some(InFlight {
            number: self.next_batch,
            len: batch.len(),
        });
        Some((self.next_batch, batch))
    }

    /// Takes the outcome of batch `number` at `now`: the letters delivered leave the list and are returned (their
    /// stored copies are the caller's to forget); the others stay at the front, remembering which queues took
    /// them, and wait for the retry. A letter the outcome does not name (the caller gave up on it, see
    /// [`PendingDeadLetters::remove`]) is left as it is. A stale batch number changes nothing.
    pub(crate) fn settle(
        &mut self,
        number: u64,
        outcomes: &[LetterOutcome],
        now: u64,
    ) -> Vec<PendingLetter> {
        let Some(in_flight) = self.in_flight.filter(|f| f.number == number) else {
            return Vec::new();
        };
        self.in_flight = None;
        let batch: Vec<PendingLetter> = self
            .letters
            .drain(..in_flight.len.min(self.letters.len()))
            .collect();
        let mut delivered = Vec::new();
        let mut kept = Vec::new();
        for mut letter in batch {
            match outcomes.iter().find(|o| o.id == letter.id) {
                Some(outcome) if outcome.delivered => {
                    self.bytes -= letter.body_bytes();
                    delivered.push(letter);
                }
                Some(outcome) => {
                    letter.held_by = outcome.held_by.clone();
                    kept.push(letter);
                }
                None => kept.push(letter),
            }
        }
        let failed = !kept.is_empty();
        for letter in kept.into_iter().rev() {
            self.letters.push_front(letter);
        }
        if failed {
            self.retry_at = Some(now.saturating_add(self.backoff));
            self.backoff = (self.backoff * 2).min(RETRY_MAX_MS);
        } else {
            self.retry_now();
        }
        delivered
    }

    /// Removes letter `id` (it cannot be read back from the store); the batch in flight, if it held it, shrinks.
    pub(crate) fn remove(&mut self, id: u64) -> Option<PendingLetter> {
        let at = self.letters.iter().position(|l| l.id == id)?;
        let letter = self.letters.remove(at)?;
        self.bytes -= letter.body_bytes();
        if let Some(f) = &mut self.in_flight {
            if at < f.len {
                f.len -= 1;
            }
        }
        Some(letter)
    }

    /// Tries the waiting letters at the next chance, with the shortest wait after (the dead-letter settings
    /// changed, as RabbitMQ's worker looks its topology up again).
    pub(crate) fn retry_now(&mut self) {
        self.retry_at = None;
        self.backoff = RETRY_MIN_MS;
    }

    /// Whether the last batch left letters undelivered (they wait for a retry); false again after a batch that
    /// delivered everything, or [`PendingDeadLetters::retry_now`].
    pub(crate) fn is_retrying(&self) -> bool {
        self.retry_at.is_some()
    }

    /// When letters wait for a retry and none is in flight: the time of the retry.
    pub(crate) fn next_retry(&self) -> Option<u64> {
        match (self.in_flight, self.letters.is_empty()) {
            (None, false) => self.retry_at,
            _ => None,
        }
    }

    /// Whether a batch can go out now (nothing in flight, letters waiting, the retry time passed).
    pub(crate) fn ready_to_send(&self, now: u64) -> bool {
        self.in_flight.is_none()
            && !self.letters.is_empty()
            && self.retry_at.is_none_or(|at| now >= at)
    }

    /// Empties the list (the queue stopped dead-lettering at least once); returns what it held. The outcome of a
    /// batch in flight is ignored when it comes.
    pub(crate) fn drain(&mut self) -> Vec<PendingLetter> {
        self.in_flight = None;
        self.bytes = 0;
        self.retry_now();
        self.letters.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, QueuedMessage};
    use crate::queue::state::{Admission, Place, QueueState, ReadyRules};
    use crate::queue::SettleAction;
    use bytes::Bytes;

    fn message(body: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            "".into(),
            "q".into(),
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(body.as_bytes()),
        ))
    }

    fn loaded(body: &'static str) -> Payload {
        Payload::Loaded(message(body))
    }

    fn with(bodies: &[&'static str]) -> PendingDeadLetters {
        let mut pending = PendingDeadLetters::default();
        for body in bodies {
            pending.push(loaded(body), DeathReason::Rejected, SystemTime::UNIX_EPOCH);
        }
        pending
    }

    fn outcome(letter: &PendingLetter, delivered: bool, held_by: &[&str]) -> LetterOutcome {
        LetterOutcome {
            id: letter.id,
            delivered,
            held_by: held_by.iter().map(|q| Arc::from(*q)).collect(),
        }
    }

    fn bodies(letters: &[PendingLetter]) -> Vec<&[u8]> {
        letters
            .iter()
            .map(|l| match &l.payload {
                Payload::Loaded(m) => &m.body[..],
                Payload::OnDisk { .. } | Payload::Spilled { .. } => &b"<disk>"[..],
            })
            .collect()
    }

    #[test]
    fn letters_stay_counted_until_their_batch_is_delivered() {
        let mut pending = with(&["aa", "bbb"]);
        assert_eq!((pending.len(), pending.bytes()), (2, 5));
        let (number, batch) = pending.take_batch(0, 10, 1 << 20).unwrap();
        assert_eq!(bodies(&batch), vec![&b"aa"[..], b"bbb"]);
        assert!(
            pending.take_batch(0, 10, 1 << 20).is_none(),
            "one batch at a time"
        );
        assert_eq!((pending.len(), pending.bytes()), (2, 5), "still kept");
        let outcomes: Vec<_> = batch.iter().map(|l| outcome(l, true, &["t"])).collect();
        let delivered = pending.settle(number, &outcomes, 0);
        assert_eq!(bodies(&delivered), vec![&b"aa"[..], b"bbb"]);
        assert_eq!((pending.len(), pending.bytes()), (0, 0));
    }

    #[test]
    fn undelivered_letters_wait_at_the_front_with_a_growing_bounded_backoff() {
        let mut pending = with(&["a", "b", "c"]);
        let (number, batch) = pending.take_batch(1_000, 2, 1 << 20).unwrap();
        let outcomes = [
            outcome(&batch[0], false, &["took-it"]),
            outcome(&batch[1], true, &["t"]),
        ];
        let delivered = pending.settle(number, &outcomes, 1_000);
        assert_eq!(bodies(&delivered), vec![b"b".as_slice()]);
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.next_retry(), Some(1_000 + RETRY_MIN_MS));
        assert!(
            pending.take_batch(1_050, 10, 1 << 20).is_none(),
            "not before the retry"
        );
        assert!(!pending.ready_to_send(1_050));
        let (number, batch) = pending.take_batch(1_100, 10, 1 << 20).unwrap();
        assert_eq!(
            bodies(&batch),
            vec![b"a".as_slice(), b"c"],
            "the undelivered one first"
        );
        assert_eq!(
            batch[0].held_by,
            vec![Arc::<str>::from("took-it")],
            "a retry skips the queues that took it"
        );
        let outcomes: Vec<_> = batch.iter().map(|l| outcome(l, false, &[])).collect();
        pending.settle(number, &outcomes, 2_000);
        assert_eq!(pending.next_retry(), Some(2_000 + 2 * RETRY_MIN_MS));
        for _ in 0..20 {
            let at = pending.next_retry().unwrap();
            let (number, batch) = pending.take_batch(at, 10, 1 << 20).unwrap();
            let outcomes: Vec<_> = batch.iter().map(|l| outcome(l, false, &[])).collect();
            pending.settle(number, &outcomes, at);
            assert!(pending.next_retry().unwrap() - at <= RETRY_MAX_MS);
        }
        assert_eq!(pending.len(), 2, "never dropped");
        let at = pending.next_retry().unwrap();
        let (number, batch) = pending.take_batch(at, 10, 1 << 20).unwrap();
        let outcomes: Vec<_> = batch.iter().map(|l| outcome(l, true, &[])).collect();
        pending.settle(number, &outcomes, at);
        assert_eq!((pending.len(), pending.bytes()), (0, 0));
        pending.push(loaded("d"), DeathReason::Expired, SystemTime::UNIX_EPOCH);
        assert!(
            pending.ready_to_send(at),
            "a delivered batch resets the wait"
        );
    }

    #[test]
    fn a_batch_is_cut_by_count_and_bytes_but_takes_at_least_one() {
        let mut pending = with(&["aaaa", "bbbb", "cc"]);
        let (_, batch) = pending.take_batch(0, 10, 2).unwrap();
        assert_eq!(bodies(&batch), vec![b"aaaa".as_slice()]);
        let mut pending = with(&["a", "b", "c"]);
        let (_, batch) = pending.take_batch(0, 2, 1 << 20).unwrap();
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn a_stale_outcome_changes_nothing_and_drain_empties_the_list() {
        let mut pending = with(&["a", "b"]);
        let (number, batch) = pending.take_batch(0, 10, 1 << 20).unwrap();
        let kept = pending.drain();
        assert_eq!(kept.len(), 2);
        assert_eq!((pending.len(), pending.bytes()), (0, 0));
        pending.push(loaded("c"), DeathReason::Expired, SystemTime::UNIX_EPOCH);
        let outcomes: Vec<_> = batch.iter().map(|l| outcome(l, true, &[])).collect();
        assert!(pending.settle(number, &outcomes, 0).is_empty());
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn a_letter_removed_while_in_flight_shrinks_its_batch() {
        let mut pending = with(&["a", "b", "c"]);
        let (number, batch) = pending.take_batch(0, 2, 1 << 20).unwrap();
        assert!(pending.remove(batch[0].id).is_some());
        assert_eq!(pending.bytes(), 2);
        let outcomes = [outcome(&batch[1], true, &[])];
        let delivered = pending.settle(number, &outcomes, 0);
        assert_eq!(bodies(&delivered), vec![b"b".as_slice()]);
        assert_eq!(pending.len(), 1, "c was never in the batch");
    }

    /// A queue state holding `rules`.
    fn queue_with(rules: ReadyRules) -> QueueState {
        QueueState {
            rules,
            ..QueueState::default()
        }
    }

    /// Takes the first ready message as a delivery.
    fn take(state: &mut QueueState) -> QueuedMessage {
        let entry = state.pop_ready().unwrap();
        let Payload::Loaded(message) = entry.payload else {
            panic!("expected a loaded message");
        };
        QueuedMessage {
            seq: entry.seq,
            message,
            redelivered: entry.redelivered,
            expires_at: entry.expires_at,
            returns: entry.returns,
        }
    }

    #[test]
    fn letters_kept_for_at_least_once_dead_lettering_count_against_the_limits_but_not_as_ready() {
        let mut state = queue_with(ReadyRules {
            max_length: Some(2),
            max_length_bytes: Some(10),
            reject_when_full: true,
            ..ReadyRules::default()
        });
        state.enqueue(message("1"), Place::Memory, 0);
        let first = take(&mut state);
        state.record_unacked(first.clone(), None);
        let settled = state.settle(&[(first.seq, None)], SettleAction::Discard);
        for message in settled.gone {
            state.dead_letters.push(
                Payload::Loaded(message),
                DeathReason::Rejected,
                SystemTime::UNIX_EPOCH,
            );
        }
        assert_eq!(state.message_count(), 0, "not ready");
        assert_eq!(
            state.enqueue(message("2"), Place::Memory, 0),
            Admission::Enqueued
        );
        assert_eq!(
            state.enqueue(message("3"), Place::Memory, 0),
            Admission::Refused,
            "the kept letter fills the queue"
        );
        let (number, batch) = state.dead_letters.take_batch(0, 10, 1 << 20).unwrap();
        let outcomes: Vec<_> = batch
            .iter()
            .map(|l| LetterOutcome {
                id: l.id,
                delivered: true,
                held_by: Vec::new(),
            })
            .collect();
        assert_eq!(state.dead_letters.settle(number, &outcomes, 0).len(), 1);
        assert_eq!(
            state.enqueue(message("3"), Place::Memory, 0),
            Admission::Enqueued
        );

        let mut state = queue_with(ReadyRules {
            max_length_bytes: Some(4),
            reject_when_full: true,
            ..ReadyRules::default()
        });
        state.dead_letters.push(
            Payload::OnDisk {
                msg_id: 9,
                body_size: 3,
            },
            DeathReason::Expired,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            state.enqueue(message("aa"), Place::Memory, 0),
            Admission::Refused
        );
        assert_eq!(
            state.enqueue(message("a"), Place::Memory, 0),
            Admission::Enqueued
        );
    }
}
