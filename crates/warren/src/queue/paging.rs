//! Reading paged-out message bodies back from the message store. The reads are blocking file I/O (and may wait for
//! the store's writer to fsync), so they run on tokio's blocking pool, never on an async worker; the queue's actor
//! awaits the result, which holds back only that queue.

use warren_store::{Store, StoreError};

use crate::message::Message;

/// Body bytes read back per trip to the blocking pool (at least one message). A trip costs a thread hand-off, so
/// a run of paged-out messages is read together; the cap bounds the memory a read-ahead takes.
pub const READ_AHEAD_BYTES: u64 = 256 * 1024;

/// Messages read back per trip at most.
pub const READ_AHEAD_MESSAGES: usize = 64;

/// Reads the messages `msg_ids` of store queue `queue_id`, in order, on the blocking pool. Each result stands
/// alone: one unreadable record does not fail the others. Err only if the blocking task itself failed (a panic,
/// or the runtime shutting down): then nothing was read.
pub async fn read_paged_out(
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
