//! `warren soak`, the short version CI runs: a few seconds against an in-process Warren with small numbers (200
//! idle connections with heartbeats, connection and queue churn, the steady pair, slow consumers, one stalled
//! consumer). Every idle connection must stay open, nothing may fail, latency must be reported, and the stalled
//! consumer must be let go by the broker's missed-heartbeat check. No test asserts a latency or a rate.

mod common;

use warren_perf::soak::{self, SoakArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_keeps_every_idle_connection_and_lets_the_stalled_consumer_go() {
    let server = common::start_server().await;
    let uri = server.uri();
    let pid = std::process::id().to_string();
    let args = SoakArgs::from_args([
        "--uri",
        uri.as_str(),
        "--time",
        "11",
        "--idle-connections",
        "200",
        // The broker drops a client silent for two intervals: 6 s, well inside the 8 s stall.
        "--heartbeat",
        "3",
        "--connection-churn",
        "20",
        "--queue-churn",
        "20",
        "--rate",
        "200",
        "--slow-consumers",
        "2",
        "--slow-delay-ms",
        "50",
        "--stalled-consumers",
        "1",
        "--stall-secs",
        "8",
        "--feed-rate",
        "50",
        "--feed-size",
        "4096",
        "--report-every",
        "4",
        // The broker runs in this process.
        "--broker-pid",
        pid.as_str(),
    ])
    .expect("valid soak options");
    let summary = common::within(180, soak::run(&args))
        .await
        .expect("the soak starts");
    let report = summary.render();
    assert!(summary.passed(), "{report}");
    assert_eq!(summary.errors, 0, "{report}");
    assert_eq!(summary.idle_opened, 200, "{report}");
    assert_eq!(summary.idle_open_at_end, 200, "{report}");
    assert_eq!(summary.idle_lost, 0, "{report}");
    assert!(summary.latency.is_some(), "{report}");
    assert!(summary.steady_received > 0, "{report}");
    assert!(summary.churned_connections > 0, "{report}");
    assert!(summary.churned_queues > 0, "{report}");
    assert!(summary.slow_acked > 0, "{report}");
    assert_eq!(summary.stalls_let_go, 1, "{report}");
    assert_eq!(summary.stalls_kept, 0, "{report}");
    assert!(
        summary
            .broker_end
            .is_some_and(|(rss, fds)| rss.is_some() && fds.is_some()),
        "{report}"
    );
    assert!(summary.to_json().contains("\"passed\":true"));
}
