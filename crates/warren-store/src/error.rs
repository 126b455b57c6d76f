//! The store's one error type.

use std::io;
use std::path::{Path, PathBuf};

use super::QueueId;

/// Why a store operation failed, in the message store or the spill store (`spill`). `Io`, `Failed`, `Closed` and
/// `SpillUnavailable` concern a store as a whole; `NotFound`, `NotSpilled`, `Corrupt` and `Rejected` one message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed. `op` names the call (`"append"`, `"sync_data"`, ...).
    #[error("{op} {path}: {source}")]
    Io {
        /// The call that failed.
        op: &'static str,
        /// The file or directory it was called on (empty for a thread spawn).
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A write or fsync failed earlier (or just now): the store refuses persistent writes until it has repaired
    /// itself (it retries by itself, see `StoreHealth::Failed`). `cause` describes the first error of the failure.
    #[error("message store failed: {cause}")]
    Failed {
        /// The first failure, as text: every later caller gets the same one.
        cause: String,
    },
    /// The store was closed; nothing more is written.
    #[error("message store is closed")]
    Closed,
    /// `read` asked for a message the queue does not hold (acked, dropped, or never stored).
    #[error("queue {queue} holds no stored message {msg_id}")]
    NotFound {
        /// The queue asked.
        queue: QueueId,
        /// The message asked for.
        msg_id: u64,
    },
    /// Bytes read back from a file do not decode or fail their checksum.
    #[error("corrupt record in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file read.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The message cannot be stored: too large for a record, or an exchange name or routing key over 65535 bytes.
    #[error("message cannot be stored: {reason}")]
    Rejected {
        /// Which limit it broke.
        reason: &'static str,
    },
    /// The spill store holds no message with this id (released, or never spilled).
    #[error("no spilled message {msg_id}")]
    NotSpilled {
        /// The message asked for.
        msg_id: u64,
    },
    /// A spill write failed recently: the spill store takes no new messages until it retries (their queues keep
    /// them in memory meanwhile). `cause` describes the failure.
    #[error("spill store unavailable: {cause}")]
    SpillUnavailable {
        /// The write failure, as text.
        cause: String,
    },
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
