//! `warren perf` over amqps://: every confirmed message arrives exactly once over a TLS listener, trusting the CA
//! given with --ca-cert; an amqps:// URI without --ca-cert is refused. No test asserts a time or a rate.

mod common;
mod tls_support;

use tls_support::Pki;
use warren_perf::PerfArgs;

#[tokio::test]
async fn perf_runs_over_tls() {
    let pki = Pki::new("perf");
    let (cert, key) = pki.write("server", &pki.server("warren"));
    let server = common::start_server_with(|c| {
        c.ssl.certfile = Some(cert);
        c.ssl.keyfile = Some(key);
        c.listeners.ssl = vec!["127.0.0.1:0".parse().expect("address")];
    })
    .await;
    let uri = format!("amqps://guest:guest@{}/%2f", server.tls_addrs[0]);
    let ca = pki.ca_file().display().to_string();
    let args = PerfArgs::from_args([
        "--uri",
        &uri,
        "--ca-cert",
        &ca,
        "--pmessages",
        "2000",
        "--confirm",
        "100",
    ])
    .expect("valid options");
    let summary = common::within(60, warren_perf::run(&args))
        .await
        .expect("perf runs");
    assert!(summary.errors.is_empty(), "errors: {:?}", summary.errors);
    assert_eq!(summary.confirmed, 2000);
    assert_eq!(summary.received, 2000);
    assert!(summary.passed(), "{}", summary.render());

    let without_ca = PerfArgs::from_args(["--uri", &uri, "--pmessages", "1"]).expect("parses");
    let refused = common::within(60, warren_perf::run(&without_ca)).await;
    assert!(refused.is_err(), "amqps:// without --ca-cert is refused");
}
