//! At-least-once dead-lettering, the actor's side (`x-dead-letter-strategy: at-least-once` on a quorum queue with
//! `reject-publish` overflow). A message that dies here stays, with its stored copy, in the state's pending list
//! (`state::PendingDeadLetters`) until every queue its dead-letter exchange routes it to holds it, enqueued and,
//! where persistent and durable, on disk. The actor hands its owner one batch at a time with a receipt
//! ([`DeadLetterBatch`]); the receipt comes back on the settlement path, and only then are the delivered letters'
//! stored copies forgotten (and the spill shares of spilled ones released). A crash before that leaves the message in this queue (the store recovers it): it may
//! be delivered or dead-lettered again, never lost.

use std::sync::Arc;
use std::time::SystemTime;

use super::actor::QueueActor;
use super::arguments::QueueType;
use super::dead_letter_batch::{DeadLetterBatch, LetterOutcome};
use super::owner::{DeadLetter, DeadLetters};
use super::state::{PagedOut, Payload, PendingLetter, RETRY_MAX_MS};
use super::MAX_RUN;
use crate::message::dead_letter::DeathReason;
use crate::message::{now_ms, Message};

/// Body bytes of one batch at most (past its first letter): what reading paged-out letters back costs in memory.
const BATCH_BYTES: u64 = 1 << 20;

impl QueueActor {
    /// Keeps messages that died here for `reason` until their dead-letter targets hold them.
    pub(super) fn keep_dead_letters(
        &mut self,
        payloads: impl IntoIterator<Item = Payload>,
        reason: DeathReason,
    ) {
        let died_at = SystemTime::now();
        for payload in payloads {
            self.state.dead_letters.push(payload, reason, died_at);
        }
    }

    /// Hands the owner the next batch of kept letters, each with its share of the batch's receipt: when none is in
    /// flight and the retry time, if any, has come. Paged-out letters are read back first; one that cannot be
    /// read is dropped (logged), as a paged-out message the queue cannot deliver is.
    pub(super) async fn send_dead_letters(&mut self) {
        if !self.at_least_once {
            return;
        }
        let now = now_ms();
        if !self.state.dead_letters.ready_to_send(now) {
            return;
        }
        let Some((number, letters)) = self
            .state
            .dead_letters
            .take_batch(now, MAX_RUN, BATCH_BYTES)
        else {
            return;
        };
        let messages = self.load_letters(&letters).await;
        let mut receipts = Vec::with_capacity(letters.len());
        let mut dead = Vec::with_capacity(letters.len());
        for (letter, message) in letters.into_iter().zip(messages) {
            match message {
                Some(message) => {
                    receipts.push((letter.id, letter.held_by));
                    dead.push(DeadLetter {
                        message,
                        reason: letter.reason,
                        died_at: letter.died_at,
                    });
                }
                None => {
                    if let Some(gone) = self.state.dead_letters.remove(letter.id) {
                        self.forget_letters(&[gone]);
                    }
                }
            }
        }
        // Dropped unsent (no owner, no exchange configured any more), the batch reports every letter undelivered
        // and they wait for the retry.
        let batch = DeadLetterBatch::new(self.handle.clone(), number, receipts);
        let (Some(exchange), Some(handle), Some(owner)) = (
            &self.settings.dead_letter_exchange,
            self.handle.upgrade(),
            self.owner.upgrade(),
        ) else {
            return;
        };
        owner.dead_letter(
            &handle,
            DeadLetters {
                exchange: exchange.clone(),
                routing_key: self.settings.dead_letter_routing_key.clone(),
                letters: dead,
                batch: Some(batch),
            },
        );
    }

    /// The messages of `letters`, in order, reading paged-out ones back (from the store or the spill store); None
    /// for one that cannot be read (logged).
    async fn load_letters(&self, letters: &[PendingLetter]) -> Vec<Option<Arc<Message>>> {
        let paged_out: Vec<PagedOut> = letters
            .iter()
            .filter_map(|l| l.payload.paged_out())
            .collect();
        let mut read = match paged_out.is_empty() {
            false => match super::paging::read_paged_out(self.page_sources(), paged_out).await {
                Ok(results) => results.into_iter().map(Some).collect(),
                // The blocking pool could not run the read (the runtime is stopping): nothing was read.
                Err(_) => Vec::new(),
            },
            true => Vec::new(),
        }
        .into_iter();
        let (queue, vhost) = self.name();
        letters
            .iter()
            .map(|letter| match &letter.payload {
                Payload::Loaded(message) => Some(message.clone()),
                Payload::OnDisk { msg_id, .. } | Payload::Spilled { msg_id, .. } => match read.next() {
                    Some(Some(Ok(message))) => Some(Arc::new(message)),
                    Some(Some(Err(error))) => {
                        tracing::error!(%error, "queue '{queue}' in vhost '{vhost}': cannot read message {msg_id} back to dead-letter it; dropped");
                        None
                    }
                    _ => {
                        tracing::error!("queue '{queue}' in vhost '{vhost}': cannot read message {msg_id} back to dead-letter it; dropped");
                        None
                    }
                },
            })
            .collect()
    }

    /// The receipt of batch `number` came back: the letters every target holds are forgotten, their stored copies
    /// with them; the others wait for the retry.
    pub(super) fn dead_letters_settled(&mut self, number: u64, outcomes: &[LetterOutcome]) {
        let was_retrying = self.state.dead_letters.is_retrying();
        let delivered = self.state.dead_letters.settle(number, outcomes, now_ms());
        self.forget_letters(&delivered);
        if !was_retrying && self.state.dead_letters.is_retrying() {
            // Once per run of failed attempts, as RabbitMQ's worker logs a missing exchange or route once.
            let (queue, vhost) = self.name();
            tracing::warn!(
                "queue '{queue}' in vhost '{vhost}': {} dead-lettered message(s) could not be delivered to \
                 dead-letter exchange '{}' (it does not exist, routes them nowhere, or a target queue refused \
                 them): kept in the queue and retried at most every {} s",
                self.state.dead_letters.len(),
                self.settings.dead_letter_exchange.as_deref().unwrap_or_default(),
                RETRY_MAX_MS / 1000
            );
        }
    }

    /// The queue no longer dead-letters at least once (a policy changed its strategy, overflow or exchange): the
    /// messages it kept are deleted, as RabbitMQ deletes them on that switch, and the count logged.
    pub(super) fn drop_dead_letters(&mut self) {
        let dropped = self.state.dead_letters.drain();
        if dropped.is_empty() {
            return;
        }
        let bytes: u64 = dropped
            .iter()
            .map(|l| match &l.payload {
                Payload::Loaded(m) => m.body_size(),
                Payload::OnDisk { body_size, .. } | Payload::Spilled { body_size, .. } => {
                    u64::from(*body_size)
                }
            })
            .sum();
        let (queue, vhost) = self.name();
        tracing::info!(
            "Deleted {} dead-lettered messages (with total messages size of {bytes} bytes) in queue '{queue}' in \
             vhost '{vhost}'",
            dropped.len()
        );
        self.forget_letters(&dropped);
    }

    /// Letters that left the pending list (delivered, dropped): their stored copies are forgotten and their spill
    /// shares released.
    pub(super) fn forget_letters(&self, letters: &[PendingLetter]) {
        self.forget_stored(letters.iter().filter_map(|l| l.stored_id()).collect());
        self.release_spilled(letters.iter().filter_map(|l| l.spilled_id()).collect());
    }

    /// Logs RabbitMQ's warning when the queue asks for at-least-once dead-lettering but falls back to at most
    /// once (its overflow is `drop-head`): at start (`before` None), and when a settings change brings it about.
    pub(super) fn warn_at_least_once_fallback(
        &self,
        before: Option<&super::settings::QueueSettings>,
    ) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let queue_type: QueueType = handle.spec.args.queue_type;
        let falls_back = self.settings.at_least_once_falls_back(queue_type);
        if !falls_back || before.is_some_and(|b| b.at_least_once_falls_back(queue_type)) {
            return;
        }
        tracing::warn!(
            "Falling back to dead-letter-strategy at-most-once for queue '{}' in vhost '{}' because configured \
             dead-letter-strategy at-least-once is incompatible with effective overflow strategy drop-head. To \
             enable dead-letter-strategy at-least-once, set overflow strategy to reject-publish.",
            handle.spec.name,
            handle.spec.vhost
        );
    }
}
