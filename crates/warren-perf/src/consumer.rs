//! One consuming channel, as a state machine the connection's driver feeds frames to: it reassembles each
//! delivery (method, header, body frames) just far enough to read the 16-byte stamp, records end-to-end latency
//! and the loss-check bit, and acks every N deliveries with one basic.ack multiple=true. With `--consumer-rate` it
//! is a slow application: a delivery it has taken off the socket waits in a short [`Backlog`] until its
//! [`ProcessingPace`] allows processing it (counting, latency, ack), and a consumer behind its budget tells the
//! driver to stop reading ([`Consumer::accepts_input`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Buf;

use super::body::{Stamp, STAMP_LEN};
use super::loss::{Received, Seen};
use super::pace::ProcessingPace;
use super::stats::{Counts, Meter, PublishersRunning};
use super::turn::{Ctx, Phase};
use warren_protocol::client::{parse_deliver, put_ack};
use warren_protocol::frame::FrameKind;
use warren_protocol::{basic, channel, decode_method, put_method, AMQPClass, RawFrame};

/// What a consumer is told at start.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerSpec {
    /// Index of the queue (consumer group) it reads.
    pub group: usize,
    pub autoack: bool,
    /// Ack after this many deliveries (see `Plan::ack_every`).
    pub ack_every: u32,
    /// Producers of this run; 0 when this run only consumes (then nothing is tracked as this run's).
    pub producers: usize,
    /// Messages stamped before this (ns since the epoch) are from an earlier run.
    pub run_started_ns: u64,
    /// Once none is left, deliveries count as drained.
    pub publishers: PublishersRunning,
    /// `--consumer-rate`: deliveries processed per second at most; `None` processes each as it arrives.
    pub rate: Option<u32>,
    /// The prefetch count (`--qos`), 0 for none: with manual acks it bounds what a slow consumer holds.
    pub qos: u16,
}

/// A delivery taken off the socket, waiting for its turn to be processed (`--consumer-rate`).
#[derive(Debug)]
struct Delivery {
    tag: u64,
    redelivered: bool,
    stamp: Option<[u8; STAMP_LEN]>,
}

/// What a slow consumer (`--consumer-rate`) holds: its budget and the deliveries it has read but not processed.
#[derive(Debug)]
struct Backlog {
    pace: ProcessingPace,
    held: VecDeque<Delivery>,
    /// The consumer takes no more input while it holds this many. With manual acks and a prefetch, the broker
    /// sends at most `qos` unacked deliveries, so a well-behaved broker never reaches `qos + 1` and every
    /// delivery is read as it comes (the broker sees its credit used up). Otherwise (autoack, or no prefetch)
    /// nothing bounds what the broker sends: the consumer holds one and then the connection stops reading, so
    /// TCP pushes back on the broker instead of the tool buffering without bound.
    limit: usize,
}

/// Where the consumer is in the delivery it is reassembling.
#[derive(Debug)]
enum Incoming {
    Idle,
    Header {
        tag: u64,
        redelivered: bool,
    },
    Body {
        tag: u64,
        redelivered: bool,
        remaining: u64,
        stamp: [u8; STAMP_LEN],
        have: usize,
    },
}

pub(crate) struct Consumer {
    spec: ConsumerSpec,
    channel: u16,
    incoming: Incoming,
    /// Deliveries received but not yet acked, and the last one's tag.
    unacked: u32,
    last_tag: u64,
    received: Received,
    meter: Meter,
    local: Counts,
    unique: u64,
    last_received: Option<Instant>,
    last_flush: Option<Instant>,
    /// Every producer has stopped publishing: what arrives now is the drain (it never reopens, so once this
    /// is set the shared count is not read again).
    draining: bool,
    /// `--consumer-rate` only; `None` keeps the unlimited path as it was (one branch per delivery).
    backlog: Option<Box<Backlog>>,
    done: bool,
}

/// What a consumer leaves for the loss check.
#[derive(Debug)]
pub(crate) struct ConsumerReport {
    pub group: usize,
    pub received: Received,
}

impl Consumer {
    pub(crate) fn new(spec: ConsumerSpec, channel: u16, meter: Meter) -> Consumer {
        let backlog = spec.rate.map(|rate| {
            Box::new(Backlog {
                pace: ProcessingPace::new(rate),
                held: VecDeque::new(),
                limit: if spec.autoack || spec.qos == 0 {
                    1
                } else {
                    usize::from(spec.qos) + 1
                },
            })
        });
        Consumer {
            backlog,
            received: Received::new(spec.producers),
            spec,
            channel,
            incoming: Incoming::Idle,
            unacked: 0,
            last_tag: 0,
            meter,
            local: Counts::default(),
            unique: 0,
            last_received: None,
            last_flush: None,
            draining: false,
            done: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// It has a `--consumer-rate`.
    pub(crate) fn is_paced(&self) -> bool {
        self.backlog.is_some()
    }

    /// `false` while a slow consumer holds as many deliveries as it may (see [`Backlog::limit`]): the driver
    /// must not hand it another frame, nor read the socket, until a later [`Consumer::poll`] has processed one.
    pub(crate) fn accepts_input(&self) -> bool {
        self.done || self.backlog.as_ref().is_none_or(|b| b.held.len() < b.limit)
    }

    /// Processes the held deliveries whose turn has come; acks what is left and finishes once the coordinator
    /// says consumers stop (held deliveries are dropped unprocessed, as by an application that quits: with
    /// manual acks the broker requeues them). Returns when to come back.
    pub(crate) fn poll(&mut self, ctx: &mut Ctx<'_>, phase: Phase) -> Option<Instant> {
        if phase >= Phase::StopConsuming && !self.done {
            self.ack(ctx);
            self.done = true;
            return self.flush(ctx.now, true);
        }
        let mut wake = None;
        if let Some(mut backlog) = self.backlog.take() {
            while !backlog.held.is_empty() && backlog.pace.try_take(ctx.now) {
                if let Some(d) = backlog.held.pop_front() {
                    self.process(d.tag, d.redelivered, d.stamp, ctx);
                }
            }
            if !backlog.held.is_empty() {
                wake = backlog.pace.next_slot();
            }
            self.backlog = Some(backlog);
        }
        match (wake, self.flush(ctx.now, false)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.unacked > 0 {
            put_ack(ctx.out, self.channel, self.last_tag, self.unacked > 1);
            self.unacked = 0;
        }
    }

    /// Handles a frame the broker sent on this consumer's channel. `Err` means the channel or the consumer is
    /// gone.
    pub(crate) fn on_frame(&mut self, frame: &RawFrame, ctx: &mut Ctx<'_>) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        match frame.kind {
            FrameKind::Method => self.on_method(frame, ctx),
            FrameKind::Header => {
                let Incoming::Header { tag, redelivered } = self.incoming else {
                    return Err(self.unexpected("content header"));
                };
                let Some(mut size) = frame.payload.get(4..12) else {
                    return Err(self.unexpected("short content header"));
                };
                let remaining = size.get_u64();
                if remaining == 0 {
                    self.incoming = Incoming::Idle;
                    self.complete(tag, redelivered, None, ctx);
                } else {
                    self.incoming = Incoming::Body {
                        tag,
                        redelivered,
                        remaining,
                        stamp: [0; STAMP_LEN],
                        have: 0,
                    };
                }
                Ok(())
            }
            FrameKind::Body => {
                let Incoming::Body {
                    tag,
                    redelivered,
                    remaining,
                    mut stamp,
                    mut have,
                } = self.incoming
                else {
                    return Err(self.unexpected("body frame"));
                };
                let chunk = &frame.payload[..];
                if have < STAMP_LEN {
                    let take = chunk.len().min(STAMP_LEN - have);
                    stamp[have..have + take].copy_from_slice(&chunk[..take]);
                    have += take;
                }
                let Some(remaining) = remaining.checked_sub(chunk.len() as u64) else {
                    return Err(self.unexpected("body longer than its header said"));
                };
                if remaining == 0 {
                    self.incoming = Incoming::Idle;
                    let stamp = (have == STAMP_LEN).then_some(stamp);
                    self.complete(tag, redelivered, stamp, ctx);
                } else {
                    self.incoming = Incoming::Body {
                        tag,
                        redelivered,
                        remaining,
                        stamp,
                        have,
                    };
                }
                Ok(())
            }
            FrameKind::Heartbeat => Ok(()),
        }
    }

    fn on_method(&mut self, frame: &RawFrame, ctx: &mut Ctx<'_>) -> Result<(), String> {
        if let Some(deliver) = parse_deliver(&frame.payload) {
            if !matches!(self.incoming, Incoming::Idle) {
                return Err(self.unexpected("basic.deliver before the previous content ended"));
            }
            self.incoming = Incoming::Header {
                tag: deliver.delivery_tag,
                redelivered: deliver.redelivered,
            };
            return Ok(());
        }
        match decode_method(&frame.payload) {
            Ok(AMQPClass::Basic(basic::AMQPMethod::Cancel(_))) => {
                self.stop(ctx.now);
                Err(format!(
                    "consumer {}: cancelled by the broker (queue deleted?)",
                    self.channel
                ))
            }
            Ok(AMQPClass::Channel(channel::AMQPMethod::Close(close))) => {
                put_method(
                    ctx.out,
                    self.channel,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                self.stop(ctx.now);
                Err(format!(
                    "consumer on channel {}: channel closed by the broker: {} {}",
                    self.channel, close.reply_code, close.reply_text
                ))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(format!("consumer on channel {}: {}", self.channel, e.text)),
        }
    }

    /// A delivery has been read in full: processed now, or, for a slow consumer behind its budget, held (in
    /// order) for [`Consumer::poll`].
    fn complete(
        &mut self,
        tag: u64,
        redelivered: bool,
        stamp: Option<[u8; STAMP_LEN]>,
        ctx: &mut Ctx<'_>,
    ) {
        if let Some(backlog) = &mut self.backlog {
            if !backlog.held.is_empty() || !backlog.pace.try_take(ctx.now) {
                backlog.held.push_back(Delivery {
                    tag,
                    redelivered,
                    stamp,
                });
                return;
            }
        }
        self.process(tag, redelivered, stamp, ctx);
    }

    /// What an application does with a delivery: counts it (latency at this moment), checks it off and acks it.
    fn process(
        &mut self,
        tag: u64,
        redelivered: bool,
        stamp: Option<[u8; STAMP_LEN]>,
        ctx: &mut Ctx<'_>,
    ) {
        self.local.received += 1;
        self.draining = self.draining || !self.spec.publishers.any();
        if self.draining {
            self.local.drained += 1;
        }
        self.last_received = Some(ctx.now);
        if redelivered {
            self.local.redelivered += 1;
        }
        let stamp = stamp.as_ref().and_then(|s| Stamp::read(s));
        match stamp {
            Some(s) if self.spec.producers == 0 => {
                self.local
                    .latency
                    .record(ctx.now_ns.saturating_sub(s.sent_at_ns));
            }
            Some(s) if s.sent_at_ns >= self.spec.run_started_ns => {
                match self.received.record(s.producer, s.seq, redelivered) {
                    Some(Seen::First) => {
                        self.unique += 1;
                        self.local
                            .latency
                            .record(ctx.now_ns.saturating_sub(s.sent_at_ns));
                    }
                    Some(Seen::Redelivery) => {}
                    Some(Seen::Duplicate) => self.local.duplicates += 1,
                    None => self.local.stale += 1,
                }
            }
            _ => self.local.stale += 1,
        }
        if !self.spec.autoack {
            self.unacked += 1;
            self.last_tag = tag;
            if self.unacked >= self.spec.ack_every {
                self.ack(ctx);
            }
        }
    }

    fn unexpected(&self, what: &str) -> String {
        format!("consumer on channel {}: unexpected {what}", self.channel)
    }

    /// The channel or connection is gone.
    pub(crate) fn stop(&mut self, now: Instant) {
        self.done = true;
        self.flush(now, true);
    }

    /// Hands the locally gathered figures to the meter, at most every few milliseconds unless `force`; returns
    /// when to come back if figures are left for later.
    fn flush(&mut self, now: Instant, force: bool) -> Option<Instant> {
        const EVERY: Duration = Duration::from_millis(5);
        if let (false, Some(last)) = (force, self.last_flush) {
            if now.saturating_duration_since(last) < EVERY {
                return (!self.local.is_empty()).then_some(last + EVERY);
            }
        }
        self.last_flush = Some(now);
        let mut meter = self.meter.lock();
        meter.interval.add(&self.local);
        meter.unique_received = self.unique;
        if self.last_received.is_some() {
            meter.last_received = self.last_received;
        }
        meter.done |= self.done;
        drop(meter);
        self.local.reset();
        None
    }

    pub(crate) fn report(self) -> ConsumerReport {
        ConsumerReport {
            group: self.spec.group,
            received: self.received,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::now_ns;
    use bytes::BytesMut;
    use warren_protocol::content::{put_body_frames, put_content_header, put_deliver, DeliverArgs};
    use warren_protocol::frame::FrameSplitter;

    /// The frames of one delivery of producer 0's message `seq`, as a broker sends them.
    fn delivery(channel: u16, seq: u64) -> Vec<RawFrame> {
        let mut body = [0u8; STAMP_LEN];
        Stamp {
            producer: 0,
            seq,
            sent_at_ns: now_ns(),
        }
        .write(&mut body);
        let mut wire = BytesMut::new();
        let args = DeliverArgs {
            consumer_tag: "perf",
            delivery_tag: seq,
            redelivered: false,
            exchange: "",
            routing_key: "q",
        };
        put_deliver(&mut wire, channel, &args);
        put_content_header(&mut wire, channel, STAMP_LEN as u64, &[0, 0]);
        put_body_frames(&mut wire, channel, &body, 4096);
        let splitter = FrameSplitter::new(0);
        std::iter::from_fn(|| splitter.next_frame(&mut wire).ok().flatten()).collect()
    }

    #[test]
    fn deliveries_after_the_last_producer_stopped_count_as_drained() {
        let publishers = PublishersRunning::new(2);
        let meter = Meter::new();
        let spec = ConsumerSpec {
            group: 0,
            autoack: true,
            ack_every: 1,
            producers: 1,
            run_started_ns: 0,
            publishers: publishers.clone(),
            rate: None,
            qos: 0,
        };
        let mut consumer = Consumer::new(spec, 1, meter.clone());
        let mut out = BytesMut::new();
        let mut receive = |consumer: &mut Consumer, seqs: std::ops::RangeInclusive<u64>| {
            for seq in seqs {
                for frame in delivery(1, seq) {
                    let mut ctx = Ctx {
                        out: &mut out,
                        now: Instant::now(),
                        now_ns: now_ns(),
                    };
                    consumer
                        .on_frame(&frame, &mut ctx)
                        .expect("a well-formed delivery");
                }
            }
        };
        receive(&mut consumer, 1..=3);
        publishers.one_stopped();
        receive(&mut consumer, 4..=5);
        publishers.one_stopped();
        receive(&mut consumer, 6..=9);
        consumer.stop(Instant::now());
        let state = meter.lock();
        assert_eq!(state.interval.received, 9);
        assert_eq!(
            state.interval.drained, 4,
            "only what came after the last producer stopped"
        );
        assert_eq!(state.unique_received, 9);
    }

    /// A consumer of producer 0's messages on channel 1, without producers stopping.
    fn consumer(autoack: bool, rate: Option<u32>, qos: u16, meter: Meter) -> Consumer {
        let spec = ConsumerSpec {
            group: 0,
            autoack,
            ack_every: 1,
            producers: 1,
            run_started_ns: 0,
            publishers: PublishersRunning::new(1),
            rate,
            qos,
        };
        Consumer::new(spec, 1, meter)
    }

    /// Hands the consumer message `seq` at `now`, as one read of the socket.
    fn feed(consumer: &mut Consumer, seq: u64, now: Instant, out: &mut BytesMut) {
        for frame in delivery(1, seq) {
            let mut ctx = Ctx {
                out,
                now,
                now_ns: now_ns(),
            };
            consumer
                .on_frame(&frame, &mut ctx)
                .expect("a well-formed delivery");
        }
    }

    fn poll(consumer: &mut Consumer, now: Instant, out: &mut BytesMut) -> Option<Instant> {
        let mut ctx = Ctx {
            out,
            now,
            now_ns: now_ns(),
        };
        consumer.poll(&mut ctx, Phase::Running)
    }

    /// The delivery tags of the basic.acks the consumer wrote, taking them out of `out`.
    fn acked(out: &mut BytesMut) -> Vec<u64> {
        let splitter = FrameSplitter::new(0);
        std::iter::from_fn(|| splitter.next_frame(out).ok().flatten())
            .filter_map(|frame| match decode_method(&frame.payload) {
                Ok(AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => Some(ack.delivery_tag),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_slow_consumer_with_a_prefetch_reads_every_delivery_but_acks_at_its_pace() {
        let meter = Meter::new();
        let mut consumer = consumer(false, Some(10), 3, meter.clone());
        let mut out = BytesMut::new();
        let start = Instant::now();
        for seq in 1..=3 {
            feed(&mut consumer, seq, start, &mut out);
            assert!(
                consumer.accepts_input(),
                "the prefetch bounds what it holds"
            );
        }
        assert_eq!(acked(&mut out), [1], "only the first is processed at once");
        let slot = start + Duration::from_millis(100);
        assert_eq!(
            poll(&mut consumer, start + Duration::from_millis(99), &mut out),
            Some(slot)
        );
        assert!(acked(&mut out).is_empty());
        poll(&mut consumer, slot, &mut out);
        assert_eq!(acked(&mut out), [2]);
        poll(&mut consumer, start + Duration::from_millis(250), &mut out);
        assert_eq!(acked(&mut out), [3]);
        consumer.stop(start + Duration::from_millis(250));
        let state = meter.lock();
        assert_eq!((state.interval.received, state.unique_received), (3, 3));
    }

    #[test]
    fn a_slow_autoack_consumer_takes_no_input_while_it_is_behind() {
        let meter = Meter::new();
        let mut consumer = consumer(true, Some(10), 0, meter.clone());
        let mut out = BytesMut::new();
        let start = Instant::now();
        feed(&mut consumer, 1, start, &mut out);
        assert!(consumer.accepts_input());
        feed(&mut consumer, 2, start, &mut out);
        assert!(!consumer.accepts_input(), "one held: stop reading");
        let slot = start + Duration::from_millis(100);
        assert_eq!(poll(&mut consumer, start, &mut out), Some(slot));
        assert!(!consumer.accepts_input());
        assert_eq!(poll(&mut consumer, slot, &mut out), None);
        assert!(consumer.accepts_input());
        assert!(out.is_empty(), "autoack sends no ack");
        consumer.stop(slot);
        assert_eq!(meter.lock().interval.received, 2);
    }

    #[test]
    fn a_manual_ack_consumer_without_prefetch_stops_reading_like_autoack() {
        let mut consumer = consumer(false, Some(10), 0, Meter::new());
        let mut out = BytesMut::new();
        let start = Instant::now();
        feed(&mut consumer, 1, start, &mut out);
        feed(&mut consumer, 2, start, &mut out);
        assert!(!consumer.accepts_input());
        assert_eq!(acked(&mut out), [1]);
    }

    #[test]
    fn held_deliveries_processed_after_the_producers_stopped_count_as_drained() {
        let publishers = PublishersRunning::new(1);
        let meter = Meter::new();
        let spec = ConsumerSpec {
            group: 0,
            autoack: false,
            ack_every: 1,
            producers: 1,
            run_started_ns: 0,
            publishers: publishers.clone(),
            rate: Some(1),
            qos: 10,
        };
        let mut consumer = Consumer::new(spec, 1, meter.clone());
        let mut out = BytesMut::new();
        let start = Instant::now();
        for seq in 1..=3 {
            feed(&mut consumer, seq, start, &mut out);
        }
        publishers.one_stopped();
        for s in 1..=2 {
            poll(&mut consumer, start + Duration::from_secs(s), &mut out);
        }
        assert_eq!(acked(&mut out), [1, 2, 3]);
        consumer.stop(start + Duration::from_secs(2));
        let state = meter.lock();
        assert_eq!((state.interval.received, state.interval.drained), (3, 2));
    }

    #[test]
    fn stopping_drops_held_deliveries_unprocessed() {
        let meter = Meter::new();
        let mut consumer = consumer(false, Some(1), 10, meter.clone());
        let mut out = BytesMut::new();
        let start = Instant::now();
        for seq in 1..=3 {
            feed(&mut consumer, seq, start, &mut out);
        }
        let mut ctx = Ctx {
            out: &mut out,
            now: start,
            now_ns: now_ns(),
        };
        consumer.poll(&mut ctx, Phase::StopConsuming);
        assert!(consumer.is_done() && consumer.accepts_input());
        assert_eq!(acked(&mut out), [1], "the broker requeues the unacked two");
        assert_eq!(meter.lock().interval.received, 1);
    }

    #[test]
    fn a_run_without_producers_drains_from_the_start() {
        let publishers = PublishersRunning::new(0);
        assert!(!publishers.any());
        publishers.one_stopped();
        assert!(!publishers.any(), "a stray stop does not wrap around");
    }
}
