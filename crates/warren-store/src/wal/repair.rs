//! How a failed WAL writer repairs itself: from the last durable state, never trusting what followed it.
//!
//! After a failed append the file may end in a torn record; after a failed fdatasync, Linux may have dropped the
//! batch's dirty pages (marked them clean without writing them), so a later fdatasync could succeed without the
//! batch ever reaching the disk, and a record appended after them would follow a hole that recovery reads as damage
//! (it stops there, losing every later record). So the repair never retries a write or a sync: it cuts the file back
//! to the end of the last batch that was durable (`WalFile::durable`) and makes that length durable, then starts a
//! fresh WAL file whose header it fdatasyncs, a probe that the disk takes writes again; the cut file is sealed and
//! retired like any full one. The batch that failed and every publish refused meanwhile were answered with an error,
//! so they are not written again; the acks and queue drops taken meanwhile are (`WalWriter::deferred`): the repair
//! is complete only once they are durable in the new file, so a disk with room for a header but not for them keeps
//! the store failed rather than flapping between healthy and failed.

use super::{encode, WalFile, WalWriter};
use crate::shared::{Job, Part};
use crate::StoreError;

impl WalWriter {
    /// A repair is due: try it; on success the part is healthy again.
    pub(super) fn retry(&mut self) {
        match self.repair() {
            Ok(()) => {
                self.fault = None;
                self.shared.heal(Part::Wal);
            }
            Err(error) => {
                tracing::info!(%error, "message store: the write-ahead log cannot be repaired yet; retrying");
                if let Some(fault) = self.fault.as_mut() {
                    fault.again();
                }
            }
        }
    }

    /// Cuts the current file back to its durable length, then continues in a new file (probed with a synced
    /// header), hands the cut one to the background thread to retire, and writes what was deferred.
    fn repair(&mut self) -> Result<(), StoreError> {
        if let Some(file) = self.file.as_mut() {
            file.handle
                .set_len(file.durable)
                .map_err(StoreError::io("set_len", &file.path))?;
            file.len = file.durable;
            if self.shared.sync() {
                file.handle
                    .sync_data()
                    .map_err(StoreError::io("sync_data", &file.path))?;
            }
        }
        let next = WalFile::create(&self.shared, self.next_seq, true)?;
        tracing::debug!(
            seq = next.seq,
            "message store: continuing in a new WAL file"
        );
        self.next_seq += 1;
        if let Some(cut) = self.file.replace(next) {
            self.shared.send_job(Job::Retire(cut.id));
        }
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        let (batch, applied) = encode(std::mem::take(&mut self.deferred), file.len, file.id);
        match self.write(&batch) {
            Ok(()) => self.complete(applied, true),
            Err(e) => {
                // Deferred again; the next attempt cuts this file back to its header.
                self.complete(applied, false);
                return Err(e);
            }
        }
        Ok(())
    }
}
