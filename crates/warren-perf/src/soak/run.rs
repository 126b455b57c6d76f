//! The soak's coordinator: checks the open files limit, declares the run's queues, opens the idle connections
//! (the ramp), starts every load, prints a report line each interval until the time is up, then stops the loads,
//! closes every connection, deletes the queues and sums up.

use std::pin::pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::super::client::Connection;
use super::super::report::Console;
use super::super::PerfError;
use super::broker_proc::{self, BrokerSample};
use super::feed::FeedSpec;
use super::options::{SoakArgs, SoakPlan};
use super::report::{Counters, IntervalReport, SoakSummary};
use super::tally::Tally;
use super::topology::{consume, declare_queue, delete_queue};
use super::{churn, fd_limit, feed, idle, queue_churn, slow, stalled, steady};

/// How long the loads and the idle connections get to close at the end.
const WIND_DOWN: Duration = Duration::from_secs(60);

/// The queues every run declares (and deletes at the end).
struct Queues {
    steady: String,
    slow: String,
    stalled: String,
}

/// Runs the soak `args` describes; `interrupt` completing ends the timed part early.
pub(crate) async fn run(
    args: &SoakArgs,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<SoakSummary, PerfError> {
    let plan = Arc::new(SoakPlan::new(args).await?);
    let limit = fd_limit::raise().map_err(PerfError::InvalidOptions)?;
    fd_limit::check(limit, plan.fds_needed()).map_err(PerfError::InvalidOptions)?;
    let mut console = Console::new(plan.json);
    let broker_max_open_files = plan.broker_pid.and_then(broker_proc::max_open_files);
    console.line(&format!(
        "warren soak: {} for {} s: {} idle connections (heartbeat {} s) from {}, connection churn {}/s, queue \
         churn {}/s, steady pair {} msg/s, {} slow and {} stalled consumers; open files limit {}{}",
        args.uri,
        args.time,
        plan.idle_connections,
        plan.heartbeat,
        match plan.sources.len() {
            0 => "the default source address".to_owned(),
            n => format!("{n} loopback source addresses"),
        },
        args.connection_churn,
        args.queue_churn,
        args.rate,
        plan.slow_consumers,
        plan.stalled_consumers,
        limit.map_or("unlimited".to_owned(), |l| l.to_string()),
        broker_max_open_files.map_or(String::new(), |l| format!(", the broker's {l}")),
    ));
    let tally = Arc::new(Tally::default());
    let mut summary = SoakSummary {
        idle_wanted: plan.idle_connections,
        broker_max_open_files,
        ..SoakSummary::default()
    };
    let mut broker_error = None;
    let mut sample_broker = |peak: &mut Option<(Option<f64>, Option<u64>)>| {
        let pid = plan.broker_pid?;
        let (sample, error) = broker_proc::sample(pid);
        if let Some(error) = error {
            broker_error.get_or_insert(error);
        }
        let (rss, fds) = peak.unwrap_or((None, None));
        *peak = Some((max(rss, sample.rss_mib), max(fds, sample.fds)));
        Some(sample)
    };
    let mut peak = None;
    summary.broker_start = sample_broker(&mut peak).map(|b| (b.rss_mib, b.fds));

    let queues = Queues {
        steady: format!("{}-steady", plan.prefix),
        slow: format!("{}-slow", plan.prefix),
        stalled: format!("{}-stalled", plan.prefix),
    };
    declare_all(&plan, &queues).await?;

    let (stop_tx, stop) = watch::channel(false);
    let ramp_started = Instant::now();
    let idle_tasks = idle::open_all(&plan, &tally, &stop, |tried, total| {
        console.progress(&format!("opening idle connections: {tried}/{total}"));
    })
    .await;
    summary.ramp = ramp_started.elapsed();
    summary.idle_opened = Tally::get(&tally.idle_opened);
    console.line(&format!(
        "opened {}/{} idle connections in {:.1} s",
        summary.idle_opened,
        plan.idle_connections,
        summary.ramp.as_secs_f64()
    ));

    let loads = start_loads(&plan, &queues, &tally, &stop).await;
    let started = Instant::now();
    let end = started + plan.time;
    let mut before = Counters::read(&tally);
    let mut next = started + plan.report_every;
    let mut interrupt = pin!(interrupt);
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep_until(next.min(end).into()) => Instant::now() >= end,
            _ = &mut interrupt => true,
        };
        let now = Counters::read(&tally);
        let broker = sample_broker(&mut peak);
        let report = IntervalReport::new(
            started.elapsed(),
            last,
            plan.idle_connections,
            now,
            before,
            &tally.take_interval_latency(),
            broker,
        );
        console.line(&report.human());
        if plan.json {
            println!("{}", report.json());
        }
        before = now;
        if last {
            summary.broker_end = broker.map(|b: BrokerSample| (b.rss_mib, b.fds));
            break;
        }
        next += plan.report_every;
    }
    summary.elapsed = started.elapsed();
    summary.idle_open_at_end = Tally::get(&tally.idle_open);

    let _ = stop_tx.send(true);
    for (what, mut tasks) in [("the loads", loads), ("the idle connections", idle_tasks)] {
        let wound_down = tokio::time::timeout(WIND_DOWN, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if wound_down.is_err() {
            tally.error(
                "stopping",
                format!("{what} did not close within {WIND_DOWN:?}"),
            );
        }
    }
    if let Err(e) = delete_all(&plan, &queues).await {
        tally.error("deleting the run's queues", e);
    }

    let c = Counters::read(&tally);
    summary.idle_lost = c.idle_lost;
    summary.late_heartbeats = c.late_heartbeats;
    summary.churned_connections = c.churned_connections;
    summary.churned_queues = c.churned_queues;
    summary.steady_sent = c.steady_sent;
    summary.steady_received = c.steady_received;
    summary.slow_acked = c.slow_acked;
    summary.stalls_let_go = c.stalls_let_go;
    summary.stalls_kept = c.stalls_kept;
    summary.errors = c.errors;
    summary.latency = super::super::report::Latency::of(&tally.run_latency());
    (summary.error_texts, summary.losses) = tally.texts();
    summary.broker_peak = peak;
    summary.broker_error = broker_error;
    Ok(summary)
}

fn max<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

async fn declare_all(plan: &SoakPlan, queues: &Queues) -> Result<(), PerfError> {
    let mut conn = Connection::open_with(&plan.uri, "warren soak setup", plan.dial(0)).await?;
    conn.open_channel(1).await?;
    for queue in [&queues.steady, &queues.slow, &queues.stalled] {
        declare_queue(&mut conn, 1, queue, false).await?;
    }
    conn.close().await
}

async fn delete_all(plan: &SoakPlan, queues: &Queues) -> Result<(), PerfError> {
    let mut conn = Connection::open_with(&plan.uri, "warren soak setup", plan.dial(0)).await?;
    conn.open_channel(1).await?;
    for queue in [&queues.steady, &queues.slow, &queues.stalled] {
        delete_queue(&mut conn, 1, queue).await?;
    }
    conn.close().await
}

fn steady_sent(tally: &Tally) -> &AtomicU64 {
    &tally.steady_sent
}

fn fed(tally: &Tally) -> &AtomicU64 {
    &tally.fed
}

/// Starts the churn, the steady pair, the slow and the stalled consumers and their feeders. A part that cannot
/// be set up is counted as an error; the others run.
async fn start_loads(
    plan: &Arc<SoakPlan>,
    queues: &Queues,
    tally: &Arc<Tally>,
    stop: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(churn::run(plan.clone(), tally.clone(), stop.clone()));
    tasks.spawn(queue_churn::run(plan.clone(), tally.clone(), stop.clone()));
    // Consumers first, so that nothing is published before they listen.
    if plan.steady_every.is_some() {
        match consumer(plan, &queues.steady, 1000, "steady", 1).await {
            Ok(conn) => {
                tasks.spawn(steady::run(conn, tally.clone(), stop.clone()));
            }
            Err(e) => tally.error("setting up the steady consumer", e),
        }
    }
    for i in 0..plan.slow_consumers {
        match consumer(
            plan,
            &queues.slow,
            plan.slow_prefetch,
            &format!("slow-{i}"),
            2 + i,
        )
        .await
        {
            Ok(conn) => {
                tasks.spawn(slow::run(
                    conn,
                    plan.slow_delay,
                    tally.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => tally.error("setting up a slow consumer", e),
        }
    }
    for i in 0..plan.stalled_consumers {
        tasks.spawn(stalled::run(
            plan.clone(),
            i,
            queues.stalled.clone(),
            tally.clone(),
            stop.clone(),
        ));
    }
    let mut feeds = Vec::new();
    if let Some(every) = plan.steady_every {
        feeds.push(FeedSpec {
            queue: queues.steady.clone(),
            every,
            size: super::super::body::STAMP_LEN,
            producer: 0,
            sent: steady_sent,
            what: "the steady producer",
        });
    }
    if let Some(every) = plan.feed_every {
        for (producer, queue, wanted) in [
            (1, &queues.slow, plan.slow_consumers),
            (2, &queues.stalled, plan.stalled_consumers),
        ] {
            if wanted > 0 {
                feeds.push(FeedSpec {
                    queue: queue.clone(),
                    every,
                    size: plan.feed_size,
                    producer,
                    sent: fed,
                    what: "a feeder",
                });
            }
        }
    }
    for (n, spec) in feeds.into_iter().enumerate() {
        let opened = async {
            let mut conn = Connection::open_with(
                &plan.uri,
                &format!("warren soak feed {}", spec.queue),
                plan.dial(n),
            )
            .await?;
            conn.open_channel(1).await?;
            Ok::<_, PerfError>(conn)
        };
        match opened.await {
            Ok(conn) => {
                tasks.spawn(feed::run(conn, spec, tally.clone(), stop.clone()));
            }
            Err(e) => tally.error(spec.what, e),
        }
    }
    tasks
}

/// A connection with a consumer on `queue` on channel 1.
async fn consumer(
    plan: &SoakPlan,
    queue: &str,
    prefetch: u16,
    tag: &str,
    n: usize,
) -> Result<Connection, PerfError> {
    let mut conn =
        Connection::open_with(&plan.uri, &format!("warren soak {tag}"), plan.dial(n)).await?;
    conn.open_channel(1).await?;
    consume(&mut conn, 1, queue, prefetch, tag).await?;
    Ok(conn)
}
