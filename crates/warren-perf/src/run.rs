//! The coordinator of a run: declares, connects, starts one driver task per connection, prints a line a second,
//! decides when producers stop (their own limits, or an interrupt) and when consumers have drained everything,
//! then gathers the reports into the [`Summary`] and its loss check.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::body::now_ns;
use super::broker_memory::BrokerMemorySampler;
use super::consumer::{Consumer, ConsumerReport, ConsumerSpec};
use super::declarations::{self, Declared};
use super::driver::{Driver, DriverOutcome, Handler};
use super::loss::Received;
use super::options::Plan;
use super::producer::{Producer, ProducerReport, ProducerSpec};
use super::report::{
    per_second, progress_bar, second_line, Console, ConsumeWindow, Latency, LossCheck, Summary,
};
use super::setup::{self, Prepared, Role};
use super::stats::{Counts, Meter, Meters, PublishersRunning};
use super::turn::Phase;
use super::PerfError;

/// How often the coordinator looks at the meters.
const TICK: Duration = Duration::from_millis(50);
/// How often a terminal's progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// The drain ends when consumers have received nothing new for this long (some messages will never come).
const DRAIN_IDLE: Duration = Duration::from_secs(3);
/// How long connections get to close once told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Running,
    /// Producers are done; waiting for consumers to receive everything (or to stall).
    Draining {
        progress_at: Instant,
        unique: u64,
    },
    Stopping {
        since: Instant,
    },
}

pub(crate) async fn run(
    plan: &Plan,
    interrupt: impl Future<Output = ()>,
) -> Result<Summary, PerfError> {
    let mut console = Console::new(plan.json);
    let mut errors = Vec::new();
    let (prepared, declared) = if plan.idle_connections > 0 {
        let (prepared, failed) = setup::connect_idle(plan).await;
        errors.extend(failed);
        console.line(&format!("{} idle connections open", prepared.len()));
        (
            prepared,
            Declared {
                exchange: String::new(),
                routing_key: String::new(),
                queues: Vec::new(),
            },
        )
    } else {
        let declared = declarations::declare(plan).await?;
        (setup::connect(plan, &declared).await?, declared)
    };

    let run_started_ns = now_ns();
    let start = Instant::now();
    let broker_memory = plan.broker_pid.map(BrokerMemorySampler::start);
    let deadline = plan.time.map(|t| start + t);
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut meters = Meters::default();
    let publishers = PublishersRunning::new(
        prepared
            .iter()
            .flat_map(|p| &p.roles)
            .filter(|role| matches!(role, Role::Producer(_)))
            .count(),
    );
    let mut tasks: Vec<JoinHandle<DriverOutcome>> = Vec::new();
    for Prepared { conn, roles } in prepared {
        let frame_max = conn.frame_max;
        let mut handlers = Vec::with_capacity(roles.len());
        for (i, role) in roles.into_iter().enumerate() {
            let channel = (i + 1) as u16;
            let meter = Meter::new();
            handlers.push(match role {
                Role::Producer(id) => {
                    meters.producers.push(meter.clone());
                    // With --spread a producer publishes to its own queue through the default exchange.
                    let routing_key = match plan.producer_queue(usize::from(id)) {
                        Some(group) => declared.queues.get(group).cloned().unwrap_or_default(),
                        None => declared.routing_key.clone(),
                    };
                    let spec = ProducerSpec {
                        id,
                        exchange: declared.exchange.clone(),
                        routing_key,
                        size: plan.size,
                        persistent: plan.persistent,
                        pmessages: plan.pmessages,
                        deadline,
                        rate: plan.rate,
                        confirm: plan.confirm,
                        publishers: publishers.clone(),
                    };
                    Handler::Producer(Producer::new(spec, channel, frame_max, meter))
                }
                Role::Consumer(index) => {
                    let group = index % declared.queues.len().max(1);
                    meters.consumers.push((group, meter.clone()));
                    let spec = ConsumerSpec {
                        group,
                        autoack: plan.autoack,
                        ack_every: plan.ack_every(),
                        producers: plan.producers,
                        run_started_ns,
                        publishers: publishers.clone(),
                        rate: plan.consumer_rate,
                        qos: plan.qos,
                    };
                    Handler::Consumer(Consumer::new(spec, channel, meter))
                }
                Role::Idle => Handler::Idle { done: false },
            });
        }
        tasks.push(tokio::spawn(
            Driver::new(conn, handlers, phase_rx.clone()).run(),
        ));
    }

    let totals = coordinate(
        plan,
        &meters,
        &tasks,
        &phase_tx,
        start,
        deadline,
        interrupt,
        &mut console,
    )
    .await;
    console.clear_progress();
    let mut totals = totals;
    let mut producer_reports = Vec::new();
    let mut consumer_reports = Vec::new();
    let idle_connections = tasks.len() * usize::from(plan.idle_connections > 0);
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                errors.extend(outcome.errors);
                for handler in outcome.handlers {
                    match handler {
                        Handler::Producer(mut p) => {
                            errors.extend(p.take_error());
                            producer_reports.push(p.report());
                        }
                        Handler::Consumer(c) => consumer_reports.push(c.report()),
                        Handler::Idle { .. } => {}
                    }
                }
            }
            Err(e) if e.is_cancelled() => {
                errors.push("a connection did not close in time".to_owned())
            }
            Err(e) => errors.push(format!("a connection task failed: {e}")),
        }
    }
    totals.add(&meters.drain());

    let end = Instant::now();
    let broker_memory = match broker_memory {
        Some(sampler) => Some(sampler.finish().await),
        None => None,
    };
    let publishing_stopped = meters.publishing_stopped().unwrap_or(end);
    let publish_time = publishing_stopped.saturating_duration_since(start);
    let last_received = meters.last_received();
    let consume_time = last_received
        .unwrap_or(start)
        .saturating_duration_since(start);
    // Both sides ran: there is a publishing window to consume in, and a loss check.
    let both_sides = plan.producers > 0 && plan.consumers > 0 && plan.idle_connections == 0;
    let window = both_sides.then(|| {
        let drain_time = last_received.map_or(Duration::ZERO, |last| {
            last.saturating_duration_since(publishing_stopped)
        });
        ConsumeWindow::split(totals.received, totals.drained, publish_time, drain_time)
    });
    let loss = both_sides.then(|| {
        loss_check(
            declared.queues.len(),
            plan.producers,
            |id| plan.producer_queue(id),
            &producer_reports,
            consumer_reports,
        )
    });
    Ok(Summary {
        producers: if plan.idle_connections > 0 {
            0
        } else {
            plan.producers
        },
        consumers: if plan.idle_connections > 0 {
            0
        } else {
            plan.consumers
        },
        size: plan.size,
        elapsed: end.saturating_duration_since(start),
        publish_time,
        consume_time,
        sent: totals.sent,
        confirmed: totals.confirmed,
        nacked: totals.nacked,
        received: totals.received,
        redelivered: totals.redelivered,
        stale: totals.stale,
        publish_rate: per_second(totals.sent, publish_time),
        consume_rate: per_second(totals.received, consume_time),
        window,
        broker_memory,
        confirm_latency: Latency::of(&totals.confirm_latency),
        latency: Latency::of(&totals.latency),
        loss,
        idle_connections,
        errors,
    })
}

/// Drives the phases until every connection has ended; returns the run's totals.
#[allow(clippy::too_many_arguments)]
async fn coordinate(
    plan: &Plan,
    meters: &Meters,
    tasks: &[JoinHandle<DriverOutcome>],
    phase: &watch::Sender<Phase>,
    start: Instant,
    deadline: Option<Instant>,
    interrupt: impl Future<Output = ()>,
    console: &mut Console,
) -> Counts {
    let mut interrupt = std::pin::pin!(interrupt);
    let mut interrupted = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stage = Stage::Running;
    let mut totals = Counts::default();
    let mut second = Counts::default();
    let mut seconds = 0u64;
    let mut next_second = start + Duration::from_secs(1);
    let mut next_progress = start;
    let groups = plan.queues.len().max(1);
    let only_consuming = plan.producers == 0 || plan.idle_connections > 0;
    loop {
        let mut interrupted_now = false;
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                interrupted_now = true;
            }
        }
        let now = Instant::now();
        let interval = meters.drain();
        totals.add(&interval);
        second.add(&interval);
        if now >= next_second {
            seconds += 1;
            next_second += Duration::from_secs(1);
            let line = if plan.idle_connections > 0 {
                let open = tasks.iter().filter(|t| !t.is_finished()).count();
                format!("time {seconds}s, {open} idle connections open")
            } else {
                let label = match stage {
                    Stage::Running => "",
                    Stage::Draining { .. } => " (draining)",
                    Stage::Stopping { .. } => " (stopping)",
                };
                second_line(
                    seconds,
                    label,
                    &second,
                    plan.confirm.is_some(),
                    plan.consumers > 0,
                )
            };
            console.line(&line);
            second.reset();
        } else if console.is_terminal() && now >= next_progress {
            next_progress = now + PROGRESS_EVERY;
            let elapsed = now.saturating_duration_since(start).as_secs_f64();
            let bar = match (plan.pmessages, plan.time) {
                (Some(n), _) if plan.producers > 0 => progress_bar(
                    totals.sent as f64,
                    Some((n * plan.producers as u64) as f64),
                    "msgs",
                ),
                (_, time) => progress_bar(elapsed, time.map(|t| t.as_secs_f64()), "s"),
            };
            console.progress(&format!(
                "{bar}  sent {}  received {}",
                totals.sent, totals.received
            ));
        }
        if tasks.iter().all(|t| t.is_finished()) {
            return totals;
        }
        let stop_consuming = |stage: &mut Stage| {
            let _ = phase.send(Phase::StopConsuming);
            *stage = Stage::Stopping { since: now };
        };
        match stage {
            Stage::Running if only_consuming => {
                let drained = plan.cmessages.is_some_and(|n| totals.received >= n);
                if interrupted || drained || deadline.is_some_and(|d| now >= d) {
                    stop_consuming(&mut stage);
                }
            }
            Stage::Running => {
                if meters.producers_done() {
                    stage = Stage::Draining {
                        progress_at: now,
                        unique: 0,
                    };
                } else if interrupted_now {
                    let _ = phase.send(Phase::StopPublishing);
                } else if deadline.is_some_and(|d| now >= d + STOP_TIMEOUT) {
                    // A producer stuck in a publish the broker does not read (a connection blocked by a resource
                    // alarm) never sees the deadline: stop the run, and the tasks if they do not stop in time.
                    let _ = phase.send(Phase::StopPublishing);
                    stop_consuming(&mut stage);
                }
            }
            Stage::Draining {
                progress_at,
                unique,
            } => {
                let expected = totals.sent.saturating_sub(totals.nacked);
                let per_group = meters.unique_per_group(groups);
                let total: u64 = per_group.iter().sum();
                // Fanned out, every group gets every message; spread, each message goes to one group.
                let all_received = if plan.spread {
                    total >= expected
                } else {
                    per_group.iter().all(|&u| u >= expected)
                };
                if plan.consumers == 0
                    || all_received
                    || meters.consumers_done()
                    || interrupted_now
                    || now.saturating_duration_since(progress_at) >= DRAIN_IDLE
                {
                    stop_consuming(&mut stage);
                } else if total > unique {
                    stage = Stage::Draining {
                        progress_at: now,
                        unique: total,
                    };
                }
            }
            Stage::Stopping { since } => {
                if now.saturating_duration_since(since) >= STOP_TIMEOUT {
                    for task in tasks {
                        task.abort();
                    }
                    return totals;
                }
            }
        }
    }
}

/// Merges each group's receipts and compares them with what each producer had accepted. `producer_queue` names
/// the one group a producer's messages go to (`--spread`), or `None` when they go to every group.
fn loss_check(
    groups: usize,
    producers: usize,
    producer_queue: impl Fn(usize) -> Option<usize>,
    producer_reports: &[ProducerReport],
    consumer_reports: Vec<ConsumerReport>,
) -> LossCheck {
    let mut merged: Vec<Received> = (0..groups.max(1))
        .map(|_| Received::new(producers))
        .collect();
    for report in consumer_reports {
        if let Some(group) = merged.get_mut(report.group) {
            group.merge(report.received);
        }
    }
    let mut check = LossCheck::default();
    for (index, group) in merged.iter().enumerate() {
        check.duplicates += group.duplicates;
        for p in producer_reports {
            if producer_queue(usize::from(p.id)).is_some_and(|target| target != index) {
                continue;
            }
            let not_expected: HashSet<u64> =
                p.nacked.iter().chain(&p.unconfirmed).copied().collect();
            check.expected += p.sent
                - not_expected
                    .iter()
                    .filter(|&&s| s >= 1 && s <= p.sent)
                    .count() as u64;
            check.missing += group.missing(usize::from(p.id), p.sent, &not_expected);
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(producers: usize, messages: &[(u16, u64)]) -> Received {
        let mut r = Received::new(producers);
        for &(producer, seq) in messages {
            r.record(producer, seq, false);
        }
        r
    }

    fn sent(id: u16, sent: u64) -> ProducerReport {
        ProducerReport {
            id,
            sent,
            ..ProducerReport::default()
        }
    }

    #[test]
    fn spread_loss_check_expects_a_producer_only_on_its_own_queue() {
        let producers = [sent(0, 2), sent(1, 3)];
        let consumers = || {
            vec![
                ConsumerReport {
                    group: 0,
                    received: received(2, &[(0, 1), (0, 2)]),
                },
                ConsumerReport {
                    group: 1,
                    received: received(2, &[(1, 1), (1, 2), (1, 3)]),
                },
            ]
        };
        let spread = loss_check(2, 2, |id| Some(id % 2), &producers, consumers());
        assert_eq!(
            (spread.expected, spread.missing, spread.duplicates),
            (5, 0, 0)
        );
        let fanned_out = loss_check(2, 2, |_| None, &producers, consumers());
        assert_eq!((fanned_out.expected, fanned_out.missing), (10, 5));
    }
}
