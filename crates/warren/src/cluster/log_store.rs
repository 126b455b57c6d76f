//! Raft logs and votes in redb, with group commit. A [`SharedLog`] is one database holding the logs of many groups
//! (every quorum queue of this node in `<data_dir>/cluster/queues/log.redb`; the definitions group alone in
//! `<data_dir>/cluster/meta.redb`), written by one committer thread: the appends, truncations, purges and votes of
//! all groups that wait at a moment go into one write transaction, so many busy queues share one fsync, as the
//! queues of a RabbitMQ node share Ra's WAL. Each write returns once its transaction is durable, before openraft
//! is told. A [`LogStore`] is one group's view of it, which openraft drives.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::codec::Codec;

/// Entries by (group, index), each encoded with its group's codec.
const LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("log");
/// Each group's vote, committed log id and last purged log id, as JSON under (group, name).
const STATE: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("state");

/// The layout of a log file of one group, before logs were shared: read once to import it.
const LEGACY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Its state table.
const LEGACY_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 1_024;

type StoreResult<T> = Result<T, StorageError<u64>>;

/// One change to one group's part of the log.
enum Change {
    /// Entries (index, encoded), in order.
    Append(Vec<(u64, Vec<u8>)>),
    /// Removes the entries from this index on.
    TruncateFrom(u64),
    /// Removes the entries up to this index, recording the purged log id (JSON).
    PurgeUpTo { index: u64, purged: Vec<u8> },
    /// Sets a state value (JSON).
    State { key: &'static str, value: Vec<u8> },
    /// Adds what a legacy file held.
    Import {
        entries: Vec<(u64, Vec<u8>)>,
        state: Vec<(String, Vec<u8>)>,
    },
    /// Removes the group's entries and state.
    Remove,
}

/// A change waiting for the committer, with who to tell once it is durable.
struct Write {
    group: u64,
    change: Change,
    done: oneshot::Sender<Result<(), String>>,
}

/// One database of many groups' logs, and its committer.
pub(crate) struct SharedLog {
    db: Arc<Database>,
    writes: std::sync::Mutex<mpsc::Sender<Write>>,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog").finish_non_exhaustive()
    }
}

fn io_error(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

impl SharedLog {
    /// Opens (or creates) the database at `path` and starts its committer thread, which ends when the last handle
    /// to the log is dropped.
    pub(crate) fn open(path: &Path) -> Result<Arc<SharedLog>, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(STATE)?;
        txn.commit()?;
        let db = Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let committer_db = db.clone();
        std::thread::Builder::new()
            .name("warren-raft-log".to_owned())
            .spawn(move || committer(&committer_db, &queue))?;
        Ok(Arc::new(SharedLog {
            db,
            writes: std::sync::Mutex::new(writes),
        }))
    }

    /// Makes `change` to `group`'s log; returns once it is durable.
    async fn write(&self, group: u64, change: Change) -> Result<(), AnyError> {
        let (done, durable) = oneshot::channel();
        let sent = self
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Write {
                group,
                change,
                done,
            });
        if sent.is_err() {
            return Err(io_error("the log's committer has stopped"));
        }
        match durable.await {
            Ok(outcome) => outcome.map_err(io_error),
            Err(_) => Err(io_error("the log's committer has stopped")),
        }
    }

    /// Removes everything of `group` (its queue was deleted).
    pub(crate) async fn remove(&self, group: u64) -> Result<(), AnyError> {
        self.write(group, Change::Remove).await
    }

    /// Moves the log of one group kept in a file of its own (`legacy`, the layout before logs were shared) into
    /// `group`, then deletes the file. Nothing if there is no such file.
    pub(crate) async fn import_legacy(&self, legacy: &Path, group: u64) -> Result<(), AnyError> {
        if !legacy.exists() {
            return Ok(());
        }
        let path = legacy.to_owned();
        let (entries, state) = tokio::task::spawn_blocking(move || read_legacy(&path))
            .await
            .map_err(io_error)??;
        self.write(group, Change::Import { entries, state }).await?;
        std::fs::remove_file(legacy).map_err(io_error)?;
        tracing::info!(
            "moved the Raft log of {} into the shared log",
            legacy.display()
        );
        Ok(())
    }
}

/// The rows of a legacy one-group log file.
type LegacyRows = (Vec<(u64, Vec<u8>)>, Vec<(String, Vec<u8>)>);

fn read_legacy(path: &Path) -> Result<LegacyRows, AnyError> {
    let db = Database::open(path).map_err(io_error)?;
    let txn = db.begin_read().map_err(io_error)?;
    let mut entries = Vec::new();
    for row in txn
        .open_table(LEGACY_LOG)
        .map_err(io_error)?
        .range(0..)
        .map_err(io_error)?
    {
        let (index, value) = row.map_err(io_error)?;
        entries.push((index.value(), value.value().to_vec()));
    }
    let mut state = Vec::new();
    for row in txn
        .open_table(LEGACY_STATE)
        .map_err(io_error)?
        .iter()
        .map_err(io_error)?
    {
        let (key, value) = row.map_err(io_error)?;
        state.push((key.value().to_owned(), value.value().to_vec()));
    }
    Ok((entries, state))
}

/// Takes the writes waiting, applies them in one transaction, commits (fsync), tells each writer; until every
/// sender is gone.
fn committer(db: &Database, queue: &mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let outcome = commit(db, &batch).map_err(|e| e.to_string());
        if let Err(error) = &outcome {
            tracing::error!(%error, "Raft log write failed");
        }
        for write in batch {
            let _ = write.done.send(outcome.clone());
        }
    }
}

fn commit(db: &Database, batch: &[Write]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut state = txn.open_table(STATE)?;
        for write in batch {
            let g = write.group;
            match &write.change {
                Change::Append(entries) => {
                    for (index, bytes) in entries {
                        log.insert((g, *index), bytes.as_slice())?;
                    }
                }
                Change::TruncateFrom(index) => {
                    log.retain_in((g, *index)..=(g, u64::MAX), |_, _| false)?;
                }
                Change::PurgeUpTo { index, purged } => {
                    state.insert((g, "purged"), purged.as_slice())?;
                    log.retain_in((g, 0)..=(g, *index), |_, _| false)?;
                }
                Change::State { key, value } => {
                    state.insert((g, *key), value.as_slice())?;
                }
                Change::Import {
                    entries,
                    state: rows,
                } => {
                    for (index, bytes) in entries {
                        log.insert((g, *index), bytes.as_slice())?;
                    }
                    for (key, value) in rows {
                        state.insert((g, key.as_str()), value.as_slice())?;
                    }
                }
                Change::Remove => {
                    log.retain_in((g, 0)..=(g, u64::MAX), |_, _| false)?;
                    for key in ["vote", "committed", "purged"] {
                        state.remove((g, key))?;
                    }
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// One group's log in a [`SharedLog`]; clones share it (openraft reads through one while it writes through
/// another).
pub(crate) struct LogStore<C> {
    log: Arc<SharedLog>,
    group: u64,
    /// How entries are encoded (the vote and other state are JSON).
    codec: Codec,
    types: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            log: self.log.clone(),
            group: self.group,
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

impl<C: StoredTypes> LogStore<C>
where
    Entry<C>: Serialize + DeserializeOwned,
{
    /// Group `group`'s log in `log`, its entries encoded with `codec`.
    pub(crate) fn new(log: Arc<SharedLog>, group: u64, codec: Codec) -> LogStore<C> {
        LogStore {
            log,
            group,
            codec,
            types: PhantomData,
        }
    }

    /// Runs `work` on the blocking pool with the database, for reads.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, AnyError> + Send + 'static,
        fail: fn(AnyError) -> StorageIOError<u64>,
    ) -> StoreResult<T> {
        let db = self.log.db.clone();
        let outcome = tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StorageError::from(fail(io_error(e))))?;
        outcome.map_err(|e| StorageError::from(fail(e)))
    }

    async fn write(
        &self,
        change: Change,
        fail: fn(AnyError) -> StorageIOError<u64>,
    ) -> StoreResult<()> {
        self.log
            .write(self.group, change)
            .await
            .map_err(|e| StorageError::from(fail(e)))
    }

    fn read_state<T: DeserializeOwned>(
        db: &Database,
        group: u64,
        key: &str,
    ) -> Result<Option<T>, AnyError> {
        let txn = db.begin_read().map_err(io_error)?;
        let table = txn.open_table(STATE).map_err(io_error)?;
        match table.get((group, key)).map_err(io_error)? {
            Some(bytes) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(io_error),
            None => Ok(None),
        }
    }

    async fn write_state<T: Serialize>(
        &self,
        key: &'static str,
        value: &T,
        fail: fn(AnyError) -> StorageIOError<u64>,
    ) -> StoreResult<()> {
        let value = serde_json::to_vec(value).map_err(|e| StorageError::from(fail(io_error(e))))?;
        self.write(Change::State { key, value }, fail).await
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
            Bound::Included(i) => *i,
            Bound::Excluded(0) => return Ok(Vec::new()),
            Bound::Excluded(i) => i - 1,
            Bound::Unbounded => u64::MAX,
        };
        let (codec, g) = (self.codec, self.group);
        self.read(
            move |db| {
                let mut entries = Vec::new();
                if end < start {
                    return Ok(entries);
                }
                let txn = db.begin_read().map_err(io_error)?;
                let table = txn.open_table(LOG).map_err(io_error)?;
                for row in table.range((g, start)..=(g, end)).map_err(io_error)? {
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
        let (codec, g) = (self.codec, self.group);
        self.read(
            move |db| {
                let last_purged: Option<LogId<u64>> = Self::read_state(db, g, "purged")?;
                let txn = db.begin_read().map_err(io_error)?;
                let table = txn.open_table(LOG).map_err(io_error)?;
                let last = match table
                    .range((g, 0)..=(g, u64::MAX))
                    .map_err(io_error)?
                    .next_back()
                {
                    Some(row) => {
                        let (_, value) = row.map_err(io_error)?;
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
        self.write_state("vote", vote, StorageIOError::write_vote)
            .await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<u64>>> {
        let g = self.group;
        self.read(
            move |db| Self::read_state(db, g, "vote"),
            StorageIOError::read_vote,
        )
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StoreResult<()> {
        self.write_state("committed", &committed, StorageIOError::write)
            .await
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<u64>>> {
        let g = self.group;
        self.read(
            move |db| Ok(Self::read_state::<Option<LogId<u64>>>(db, g, "committed")?.flatten()),
            StorageIOError::read,
        )
        .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = self
                .codec
                .encode(&entry)
                .map_err(|e| StorageError::from(StorageIOError::write_logs(io_error(e))))?;
            encoded.push((entry.log_id.index, bytes));
        }
        let written = self
            .write(Change::Append(encoded), StorageIOError::write_logs)
            .await;
        match &written {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        written
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        self.write(
            Change::TruncateFrom(log_id.index),
            StorageIOError::write_logs,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        let purged = serde_json::to_vec(&Some(log_id))
            .map_err(|e| StorageError::from(StorageIOError::write_logs(io_error(e))))?;
        self.write(
            Change::PurgeUpTo {
                index: log_id.index,
                purged,
            },
            StorageIOError::write_logs,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::types::{MetaCommand, MetaTypes};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64, vhost: &str) -> Entry<MetaTypes> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(MetaCommand::AddVhost {
                name: vhost.to_owned(),
            }),
        }
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("warren-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    async fn append(store: &LogStore<MetaTypes>, entries: Vec<Entry<MetaTypes>>) {
        let encoded = entries
            .iter()
            .map(|e| (e.log_id.index, Codec::Json.encode(e).expect("encode")))
            .collect();
        store
            .write(Change::Append(encoded), StorageIOError::write_logs)
            .await
            .expect("append");
    }

    #[tokio::test]
    async fn groups_sharing_a_log_keep_their_own_entries_and_one_is_removed_alone() {
        let dir = dir("shared");
        let shared = SharedLog::open(&dir.join("log.redb")).expect("open");
        let mut a = LogStore::<MetaTypes>::new(shared.clone(), 1, Codec::Json);
        let mut b = LogStore::<MetaTypes>::new(shared.clone(), 2, Codec::Json);
        // Written at once: they share the committer's transactions.
        let (x, y) = tokio::join!(
            append(&a, (1..=5).map(|i| entry(i, "a")).collect()),
            append(&b, (1..=3).map(|i| entry(i, "b")).collect()),
        );
        let ((), ()) = (x, y);
        assert_eq!(a.try_get_log_entries(..).await.expect("read").len(), 5);
        assert_eq!(b.try_get_log_entries(2..).await.expect("read").len(), 2);
        assert_eq!(
            b.get_log_state()
                .await
                .expect("state")
                .last_log_id
                .map(|l| l.index),
            Some(3)
        );
        a.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4))
            .await
            .expect("truncate");
        a.purge(LogId::new(CommittedLeaderId::new(1, 1), 1))
            .await
            .expect("purge");
        let left: Vec<u64> = a
            .try_get_log_entries(..)
            .await
            .expect("read")
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(left, [2, 3]);
        shared.remove(1).await.expect("remove");
        assert!(a.try_get_log_entries(..).await.expect("read").is_empty());
        assert_eq!(a.get_log_state().await.expect("state").last_log_id, None);
        assert_eq!(b.try_get_log_entries(..).await.expect("read").len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_legacy_one_group_file_is_moved_into_the_shared_log() {
        let dir = dir("legacy");
        let legacy = dir.join("0000000000000007.redb");
        {
            let db = Database::create(&legacy).expect("legacy");
            let txn = db.begin_write().expect("txn");
            {
                let mut log = txn.open_table(LEGACY_LOG).expect("log");
                for i in 1..=3 {
                    let bytes = Codec::Json.encode(&entry(i, "old")).expect("encode");
                    log.insert(i, bytes.as_slice()).expect("insert");
                }
                let mut state = txn.open_table(LEGACY_STATE).expect("state");
                let vote = serde_json::to_vec(&Vote::<u64>::new(4, 2)).expect("vote");
                state.insert("vote", vote.as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let shared = SharedLog::open(&dir.join("log.redb")).expect("open");
        shared.import_legacy(&legacy, 7).await.expect("import");
        assert!(!legacy.exists());
        let mut store = LogStore::<MetaTypes>::new(shared, 7, Codec::Json);
        assert_eq!(store.try_get_log_entries(..).await.expect("read").len(), 3);
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new(4, 2))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
