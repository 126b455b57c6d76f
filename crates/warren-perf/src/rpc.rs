//! `warren perf --rpc N`: request/reply over direct reply-to (`amq.rabbitmq.reply-to`), the way RPC clients of
//! RabbitMQ use it. Each producer is a requester on its own connection: it consumes `amq.rabbitmq.reply-to` without
//! acks and keeps N requests in flight to the request queue, each with `reply_to = amq.rabbitmq.reply-to`; each
//! consumer is a responder on its own connection that answers every request through the default exchange to the
//! request's rewritten `reply_to`. Reported: completed round trips per second and the round-trip latency.
//!
//! A loop per connection on the setup client ([`Connection`]): the load here is bounded by round trips, not by the
//! per-message cost the main driver is built to keep low.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::client::Connection;
use super::histogram::Histogram;
use super::options::PerfArgs;
use super::uri::AmqpUri;
use super::PerfError;
use warren_protocol::client::put_publish;
use warren_protocol::content::{
    parse_content_header_ref, put_body_frames, put_content_header, reply_to,
};
use warren_protocol::frame::FrameKind;
use warren_protocol::{basic, queue, AMQPClass, FieldTable, ShortString};

/// The pseudo-queue requesters consume their replies from.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// The request queue when `--queue` names none.
const DEFAULT_QUEUE: &str = "warren-perf-rpc";

/// What one run measured.
#[derive(Debug)]
pub struct RpcSummary {
    /// Round trips completed within the run.
    pub round_trips: u64,
    /// The run's length.
    pub elapsed: Duration,
    /// Round-trip latency percentiles (50, 95, 99) and maximum, in microseconds.
    pub latency_us: [Option<u64>; 4],
    /// Requesters and requests each kept in flight.
    pub requesters: usize,
    /// In flight per requester.
    pub in_flight: usize,
    /// Responders.
    pub responders: usize,
}

impl RpcSummary {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let us = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        format!(
            "rpc over {REPLY_TO}: {} requesters x {} in flight, {} responders\n\
             round trips: {} in {:.1} s = {:.0}/s\n\
             round-trip latency us: p50 {} p95 {} p99 {} max {}\n",
            self.requesters,
            self.in_flight,
            self.responders,
            self.round_trips,
            self.elapsed.as_secs_f64(),
            self.rate(),
            us(self.latency_us[0]),
            us(self.latency_us[1]),
            us(self.latency_us[2]),
            us(self.latency_us[3]),
        )
    }

    /// One JSON line.
    pub fn to_json(&self) -> String {
        let num = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
        format!(
            "{{\"mode\":\"rpc\",\"requesters\":{},\"in_flight\":{},\"responders\":{},\"round_trips\":{},\
             \"seconds\":{:.3},\"rate\":{:.1},\"latency_us\":{{\"p50\":{},\"p95\":{},\"p99\":{},\"max\":{}}}}}",
            self.requesters,
            self.in_flight,
            self.responders,
            self.round_trips,
            self.elapsed.as_secs_f64(),
            self.rate(),
            num(self.latency_us[0]),
            num(self.latency_us[1]),
            num(self.latency_us[2]),
            num(self.latency_us[3]),
        )
    }
}

/// Runs the RPC load `args` describe: `--producers` requesters with `--rpc` requests each in flight, `--consumers`
/// responders (at least one), `--size` byte requests and replies, for `--time` seconds (10 by default).
pub async fn run(args: &PerfArgs) -> Result<RpcSummary, PerfError> {
    let in_flight = args.rpc.unwrap_or(1).max(1) as usize;
    let mut uri = AmqpUri::parse(&args.uri)?;
    uri.ca_cert.clone_from(&args.ca_cert);
    let queue = args
        .queue
        .clone()
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
    let responders = args.consumers.unwrap_or(1).max(1);
    let requesters = args.producers.max(1);
    let seconds = args.time.unwrap_or(10);
    let size = args.size.max(8);

    let mut setup = Connection::open(&uri, "warren perf rpc setup").await?;
    setup.open_channel(1).await?;
    let declared = setup
        .call(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: ShortString::from(queue.clone()),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await?;
    if !matches!(declared, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))) {
        return Err(PerfError::Protocol(format!(
            "expected queue.declare-ok, got {declared:?}"
        )));
    }

    let mut tasks = Vec::new();
    for i in 0..responders {
        let (uri, queue) = (uri.clone(), queue.clone());
        tasks.push(tokio::spawn(async move { respond(&uri, &queue, i).await }));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut requests = Vec::new();
    for i in 0..requesters {
        let (uri, queue) = (uri.clone(), queue.clone());
        requests.push(tokio::spawn(async move {
            request(&uri, &queue, i, in_flight, size, deadline).await
        }));
    }
    let mut latency = Histogram::new();
    let mut round_trips = 0;
    for task in requests {
        let (done, histogram) = task
            .await
            .map_err(|e| PerfError::Protocol(format!("a requester failed: {e}")))??;
        round_trips += done;
        latency.merge(&histogram);
    }
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    let _ = setup
        .call(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: ShortString::from(queue),
                if_unused: false,
                if_empty: false,
                nowait: false,
            })),
        )
        .await;
    let _ = setup.close().await;
    let us = |q: f64| latency.quantile(q).map(|ns| ns / 1_000);
    Ok(RpcSummary {
        round_trips,
        elapsed,
        latency_us: [
            us(0.50),
            us(0.95),
            us(0.99),
            latency.max().map(|ns| ns / 1_000),
        ],
        requesters,
        in_flight,
        responders,
    })
}

/// Consumes from `queue` and sends `basic.consume-ok`'s caller nothing until the first delivery.
async fn consume(conn: &mut Connection, queue: &str, tag: String) -> Result<(), PerfError> {
    let reply = conn
        .call(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: ShortString::from(queue.to_owned()),
                consumer_tag: tag.into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await?;
    match reply {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => Ok(()),
        other => Err(PerfError::Protocol(format!(
            "expected basic.consume-ok, got {other:?}"
        ))),
    }
}

/// One delivery's content as it arrives: the header's properties, then the body frames.
#[derive(Default)]
struct Incoming {
    reply_to: Option<String>,
    body: Vec<u8>,
    expected: u64,
}

/// Reads frames until one whole delivery is in; its reply_to and body.
async fn next_delivery(conn: &mut Connection) -> Result<Incoming, PerfError> {
    let mut incoming: Option<Incoming> = None;
    loop {
        let frame = conn.read_frame().await?;
        match frame.kind {
            FrameKind::Method => {
                let method = warren_protocol::decode_method(&frame.payload)
                    .map_err(|e| PerfError::Protocol(e.text))?;
                match method {
                    AMQPClass::Basic(basic::AMQPMethod::Deliver(_)) => {
                        incoming = Some(Incoming::default())
                    }
                    AMQPClass::Channel(_) | AMQPClass::Connection(_) => {
                        return Err(PerfError::Protocol(format!("the broker sent {method:?}")))
                    }
                    _ => {}
                }
            }
            FrameKind::Header => {
                let (_, size, properties) = parse_content_header_ref(&frame.payload)
                    .map_err(|e| PerfError::Protocol(e.text))?;
                if let Some(delivery) = incoming.as_mut() {
                    delivery.expected = size;
                    delivery.reply_to =
                        reply_to(properties).map(|r| String::from_utf8_lossy(r).into_owned());
                    if size == 0 {
                        return Ok(incoming.take().unwrap_or_default());
                    }
                }
            }
            FrameKind::Body => {
                if let Some(delivery) = incoming.as_mut() {
                    delivery.body.extend_from_slice(&frame.payload);
                    if delivery.body.len() as u64 >= delivery.expected {
                        return Ok(incoming.take().unwrap_or_default());
                    }
                }
            }
            FrameKind::Heartbeat => {}
        }
    }
}

/// The frames of one publish to `routing_key` through the default exchange, with `reply_to` if given.
fn put_message(
    out: &mut BytesMut,
    routing_key: &str,
    reply_to: Option<&str>,
    body: &[u8],
    frame_max: u32,
) {
    put_publish(out, 1, "", routing_key, false);
    let mut properties = Vec::with_capacity(3 + REPLY_TO.len());
    match reply_to {
        // Property flags: only reply-to (bit 9), then it as a short string.
        Some(to) => {
            properties.extend_from_slice(&[0x02, 0x00, to.len() as u8]);
            properties.extend_from_slice(to.as_bytes());
        }
        None => properties.extend_from_slice(&[0x00, 0x00]),
    }
    put_content_header(out, 1, body.len() as u64, &properties);
    put_body_frames(out, 1, body, frame_max);
}

/// A responder: answers every request of `queue` to its reply_to, with the request's body.
async fn respond(uri: &AmqpUri, queue: &str, index: usize) -> Result<(), PerfError> {
    let mut conn = Connection::open(uri, &format!("warren perf rpc responder {index}")).await?;
    conn.open_channel(1).await?;
    consume(&mut conn, queue, format!("rpc-responder-{index}")).await?;
    let mut out = BytesMut::new();
    loop {
        let request = next_delivery(&mut conn).await?;
        let Some(to) = request.reply_to.as_deref() else {
            continue;
        };
        out.clear();
        put_message(&mut out, to, None, &request.body, conn.frame_max);
        conn.write.write_all(&out).await.map_err(PerfError::Io)?;
    }
}

/// A requester: keeps `in_flight` requests outstanding until `deadline`; the round trips it completed and their
/// latencies (ns, from the send time stamped in the body).
async fn request(
    uri: &AmqpUri,
    queue: &str,
    index: usize,
    in_flight: usize,
    size: usize,
    deadline: Instant,
) -> Result<(u64, Histogram), PerfError> {
    let mut conn = Connection::open(uri, &format!("warren perf rpc requester {index}")).await?;
    conn.open_channel(1).await?;
    consume(&mut conn, REPLY_TO, format!("rpc-requester-{index}")).await?;
    let origin = Instant::now();
    let frame_max = conn.frame_max;
    let mut body = vec![0u8; size];
    let mut out = BytesMut::new();
    let send = |out: &mut BytesMut, body: &mut Vec<u8>| {
        let sent_ns = origin.elapsed().as_nanos() as u64;
        body[..8].copy_from_slice(&sent_ns.to_le_bytes());
        put_message(out, queue, Some(REPLY_TO), body, frame_max);
    };
    out.clear();
    for _ in 0..in_flight {
        send(&mut out, &mut body);
    }
    conn.write.write_all(&out).await.map_err(PerfError::Io)?;
    let mut latency = Histogram::new();
    let mut done = 0;
    let mut outstanding = in_flight;
    while outstanding > 0 {
        let reply = match tokio::time::timeout_at(deadline.into(), next_delivery(&mut conn)).await {
            Ok(reply) => reply?,
            Err(_) => break,
        };
        outstanding -= 1;
        let now_ns = origin.elapsed().as_nanos() as u64;
        if let Some(stamp) = reply.body.get(..8) {
            let mut sent = [0u8; 8];
            sent.copy_from_slice(stamp);
            latency.record(now_ns.saturating_sub(u64::from_le_bytes(sent)));
        }
        done += 1;
        if Instant::now() < deadline {
            out.clear();
            send(&mut out, &mut body);
            conn.write.write_all(&out).await.map_err(PerfError::Io)?;
            outstanding += 1;
        }
    }
    let _ = conn.close().await;
    Ok((done, latency))
}
