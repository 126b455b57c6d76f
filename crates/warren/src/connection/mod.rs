//! One AMQP connection: the handshake, then a reader task that splits frames and drives the channel state
//! machines, and a writer task that drains the outbound queue. When the reader ends, every channel is closed:
//! unacked deliveries are requeued and exclusive queues deleted.

mod channels;
mod handshake;
mod handshake_io;
mod reader;
pub(crate) mod transport;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::broker::Broker;
use crate::event::{connection_pid, ConnectionCreated, Event};
use crate::message::now_ms;
use crate::metrics::counters::Counter;
use crate::registry::ConnectionDetails;
use crate::session::{ConnectionShared, DeliveryTracing};
use handshake::ConnectionIdentity;
pub(crate) use transport::Transport;

/// How long a connection's writer may go on sending what was queued once its reader has ended.
const WRITER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one accepted stream (TCP, or any [`Transport`]) from `peer` until it closes.
pub(crate) async fn serve<T: Transport>(broker: Arc<Broker>, stream: T, peer: SocketAddr) {
    let local = stream.local_addr();
    let tls = stream.tls_peer();
    let ssl = tls.is_some();
    let (mut read, mut write) = stream.split();
    let mut buf = bytes::BytesMut::new();
    let name = match local {
        Some(local) => format!("{peer} -> {local}"),
        None => peer.to_string(),
    };
    let id = broker.next_connection_id();
    let identity = ConnectionIdentity {
        id,
        name: name.clone(),
        local,
    };
    let Some(mut negotiated) = handshake_io::run(
        &broker, &mut read, &mut write, &mut buf, peer, tls, identity,
    )
    .await
    else {
        return;
    };
    let node = broker.config.server.cluster_name.clone();
    let pid = broker.events.is_on().then(|| connection_pid(&node, id));
    let client_properties = std::mem::take(&mut negotiated.client_properties);
    if let Some(pid) = &pid {
        broker.events.emit(|| {
            Event::connection_created(&ConnectionCreated {
                node: &node,
                pid,
                name: &name,
                peer,
                local,
                ssl,
                user: &negotiated.user,
                vhost: &negotiated.vhost.name,
                auth_mechanism: negotiated.auth_mechanism,
                client_properties: &client_properties,
                heartbeat: negotiated.heartbeat,
                frame_max: negotiated.frame_max,
                channel_max: negotiated.channel_max,
                connected_at_ms: now_ms(),
            })
        });
    }
    let tracing = DeliveryTracing {
        on: negotiated.vhost.tracing_switch(),
        tracer: negotiated.vhost.clone(),
    };
    let info = ConnectionShared::new(
        id,
        negotiated.frame_max,
        negotiated.consumer_cancel_notify,
        peer,
        negotiated.user.clone(),
        name,
        Some(tracing),
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
        client_connection_name: negotiated.client_connection_name.take(),
    });
    broker
        .metrics
        .counters
        .add(Counter::ConnectionsOpened, 1, info.id);
    let live = reader::Live {
        channels: registration.channel_count(),
        close: registration.take_close_signal(),
        traffic: registration.traffic(),
    };
    let send_timeout = broker.config.limits.send_timeout;
    let mut writer = tokio::spawn(writer::run(
        info.clone(),
        writer::WriterMetrics {
            node: broker.metrics.clone(),
            vhost: negotiated.vhost.counters.clone(),
            traffic: registration.traffic(),
        },
        write,
        negotiated.heartbeat,
        send_timeout,
    ));
    let events = broker.events.clone();
    let metrics = broker.metrics.clone();
    reader::run(broker, info.clone(), negotiated, live, read, buf).await;
    if let Some(pid) = &pid {
        events.emit(|| Event::connection_closed(pid, &info.name, &node, &client_properties));
    }
    info.outbound.close();
    // The writer sends what is queued (a close-ok, say). A peer that stopped reading (missed heartbeats) would hold
    // it, and with it the socket, for the whole send timeout: it gets a short grace, then the socket is dropped.
    if tokio::time::timeout(WRITER_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
        let _ = writer.await;
    }
    metrics.counters.add(Counter::ConnectionsClosed, 1, info.id);
    drop(registration);
}
