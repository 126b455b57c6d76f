//! Every rule a channel enforces, checked without sockets: a real broker on a temporary data directory, one
//! connection's shared state with no socket behind it, and a [`Channel`] driven event by event through the same
//! executor the connection reader uses. What the channel and its queues write to the connection's outbound queue
//! is split into frames and decoded, as a client would read it.

mod acks;
mod confirms;
mod content;
mod declares;
mod methods;
mod qos;
mod tx;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{
    basic, decode_method, queue, AMQPClass, FieldTable, FrameKind, FramePayload, FrameSplitter,
    PublishArgs,
};

use super::publish_runs::PublishRuns;
use super::{runtime, Channel, ChannelContext, ChannelEffects};
use crate::broker::Broker;
use crate::config::Config;
use crate::queue::QueueHandle;
use crate::session::ConnectionShared;
use crate::vhost::Vhost;

/// The channel number the harness's channel has.
const CHANNEL: u16 = 1;

/// How long a test waits for frames a queue actor writes before it fails.
const PATIENCE: Duration = Duration::from_secs(5);

/// A data directory of its own for each broker (tests run in parallel), removed when the last harness using it
/// is dropped.
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One connection's worth of state around one channel, as the connection reader holds it, with no socket: the
/// test plays the reader (feeding events and executing effects) and the client (reading the outbound queue).
pub(super) struct Harness {
    pub(crate) broker: Arc<Broker>,
    pub(crate) vhost: Arc<Vhost>,
    pub(crate) conn: Arc<ConnectionShared>,
    pub(crate) channel: Channel,
    exclusive_queues: Vec<Arc<QueueHandle>>,
    publish_runs: PublishRuns,
    counts: crate::metrics::counters::LocalCounts,
    exchange_counts: crate::exchange::stats::PendingExchangeCounts,
    /// Bytes taken from the outbound queue and not yet split into frames.
    unread: BytesMut,
    _dir: Arc<DataDir>,
}

impl Harness {
    /// A fresh broker with vhost "/", and a connection (id 0) with channel 1 open on it.
    pub(crate) fn open() -> Harness {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("warren-channel-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let config = Config {
            data_dir: path.clone(),
            ..Config::default()
        };
        let broker = Broker::open(config).expect("broker opens on a fresh data directory");
        Harness::on(
            broker,
            ConnectionShared::for_tests(),
            Arc::new(DataDir(path)),
        )
    }

    /// Another connection to the same broker, with channel 1 open on it.
    pub(crate) fn another_connection(&self) -> Harness {
        let conn = ConnectionShared::new(
            self.broker.next_connection_id(),
            131072,
            true,
            self.conn.peer,
            "guest".into(),
            "test".into(),
            None,
        );
        Harness::on(self.broker.clone(), conn, self._dir.clone())
    }

    fn on(broker: Arc<Broker>, conn: Arc<ConnectionShared>, dir: Arc<DataDir>) -> Harness {
        let vhost = broker.vhost("/").expect("the default vhost exists");
        Harness {
            broker,
            vhost,
            channel: Channel::new(conn.clone(), CHANNEL),
            conn,
            exclusive_queues: Vec::new(),
            publish_runs: PublishRuns::default(),
            counts: Default::default(),
            exchange_counts: Default::default(),
            unread: BytesMut::new(),
            _dir: dir,
        }
    }

    /// The channel and its context, borrowed together as the reader borrows them.
    fn parts(&mut self) -> (&mut Channel, ChannelContext<'_>) {
        let ctx = ChannelContext {
            broker: &self.broker,
            vhost: &self.vhost,
            conn: &self.conn,
            exclusive_queues: &mut self.exclusive_queues,
            publish_runs: &mut self.publish_runs,
            close: None,
            counts: &mut self.counts,
            exchange_counts: &mut self.exchange_counts,
        };
        (&mut self.channel, ctx)
    }

    /// Hands routed messages to their queues, as the reader does before any method and before reading on.
    async fn flush_publish_runs(&mut self) {
        if !self.publish_runs.is_empty() {
            let publisher = crate::channel::Publisher {
                connection: self.conn.id,
                close: None,
            };
            self.publish_runs
                .flush()
                .wait(&self.broker, publisher)
                .await;
        }
    }

    /// Feeds a method as the reader does: publish runs flushed first, then the channel's effects executed. The error is
    /// what the reader would close the channel or connection with.
    pub(crate) async fn method(&mut self, method: AMQPClass) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        self.flush_publish_runs().await;
        let (channel, mut ctx) = self.parts();
        let mut effects = ChannelEffects::default();
        let result = channel.handle_method(&mut ctx, method, &mut effects);
        let executed = runtime::execute(channel, &mut ctx, &mut effects).await;
        result
            .and(executed)
            .map_err(|e| e.on_method(class_id, method_id))
    }

    /// basic.publish as the reader's fast path hands it over.
    pub(crate) fn start_publish(
        &mut self,
        exchange: &str,
        key: &str,
        mandatory: bool,
    ) -> Result<(), AmqpError> {
        let (channel, ctx) = self.parts();
        let args = PublishArgs {
            exchange,
            routing_key: key,
            mandatory,
            immediate: false,
        };
        channel.handle_publish(&ctx, args)
    }

    /// A content frame as the reader's fast path hands it over; effects are executed as the reader executes them.
    pub(crate) async fn content(
        &mut self,
        kind: FrameKind,
        payload: &[u8],
    ) -> Result<(), AmqpError> {
        let (channel, mut ctx) = self.parts();
        let mut effects = ChannelEffects::default();
        let result = channel.handle_content(
            &mut ctx,
            kind,
            FramePayload::Borrowed(payload),
            &mut effects,
        );
        if effects.is_empty() {
            return result;
        }
        self.flush_publish_runs().await;
        let (channel, mut ctx) = self.parts();
        let executed = runtime::execute(channel, &mut ctx, &mut effects).await;
        result.and(executed)
    }

    /// A whole message: publish, content header, one body frame; the publish runs are flushed after it, as the reader
    /// does once it has handled what one read brought.
    pub(crate) async fn publish(
        &mut self,
        exchange: &str,
        key: &str,
        body: &[u8],
    ) -> Result<(), AmqpError> {
        self.publish_unflushed(exchange, key, false, body).await?;
        self.flush_publish_runs().await;
        Ok(())
    }

    /// A whole message, left in the publish runs (several of them then reach their queue as one command).
    pub(crate) async fn publish_unflushed(
        &mut self,
        exchange: &str,
        key: &str,
        mandatory: bool,
        body: &[u8],
    ) -> Result<(), AmqpError> {
        self.start_publish(exchange, key, mandatory)?;
        self.content(FrameKind::Header, &content_header(body.len() as u64))
            .await?;
        if !body.is_empty() {
            self.content(FrameKind::Body, body).await?;
        }
        Ok(())
    }

    /// The method frames written so far, as the client would read them: settled confirms are emitted first, as
    /// the connection's writer emits them before each write. Content frames are skipped.
    pub(crate) fn received(&mut self) -> Vec<AMQPClass> {
        for tracker in self.conn.take_confirm_flushes() {
            tracker.flush();
        }
        for chunk in self.conn.outbound.take().unwrap_or_default() {
            self.conn.outbound.written(chunk.len());
            self.unread.extend_from_slice(&chunk);
        }
        let splitter = FrameSplitter::new(0);
        let mut methods = Vec::new();
        while let Some(frame) = splitter
            .next_frame(&mut self.unread)
            .expect("well-formed frames")
        {
            if frame.kind == FrameKind::Method {
                methods
                    .push(decode_method(&frame.payload).expect("a method the broker can decode"));
            }
        }
        methods
    }

    /// Waits until `count` method frames have arrived (queue actors write theirs in their own time).
    pub(crate) async fn expect_frames(&mut self, count: usize) -> Vec<AMQPClass> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut frames = Vec::new();
        while frames.len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} frames, got {frames:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
            frames.extend(self.received());
        }
        assert_eq!(frames.len(), count, "more frames than expected: {frames:?}");
        frames
    }

    /// What arrives while the queues are given time to act: for asserting that nothing more does.
    pub(crate) async fn quiet(&mut self) -> Vec<AMQPClass> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.received()
    }

    /// Declares a plain queue and takes its declare-ok.
    pub(crate) async fn declare_queue(&mut self, name: &str) {
        self.method(declare(name)).await.expect("queue.declare");
        let frames = self.received();
        assert!(
            matches!(
                &frames[..],
                [AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))]
            ),
            "{frames:?}"
        );
    }

    /// The ready message count of a queue, from a passive declare.
    pub(crate) async fn ready(&mut self, name: &str) -> u32 {
        self.method(passive_declare(name))
            .await
            .expect("passive declare");
        match &self.received()[..] {
            [AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))] => ok.message_count,
            other => panic!("expected declare-ok, got {other:?}"),
        }
    }

    /// basic.get of one message; returns its delivery tag and redelivered flag.
    pub(crate) async fn get(&mut self, queue: &str) -> (u64, bool) {
        self.method(get(queue)).await.expect("basic.get");
        match &self.expect_frames(1).await[..] {
            [AMQPClass::Basic(basic::AMQPMethod::GetOk(ok))] => (ok.delivery_tag, ok.redelivered),
            other => panic!("expected get-ok, got {other:?}"),
        }
    }
}

/// A basic content header: class 60, weight 0, the body size, no properties.
pub(super) fn content_header(body_size: u64) -> Vec<u8> {
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    payload
}

/// Asserts an error's reply code, full text and method, as the close frame would carry them.
#[track_caller]
pub(super) fn assert_error(
    result: Result<(), AmqpError>,
    code: ReplyCode,
    text: &str,
    (class_id, method_id): (u16, u16),
) {
    let error = result.expect_err("the channel refuses this");
    assert_eq!(
        (
            error.code,
            error.text.as_str(),
            error.class_id,
            error.method_id
        ),
        (code, text, class_id, method_id)
    );
}

pub(super) fn declare_with(name: &str, passive: bool, durable: bool, exclusive: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive,
        durable,
        exclusive,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

pub(super) fn declare(name: &str) -> AMQPClass {
    declare_with(name, false, false, false)
}

pub(super) fn passive_declare(name: &str) -> AMQPClass {
    declare_with(name, true, false, false)
}

pub(super) fn get(queue: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
        queue: queue.into(),
        no_ack: false,
    }))
}

pub(super) fn ack(delivery_tag: u64, multiple: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag,
        multiple,
    }))
}

pub(super) fn consume(queue: &str, tag: &str, exclusive: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: queue.into(),
        consumer_tag: tag.into(),
        no_local: false,
        no_ack: false,
        exclusive,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

pub(super) fn qos(prefetch_count: u16, global: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count,
        global,
    }))
}

/// The delivery tags of the basic.deliver frames among `frames`.
pub(super) fn delivery_tags(frames: &[AMQPClass]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => Some(d.delivery_tag),
            _ => None,
        })
        .collect()
}
