//! A Raft group's log and vote, in a redb database of their own (`<data_dir>/cluster/raft.redb` for the
//! definitions group, `<data_dir>/cluster/queues/<group>.redb` for a quorum queue's): each append, truncation, purge
//! and vote is one durable redb transaction (fsynced before openraft is told), run on the blocking pool.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::Codec;

/// Entries by index, each as JSON.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// The vote, the committed log id and the last purged log id, each as JSON under its name.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

type StoreResult<T> = Result<T, StorageError<u64>>;

/// The log store of a group of type config `C`; clones share the database (openraft reads through one while it
/// writes through another).
pub(crate) struct LogStore<C> {
    db: Arc<Database>,
    /// How entries are encoded (the vote and other state are JSON).
    codec: Codec,
    types: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            codec: self.codec,
            types: PhantomData,
        }
    }
}

/// What a group's type config must be for [`LogStore`]: u64 node ids, openraft's entries, serde for them.
pub(crate) trait StoredTypes:
    RaftTypeConfig<NodeId = u64, Entry = Entry<Self>> + Sized
where
    Entry<Self>: Serialize + DeserializeOwned,
{
}

impl<C> StoredTypes for C
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
    Entry<C>: Serialize + DeserializeOwned,
{
}

fn io_error(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

impl<C: StoredTypes> LogStore<C>
where
    Entry<C>: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the log at `path`, its entries encoded with `codec`.
    pub(crate) fn open(path: &Path, codec: Codec) -> Result<LogStore<C>, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(STATE)?;
        txn.commit()?;
        Ok(LogStore {
            db: Arc::new(db),
            codec,
            types: PhantomData,
        })
    }

    /// Runs `work` on the blocking pool with the database.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, AnyError> + Send + 'static,
        fail: fn(AnyError) -> StorageIOError<u64>,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        let outcome = tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StorageError::from(fail(io_error(e))))?;
        outcome.map_err(|e| StorageError::from(fail(e)))
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        db: &Database,
        key: &str,
    ) -> Result<Option<T>, AnyError> {
        let txn = db.begin_read().map_err(io_error)?;
        let table = txn.open_table(STATE).map_err(io_error)?;
        match table.get(key).map_err(io_error)? {
            Some(bytes) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(io_error),
            None => Ok(None),
        }
    }

    fn write_state<T: serde::Serialize>(
        db: &Database,
        key: &str,
        value: &T,
    ) -> Result<(), AnyError> {
        let bytes = serde_json::to_vec(value).map_err(io_error)?;
        let txn = db.begin_write().map_err(io_error)?;
        {
            let mut table = txn.open_table(STATE).map_err(io_error)?;
            table.insert(key, bytes.as_slice()).map_err(io_error)?;
        }
        txn.commit().map_err(io_error)
    }
}

impl<C: StoredTypes> RaftLogReader<C> for LogStore<C>
where
    Entry<C>: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<C>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(*i),
            Bound::Excluded(0) => return Ok(Vec::new()),
            Bound::Excluded(i) => Some(i - 1),
            Bound::Unbounded => None,
        };
        let codec = self.codec;
        self.blocking(
            move |db| {
                let txn = db.begin_read().map_err(io_error)?;
                let table = txn.open_table(LOG).map_err(io_error)?;
                let mut entries = Vec::new();
                let rows = match end {
                    Some(end) if end < start => return Ok(entries),
                    Some(end) => table.range(start..=end),
                    None => table.range(start..),
                }
                .map_err(io_error)?;
                for row in rows {
                    let (_, value) = row.map_err(io_error)?;
                    entries.push(codec.decode(value.value()).map_err(io_error)?);
                }
                Ok(entries)
            },
            StorageIOError::read_logs,
        )
        .await
    }
}

impl<C: StoredTypes> RaftLogStorage<C> for LogStore<C>
where
    Entry<C>: Serialize + DeserializeOwned,
{
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> StoreResult<LogState<C>> {
        let codec = self.codec;
        self.blocking(
            move |db| {
                let last_purged: Option<LogId<u64>> = Self::read_state(db, "purged")?;
                let txn = db.begin_read().map_err(io_error)?;
                let table = txn.open_table(LOG).map_err(io_error)?;
                let last = match table.last().map_err(io_error)? {
                    Some((_, value)) => {
                        let entry: Entry<C> = codec.decode(value.value()).map_err(io_error)?;
                        Some(entry.log_id)
                    }
                    None => last_purged,
                };
                Ok(LogState {
                    last_purged_log_id: last_purged,
                    last_log_id: last,
                })
            },
            StorageIOError::read_logs,
        )
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StoreResult<()> {
        let vote = *vote;
        self.blocking(
            move |db| Self::write_state(db, "vote", &vote),
            StorageIOError::write_vote,
        )
        .await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<u64>>> {
        self.blocking(|db| Self::read_state(db, "vote"), StorageIOError::read_vote)
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StoreResult<()> {
        self.blocking(
            move |db| Self::write_state(db, "committed", &committed),
            StorageIOError::write,
        )
        .await
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<u64>>> {
        self.blocking(
            |db| Ok(Self::read_state::<Option<LogId<u64>>>(db, "committed")?.flatten()),
            StorageIOError::read,
        )
        .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<C>> = entries.into_iter().collect();
        let codec = self.codec;
        let written = self
            .blocking(
                move |db| {
                    let txn = db.begin_write().map_err(io_error)?;
                    {
                        let mut table = txn.open_table(LOG).map_err(io_error)?;
                        for entry in &entries {
                            let bytes = codec.encode(entry).map_err(io_error)?;
                            table
                                .insert(entry.log_id.index, bytes.as_slice())
                                .map_err(io_error)?;
                        }
                    }
                    txn.commit().map_err(io_error)
                },
                StorageIOError::write_logs,
            )
            .await;
        match &written {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        written
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        self.blocking(
            move |db| {
                let txn = db.begin_write().map_err(io_error)?;
                {
                    let mut table = txn.open_table(LOG).map_err(io_error)?;
                    table
                        .retain_in(log_id.index.., |_, _| false)
                        .map_err(io_error)?;
                }
                txn.commit().map_err(io_error)
            },
            StorageIOError::write_logs,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        self.blocking(
            move |db| {
                let bytes = serde_json::to_vec(&Some(log_id)).map_err(io_error)?;
                let txn = db.begin_write().map_err(io_error)?;
                {
                    let mut state = txn.open_table(STATE).map_err(io_error)?;
                    state.insert("purged", bytes.as_slice()).map_err(io_error)?;
                    let mut table = txn.open_table(LOG).map_err(io_error)?;
                    table
                        .retain_in(..=log_id.index, |_, _| false)
                        .map_err(io_error)?;
                }
                txn.commit().map_err(io_error)
            },
            StorageIOError::write_logs,
        )
        .await
    }
}
