//! At-least-once dead-lettering's receipts. A source queue hands its owner a batch of dead letters with a
//! [`DeadLetterBatch`]; each target queue the owner sends a copy to, and the store when it keeps a persistent copy
//! for durable targets, holds a [`LetterShare`] of it, released once the copy is enqueued (or durable). When the
//! last share and the batch itself are gone, the batch tells its source, on the source's settlement path, which
//! letters every target now holds ([`QueueCommand::DeadLettersSettled`]); the source forgets those and keeps the
//! others for a retry. Dropping is the release, as for publisher confirms (`session::confirm`): a copy sent to a
//! queue deleted meanwhile counts as held, as RabbitMQ's dead-letter worker counts it; only an explicit
//! [`LetterShare::refuse`] (a full target under `reject-publish`, a failed store write) makes the letter retried.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{QueueCommand, QueueHandle};

/// One batch of dead letters on its way from a source queue to its dead-letter exchange's queues.
pub(crate) struct DeadLetterBatch {
    /// The queue the letters died in, told of the outcome when the batch is dropped.
    source: Weak<QueueHandle>,
    /// The source's number for this batch, so it can tell a stale receipt from the one it waits for.
    number: u64,
    /// Per letter, in the order the source gave them.
    letters: Mutex<Vec<LetterProgress>>,
}

/// What the batch knows of one letter.
#[derive(Debug)]
struct LetterProgress {
    /// The source's id for the letter.
    id: u64,
    /// Target queues that hold a copy: from earlier attempts, and those whose share was released in this one.
    held_by: Vec<Arc<str>>,
    /// The dead-letter exchange routed it somewhere (or an earlier attempt did): without a route it is retried.
    routed: bool,
    /// A target refused it, or its stored copy failed: retried.
    refused: bool,
}

/// What became of one letter of a batch, as its source learns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LetterOutcome {
    /// The source's id for the letter.
    pub(crate) id: u64,
    /// Every queue it routes to holds it (on disk where it is persistent and the queue durable): the source may
    /// forget it.
    pub(crate) delivered: bool,
    /// The queues that hold it so far; a retry does not send it to them again.
    pub(crate) held_by: Vec<Arc<str>>,
}

impl DeadLetterBatch {
    /// A batch of `letters` (the source's id of each, with the queues that already hold it) numbered `number` by
    /// `source`.
    pub(crate) fn new(
        source: Weak<QueueHandle>,
        number: u64,
        letters: impl IntoIterator<Item = (u64, Vec<Arc<str>>)>,
    ) -> Arc<DeadLetterBatch> {
        let letters = letters
            .into_iter()
            .map(|(id, held_by)| LetterProgress {
                id,
                routed: !held_by.is_empty(),
                held_by,
                refused: false,
            })
            .collect();
        Arc::new(DeadLetterBatch {
            source,
            number,
            letters: Mutex::new(letters),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<LetterProgress>> {
        self.letters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queues that held letter `letter` (its index in the batch) before this attempt.
    pub(crate) fn held_by(&self, letter: usize) -> Vec<Arc<str>> {
        self.lock()
            .get(letter)
            .map(|l| l.held_by.clone())
            .unwrap_or_default()
    }

    /// Records that the dead-letter exchange routes letter `letter` to at least one queue.
    pub(crate) fn routed(&self, letter: usize) {
        if let Some(l) = self.lock().get_mut(letter) {
            l.routed = true;
        }
    }

    /// A share of letter `letter` for `target` (its queue name), or for the store's copy (None).
    pub(crate) fn share(self: &Arc<Self>, letter: usize, target: Option<Arc<str>>) -> LetterShare {
        LetterShare {
            batch: self.clone(),
            letter,
            target,
            refused: false,
        }
    }

    /// What became of each letter so far: delivered once routed and refused by nobody.
    pub(crate) fn outcomes(&self) -> Vec<LetterOutcome> {
        self.lock()
            .iter()
            .map(|l| LetterOutcome {
                id: l.id,
                delivered: l.routed && !l.refused,
                held_by: l.held_by.clone(),
            })
            .collect()
    }
}

impl Drop for DeadLetterBatch {
    /// Every share is gone: the source learns the outcome (nothing, if it is gone too).
    fn drop(&mut self) {
        if let Some(source) = self.source.upgrade() {
            source.settle(QueueCommand::DeadLettersSettled {
                batch: self.number,
                outcomes: self.outcomes(),
            });
        }
    }
}

/// One destination's part in delivering a dead letter: a target queue's copy, or the store's. Dropping it records
/// the copy as held; [`LetterShare::refuse`] records that it was not taken.
pub(crate) struct LetterShare {
    batch: Arc<DeadLetterBatch>,
    letter: usize,
    /// The target queue's name; None for the store's copy.
    target: Option<Arc<str>>,
    refused: bool,
}

impl LetterShare {
    /// The copy was not taken (a full target under `reject-publish`, a failed store write): the letter is retried.
    pub(crate) fn refuse(mut self) {
        self.refused = true;
    }
}

impl Drop for LetterShare {
    fn drop(&mut self) {
        let mut letters = self.batch.lock();
        let Some(letter) = letters.get_mut(self.letter) else {
            return;
        };
        if self.refused {
            letter.refused = true;
        } else if let Some(target) = self.target.take() {
            if !letter.held_by.contains(&target) {
                letter.held_by.push(target);
            }
        }
    }
}

impl std::fmt::Debug for LetterShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LetterShare({}, letter {}, {:?})",
            self.batch.number, self.letter, self.target
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(letters: &[(u64, &[&str])]) -> Arc<DeadLetterBatch> {
        DeadLetterBatch::new(
            Weak::new(),
            1,
            letters
                .iter()
                .map(|(id, held)| (*id, held.iter().map(|q| Arc::from(*q)).collect())),
        )
    }

    fn names(outcome: &LetterOutcome) -> Vec<&str> {
        outcome.held_by.iter().map(|q| &**q).collect()
    }

    #[test]
    fn a_letter_is_delivered_once_every_share_is_released() {
        let batch = batch(&[(7, &[])]);
        batch.routed(0);
        let a = batch.share(0, Some("a".into()));
        let store = batch.share(0, None);
        drop(a);
        assert_eq!(names(&batch.outcomes()[0]), vec!["a"]);
        drop(store);
        let outcome = &batch.outcomes()[0];
        assert!(outcome.delivered);
        assert_eq!(outcome.id, 7);
    }

    #[test]
    fn a_letter_routed_nowhere_is_not_delivered() {
        let batch = batch(&[(1, &[]), (2, &[])]);
        batch.routed(1);
        let outcomes = batch.outcomes();
        assert!(!outcomes[0].delivered);
        assert!(outcomes[1].delivered);
    }

    #[test]
    fn a_refusal_keeps_the_letter_and_remembers_who_took_it() {
        let batch = batch(&[(3, &["earlier"])]);
        let full = batch.share(0, Some("full".into()));
        let fine = batch.share(0, Some("fine".into()));
        full.refuse();
        drop(fine);
        let outcome = &batch.outcomes()[0];
        assert!(!outcome.delivered);
        assert_eq!(names(outcome), vec!["earlier", "fine"]);
    }

    #[test]
    fn a_letter_some_queue_held_before_counts_as_routed() {
        // Its routes changed so that nothing is left to send: it is done, as RabbitMQ's worker acks it.
        let batch = batch(&[(4, &["gone"])]);
        assert!(batch.outcomes()[0].delivered);
    }
}
