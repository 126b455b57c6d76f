//! What a run prints: one line per second, a progress line on a terminal, and the final [`Summary`] as text or as
//! one JSON line for scripts.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::broker_memory::BrokerMemory;
use super::histogram::Histogram;
use super::stats::Counts;

/// Latency quantiles in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// The median.
    pub p50: u64,
    /// The 95th percentile.
    pub p95: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The slowest one recorded.
    pub max: u64,
}

impl Latency {
    /// The quantiles of `h`; `None` when it recorded nothing.
    pub(crate) fn of(h: &Histogram) -> Option<Latency> {
        Some(Latency {
            p50: h.quantile(0.50)?,
            p95: h.quantile(0.95)?,
            p99: h.quantile(0.99)?,
            max: h.max()?,
        })
    }
}

/// The loss check: every message the broker accepted (confirmed, or without confirms sent on a channel that then
/// closed cleanly) must reach every consumer group exactly once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossCheck {
    /// Messages expected, summed over consumer groups.
    pub expected: u64,
    /// Expected but never received.
    pub missing: u64,
    /// Received more than once without the redelivered flag.
    pub duplicates: u64,
}

/// The consumers' side of the publishing window: what they received while producers were publishing, and what
/// they drained after. A broker that starves its consumers shows a window rate far below the publish rate and a
/// long drain; the overall consume rate ([`Summary::consume_rate`]) averages the two and hides it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConsumeWindow {
    /// Deliveries received while some producer was still publishing.
    pub received: u64,
    /// `received` over the publishing window ([`Summary::publish_time`]): the sustained consume rate.
    pub rate: f64,
    /// Deliveries received after the last producer stopped publishing.
    pub drained: u64,
    /// From the end of publishing to the last drained delivery; zero when nothing was drained.
    pub drain_time: Duration,
}

impl ConsumeWindow {
    /// Splits `received` deliveries, `drained` of them after publishing stopped, over a publishing window of
    /// `publish_time`; `drain_time` is how long the drain took.
    pub(crate) fn split(
        received: u64,
        drained: u64,
        publish_time: Duration,
        drain_time: Duration,
    ) -> ConsumeWindow {
        let drained = drained.min(received);
        let during = received - drained;
        ConsumeWindow {
            received: during,
            rate: per_second(during, publish_time),
            drained,
            drain_time: if drained == 0 {
                Duration::ZERO
            } else {
                drain_time
            },
        }
    }
}

/// `n` per second over `t`; 0 over no time.
pub(crate) fn per_second(n: u64, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Publishing channels.
    pub producers: usize,
    /// Consuming channels.
    pub consumers: usize,
    /// Body size in bytes.
    pub size: usize,
    /// From the first publish to the end of the drain.
    pub elapsed: Duration,
    /// From the first publish until the last producer stopped publishing.
    pub publish_time: Duration,
    /// From the first publish until the last delivery.
    pub consume_time: Duration,
    /// Messages published.
    pub sent: u64,
    /// Publishes the broker confirmed with basic.ack.
    pub confirmed: u64,
    /// Publishes the broker refused with basic.nack.
    pub nacked: u64,
    /// Deliveries of this run's messages, over all consumers.
    pub received: u64,
    /// Of those, deliveries with the redelivered flag.
    pub redelivered: u64,
    /// Messages from an earlier run or another tool, ignored.
    pub stale: u64,
    /// Messages per second, over `publish_time` and `consume_time`.
    pub publish_rate: f64,
    /// Deliveries per second, over `consume_time`: the drain is included, so this is not the sustained rate (see
    /// `window`).
    pub consume_rate: f64,
    /// Deliveries during the publishing window and in the drain after it; `None` without producers or consumers.
    pub window: Option<ConsumeWindow>,
    /// The broker's memory, with `--broker-pid`.
    pub broker_memory: Option<BrokerMemory>,
    /// From a publish to its confirm; `None` without confirms.
    pub confirm_latency: Option<Latency>,
    /// From the send timestamp in the body to the delivery.
    pub latency: Option<Latency>,
    /// `None` when the run had no producers or no consumers.
    pub loss: Option<LossCheck>,
    /// Connections held open (`--idle-connections`).
    pub idle_connections: usize,
    /// Protocol errors, closed channels and connections, unconfirmed messages.
    pub errors: Vec<String>,
}

impl Summary {
    /// No error, nothing missing, no duplicate.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self
                .loss
                .is_none_or(|l| l.missing == 0 && l.duplicates == 0)
    }

    /// The human-readable report printed at the end of a run.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let elapsed = self.elapsed.as_secs_f64();
        if self.producers == 0 && self.consumers == 0 {
            let _ = writeln!(
                s,
                "summary: {elapsed:.1} s, {} idle connections",
                self.idle_connections
            );
        } else {
            let _ = writeln!(
                s,
                "summary: {elapsed:.1} s, {} producers, {} consumers, {} B messages",
                self.producers, self.consumers, self.size
            );
        }
        if self.producers > 0 {
            let _ = writeln!(
                s,
                "  published         {:.0} msg/s ({} sent, {} confirmed, {} nacked in {:.1} s)",
                self.publish_rate,
                self.sent,
                self.confirmed,
                self.nacked,
                self.publish_time.as_secs_f64()
            );
        }
        if let Some(w) = self.window {
            let _ = writeln!(
                s,
                "  consumed          {:.0} msg/s while publishing ({} received in {:.1} s)",
                w.rate,
                w.received,
                self.publish_time.as_secs_f64()
            );
            let _ = writeln!(
                s,
                "  drained           {} msg in {:.1} s after publishing stopped",
                w.drained,
                w.drain_time.as_secs_f64()
            );
        }
        if self.consumers > 0 {
            let label = if self.window.is_some() {
                "consumed overall "
            } else {
                "consumed         "
            };
            let _ = writeln!(
                s,
                "  {label} {:.0} msg/s ({} received, {} redelivered, {} stale in {:.1} s)",
                self.consume_rate,
                self.received,
                self.redelivered,
                self.stale,
                self.consume_time.as_secs_f64()
            );
        }
        for (name, latency) in [
            ("confirm latency   ", self.confirm_latency),
            ("end-to-end latency", self.latency),
        ] {
            if let Some(l) = latency {
                let _ = writeln!(
                    s,
                    "  {name} p50 {}  p95 {}  p99 {}  max {}",
                    ms(l.p50),
                    ms(l.p95),
                    ms(l.p99),
                    ms(l.max)
                );
            }
        }
        if let Some(memory) = &self.broker_memory {
            let mib = |m: Option<f64>| m.map_or("-".to_owned(), |m| format!("{m:.1} MiB"));
            // Without a single sample, the error line below says it all.
            if memory.peak_rss_mib.is_some() || memory.error.is_none() {
                let _ = writeln!(
                    s,
                    "  broker memory     peak RSS {} (pid {}, sampled every 100 ms), VmHWM {}",
                    mib(memory.peak_rss_mib),
                    memory.pid,
                    mib(memory.hwm_mib)
                );
            }
            if let Some(cpu) = memory.cpu_seconds {
                let per_message = match self.received {
                    0 => String::new(),
                    n => format!(", {:.0} ns per message received", cpu * 1e9 / n as f64),
                };
                let _ = writeln!(s, "  broker cpu        {cpu:.2} s{per_message}");
            }
            if let Some(error) = &memory.error {
                let _ = writeln!(s, "  broker memory     {error}");
            }
        }
        if let Some(loss) = self.loss {
            let verdict = if loss.missing == 0 && loss.duplicates == 0 {
                "OK"
            } else {
                "FAILED"
            };
            let _ = writeln!(
                s,
                "  loss check        {} expected, {} missing, {} duplicates: {verdict}",
                loss.expected, loss.missing, loss.duplicates
            );
        }
        for error in &self.errors {
            let _ = writeln!(s, "  error: {error}");
        }
        s
    }

    /// The summary as one JSON object (latencies in microseconds, durations in seconds).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        let mut field = |name: &str, value: String| {
            if s.len() > 1 {
                s.push(',');
            }
            let _ = write!(s, "\"{name}\":{value}");
        };
        field("passed", self.passed().to_string());
        field("producers", self.producers.to_string());
        field("consumers", self.consumers.to_string());
        field("size", self.size.to_string());
        field("elapsed_s", format!("{:.3}", self.elapsed.as_secs_f64()));
        field(
            "publish_time_s",
            format!("{:.3}", self.publish_time.as_secs_f64()),
        );
        field(
            "consume_time_s",
            format!("{:.3}", self.consume_time.as_secs_f64()),
        );
        field("publish_rate", format!("{:.1}", self.publish_rate));
        field("consume_rate", format!("{:.1}", self.consume_rate));
        for (name, value) in [
            ("sent", self.sent),
            ("confirmed", self.confirmed),
            ("nacked", self.nacked),
            ("received", self.received),
            ("redelivered", self.redelivered),
            ("stale", self.stale),
        ] {
            field(name, value.to_string());
        }
        let window = |value: fn(&ConsumeWindow) -> String| {
            self.window.as_ref().map_or("null".to_owned(), value)
        };
        field("window_received", window(|w| w.received.to_string()));
        field("consume_rate_window", window(|w| format!("{:.1}", w.rate)));
        field("drained", window(|w| w.drained.to_string()));
        field(
            "drain_time_s",
            window(|w| format!("{:.3}", w.drain_time.as_secs_f64())),
        );
        for (name, latency) in [
            ("confirm_latency_us", self.confirm_latency),
            ("latency_us", self.latency),
        ] {
            let value = match latency {
                None => "null".to_owned(),
                Some(l) => format!(
                    "{{\"p50\":{},\"p95\":{},\"p99\":{},\"max\":{}}}",
                    us(l.p50),
                    us(l.p95),
                    us(l.p99),
                    us(l.max)
                ),
            };
            field(name, value);
        }
        let (missing, duplicates) = match self.loss {
            None => ("null".to_owned(), "null".to_owned()),
            Some(l) => (l.missing.to_string(), l.duplicates.to_string()),
        };
        field("missing", missing);
        field("duplicates", duplicates);
        field("idle_connections", self.idle_connections.to_string());
        if let Some(memory) = &self.broker_memory {
            let mib = |m: Option<f64>| m.map_or("null".to_owned(), |m| format!("{m:.1}"));
            field("broker_pid", memory.pid.to_string());
            field("broker_peak_rss_mib", mib(memory.peak_rss_mib));
            field("broker_hwm_mib", mib(memory.hwm_mib));
            field(
                "broker_cpu_s",
                memory
                    .cpu_seconds
                    .map_or("null".to_owned(), |c| format!("{c:.3}")),
            );
            field(
                "broker_memory_error",
                memory
                    .error
                    .as_deref()
                    .map_or("null".to_owned(), json_string),
            );
        }
        let errors: Vec<String> = self.errors.iter().map(|e| json_string(e)).collect();
        field("errors", format!("[{}]", errors.join(",")));
        s.push('}');
        s
    }
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// A latency for people: "850 us", "1.23 ms", "2.5 s".
pub(crate) fn ms(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{} us", ns / 1000)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

pub(crate) fn json_string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The once-a-second line.
pub(crate) fn second_line(
    second: u64,
    label: &str,
    interval: &Counts,
    confirms: bool,
    consumers: bool,
) -> String {
    let mut s = format!("time {second}s{label}, sent {} msg/s", interval.sent);
    if confirms {
        let _ = write!(s, ", confirmed {} msg/s", interval.confirmed);
    }
    if consumers {
        let _ = write!(s, ", received {} msg/s", interval.received);
    }
    if let Some(l) = Latency::of(&interval.confirm_latency) {
        let _ = write!(s, ", confirm p50 {} p99 {}", ms(l.p50), ms(l.p99));
    }
    if let Some(l) = Latency::of(&interval.latency) {
        let _ = write!(s, ", latency p50 {} p99 {}", ms(l.p50), ms(l.p99));
    }
    s
}

/// Where lines go: stdout, or stderr when stdout is kept for the JSON summary. On a terminal a progress line is
/// kept at the bottom and redrawn in place.
pub(crate) struct Console {
    to_stderr: bool,
    tty: bool,
    progress_shown: bool,
}

impl Console {
    pub(crate) fn new(json: bool) -> Console {
        let tty = if json {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Console {
            to_stderr: json,
            tty,
            progress_shown: false,
        }
    }

    pub(crate) fn is_terminal(&self) -> bool {
        self.tty
    }

    fn write(&mut self, text: &str) {
        // A closed pipe (`| head`) must not fail the run.
        let _ = if self.to_stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
    }

    pub(crate) fn line(&mut self, text: &str) {
        let clear = if self.progress_shown { "\r\x1b[2K" } else { "" };
        self.progress_shown = false;
        self.write(&format!("{clear}{text}\n"));
    }

    /// Redraws the progress line (terminals only).
    pub(crate) fn progress(&mut self, text: &str) {
        if self.tty {
            self.progress_shown = true;
            self.write(&format!("\r\x1b[2K{text}"));
        }
    }

    pub(crate) fn clear_progress(&mut self) {
        if self.progress_shown {
            self.progress_shown = false;
            self.write("\r\x1b[2K");
        }
    }
}

/// `[#####-----] 5/10 s` or, without a known end, the elapsed time.
pub(crate) fn progress_bar(done: f64, total: Option<f64>, unit: &str) -> String {
    match total {
        Some(total) if total > 0.0 => {
            const WIDTH: usize = 30;
            let filled = ((done / total).clamp(0.0, 1.0) * WIDTH as f64) as usize;
            let precision = usize::from(unit == "s");
            format!(
                "[{}{}] {done:.precision$}/{total:.0} {unit}",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled)
            )
        }
        _ => format!("{done:.0} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        Summary {
            producers: 1,
            consumers: 1,
            size: 16,
            elapsed: Duration::from_secs(2),
            publish_time: Duration::from_secs(1),
            consume_time: Duration::from_secs(2),
            sent: 100,
            confirmed: 100,
            received: 100,
            publish_rate: 100.0,
            consume_rate: 50.0,
            confirm_latency: Some(Latency {
                p50: 1_500_000,
                p95: 2_000_000,
                p99: 3_000_000,
                max: 4_000_000,
            }),
            loss: Some(LossCheck {
                expected: 100,
                missing: 0,
                duplicates: 0,
            }),
            ..Summary::default()
        }
    }

    #[test]
    fn json_summary_is_one_line_with_the_figures() {
        let mut summary = sample();
        summary
            .errors
            .push("channel closed: 406 \"x\"\n".to_owned());
        let json = summary.to_json();
        assert!(!json.contains('\n'));
        assert!(
            json.starts_with("{\"passed\":false,\"producers\":1,"),
            "{json}"
        );
        assert!(json.contains(
            "\"confirm_latency_us\":{\"p50\":1500.0,\"p95\":2000.0,\"p99\":3000.0,\"max\":4000.0}"
        ));
        assert!(json.contains("\"latency_us\":null"));
        assert!(json.contains("\"missing\":0,\"duplicates\":0"));
        assert!(
            json.contains(r#""errors":["channel closed: 406 \"x\"\n"]"#),
            "{json}"
        );
    }

    #[test]
    fn a_run_passes_only_without_errors_losses_or_duplicates() {
        let mut summary = sample();
        assert!(summary.passed());
        assert!(summary.render().contains("0 missing, 0 duplicates: OK"));
        summary.loss = Some(LossCheck {
            expected: 100,
            missing: 1,
            duplicates: 0,
        });
        assert!(!summary.passed());
        assert!(summary.render().contains("FAILED"));
        summary.loss = None;
        assert!(summary.passed());
    }

    #[test]
    fn drained_deliveries_are_not_in_the_window_rate() {
        let window = ConsumeWindow::split(
            1000,
            600,
            Duration::from_secs(2),
            Duration::from_millis(1500),
        );
        assert_eq!((window.received, window.drained), (400, 600));
        assert_eq!(window.rate, 200.0);
        assert_eq!(window.drain_time, Duration::from_millis(1500));
        let none_drained = ConsumeWindow::split(10, 0, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(
            (
                none_drained.received,
                none_drained.rate,
                none_drained.drain_time
            ),
            (10, 0.0, Duration::ZERO)
        );
    }

    #[test]
    fn the_window_and_the_drain_are_reported_beside_the_overall_rate() {
        let mut summary = sample();
        summary.window = Some(ConsumeWindow::split(
            100,
            60,
            Duration::from_secs(1),
            Duration::from_secs(1),
        ));
        let text = summary.render();
        assert!(
            text.contains("consumed          40 msg/s while publishing (40 received in 1.0 s)"),
            "{text}"
        );
        assert!(
            text.contains("drained           60 msg in 1.0 s after publishing stopped"),
            "{text}"
        );
        assert!(
            text.contains("consumed overall  50 msg/s (100 received"),
            "{text}"
        );
        let json = summary.to_json();
        assert!(json.contains("\"consume_rate\":50.0,"), "{json}");
        assert!(
            json.contains("\"window_received\":40,\"consume_rate_window\":40.0,\"drained\":60,\"drain_time_s\":1.000"),
            "{json}"
        );
        assert!(
            !json.contains("broker"),
            "no --broker-pid, no broker fields: {json}"
        );
        summary.window = None;
        assert!(summary.to_json().contains("\"consume_rate_window\":null"));
    }

    #[test]
    fn broker_memory_is_reported_and_its_error_does_not_fail_the_run() {
        let mut summary = sample();
        summary.broker_memory = Some(BrokerMemory {
            pid: 42,
            peak_rss_mib: Some(12.5),
            hwm_mib: None,
            cpu_seconds: Some(1.5),
            error: Some("broker pid 42: cannot read /proc/42/status".to_owned()),
        });
        assert!(summary.passed());
        let text = summary.render();
        assert!(text.contains("peak RSS 12.5 MiB (pid 42"), "{text}");
        assert!(text.contains("cannot read /proc/42/status"), "{text}");
        assert!(text.contains("broker cpu        1.50 s, "), "{text}");
        let json = summary.to_json();
        assert!(
            json.contains("\"broker_pid\":42,\"broker_peak_rss_mib\":12.5,\"broker_hwm_mib\":null,\"broker_cpu_s\":1.500,\"broker_memory_error\":\"broker pid 42"),
            "{json}"
        );
    }

    #[test]
    fn latencies_read_naturally() {
        assert_eq!(ms(850_000), "850 us");
        assert_eq!(ms(1_234_000), "1.23 ms");
        assert_eq!(ms(2_500_000_000), "2.50 s");
    }

    #[test]
    fn progress_bar_fills_in_proportion() {
        assert_eq!(
            progress_bar(5.0, Some(10.0), "s"),
            format!("[{}{}] 5.0/10 s", "#".repeat(15), "-".repeat(15))
        );
        assert_eq!(
            progress_bar(250.0, Some(1000.0), "msgs"),
            format!("[{}{}] 250/1000 msgs", "#".repeat(7), "-".repeat(23))
        );
        assert_eq!(progress_bar(7.0, None, "s"), "7 s");
    }
}
