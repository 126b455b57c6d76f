//! One AMQP connection: the handshake, then a reader task that splits frames and drives the channel state
//! machines, and a writer task that drains the outbound queue. When the reader ends, every channel is closed:
//! unacked deliveries are requeued and exclusive queues deleted.

mod channels;
mod handshake;
mod reader;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::broker::Broker;
// The shared state moved to `session` as `ConnectionShared`; `serve` and the writer task still name it by its old
// name (the writer is another change's file), hence the alias.
use crate::session::ConnectionShared as ConnectionInfo;

/// Serves one accepted socket until it closes.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut buf = bytes::BytesMut::new();
    let Some(negotiated) = handshake::run(&broker, &mut read, &mut write, &mut buf, peer).await
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
    let writer = tokio::spawn(writer::run(info.clone(), write, negotiated.heartbeat));
    reader::run(broker, info.clone(), negotiated, read, buf).await;
    info.outbound.close();
    let _ = writer.await;
}
