//! One publishing channel, as a state machine the connection's driver polls: it appends as many publishes as the
//! confirm window, the rate and the write batch allow (never awaiting per message), tracks confirms by sequence
//! number, and when told to stop waits for the outstanding confirms and closes its channel, so that everything it
//! sent has been taken by the broker before the consumers are asked to drain.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::body::{Stamp, MAX_SEQ, STAMP_LEN};
use super::stats::{Counts, Meter, PublishersRunning};
use super::turn::{Ctx, Phase, WRITE_BATCH};
use warren_protocol::client::{parse_confirm, put_publish};
use warren_protocol::content::{put_body_frames, put_content_header};
use warren_protocol::frame::FrameKind;
use warren_protocol::{channel, decode_method, put_method, AMQPClass, RawFrame};

/// How long a stopped producer waits for its outstanding confirms before it gives up on them.
pub(crate) const CONFIRM_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a producer is told at start.
#[derive(Clone, Debug)]
pub(crate) struct ProducerSpec {
    pub id: u16,
    pub exchange: String,
    pub routing_key: String,
    pub size: usize,
    pub persistent: bool,
    pub pmessages: Option<u64>,
    pub deadline: Option<Instant>,
    pub rate: Option<f64>,
    /// Outstanding-confirm window; `None` publishes without confirms.
    pub confirm: Option<usize>,
    /// Counted out of when this producer stops publishing.
    pub publishers: PublishersRunning,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Publishing,
    /// Stopped publishing; waiting for confirms until the instant given.
    Draining(Instant),
    /// channel.close sent, waiting for close-ok.
    Closing,
    Done,
}

/// What a producer leaves for the loss check.
#[derive(Debug, Default)]
pub(crate) struct ProducerReport {
    pub id: u16,
    pub sent: u64,
    /// Sequence numbers nacked by the broker.
    pub nacked: Vec<u64>,
    /// Sequence numbers still unconfirmed when the producer stopped waiting.
    pub unconfirmed: Vec<u64>,
}

pub(crate) struct Producer {
    spec: ProducerSpec,
    channel: u16,
    /// The frames of one publish (method, header, body); `stamp_at` is where the body starts.
    template: Vec<u8>,
    stamp_at: usize,
    /// Sequence number of the next publish (from 1, as the broker numbers confirms).
    next_seq: u64,
    started: Option<Instant>,
    window: Option<ConfirmWindow>,
    state: State,
    meter: Meter,
    local: Counts,
    last_flush: Option<Instant>,
    error: Option<String>,
}

impl Producer {
    pub(crate) fn new(spec: ProducerSpec, channel: u16, frame_max: u32, meter: Meter) -> Producer {
        let mut template = BytesMut::new();
        put_publish(
            &mut template,
            channel,
            &spec.exchange,
            &spec.routing_key,
            false,
        );
        // Flags with only delivery-mode set, then delivery-mode itself.
        let properties = [0x10, 0x00, if spec.persistent { 2 } else { 1 }];
        put_content_header(&mut template, channel, spec.size as u64, &properties);
        let stamp_at = template.len() + 7;
        put_body_frames(&mut template, channel, &vec![0u8; spec.size], frame_max);
        let window = spec.confirm.map(ConfirmWindow::new);
        Producer {
            spec,
            channel,
            template: template.to_vec(),
            stamp_at,
            next_seq: 1,
            started: None,
            window,
            state: State::Publishing,
            meter,
            local: Counts::default(),
            last_flush: None,
            error: None,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Appends what may be published now; returns when it next wants to be polled if nothing else happens
    /// (the rate limiter's next slot, the deadline, the confirm-drain timeout).
    pub(crate) fn poll(&mut self, ctx: &mut Ctx<'_>, phase: Phase) -> Option<Instant> {
        let wake = match self.state {
            State::Publishing => self.publish(ctx, phase),
            State::Draining(until) => {
                let outstanding = self.window.as_ref().map_or(0, |w| w.outstanding);
                if outstanding == 0 || ctx.now >= until || phase >= Phase::StopConsuming {
                    if outstanding > 0 {
                        self.error = Some(format!(
                            "producer {}: {outstanding} messages unconfirmed {} s after publishing stopped",
                            self.spec.id,
                            CONFIRM_DRAIN_TIMEOUT.as_secs()
                        ));
                    }
                    self.close(ctx);
                    None
                } else {
                    Some(until)
                }
            }
            State::Closing if phase >= Phase::StopConsuming => {
                self.state = State::Done;
                None
            }
            State::Closing | State::Done => None,
        };
        match (wake, self.flush(ctx.now, false)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn publish(&mut self, ctx: &mut Ctx<'_>, phase: Phase) -> Option<Instant> {
        let started = *self.started.get_or_insert(ctx.now);
        let sent = self.next_seq - 1;
        let limit = self.spec.pmessages.unwrap_or(MAX_SEQ).min(MAX_SEQ);
        let past_deadline = self.spec.deadline.is_some_and(|d| ctx.now >= d);
        if phase >= Phase::StopPublishing || past_deadline || sent >= limit {
            self.stop_publishing(ctx.now);
            return Some(ctx.now);
        }
        let mut budget = limit - sent;
        if let Some(window) = &self.window {
            budget = budget.min(window.room() as u64);
        }
        let mut wake = self.spec.deadline;
        if let Some(rate) = self.spec.rate {
            let elapsed = ctx.now.saturating_duration_since(started).as_secs_f64();
            let allowed = (rate * elapsed).floor() as u64 + 1;
            let due = allowed.saturating_sub(sent);
            if due == 0 {
                let next = started + Duration::from_secs_f64(sent as f64 / rate);
                wake = Some(wake.map_or(next, |w| w.min(next)));
            }
            budget = budget.min(due);
        }
        if ctx.out.len() >= WRITE_BATCH {
            return wake;
        }
        let by_bytes = ((WRITE_BATCH - ctx.out.len()) / self.template.len()).max(1) as u64;
        let n = budget.min(by_bytes);
        if n == 0 {
            return wake;
        }
        ctx.out.reserve(n as usize * self.template.len());
        for _ in 0..n {
            let at = ctx.out.len();
            ctx.out.extend_from_slice(&self.template);
            let seq = self.next_seq;
            Stamp {
                producer: self.spec.id,
                seq,
                sent_at_ns: ctx.now_ns,
            }
            .write(&mut ctx.out[at + self.stamp_at..at + self.stamp_at + STAMP_LEN]);
            if let Some(window) = &mut self.window {
                window.sent(ctx.now_ns);
            }
            self.next_seq += 1;
        }
        self.local.sent += n;
        wake
    }

    fn stop_publishing(&mut self, now: Instant) {
        self.meter.lock().stopped_publishing = Some(now);
        self.spec.publishers.one_stopped();
        self.state = State::Draining(now + CONFIRM_DRAIN_TIMEOUT);
    }

    fn close(&mut self, ctx: &mut Ctx<'_>) {
        put_method(
            ctx.out,
            self.channel,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "done".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        self.state = State::Closing;
    }

    /// Handles a frame the broker sent on this producer's channel. `Err` means the channel is gone.
    pub(crate) fn on_frame(&mut self, frame: &RawFrame, ctx: &mut Ctx<'_>) -> Result<(), String> {
        if frame.kind != FrameKind::Method {
            // Content of a basic.return (this tool never publishes mandatory, but a broker may still send one).
            return Ok(());
        }
        if let Some(confirm) = parse_confirm(&frame.payload) {
            let Some(window) = &mut self.window else {
                return Err(format!(
                    "producer {}: a confirm arrived on a channel not in confirm mode",
                    self.spec.id
                ));
            };
            window.settle(
                confirm.delivery_tag,
                confirm.multiple,
                confirm.ack,
                ctx.now_ns,
                &mut self.local,
            );
            return Ok(());
        }
        match decode_method(&frame.payload) {
            Ok(AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
                if self.state == State::Closing =>
            {
                self.state = State::Done;
                self.flush(ctx.now, true);
                Ok(())
            }
            Ok(AMQPClass::Channel(channel::AMQPMethod::Close(close))) => {
                put_method(
                    ctx.out,
                    self.channel,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                self.end(ctx.now);
                Err(format!(
                    "producer {}: channel closed by the broker: {} {}",
                    self.spec.id, close.reply_code, close.reply_text
                ))
            }
            // basic.return, channel.flow and the like: nothing to do for a load generator.
            Ok(_) => Ok(()),
            Err(e) => Err(format!("producer {}: {}", self.spec.id, e.text)),
        }
    }

    /// The channel or the connection is over (cleanly or not): stop where it stands.
    pub(crate) fn end(&mut self, now: Instant) {
        if self.state == State::Publishing {
            self.meter.lock().stopped_publishing = Some(now);
            self.spec.publishers.one_stopped();
        }
        self.state = State::Done;
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
        if self.state == State::Done {
            meter.done = true;
        }
        drop(meter);
        self.local.reset();
        None
    }

    /// A confirm-window error or an unconfirmed remainder, to report.
    pub(crate) fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    pub(crate) fn report(self) -> ProducerReport {
        let (nacked, unconfirmed) = match self.window {
            Some(w) => {
                let unconfirmed = w.unconfirmed();
                (w.nacked, unconfirmed)
            }
            None => (Vec::new(), Vec::new()),
        };
        ProducerReport {
            id: self.spec.id,
            sent: self.next_seq - 1,
            nacked,
            unconfirmed,
        }
    }
}

/// The unconfirmed publishes of a confirm channel, by sequence number, with their send times.
#[derive(Debug)]
struct ConfirmWindow {
    max: usize,
    /// Sequence number of `sent_at[0]`.
    first_seq: u64,
    /// Send time of each publish from `first_seq` on; `None` once settled out of order.
    sent_at: VecDeque<Option<u64>>,
    outstanding: usize,
    nacked: Vec<u64>,
}

impl ConfirmWindow {
    fn new(max: usize) -> ConfirmWindow {
        ConfirmWindow {
            max,
            first_seq: 1,
            sent_at: VecDeque::with_capacity(max.min(1 << 16)),
            outstanding: 0,
            nacked: Vec::new(),
        }
    }

    fn room(&self) -> usize {
        self.max.saturating_sub(self.outstanding)
    }

    fn sent(&mut self, at_ns: u64) {
        self.sent_at.push_back(Some(at_ns));
        self.outstanding += 1;
    }

    /// Settles `tag` (and with `multiple` every earlier one), recording confirm latency or the nack.
    fn settle(&mut self, tag: u64, multiple: bool, ack: bool, now_ns: u64, counts: &mut Counts) {
        let mut settle_one = |seq: u64, sent_at: u64, outstanding: &mut usize| {
            *outstanding -= 1;
            if ack {
                counts.confirmed += 1;
                counts
                    .confirm_latency
                    .record(now_ns.saturating_sub(sent_at));
            } else {
                counts.nacked += 1;
                self.nacked.push(seq);
            }
        };
        if tag < self.first_seq {
            return;
        }
        let last = (tag - self.first_seq) as usize;
        if multiple {
            let upto = last.min(self.sent_at.len());
            for i in 0..upto {
                if let Some(at) = self.sent_at[i].take() {
                    settle_one(self.first_seq + i as u64, at, &mut self.outstanding);
                }
            }
            if let Some(Some(at)) = self.sent_at.get_mut(last).map(Option::take) {
                settle_one(tag, at, &mut self.outstanding);
            }
        } else if let Some(slot) = self.sent_at.get_mut(last) {
            if let Some(at) = slot.take() {
                settle_one(tag, at, &mut self.outstanding);
            }
        }
        while self.sent_at.front().is_some_and(Option::is_none) {
            self.sent_at.pop_front();
            self.first_seq += 1;
        }
    }

    fn unconfirmed(&self) -> Vec<u64> {
        self.sent_at
            .iter()
            .enumerate()
            .filter(|(_, at)| at.is_some())
            .map(|(i, _)| self.first_seq + i as u64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiple_confirms_settle_everything_up_to_the_tag() {
        let mut w = ConfirmWindow::new(10);
        let mut counts = Counts::default();
        for t in 0..5 {
            w.sent(100 + t);
        }
        assert_eq!(w.room(), 5);
        w.settle(3, true, true, 1000, &mut counts);
        assert_eq!((counts.confirmed, w.outstanding, w.first_seq), (3, 2, 4));
        assert_eq!(counts.confirm_latency.max(), Some(900));
        w.settle(5, false, false, 1000, &mut counts);
        assert_eq!((counts.nacked, w.outstanding, w.first_seq), (1, 1, 4));
        assert_eq!(w.unconfirmed(), vec![4]);
        w.settle(4, false, true, 1000, &mut counts);
        assert_eq!((w.outstanding, w.first_seq, w.sent_at.len()), (0, 6, 0));
        assert_eq!(w.nacked, vec![5]);
        // Late and repeated confirms change nothing.
        w.settle(2, true, true, 1000, &mut counts);
        w.settle(99, true, true, 1000, &mut counts);
        assert_eq!((counts.confirmed, w.outstanding), (4, 0));
    }
}
