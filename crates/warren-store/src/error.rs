//! The store's one error type.

use std::io;
use std::path::{Path, PathBuf};

use super::QueueId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed. `op` names the call (`"append"`, `"sync_data"`, ...).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A write or fsync failed earlier (or just now): the store refuses further persistent writes until the broker is
    /// restarted, and recovery then serves what was durable. `cause` describes the first failure.
    #[error("message store failed: {cause}")]
    Failed { cause: String },
    /// The store was closed; nothing more is written.
    #[error("message store is closed")]
    Closed,
    /// `read` asked for a message the queue does not hold (acked, dropped, or never stored).
    #[error("queue {queue} holds no stored message {msg_id}")]
    NotFound { queue: QueueId, msg_id: u64 },
    /// Bytes read back from a file do not decode or fail their checksum.
    #[error("corrupt record in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// The message cannot be stored: too large for a record, or an exchange name or routing key over 65535 bytes.
    #[error("message cannot be stored: {reason}")]
    Rejected { reason: &'static str },
    /// The configuration cannot work (for example a zero file size).
    #[error("invalid store configuration: {0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io<'p>(
        op: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> StoreError + 'p {
        move |source| StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
