//! A clean stop (SIGTERM), as RabbitMQ does it: every client gets connection.close 320 CONNECTION_FORCED with
//! RabbitMQ's text, and the broker exits once they answered, within a bounded time.

mod common;

use std::time::Duration;

use common::process::{fresh_data_dir, BrokerProcess};
use common::{within, RawClient};

#[tokio::test]
async fn sigterm_closes_every_connection_with_320_then_exits() {
    let dir = fresh_data_dir("shutdown");
    let mut broker = BrokerProcess::start(&dir, &[]);
    let mut first = RawClient::connect_to(broker.addr).await;
    first.handshake().await;
    let mut second = RawClient::connect_to(broker.addr).await;
    second.handshake().await;

    broker.terminate();
    for client in [&mut first, &mut second] {
        let close = within(10, client.read_frame())
            .await
            .expect("connection.close before the socket closes");
        assert_eq!(close.method_ids(), Some((10, 50)));
        assert_eq!(close.close_code(), Some(320));
        assert_eq!(
            close.close_text().as_deref(),
            Some("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
        );
        client.send_frame(1, 0, &[0, 10, 0, 51]).await; // close-ok
    }
    let status = tokio::task::spawn_blocking(move || broker.wait_exit(Duration::from_secs(20)))
        .await
        .expect("waiter");
    assert!(
        status.is_some_and(|s| s.success()),
        "the broker exits cleanly: {status:?}"
    );
}
