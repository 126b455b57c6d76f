//! The codec ceiling on one core: how many basic.publish messages a second the inbound path can take apart, and how
//! many deliveries a second the outbound path can encode, with no sockets, channels or queues involved. Whatever the
//! broker does per message comes on top of these figures, so they bound its throughput from above.
//!
//! - **decode**: basic.publish + content header + 16 B body, as a client sends them, fed to the [`FrameSplitter`] in
//!   64 KiB reads as the connection reader gets them (the copy into the read buffer is included); each method frame
//!   goes through [`parse_publish`], the reader's allocation-free decoder for basic.publish, and each header through
//!   [`parse_content_header`]. The same with amq-protocol's [`decode_method`] is reported beside it.
//! - **encode**: basic.deliver + content header + 16 B body appended to an outbound buffer as
//!   `Outbound::write_message` does for a small body ([`put_deliver`], [`put_content_header`], a body frame), the
//!   buffer cut off and dropped every 64 KiB as the writer takes it.
//!
//! `cargo bench --bench codec` measures for about 3 s each; without `--bench` (`cargo test --all-targets`) it runs
//! one short round of each as a smoke check.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use warren_protocol::client::put_publish;
use warren_protocol::content::{
    body_frame_prefix, parse_content_header, put_body_frames, put_content_header, put_deliver,
    DeliverArgs,
};
use warren_protocol::frame::FRAME_END;
use warren_protocol::{basic, decode_method, parse_publish, AMQPClass, FrameKind, FrameSplitter};

const BODY: [u8; 16] = [7; 16];
/// Property flags with only delivery-mode set, then delivery-mode 1 (what `warren perf` sends for transient).
const PROPERTIES: [u8; 3] = [0x10, 0x00, 0x01];
const ROUTING_KEY: &str = "bench-queue";
/// A server-generated consumer tag is `amq.ctag-` and 22 characters, as RabbitMQ's.
const CONSUMER_TAG: &str = "amq.ctag-0123456789abcdefghijkl";
const FRAME_MAX: u32 = 131_072;
const READ_SIZE: usize = 64 * 1024;
/// Messages per timed round.
const ROUND: usize = 100_000;
const MEASURE_FOR: Duration = Duration::from_secs(3);

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let input = publishes(ROUND);
    let decode = measure(full, || decode_round(&input, MethodDecoder::Reader));
    report(
        "decode basic.publish + header + 16 B body as the reader does (splitter, parse_publish, parse_content_header)",
        &decode,
    );
    let generic = measure(full, || decode_round(&input, MethodDecoder::Generic));
    report(
        "decode the same with amq-protocol's generic method decoder (splitter, decode_method, parse_content_header)",
        &generic,
    );
    let encode = measure(full, encode_round);
    report(
        "encode basic.deliver + header + 16 B body (put_deliver, put_content_header, body frame)",
        &encode,
    );
}

/// `n` publishes on channel 1 as one byte stream.
fn publishes(n: usize) -> Vec<u8> {
    let mut one = BytesMut::new();
    put_publish(&mut one, 1, "", ROUTING_KEY, false);
    put_content_header(&mut one, 1, BODY.len() as u64, &PROPERTIES);
    put_body_frames(&mut one, 1, &BODY, FRAME_MAX);
    one.repeat(n)
}

/// How method frames are decoded.
#[derive(Clone, Copy)]
enum MethodDecoder {
    /// What the connection reader does: [`parse_publish`], borrowing the strings.
    Reader,
    /// amq-protocol's generic decoder, which the reader uses for every other method.
    Generic,
}

/// Splits and decodes every frame of `input`; returns the number of messages.
fn decode_round(input: &[u8], decoder: MethodDecoder) -> usize {
    let splitter = FrameSplitter::new(FRAME_MAX);
    let mut buf = BytesMut::new();
    let (mut publishes, mut bodies) = (0usize, 0usize);
    for read in input.chunks(READ_SIZE) {
        buf.reserve(READ_SIZE.max(buf.len()));
        buf.extend_from_slice(read);
        while let Some(frame) = splitter.next_frame(&mut buf).expect("well-formed input") {
            match frame.kind {
                FrameKind::Method => match decoder {
                    MethodDecoder::Reader => {
                        let publish = parse_publish(&frame.payload).expect("a basic.publish");
                        black_box(&publish);
                        publishes += 1;
                    }
                    MethodDecoder::Generic => match decode_method(&frame.payload) {
                        Ok(AMQPClass::Basic(basic::AMQPMethod::Publish(publish))) => {
                            black_box(&publish);
                            publishes += 1;
                        }
                        other => panic!("expected basic.publish, got {other:?}"),
                    },
                },
                FrameKind::Header => {
                    let header = parse_content_header(&frame.payload).expect("valid header");
                    black_box(&header);
                }
                FrameKind::Body => {
                    bodies += black_box(frame.payload).len() / BODY.len();
                }
                FrameKind::Heartbeat => {}
            }
        }
    }
    assert_eq!((publishes, bodies), (ROUND, ROUND), "every message decoded");
    publishes
}

/// Encodes [`ROUND`] deliveries; returns the number of messages.
fn encode_round() -> usize {
    let mut out = BytesMut::with_capacity(2 * READ_SIZE);
    for tag in 1..=ROUND as u64 {
        put_deliver(
            &mut out,
            1,
            &DeliverArgs {
                consumer_tag: CONSUMER_TAG,
                delivery_tag: tag,
                redelivered: false,
                exchange: "",
                routing_key: ROUTING_KEY,
            },
        );
        put_content_header(&mut out, 1, BODY.len() as u64, &PROPERTIES);
        out.extend_from_slice(&body_frame_prefix(1, BODY.len()));
        out.extend_from_slice(black_box(&BODY));
        out.put_u8(FRAME_END);
        if out.len() >= READ_SIZE {
            // The writer takes what is queued; dropping it lets the buffer reuse its memory.
            drop(black_box(out.split().freeze()));
        }
    }
    black_box(out);
    ROUND
}

/// Messages per second of each timed round (after one warm-up round).
fn measure(full: bool, mut round: impl FnMut() -> usize) -> Vec<f64> {
    round();
    let started = Instant::now();
    let mut rates = Vec::new();
    loop {
        let t = Instant::now();
        let messages = round();
        rates.push(messages as f64 / t.elapsed().as_secs_f64());
        if !full || started.elapsed() >= MEASURE_FOR {
            return rates;
        }
    }
}

fn report(what: &str, rates: &[f64]) {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let best = sorted[sorted.len() - 1];
    println!(
        "{what}: {} msg/s (median of {} rounds of {ROUND}; best {}, worst {})",
        thousands(median),
        sorted.len(),
        thousands(best),
        thousands(sorted[0]),
    );
}

fn thousands(rate: f64) -> String {
    let digits = format!("{:.0}", rate);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
