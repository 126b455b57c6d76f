//! A full disk under the broker: its message store runs on warren_store's simulated file system (`SimFs`), which
//! can fill up and crash. A failed write nacks the publish and raises the disk alarm (publishers are blocked with
//! "low on disk"); once space is back the store repairs itself, the alarm clears and confirms come again. A broker
//! started on a full disk comes up serving its recovered messages to consumers, with publishers blocked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    blocked_reason, confirming_channel, connect, declare, next_connection_method, publish_frames,
    ready_count, within, RawClient,
};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::io::AsyncWriteExt;
use warren::broker::{Resource, StoreHealth};
use warren::config::{Config, DiskFreeLimit};
use warren::server::RunningServer;
use warren_store::sim_fs::{Restore, SimFs};

/// A config on a fresh data directory; the free-space limit is 0, so only the store's health moves the disk alarm
/// (whatever the free space of the machine running the test).
fn config(name: &str) -> Config {
    let data_dir = std::env::temp_dir().join(format!("warren-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        management: warren::config::ManagementConfig {
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            enabled: true,
            ..warren::config::ManagementConfig::default()
        },
        data_dir,
        ..Config::default()
    };
    config.prometheus.listen = "127.0.0.1:0".parse().expect("loopback address");
    config.alarms.disk_free_limit = DiskFreeLimit::Absolute(0);
    config
}

async fn start(config: Config, fs: &SimFs) -> RunningServer {
    RunningServer::start_with_file_system(config, Arc::new(fs.clone()))
        .await
        .expect("server starts")
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Publishes one persistent message and returns whether the broker acked it (false: nacked).
async fn publish_persistent(ch: &lapin::Channel, queue: &str, body: &str) -> bool {
    within(10, async {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish sent")
        .await
        .expect("publish answered")
    })
    .await
    .is_ack()
}

/// Waits until `check` holds, polling, for at most `secs` seconds.
async fn until(secs: u64, what: &str, check: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(secs), async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// A raw connection announcing connection.blocked, with channel 1 open.
async fn raw_publisher(server: &RunningServer) -> RawClient {
    let mut publisher = RawClient::connect(server).await;
    publisher
        .handshake_announcing(&["connection.blocked"])
        .await;
    publisher.open_channel(1).await;
    publisher
}

#[tokio::test]
async fn a_write_error_nacks_raises_the_disk_alarm_and_clears_once_the_store_recovers() {
    let fs = SimFs::new();
    let server = start(config("disk-full-runtime"), &fs).await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(&ch, "jobs", durable(), FieldTable::default()).await;
    for i in 0..3 {
        assert!(publish_persistent(&ch, "jobs", &format!("before {i}")).await);
    }
    assert_eq!(server.broker.store_health(), StoreHealth::Healthy);

    fs.fill();
    assert!(
        !publish_persistent(&ch, "jobs", "refused").await,
        "a publish whose write failed is nacked"
    );
    assert!(matches!(
        server.broker.store_health(),
        StoreHealth::Failed { .. }
    ));
    until(5, "the disk alarm is raised", || {
        server.broker.alarms() == vec![Resource::Disk]
    })
    .await;
    let mut publisher = raw_publisher(&server).await;
    publisher
        .stream
        .write_all(&publish_frames("jobs", b"while full"))
        .await
        .expect("written");
    let blocked = next_connection_method(&mut publisher).await;
    assert_eq!(blocked.method_ids(), Some((10, 60)), "connection.blocked");
    assert_eq!(blocked_reason(&blocked), "low on disk");

    fs.set_capacity(None);
    until(30, "the store repairs itself", || {
        server.broker.store_health() == StoreHealth::Healthy
    })
    .await;
    let unblocked = next_connection_method(&mut publisher).await;
    assert_eq!(
        unblocked.method_ids(),
        Some((10, 61)),
        "connection.unblocked"
    );
    assert!(server.broker.alarms().is_empty());
    assert!(
        publish_persistent(&ch, "jobs", "after").await,
        "confirmed again"
    );
}

#[tokio::test]
async fn a_broker_started_on_a_full_disk_serves_consumers_and_blocks_publishers_until_space_is_back(
) {
    let config = config("disk-full-start");
    let before = SimFs::new();
    let server = start(config.clone(), &before).await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(&ch, "work", durable(), FieldTable::default()).await;
    for i in 0..10 {
        assert!(publish_persistent(&ch, "work", &format!("m{i}")).await);
    }
    conn.close(200, "bye".into()).await.expect("closed");
    // The machine goes down with its disk full: what the store had synced survives, and not a byte more fits.
    before.crash_now();
    let image = before.crash_image().expect("crashed");
    let broker = server.broker.clone();
    drop(server);
    until(10, "the first broker is gone", || {
        Arc::strong_count(&broker) == 1
    })
    .await;
    drop(broker);
    let fs = SimFs::restore(&image, Restore::default());
    fs.fill();

    let server = start(config, &fs).await;
    assert!(
        matches!(server.broker.store_health(), StoreHealth::Failed { cause } if cause.contains("No space left")),
        "the store cannot create its WAL file"
    );
    assert_eq!(
        server.broker.alarms(),
        vec![Resource::Disk],
        "raised before the first connection"
    );
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        ready_count(&ch, "work").await,
        10,
        "every confirmed message recovered"
    );
    for i in 0..3 {
        let got = within(
            5,
            ch.basic_get("work".into(), BasicGetOptions { no_ack: false }),
        )
        .await
        .expect("basic.get")
        .expect("a message");
        assert_eq!(got.delivery.data, format!("m{i}").into_bytes());
        got.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("acked");
    }
    assert_eq!(ready_count(&ch, "work").await, 7);
    let mut publisher = raw_publisher(&server).await;
    publisher
        .stream
        .write_all(&publish_frames("work", b"while full"))
        .await
        .expect("written");
    let blocked = next_connection_method(&mut publisher).await;
    assert_eq!(blocked.method_ids(), Some((10, 60)), "connection.blocked");
    assert_eq!(blocked_reason(&blocked), "low on disk");

    fs.set_capacity(None);
    until(30, "the store repairs itself", || {
        server.broker.store_health() == StoreHealth::Healthy
    })
    .await;
    let unblocked = next_connection_method(&mut publisher).await;
    assert_eq!(unblocked.method_ids(), Some((10, 61)));
    let confirms = confirming_channel(&conn).await;
    assert!(publish_persistent(&confirms, "work", "after").await);
    // 7 recovered and not acked, the raw publish taken in after the unblock, and the last one.
    within(5, async {
        while ready_count(&ch, "work").await != 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
