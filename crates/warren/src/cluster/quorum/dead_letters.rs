//! A replicated quorum queue's at-least-once dead letters, as one node's actor tracks them. The letters themselves
//! are in the replicated state (every member keeps them until the log says their targets hold them); each member's
//! actor mirrors that list from the applied effects, so that whichever member leads can send them. The leader hands
//! the queue's owner one batch at a time with a receipt (`queue::dead_letter_batch`); the letters every target holds
//! are then written to the log as done ([`super::machine::Op::DeadLettersDone`]), which forgets them everywhere. A
//! leader change before that makes the new leader send them again: at least once, never lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use super::machine::DeadMessage;
use crate::queue::dead_letter_batch::LetterOutcome;

/// Letters sent in one batch at most.
const BATCH_LETTERS: usize = 1_000;

/// How long a letter that did not reach every target waits before it is sent again (RabbitMQ's dead-letter worker
/// retries on a timer too).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a delivered letter waits for its done entry to be applied before it is sent again (the entry was lost
/// with a leader change).
const DONE_WAIT: Duration = Duration::from_secs(10);

/// One letter as this node knows it.
#[derive(Debug)]
struct Letter {
    dead: DeadMessage,
    /// The target queues that hold it already: a retry does not send it to them again.
    held_by: Vec<Arc<str>>,
    /// Not sent again before this.
    not_before: Option<Instant>,
}

/// The mirror of the state's kept dead letters, and the batch in flight.
#[derive(Debug, Default)]
pub(crate) struct DeadLetterOutbox {
    letters: BTreeMap<u64, Letter>,
    /// The number of the batch in flight, if one is.
    in_flight: Option<u64>,
    /// The number of the last batch.
    last_batch: u64,
}

/// A batch to send: its number and its letters (sequence number, message, queues that hold it).
pub(crate) type OutboxBatch = (u64, Vec<(u64, DeadMessage, Vec<Arc<str>>)>);

impl DeadLetterOutbox {
    /// Letter `seq` died and is kept.
    pub(crate) fn add(&mut self, seq: u64, dead: DeadMessage) {
        self.letters.insert(
            seq,
            Letter {
                dead,
                held_by: Vec::new(),
                not_before: None,
            },
        );
    }

    /// The state forgot letters `seqs`.
    pub(crate) fn forget(&mut self, seqs: &[u64]) {
        for seq in seqs {
            self.letters.remove(seq);
        }
    }

    /// The state's whole list (after a start or a snapshot): letters not in it are forgotten, new ones added;
    /// those known keep what this node learnt of them.
    pub(crate) fn replace(&mut self, all: Vec<(u64, DeadMessage)>) {
        let mut known = std::mem::take(&mut self.letters);
        for (seq, dead) in all {
            let letter = known.remove(&seq).unwrap_or(Letter {
                dead,
                held_by: Vec::new(),
                not_before: None,
            });
            self.letters.insert(seq, letter);
        }
    }

    /// Letters kept.
    pub(crate) fn len(&self) -> usize {
        self.letters.len()
    }

    /// The next batch to send, numbered: none while one is in flight; the letters whose wait is over.
    pub(crate) fn take_batch(&mut self, now: Instant) -> Option<OutboxBatch> {
        if self.in_flight.is_some() {
            return None;
        }
        let letters: Vec<(u64, DeadMessage, Vec<Arc<str>>)> = self
            .letters
            .iter()
            .filter(|(_, l)| l.not_before.is_none_or(|at| at <= now))
            .take(BATCH_LETTERS)
            .map(|(seq, l)| (*seq, l.dead.clone(), l.held_by.clone()))
            .collect();
        if letters.is_empty() {
            return None;
        }
        self.last_batch += 1;
        self.in_flight = Some(self.last_batch);
        Some((self.last_batch, letters))
    }

    /// Batch `number`'s receipt: the letters every target holds, to be written as done. Those not delivered wait
    /// [`RETRY_AFTER`]; delivered ones [`DONE_WAIT`], in case the done entry is lost.
    pub(crate) fn settled(
        &mut self,
        number: u64,
        outcomes: &[LetterOutcome],
        now: Instant,
    ) -> Vec<u64> {
        if self.in_flight == Some(number) {
            self.in_flight = None;
        }
        let mut done = Vec::new();
        for outcome in outcomes {
            let Some(letter) = self.letters.get_mut(&outcome.id) else {
                continue;
            };
            letter.held_by = outcome.held_by.clone();
            if outcome.delivered {
                letter.not_before = Some(now + DONE_WAIT);
                done.push(outcome.id);
            } else {
                letter.not_before = Some(now + RETRY_AFTER);
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::quorum::machine::{test_message, Death};

    fn dead(body: &'static str) -> DeadMessage {
        DeadMessage {
            message: test_message(body),
            reason: Death::Rejected,
            died_at: 1,
        }
    }

    #[test]
    fn one_batch_at_a_time_undelivered_letters_retry_and_delivered_ones_are_done() {
        let mut outbox = DeadLetterOutbox::default();
        outbox.add(1, dead("a"));
        outbox.add(2, dead("b"));
        let now = Instant::now();
        let (number, letters) = outbox.take_batch(now).expect("a batch");
        assert_eq!(letters.len(), 2);
        assert!(outbox.take_batch(now).is_none(), "one in flight at a time");
        let target: Arc<str> = Arc::from("dlq");
        let outcomes = [
            LetterOutcome {
                id: 1,
                delivered: true,
                held_by: vec![target.clone()],
            },
            LetterOutcome {
                id: 2,
                delivered: false,
                held_by: Vec::new(),
            },
        ];
        assert_eq!(outbox.settled(number, &outcomes, now), vec![1]);
        assert!(outbox.take_batch(now).is_none(), "both wait");
        let (_, letters) = outbox.take_batch(now + RETRY_AFTER).expect("the retry");
        assert_eq!(letters.iter().map(|l| l.0).collect::<Vec<_>>(), vec![2]);
        outbox.forget(&[1]);
        assert_eq!(outbox.len(), 1);
        // A resync keeps what is known of letters still kept and drops the others.
        outbox.replace(vec![(3, dead("c"))]);
        assert_eq!(outbox.len(), 1);
    }
}
