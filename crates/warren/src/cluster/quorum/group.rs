//! A quorum queue's Raft group as openraft sees it: its type config, and its state machine, which applies the
//! committed operations to the queue's [`QuorumState`] and hands what they make happen to this node's queue
//! actor. Snapshots are the whole state (binary), kept in a file next to the group's log so that a restart starts
//! from the last one (openraft then re-applies the committed entries after it) and the log before it can be purged.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::PathBuf;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::machine::{DeadMessage, Effect, Limits, Op, QuorumState};
use crate::cluster::codec::Codec;
use crate::cluster::ClusterNode;

/// One log entry of a queue's group: operations taken together (one node's batch), applied in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OpBatch {
    /// The operations, applied in order.
    pub(crate) ops: Vec<Op>,
    /// When the entry was written (milliseconds since the Unix epoch, the writing node's clock): the time its
    /// operations happen at, for message expiry.
    pub(crate) now: u64,
}

/// What applying an entry answers the writer: which of its operations were enqueues the queue refused (full under
/// `reject-publish`), by their index in the entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Applied {
    /// Indexes of the refused enqueues.
    pub(crate) refused: Vec<u32>,
}

openraft::declare_raft_types!(
    /// A quorum queue group's types.
    pub(crate) QueueTypes:
        D = OpBatch,
        R = Applied,
        NodeId = u64,
        Node = ClusterNode,
        Entry = openraft::Entry<QueueTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The queue's counts after an applied batch, for declare-ok, listings and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AppliedCounts {
    /// Ready messages.
    pub(crate) ready: u64,
    /// Checked out, not settled.
    pub(crate) unacked: u64,
    /// Consumers across the cluster.
    pub(crate) consumers: u64,
    /// Body bytes of the ready messages.
    pub(crate) ready_bytes: u64,
}

/// What the state machine hands this node's actor after applying entries.
pub(crate) struct AppliedBatch {
    /// The effects, in log order.
    pub(crate) effects: Vec<Effect>,
    /// The counts after them.
    pub(crate) counts: AppliedCounts,
    /// The (node, run) of every consumer and message holder of another node: whom a leader watches.
    pub(crate) remote_holders: BTreeSet<(u64, u64)>,
    /// When the message at the head expires, if it does (milliseconds since the Unix epoch).
    pub(crate) next_expiry: Option<u64>,
    /// The limits applied now.
    pub(crate) limits: Limits,
    /// When the queue, unused, is due to be deleted (`x-expires`), if it is.
    pub(crate) expires_at: Option<u64>,
    /// Every message kept for at-least-once dead-lettering, when the state was not built from these batches
    /// alone (the first batch after a start, and after a snapshot was installed): the actor's list is replaced
    /// by it. None: the effects say what changed.
    pub(crate) dead_letters: Option<Vec<(u64, DeadMessage)>>,
}

/// What a snapshot holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, ClusterNode>,
    state: QuorumState,
}

/// A snapshot as kept in its file.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, ClusterNode>,
    data: Vec<u8>,
}

/// The group's state machine on this node (`node`).
pub(crate) struct QueueMachine {
    body: SnapshotBody,
    snapshot: Option<(SnapshotMeta<u64, ClusterNode>, Vec<u8>)>,
    snapshot_path: PathBuf,
    snapshots_built: u64,
    effects: mpsc::UnboundedSender<AppliedBatch>,
    /// This node's id.
    node: u64,
    /// The next batch tells the actor the whole state's dead letters ([`AppliedBatch::dead_letters`]).
    resync: bool,
}

fn snapshot_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageError::from(StorageIOError::read_snapshot(
        None,
        AnyError::error(e.to_string()),
    ))
}

fn snapshot_write_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageError::from(StorageIOError::write_snapshot(
        None,
        AnyError::error(e.to_string()),
    ))
}

impl QueueMachine {
    /// The state machine whose snapshot is kept at `snapshot_path`, starting from it if it exists; applied
    /// batches go to `effects`.
    pub(crate) fn open(
        snapshot_path: PathBuf,
        effects: mpsc::UnboundedSender<AppliedBatch>,
        node: u64,
        limits: Limits,
    ) -> Result<QueueMachine, String> {
        let mut machine = QueueMachine {
            body: SnapshotBody::default(),
            snapshot: None,
            snapshot_path,
            snapshots_built: 0,
            effects,
            node,
            resync: true,
        };
        // The declaration's limits, until the log or a snapshot says otherwise.
        machine.body.state.set_limits(limits);
        match std::fs::read(&machine.snapshot_path) {
            Ok(bytes) => {
                let file: SnapshotFile = Codec::Binary.decode(&bytes)?;
                machine.body = Codec::Binary.decode(&file.data)?;
                machine.snapshot = Some((file.meta, file.data));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.to_string()),
        }
        Ok(machine)
    }

    /// What the actor learns after applying entries that made `effects` happen.
    fn batch(&mut self, effects: Vec<Effect>) -> AppliedBatch {
        let state = &self.body.state;
        let dead_letters = std::mem::take(&mut self.resync).then(|| {
            state
                .dead_letters()
                .map(|(seq, dead)| (seq, dead.clone()))
                .collect()
        });
        AppliedBatch {
            effects,
            counts: self.counts(),
            remote_holders: state.remote_holders(self.node),
            next_expiry: state.next_expiry(),
            limits: state.limits(),
            expires_at: state.expires_at(),
            dead_letters,
        }
    }

    fn counts(&self) -> AppliedCounts {
        let state = &self.body.state;
        AppliedCounts {
            ready: state.ready(),
            unacked: state.unacked(),
            consumers: state.consumers(),
            ready_bytes: state.ready_bytes(),
        }
    }

    /// Writes the snapshot file whole (a temporary file, fsynced, renamed over the old one).
    fn persist(&self, meta: &SnapshotMeta<u64, ClusterNode>, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let file = SnapshotFile {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        let bytes = Codec::Binary.encode(&file).map_err(std::io::Error::other)?;
        let tmp = self.snapshot_path.with_extension("snapshot.tmp");
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(&bytes)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &self.snapshot_path)?;
        if let Some(dir) = self.snapshot_path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Hands out a snapshot built at one moment.
pub(crate) struct SnapshotBuilder {
    meta: SnapshotMeta<u64, ClusterNode>,
    data: Vec<u8>,
}

impl RaftSnapshotBuilder<QueueTypes> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<QueueTypes>, StorageError<u64>> {
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        })
    }
}

impl RaftStateMachine<QueueTypes> for QueueMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, ClusterNode>), StorageError<u64>> {
        Ok((self.body.last_applied, self.body.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<QueueTypes>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut effects = Vec::new();
        for entry in entries {
            self.body.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(OpBatch { ops, now }) => {
                    self.body.state.advance(now, &mut effects);
                    let mut refused = Vec::new();
                    for (index, op) in ops.into_iter().enumerate() {
                        if !self.body.state.apply(op, &mut effects) {
                            refused.push(u32::try_from(index).unwrap_or(u32::MAX));
                        }
                    }
                    responses.push(Applied { refused });
                    continue;
                }
                EntryPayload::Membership(membership) => {
                    self.body.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            responses.push(Applied::default());
        }
        // The actor may be gone (the queue is being deleted): nothing is left to deliver to.
        let batch = self.batch(effects);
        let _ = self.effects.send(batch);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshots_built += 1;
        let snapshot_id = match self.body.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.snapshots_built),
            None => format!("none-{}", self.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: self.body.last_applied,
            last_membership: self.body.membership.clone(),
            snapshot_id,
        };
        // Plain maps of numbers, strings and bytes: encoding cannot fail.
        let data = Codec::Binary.encode(&self.body).unwrap_or_default();
        match self.persist(&meta, &data) {
            Ok(()) => self.snapshot = Some((meta.clone(), data.clone())),
            // Not kept: the log is then not purged past the last snapshot that was.
            Err(error) => tracing::warn!(%error, "quorum queue snapshot not written"),
        }
        SnapshotBuilder { meta, data }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, ClusterNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = Codec::Binary.decode(&data).map_err(snapshot_error)?;
        self.persist(meta, &data).map_err(snapshot_write_error)?;
        self.body = body;
        self.body.last_applied = meta.last_log_id;
        self.body.membership = meta.last_membership.clone();
        self.snapshot = Some((meta.clone(), data));
        self.resync = true;
        let batch = self.batch(Vec::new());
        let _ = self.effects.send(batch);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<QueueTypes>>, StorageError<u64>> {
        Ok(self.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
