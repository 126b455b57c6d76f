//! Reading paged-out message bodies back from the message store: the actor's `take_next` and what it needs. The
//! reads are blocking file I/O (and may wait for the store's writer to fsync), so they run on tokio's blocking
//! pool, never on an async worker; the queue's actor awaits the result, which holds back only that queue.

use std::sync::Arc;

use warren_store::{Store, StoreError};

use super::actor::QueueActor;
use super::state::{Payload, ReadyEntry};
use crate::message::{Message, QueuedMessage};

/// Body bytes read back per trip to the blocking pool (at least one message). A trip costs a thread hand-off, so
/// a run of paged-out messages is read together; the cap bounds the memory a read-ahead takes.
const READ_AHEAD_BYTES: u64 = 256 * 1024;

/// Messages read back per trip at most.
const READ_AHEAD_MESSAGES: usize = 64;

impl QueueActor {
    /// Takes the next ready message for delivery, reading it back from the store first if it was paged out. None
    /// if nothing is ready, or if the read could not run (the message stays queued for the next dispatch).
    pub(super) async fn take_next(&mut self) -> Option<QueuedMessage> {
        loop {
            let entry = self.state.pop_ready()?;
            match entry.payload {
                Payload::Loaded(message) => {
                    return Some(QueuedMessage {
                        seq: entry.seq,
                        message,
                        redelivered: entry.redelivered,
                        expires_at: entry.expires_at,
                        returns: entry.returns,
                    })
                }
                Payload::OnDisk { .. } => {
                    self.state.unpop_entry(entry);
                    if !self.load_front().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads the paged-out messages at the front of the ready list back into memory, in place, on the blocking
    /// pool (see `paging`). Meanwhile this actor waits, so nothing else touches the ready list and queue order is
    /// kept; other queues run on. A message the store cannot read is dropped from the queue and logged: one
    /// damaged record must not wedge it. False if the read could not run at all.
    async fn load_front(&mut self) -> bool {
        let ids = self
            .state
            .paged_out_front(READ_AHEAD_BYTES, READ_AHEAD_MESSAGES);
        let Some(d) = &self.storage else {
            // Only durable queues page out: an entry on disk without a store cannot be read.
            for _ in &ids {
                self.state.pop_ready();
            }
            self.drop_unreadable(&ids, "the queue has no message store");
            return true;
        };
        let results = match read_paged_out(d.store.clone(), d.queue_id, ids.clone()).await {
            Ok(results) => results,
            Err(error) => {
                let (queue, vhost) = self.name();
                tracing::error!(%error, "queue '{queue}' in vhost '{vhost}': reading paged-out messages failed");
                return false;
            }
        };
        let mut loaded = Vec::with_capacity(results.len());
        for (msg_id, result) in ids.iter().zip(results) {
            let Some(entry) = self.state.pop_ready() else {
                break;
            };
            match result {
                Ok(message) => loaded.push(ReadyEntry {
                    payload: Payload::Loaded(Arc::new(message)),
                    ..entry
                }),
                Err(error) => self.drop_unreadable(&[*msg_id], &error.to_string()),
            }
        }
        for entry in loaded.into_iter().rev() {
            self.state.unpop_entry(entry);
        }
        true
    }

    /// Logs and forgets paged-out messages that cannot be read back; the caller took them off the ready list.
    fn drop_unreadable(&self, msg_ids: &[u64], error: &str) {
        let (queue, vhost) = self.name();
        for msg_id in msg_ids {
            tracing::error!(%error, "queue '{queue}' in vhost '{vhost}': cannot read message {msg_id} from the store; dropping it");
        }
        self.forget_stored(msg_ids.to_vec());
    }
}

/// Reads the messages `msg_ids` of store queue `queue_id`, in order, on the blocking pool. Each result stands
/// alone: one unreadable record does not fail the others. Err only if the blocking task itself failed (a panic,
/// or the runtime shutting down): then nothing was read.
pub(super) async fn read_paged_out(
    store: Store,
    queue_id: u64,
    msg_ids: Vec<u64>,
) -> Result<Vec<Result<Message, StoreError>>, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        msg_ids
            .into_iter()
            .map(|msg_id| read_stored(&store, queue_id, msg_id))
            .collect()
    })
    .await
}

/// Reads one message; blocking.
fn read_stored(store: &Store, queue_id: u64, msg_id: u64) -> Result<Message, StoreError> {
    let stored = match store.read(queue_id, msg_id) {
        // A message is readable once written; one paged out right after its publish may still be queued for the
        // writer, so wait for the writer once and retry.
        Err(StoreError::NotFound { .. }) => {
            store.flush()?;
            store.read(queue_id, msg_id)?
        }
        other => other?,
    };
    Ok(Message::restored(
        stored.msg_id,
        &stored.exchange,
        &stored.routing_key,
        stored.properties_raw,
        stored.body,
    ))
}
