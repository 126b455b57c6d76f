//! The broker's registry of live connections through real sockets: connections are listed with their user, vhost
//! and channel count, and closing one by id sends it 320 CONNECTION_FORCED as `rabbitmqctl close_connection` does,
//! while the others keep working.

mod common;

use std::time::Duration;

use common::RawClient;
use warren::registry::{CloseRequest, ConnectionSummary};
use warren::server::RunningServer;

/// Waits (at most 5 s) until the registry lists exactly `count` connections, and returns them.
async fn listed(server: &RunningServer, count: usize) -> Vec<ConnectionSummary> {
    common::within(5, async {
        loop {
            let list = server.broker.connections().list();
            if list.len() == count {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn connections_are_listed_and_one_closed_by_id_gets_320_while_the_other_works() {
    let server = common::start_server().await;
    let mut raw = RawClient::connect(&server).await;
    raw.handshake().await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let raw_addr = raw.stream.local_addr().expect("local address");
    let lapin = common::connect(&server).await;
    let ch = common::confirming_channel(&lapin).await;

    let list = listed(&server, 2).await;
    let raw_entry = list
        .iter()
        .find(|c| c.details.peer == raw_addr)
        .expect("the raw client is listed");
    let lapin_entry = list
        .iter()
        .find(|c| c.details.peer != raw_addr)
        .expect("the lapin client is listed");
    for entry in &list {
        assert_eq!(
            (entry.details.user.as_str(), entry.details.vhost.as_str()),
            ("guest", "/")
        );
        assert_eq!(
            entry.name,
            format!("{} -> {}", entry.details.peer, server.addr)
        );
    }
    assert_eq!((raw_entry.channels, lapin_entry.channels), (2, 1));
    assert_eq!(lapin_entry.details.client_product.as_deref(), Some("lapin"));

    let raw_id = raw_entry.details.id;
    assert!(server
        .broker
        .connections()
        .close(raw_id, CloseRequest::forced("Closed via management plugin")));
    let close = raw
        .read_frame()
        .await
        .expect("connection.close before the socket closed");
    assert_eq!((close.channel, close.method_ids()), (0, Some((10, 50))));
    assert_eq!(close.close_code(), Some(320));
    assert_eq!(
        close.close_text().as_deref(),
        Some("CONNECTION_FORCED - Closed via management plugin")
    );
    assert_eq!(&close.payload[close.payload.len() - 4..], &[0, 0, 0, 0]);
    // The broker waits for close-ok, then ends the connection.
    raw.send_frame(1, 0, &[0, 10, 0, 51]).await;
    assert!(common::within(5, raw.closed()).await);

    let list = listed(&server, 1).await;
    assert_eq!(list[0].details.id, lapin_entry.details.id);
    assert!(server.broker.connections().get(raw_id).is_none());
    assert!(!server
        .broker
        .connections()
        .close(raw_id, CloseRequest::forced("again")));

    // The other connection is untouched.
    common::declare_plain(&ch, "registry-q").await;
    common::publish_n(&ch, "registry-q", 3).await;
    assert_eq!(
        common::drain_bodies(&ch, "registry-q").await,
        ["m0", "m1", "m2"]
    );
    assert_eq!(server.broker.connections().list()[0].channels, 1);
}

#[tokio::test]
async fn a_lapin_client_sees_the_forced_close_and_closed_channels_leave_the_count() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let first = conn.create_channel().await.expect("channel");
    let _second = conn.create_channel().await.expect("channel");
    assert_eq!(listed(&server, 1).await[0].channels, 2);
    first.close(200, "bye".into()).await.expect("channel.close");
    assert_eq!(listed(&server, 1).await[0].channels, 1);

    let mut watcher = common::CloseWatcher::new(&conn);
    let id = listed(&server, 1).await[0].details.id;
    assert!(server.broker.connections().close(
        id,
        CloseRequest::forced("broker forced connection closure with reason 'shutdown'")
    ));
    assert_eq!(watcher.next_code().await, 320);
    listed(&server, 0).await;
}

#[tokio::test]
async fn a_client_that_never_answers_the_forced_close_is_dropped_after_the_close_ok_timeout() {
    let server = common::start_server().await;
    let mut raw = RawClient::connect(&server).await;
    raw.handshake().await;
    let id = listed(&server, 1).await[0].details.id;
    assert_eq!(
        server
            .broker
            .connections()
            .close_all(&CloseRequest::forced("shutdown")),
        1
    );
    let close = raw.read_frame().await.expect("connection.close");
    assert_eq!(close.close_code(), Some(320));
    // No close-ok: the socket closes anyway, within the bounded wait.
    assert!(common::within(8, raw.closed()).await);
    assert!(server.broker.connections().get(id).is_none());
}
