//! What a soak prints: a line every `--report-every` seconds (and one at the end), for people and as JSON, and
//! the final [`SoakSummary`]. Counts of things that happen (churn, messages, acks) are per interval; losses,
//! late heartbeats, stalls and errors are totals since the start, so a line alone says whether the run is clean.

use std::fmt::Write as _;
use std::time::Duration;

use super::super::histogram::Histogram;
use super::super::report::{json_string, ms, Latency};
use super::broker_proc::BrokerSample;
use super::tally::Tally;

/// The cumulative counters at one moment; two of them give an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub idle_open: u64,
    pub idle_lost: u64,
    pub late_heartbeats: u64,
    pub churned_connections: u64,
    pub churn_skipped: u64,
    pub churned_queues: u64,
    pub steady_sent: u64,
    pub steady_received: u64,
    pub fed: u64,
    pub feed_held: u64,
    pub slow_acked: u64,
    pub stalls_let_go: u64,
    pub stalls_kept: u64,
    pub errors: u64,
}

impl Counters {
    pub(crate) fn read(tally: &Tally) -> Counters {
        let get = Tally::get;
        Counters {
            idle_open: get(&tally.idle_open),
            idle_lost: get(&tally.idle_lost),
            late_heartbeats: get(&tally.late_heartbeats),
            churned_connections: get(&tally.churned_connections),
            churn_skipped: get(&tally.churn_skipped),
            churned_queues: get(&tally.churned_queues),
            steady_sent: get(&tally.steady_sent),
            steady_received: get(&tally.steady_received),
            fed: get(&tally.fed),
            feed_held: get(&tally.feed_held),
            slow_acked: get(&tally.slow_acked),
            stalls_let_go: get(&tally.stalls_let_go),
            stalls_kept: get(&tally.stalls_kept),
            errors: get(&tally.errors),
        }
    }
}

/// One report line's figures.
#[derive(Clone, Debug)]
pub(crate) struct IntervalReport {
    /// Since the timed run started.
    pub elapsed: Duration,
    /// The last line, at the end of the run.
    pub last: bool,
    pub idle_wanted: usize,
    /// Totals now.
    pub now: Counters,
    /// Totals at the previous line.
    pub before: Counters,
    pub latency: Option<Latency>,
    pub broker: Option<BrokerSample>,
}

impl IntervalReport {
    pub(crate) fn new(
        elapsed: Duration,
        last: bool,
        idle_wanted: usize,
        now: Counters,
        before: Counters,
        latency: &Histogram,
        broker: Option<BrokerSample>,
    ) -> IntervalReport {
        IntervalReport {
            elapsed,
            last,
            idle_wanted,
            now,
            before,
            latency: Latency::of(latency),
            broker,
        }
    }

    /// The line for people.
    pub(crate) fn human(&self) -> String {
        let (n, d) = (&self.now, self.delta());
        let secs = self.elapsed.as_secs();
        let mut s = format!(
            "{:>3}:{:02}{} idle {}/{} open, {} lost, {} late hb | churn {} conn, {} queues | steady ",
            secs / 60,
            secs % 60,
            if self.last { " end" } else { "    " },
            n.idle_open,
            self.idle_wanted,
            n.idle_lost,
            n.late_heartbeats,
            d.churned_connections,
            d.churned_queues,
        );
        match self.latency {
            Some(l) => {
                let _ = write!(
                    s,
                    "p99 {} max {} ({} msgs)",
                    ms(l.p99),
                    ms(l.max),
                    d.steady_received
                );
            }
            None => s.push_str("no deliveries"),
        }
        let _ = write!(
            s,
            " | slow {} acked | stalls {} let go, {} kept",
            d.slow_acked, n.stalls_let_go, n.stalls_kept
        );
        if let Some(b) = self.broker {
            let rss = b.rss_mib.map_or("?".to_owned(), |m| format!("{m:.1}"));
            let fds = b.fds.map_or("?".to_owned(), |f| f.to_string());
            let _ = write!(s, " | broker {rss} MiB, {fds} fds");
        }
        let _ = write!(s, " | errors {}", n.errors);
        if d.churn_skipped > 0 || d.feed_held > 0 {
            let _ = write!(
                s,
                " (skipped: {} churn, {} held feeds)",
                d.churn_skipped, d.feed_held
            );
        }
        s
    }

    /// The same figures as one JSON object.
    pub(crate) fn json(&self) -> String {
        let (n, d) = (&self.now, self.delta());
        let mut s = format!(
            "{{\"type\":\"interval\",\"t_s\":{:.1},\"last\":{},\"idle_wanted\":{},\"idle_open\":{},\"idle_lost\":{},\
             \"late_heartbeats\":{},\"churned_connections\":{},\"churn_skipped\":{},\"churned_queues\":{},\
             \"steady_sent\":{},\"steady_received\":{},\"fed\":{},\"feed_held\":{},\"slow_acked\":{},\
             \"stalls_let_go\":{},\"stalls_kept\":{},\"errors\":{}",
            self.elapsed.as_secs_f64(),
            self.last,
            self.idle_wanted,
            n.idle_open,
            n.idle_lost,
            n.late_heartbeats,
            d.churned_connections,
            d.churn_skipped,
            d.churned_queues,
            d.steady_sent,
            d.steady_received,
            d.fed,
            d.feed_held,
            d.slow_acked,
            n.stalls_let_go,
            n.stalls_kept,
            n.errors,
        );
        push_latency(&mut s, self.latency);
        push_broker(&mut s, self.broker);
        s.push('}');
        s
    }

    /// What happened during the interval (the `now - before` of the per-interval counts).
    fn delta(&self) -> Counters {
        let (n, b) = (&self.now, &self.before);
        Counters {
            churned_connections: n.churned_connections - b.churned_connections,
            churn_skipped: n.churn_skipped - b.churn_skipped,
            churned_queues: n.churned_queues - b.churned_queues,
            steady_sent: n.steady_sent - b.steady_sent,
            steady_received: n.steady_received - b.steady_received,
            fed: n.fed - b.fed,
            feed_held: n.feed_held - b.feed_held,
            slow_acked: n.slow_acked - b.slow_acked,
            ..*n
        }
    }
}

fn push_latency(s: &mut String, latency: Option<Latency>) {
    match latency {
        Some(l) => {
            let _ = write!(
                s,
                ",\"latency_p50_ms\":{:.3},\"latency_p99_ms\":{:.3},\"latency_max_ms\":{:.3}",
                l.p50 as f64 / 1e6,
                l.p99 as f64 / 1e6,
                l.max as f64 / 1e6
            );
        }
        None => {
            s.push_str(",\"latency_p50_ms\":null,\"latency_p99_ms\":null,\"latency_max_ms\":null")
        }
    }
}

fn push_broker(s: &mut String, broker: Option<BrokerSample>) {
    let rss = broker
        .and_then(|b| b.rss_mib)
        .map_or("null".to_owned(), |m| format!("{m:.1}"));
    let fds = broker
        .and_then(|b| b.fds)
        .map_or("null".to_owned(), |f| f.to_string());
    let _ = write!(s, ",\"broker_rss_mib\":{rss},\"broker_fds\":{fds}");
}

/// The result of a soak.
#[derive(Clone, Debug, Default)]
pub struct SoakSummary {
    /// How long opening the idle connections took.
    pub ramp: Duration,
    /// How long the timed load ran.
    pub elapsed: Duration,
    /// Idle connections asked for.
    pub idle_wanted: usize,
    /// Idle connections that opened.
    pub idle_opened: u64,
    /// Idle connections still open when the load stopped.
    pub idle_open_at_end: u64,
    /// Idle connections the broker closed or lost during the run: missed heartbeats.
    pub idle_lost: u64,
    /// Times a connection heard nothing from the broker for more than two heartbeat intervals.
    pub late_heartbeats: u64,
    /// Connections opened and closed by the churn.
    pub churned_connections: u64,
    /// Queues declared and deleted by the churn.
    pub churned_queues: u64,
    /// Messages the steady producer sent.
    pub steady_sent: u64,
    /// Messages the steady consumer received.
    pub steady_received: u64,
    /// The steady pair's end-to-end latency over the whole run; `None` if nothing arrived.
    pub latency: Option<Latency>,
    /// Deliveries the slow consumers acked.
    pub slow_acked: u64,
    /// Stalls after which the broker had closed the stalled consumer's connection.
    pub stalls_let_go: u64,
    /// Stalls after which the stalled consumer's connection was still open.
    pub stalls_kept: u64,
    /// The broker's RSS (MiB) and open files at the start and at the end, and the largest seen at a report.
    pub broker_start: Option<(Option<f64>, Option<u64>)>,
    /// See [`SoakSummary::broker_start`].
    pub broker_end: Option<(Option<f64>, Option<u64>)>,
    /// See [`SoakSummary::broker_start`].
    pub broker_peak: Option<(Option<f64>, Option<u64>)>,
    /// The broker's limit on open files, when `--broker-pid` was given and `/proc` says.
    pub broker_max_open_files: Option<u64>,
    /// Why `/proc` of the broker could not be read, if it could not.
    pub broker_error: Option<String>,
    /// Errors counted (everything that failed other than idle connections lost and stalled ones let go).
    pub errors: u64,
    /// The distinct error texts and how often each occurred.
    pub error_texts: Vec<(String, u64)>,
    /// Why idle connections were lost, and how often.
    pub losses: Vec<(String, u64)>,
}

impl SoakSummary {
    /// No errors and every idle connection opened and stayed open.
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.idle_lost == 0 && self.idle_opened == self.idle_wanted as u64
    }

    /// The summary for people, several lines.
    pub fn render(&self) -> String {
        let mut s = format!(
            "soak: {:.0} s after a {:.1} s ramp; {}/{} idle connections opened, {} open at the end, {} lost \
             (missed heartbeats), {} late heartbeats\n",
            self.elapsed.as_secs_f64(),
            self.ramp.as_secs_f64(),
            self.idle_opened,
            self.idle_wanted,
            self.idle_open_at_end,
            self.idle_lost,
            self.late_heartbeats,
        );
        let _ = writeln!(
            s,
            "churn: {} connections, {} queues; slow consumers acked {}; stalls: {} let go by the broker, {} kept",
            self.churned_connections,
            self.churned_queues,
            self.slow_acked,
            self.stalls_let_go,
            self.stalls_kept
        );
        let _ = write!(
            s,
            "steady pair: {} sent, {} received",
            self.steady_sent, self.steady_received
        );
        if let Some(l) = self.latency {
            let _ = write!(
                s,
                ", latency p50 {} p99 {} max {}",
                ms(l.p50),
                ms(l.p99),
                ms(l.max)
            );
        }
        s.push('\n');
        let show = |b: Option<(Option<f64>, Option<u64>)>| match b {
            Some((rss, fds)) => format!(
                "{} MiB, {} fds",
                rss.map_or("?".to_owned(), |m| format!("{m:.1}")),
                fds.map_or("?".to_owned(), |f| f.to_string())
            ),
            None => "?".to_owned(),
        };
        if self.broker_start.is_some() || self.broker_error.is_some() {
            let _ = writeln!(
                s,
                "broker: start {}, end {}, peak {}; open files limit {}",
                show(self.broker_start),
                show(self.broker_end),
                show(self.broker_peak),
                self.broker_max_open_files
                    .map_or("?".to_owned(), |l| l.to_string())
            );
            if let Some(e) = &self.broker_error {
                let _ = writeln!(s, "broker /proc: {e}");
            }
        }
        let _ = writeln!(s, "errors: {}", self.errors);
        for (text, n) in &self.error_texts {
            let _ = writeln!(s, "  {n} x {text}");
        }
        for (text, n) in &self.losses {
            let _ = writeln!(s, "  idle connection lost {n} x: {text}");
        }
        let _ = writeln!(s, "{}", if self.passed() { "PASSED" } else { "FAILED" });
        s
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"type\":\"summary\",\"passed\":{},\"ramp_s\":{:.3},\"elapsed_s\":{:.3},\"idle_wanted\":{},\
             \"idle_opened\":{},\"idle_open_at_end\":{},\"idle_lost\":{},\"late_heartbeats\":{},\
             \"churned_connections\":{},\"churned_queues\":{},\"steady_sent\":{},\"steady_received\":{},\
             \"slow_acked\":{},\"stalls_let_go\":{},\"stalls_kept\":{},\"errors\":{}",
            self.passed(),
            self.ramp.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            self.idle_wanted,
            self.idle_opened,
            self.idle_open_at_end,
            self.idle_lost,
            self.late_heartbeats,
            self.churned_connections,
            self.churned_queues,
            self.steady_sent,
            self.steady_received,
            self.slow_acked,
            self.stalls_let_go,
            self.stalls_kept,
            self.errors,
        );
        push_latency(&mut s, self.latency);
        for (name, b) in [
            ("start", self.broker_start),
            ("end", self.broker_end),
            ("peak", self.broker_peak),
        ] {
            let _ = write!(
                s,
                ",\"broker_{name}_rss_mib\":{},\"broker_{name}_fds\":{}",
                b.and_then(|b| b.0)
                    .map_or("null".to_owned(), |m| format!("{m:.1}")),
                b.and_then(|b| b.1)
                    .map_or("null".to_owned(), |f| f.to_string())
            );
        }
        let texts = |list: &[(String, u64)]| {
            list.iter()
                .map(|(t, n)| format!("{{\"text\":{},\"count\":{n}}}", json_string(t)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = write!(
            s,
            ",\"error_texts\":[{}],\"losses\":[{}]}}",
            texts(&self.error_texts),
            texts(&self.losses)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_line_counts_churn_per_interval_and_losses_in_total() {
        let before = Counters {
            churned_connections: 10,
            idle_lost: 1,
            ..Counters::default()
        };
        let now = Counters {
            idle_open: 99,
            churned_connections: 25,
            idle_lost: 1,
            ..Counters::default()
        };
        let mut h = Histogram::new();
        h.record(2_000_000);
        let report = IntervalReport::new(
            Duration::from_secs(60),
            false,
            100,
            now,
            before,
            &h,
            Some(BrokerSample {
                rss_mib: Some(12.5),
                fds: Some(140),
            }),
        );
        let line = report.human();
        assert!(line.starts_with("  1:00"), "{line}");
        assert!(line.contains("idle 99/100 open, 1 lost"), "{line}");
        assert!(line.contains("churn 15 conn"), "{line}");
        assert!(line.contains("p99 2.00 ms"), "{line}");
        assert!(line.contains("broker 12.5 MiB, 140 fds"), "{line}");
        let json = report.json();
        assert!(json.contains("\"churned_connections\":15"), "{json}");
        assert!(json.contains("\"idle_lost\":1"), "{json}");
        assert!(json.contains("\"broker_fds\":140"), "{json}");
        assert!(json.starts_with('{') && json.ends_with('}'));
    }

    #[test]
    fn a_summary_passes_only_when_clean() {
        let mut summary = SoakSummary {
            idle_wanted: 10,
            idle_opened: 10,
            ..SoakSummary::default()
        };
        assert!(summary.passed());
        summary.idle_lost = 1;
        assert!(!summary.passed());
        summary.idle_lost = 0;
        summary.errors = 1;
        summary.error_texts = vec![("churn: \"x\"".to_owned(), 1)];
        assert!(!summary.passed());
        assert!(summary.to_json().contains("\"text\":\"churn: \\\"x\\\"\""));
        assert!(summary.render().contains("FAILED"));
    }
}
