//! One AMQP connection: the handshake, then a reader task that splits frames and drives the channel state
//! machines, and a writer task that drains the outbound queue. When the reader ends, every channel is closed:
//! unacked deliveries are requeued and exclusive queues deleted.

mod channels;
mod handshake;
mod handshake_io;
pub mod outbound;
mod reader;
pub mod transport;
mod writer;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::broker::Broker;
use crate::channel::confirm::ConfirmTracker;
use crate::registry::ConnectionDetails;
pub use outbound::Outbound;
pub use transport::{SharedStream, Transport, TransportRead};

/// Bytes a connection may have queued for writing before queue actors hold deliveries back.
const OUTBOUND_BUDGET: usize = 1 << 20;

/// What queue actors and confirm trackers need of a connection; fixed once the handshake is done.
pub struct ConnectionInfo {
    pub id: u64,
    pub outbound: Outbound,
    /// Negotiated frame_max: bodies are split into frames no larger.
    pub frame_max: u32,
    /// The client handles server-sent basic.cancel.
    pub consumer_cancel_notify: bool,
    pub peer: SocketAddr,
    pub user: String,
    confirm_flushes: Mutex<Vec<Arc<ConfirmTracker>>>,
}

impl ConnectionInfo {
    pub fn new(
        id: u64,
        frame_max: u32,
        consumer_cancel_notify: bool,
        peer: SocketAddr,
        user: String,
    ) -> Arc<Self> {
        Arc::new(ConnectionInfo {
            id,
            outbound: Outbound::new(OUTBOUND_BUDGET),
            frame_max,
            consumer_cancel_notify,
            peer,
            user,
            confirm_flushes: Mutex::new(Vec::new()),
        })
    }

    /// A connection with no socket, for unit tests of the parts that write to one.
    pub fn for_tests() -> Arc<Self> {
        Self::new(
            0,
            131072,
            true,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "guest".into(),
        )
    }

    /// Asks the writer to emit the settled confirms of `tracker` before its next write.
    pub fn schedule_confirm_flush(&self, tracker: Arc<ConfirmTracker>) {
        self.confirm_flushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tracker);
        self.outbound.ready.notify_one();
    }

    pub fn take_confirm_flushes(&self) -> Vec<Arc<ConfirmTracker>> {
        std::mem::take(
            &mut *self
                .confirm_flushes
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}

/// Serves one accepted stream (TCP, or any [`Transport`]) from `peer` until it closes.
pub async fn serve<T: Transport>(broker: Arc<Broker>, stream: T, peer: SocketAddr) {
    let local = stream.local_addr();
    let (mut read, mut write) = stream.split();
    let mut buf = bytes::BytesMut::new();
    let Some(mut negotiated) =
        handshake_io::run(&broker, &mut read, &mut write, &mut buf, peer).await
    else {
        return;
    };
    let info = ConnectionInfo::new(
        broker.next_connection_id(),
        negotiated.frame_max,
        negotiated.consumer_cancel_notify,
        peer,
        negotiated.user.clone(),
    );
    tracing::info!(
        peer = %peer,
        user = %negotiated.user,
        vhost = %negotiated.vhost.name,
        "connection {peer}: user '{}' authenticated and granted access to vhost '{}'",
        negotiated.user,
        negotiated.vhost.name
    );
    // Listed from here until the writer has finished: a listed connection can always be told to close.
    let mut registration = broker.connections().register(ConnectionDetails {
        id: info.id,
        user: negotiated.user.clone(),
        vhost: negotiated.vhost.name.to_string(),
        peer,
        local,
        client_product: negotiated.client_product.take(),
        client_version: negotiated.client_version.take(),
    });
    let live = reader::Live {
        channels: registration.channel_count(),
        close: registration.take_close_signal(),
    };
    let writer = tokio::spawn(writer::run(info.clone(), write, negotiated.heartbeat));
    reader::run(broker, info.clone(), negotiated, live, read, buf).await;
    info.outbound.close();
    let _ = writer.await;
    drop(registration);
}
