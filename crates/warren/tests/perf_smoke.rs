//! `warren perf` against an in-process Warren: every confirmed message arrives exactly once, over the shapes the
//! tool supports (per-channel and shared connections, confirms, manual multi-acks, autoack, fan-out, bodies
//! larger than a frame, idle connections, slow consumers with `--consumer-rate`); the summary splits consumption
//! into the publishing window and the drain, and `--broker-pid` reports memory. No test asserts a time or a rate.

mod common;

use warren_perf as perf;
use warren_perf::{PerfArgs, PerfError, Summary};

fn args(uri: &str, extra: &[&str]) -> PerfArgs {
    PerfArgs::from_args(["--uri", uri].iter().chain(extra)).expect("valid perf options")
}

async fn run(uri: &str, extra: &[&str]) -> Summary {
    let args = args(uri, extra);
    common::within(60, perf::run(&args))
        .await
        .expect("perf run starts")
}

fn assert_exactly_once(summary: &Summary, expected_received: u64) {
    assert!(summary.errors.is_empty(), "errors: {:?}", summary.errors);
    let loss = summary.loss.expect("loss check ran");
    assert_eq!(loss.missing, 0, "{}", summary.render());
    assert_eq!(loss.duplicates, 0, "{}", summary.render());
    assert_eq!(loss.expected, expected_received);
    assert_eq!(summary.received, expected_received);
    assert_eq!(summary.stale, 0);
    assert!(summary.passed());
}

#[tokio::test]
async fn confirmed_messages_with_manual_multi_ack_arrive_exactly_once() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--producers",
            "2",
            "--consumers",
            "2",
            "--pmessages",
            "3000",
            "--confirm",
            "100",
            "--multi-ack-every",
            "10",
            "--qos",
            "100",
        ],
    )
    .await;
    assert_eq!(summary.sent, 6000);
    assert_eq!(summary.confirmed, 6000);
    assert_eq!(summary.nacked, 0);
    assert_exactly_once(&summary, 6000);
    assert!(summary.confirm_latency.is_some());
    assert!(summary.latency.is_some());
}

#[tokio::test]
async fn fan_out_delivers_every_message_to_every_queue() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--queues",
            "3",
            "--queue",
            "perf-fanout",
            "--pmessages",
            "1000",
            "--confirm",
            "50",
        ],
    )
    .await;
    assert_eq!(summary.sent, 1000);
    assert_eq!(summary.consumers, 3);
    assert_exactly_once(&summary, 3000);
}

#[tokio::test]
async fn shared_connection_with_autoack_and_persistent_messages() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--shared-connection",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--pmessages",
            "2000",
            "--autoack",
            "--size",
            "2000",
            "--persistent",
            "--durable-queue",
            "--queue",
            "perf-shared",
        ],
    )
    .await;
    assert_eq!(summary.sent, 4000);
    assert_exactly_once(&summary, 4000);
}

#[tokio::test]
async fn bodies_larger_than_a_frame_are_reassembled() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &["--size", "300000", "--pmessages", "20", "--confirm", "5"],
    )
    .await;
    assert_eq!(summary.confirmed, 20);
    assert_exactly_once(&summary, 20);
}

#[tokio::test]
async fn publish_only_runs_have_no_loss_check() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &["--consumers", "0", "--pmessages", "500", "--confirm", "10"],
    )
    .await;
    assert_eq!(
        (summary.sent, summary.confirmed, summary.received),
        (500, 500, 0)
    );
    assert_eq!(summary.loss, None);
    assert!(summary.passed(), "{}", summary.render());
}

#[tokio::test]
async fn idle_connections_are_held_and_closed() {
    let server = common::start_server().await;
    let summary = run(&server.uri(), &["--idle-connections", "5", "--time", "1"]).await;
    assert_eq!(summary.idle_connections, 5);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.sent, 0);
}

#[tokio::test]
async fn a_refused_setup_is_an_error_with_the_reply_code() {
    let server = common::start_server().await;
    let args = args(
        &server.uri(),
        &[
            "--predeclared",
            "--queue",
            "no-such-queue",
            "--pmessages",
            "10",
        ],
    );
    match common::within(30, perf::run(&args)).await {
        Err(PerfError::Refused { code, .. }) => assert_eq!(code, 404),
        other => panic!("expected a 404 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let server = common::start_server().await;
    let uri = format!("amqp://guest:wrong@{}/%2f", server.addr);
    let result = common::within(30, perf::run(&args(&uri, &["--pmessages", "1"]))).await;
    assert!(
        matches!(result, Err(PerfError::Refused { code: 403, .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_backlog_is_published_then_drained_by_a_consumer_only_run() {
    let server = common::start_server().await;
    let uri = server.uri();
    let publish = run(
        &uri,
        &[
            "--producers",
            "1",
            "--consumers",
            "0",
            "--pmessages",
            "500",
            "--confirm",
            "50",
            "--persistent",
            "--durable-queue",
            "--queue",
            "backlog",
        ],
    )
    .await;
    assert_eq!(publish.confirmed, 500);
    let drain = run(
        &uri,
        &[
            "--producers",
            "0",
            "--consumers",
            "1",
            "--cmessages",
            "500",
            "--queue",
            "backlog",
            "--durable-queue",
            "--predeclared",
            "--qos",
            "100",
            "--multi-ack-every",
            "10",
        ],
    )
    .await;
    assert!(drain.errors.is_empty(), "errors: {:?}", drain.errors);
    assert_eq!(drain.received + drain.stale, 500, "{}", drain.render());
}

#[tokio::test]
async fn json_splits_the_consumed_messages_into_the_publishing_window_and_the_drain() {
    let server = common::start_server().await;
    // The broker runs in this process, so its memory is this process's.
    let pid = std::process::id().to_string();
    let summary = run(
        &server.uri(),
        &[
            "--pmessages",
            "3000",
            "--confirm",
            "100",
            "--multi-ack-every",
            "10",
            "--qos",
            "100",
            "--broker-pid",
            &pid,
            "--json",
        ],
    )
    .await;
    assert_exactly_once(&summary, 3000);
    let window = summary
        .window
        .expect("a run with producers and consumers has a window");
    assert_eq!(window.received + window.drained, summary.received);

    let json: serde_json::Value =
        serde_json::from_str(&summary.to_json()).expect("the summary is valid JSON");
    let count = |name: &str| {
        json[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is a count: {json}"))
    };
    assert_eq!(
        count("window_received") + count("drained"),
        count("received")
    );
    assert_eq!(count("received"), 3000);
    for name in [
        "consume_rate_window",
        "drain_time_s",
        "consume_rate",
        "publish_rate",
    ] {
        assert!(json[name].is_f64(), "{name} is a number: {json}");
    }
    assert_eq!(
        json["broker_pid"].as_u64(),
        Some(u64::from(std::process::id()))
    );
    assert!(json["broker_peak_rss_mib"].is_f64(), "{json}");
    assert!(json["broker_memory_error"].is_null(), "{json}");
}

#[tokio::test]
async fn a_broker_pid_that_is_gone_is_reported_without_failing_the_run() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--pmessages",
            "100",
            "--confirm",
            "10",
            "--broker-pid",
            "4294967295",
        ],
    )
    .await;
    assert_exactly_once(&summary, 100);
    let memory = summary
        .broker_memory
        .clone()
        .expect("--broker-pid reports memory");
    assert_eq!(memory.peak_rss_mib, None);
    assert!(memory.error.is_some(), "{}", summary.render());
    assert!(summary.to_json().contains("\"broker_peak_rss_mib\":null"));
}

/// The JSON summary's counts agree with each other and with `summary`: every message received once, split between
/// the publishing window and the drain.
fn assert_json_counts_agree(summary: &Summary) {
    let json: serde_json::Value =
        serde_json::from_str(&summary.to_json()).expect("the summary is valid JSON");
    let count = |name: &str| {
        json[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is a count: {json}"))
    };
    assert_eq!(count("received"), summary.received, "{json}");
    assert_eq!(count("sent"), summary.sent, "{json}");
    assert_eq!(count("received"), count("sent"), "{json}");
    assert_eq!(
        count("window_received") + count("drained"),
        count("received"),
        "{json}"
    );
    assert_eq!((count("missing"), count("duplicates")), (0, 0), "{json}");
    assert_eq!(json["passed"].as_bool(), Some(true), "{json}");
}

#[tokio::test]
async fn a_slow_consumer_with_a_prefetch_still_receives_every_message_once() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--consumer-rate",
            "200",
            "--rate",
            "500",
            "--time",
            "1",
            "--confirm",
            "50",
            "--qos",
            "20",
            "--multi-ack-every",
            "5",
            "--json",
        ],
    )
    .await;
    assert_exactly_once(&summary, summary.sent);
    assert_eq!(summary.confirmed, summary.sent);
    let window = summary.window.expect("producers and consumers: a window");
    // Not a timing: a consumer allowed 200 a second cannot keep up with 500 a second, so some are drained.
    assert!(window.drained > 0, "{}", summary.render());
    assert_json_counts_agree(&summary);
}

#[tokio::test]
async fn a_slow_autoack_consumer_pushes_back_and_still_receives_every_message_once() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--consumer-rate",
            "200",
            "--rate",
            "500",
            "--time",
            "1",
            "--autoack",
            "--json",
        ],
    )
    .await;
    assert_exactly_once(&summary, summary.sent);
    assert!(
        summary.window.is_some_and(|w| w.drained > 0),
        "{}",
        summary.render()
    );
    assert_json_counts_agree(&summary);
}

#[tokio::test]
async fn a_slow_consumer_on_a_shared_connection_does_not_lose_confirms_or_messages() {
    let server = common::start_server().await;
    let summary = run(
        &server.uri(),
        &[
            "--shared-connection",
            "--consumer-rate",
            "300",
            "--consumers",
            "2",
            "--pmessages",
            "400",
            "--confirm",
            "20",
            "--autoack",
        ],
    )
    .await;
    assert_eq!(summary.confirmed, 400);
    assert_exactly_once(&summary, 400);
}

#[tokio::test]
async fn a_run_against_a_broker_that_blocks_its_publishers_still_ends() {
    // With the memory alarm raised before the run, the broker stops reading the publisher's socket once it has
    // sent connection.blocked: the producer sits in a write that never completes and cannot see --time itself.
    let server = common::start_server().await;
    server
        .broker
        .set_vm_memory_high_watermark(warren::config::MemoryWatermark::Absolute(1));
    common::within(5, async {
        while server.broker.alarms().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let args = args(
        &server.uri(),
        &[
            "--consumers",
            "0",
            "--size",
            "65536",
            "--time",
            "1",
            "--confirm",
            "100",
        ],
    );
    // The hang guard only: the run is told to stop 1 s in and gets STOP_TIMEOUT twice to wind down.
    let summary = common::within(60, perf::run(&args))
        .await
        .expect("perf run starts");
    assert_eq!(summary.received, 0);
}

#[tokio::test]
async fn rpc_mode_completes_round_trips_over_direct_reply_to() {
    let server = common::start_server().await;
    let args = args(
        &server.uri(),
        &[
            "--rpc",
            "4",
            "--producers",
            "2",
            "--consumers",
            "1",
            "--time",
            "1",
            "--size",
            "64",
        ],
    );
    let summary = common::within(60, perf::rpc::run(&args))
        .await
        .expect("rpc run");
    assert!(summary.round_trips > 0, "{}", summary.render());
    assert_eq!((summary.requesters, summary.in_flight), (2, 4));
    assert!(summary.latency_us[0].is_some(), "latency measured");
    assert!(summary.to_json().starts_with("{\"mode\":\"rpc\""));
}
