//! What a channel handler (producer or consumer) is given on each turn of its connection's event loop: the run's
//! [`Phase`] and a [`Ctx`] with the output buffer and the time. It sits below `driver`, `producer` and `consumer`
//! so that the handlers depend on this contract and not on the loop that calls them.

use std::time::Instant;

use bytes::BytesMut;

/// Bytes of publishes a producer appends before the buffer is written: at 16-byte bodies about 800 messages per
/// write system call, few enough that send timestamps are not held back by more than a few microseconds.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// Where the run is, as the coordinator tells every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Producers stop publishing, wait for their confirms and close their channels.
    StopPublishing,
    /// Consumers ack what they hold and every connection closes.
    StopConsuming,
}

/// What a handler sees while it runs: the output buffer and the time of this turn.
pub(crate) struct Ctx<'a> {
    pub out: &'a mut BytesMut,
    pub now: Instant,
    pub now_ns: u64,
}
