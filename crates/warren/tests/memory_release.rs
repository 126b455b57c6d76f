//! Memory freed by deleting a large queue goes back to the system (issue 12: RSS stayed at its peak after the queue
//! was deleted, so the memory alarm never cleared). Runs the real binary, whose allocator is the one that keeps
//! freed pages.

mod common;

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;

use common::process::{fresh_data_dir, BrokerProcess};

const MESSAGES: usize = 300_000;
const BODY: usize = 1024;
const BATCH: usize = 2_000;

#[tokio::test]
async fn deleting_a_large_queue_gives_its_memory_back() {
    let dir = fresh_data_dir("memory-release");
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = common::within(
        30,
        lapin::Connection::connect(&broker.uri(), lapin::ConnectionProperties::default()),
    )
    .await
    .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    common::declare(&ch, "big", Default::default(), FieldTable::default()).await;
    let baseline = broker.rss_bytes();

    let body = vec![b'x'; BODY];
    for _ in 0..MESSAGES / BATCH {
        let mut confirms = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            confirms.push(
                ch.basic_publish(
                    "".into(),
                    "big".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await
                .expect("publish"),
            );
        }
        for confirm in confirms {
            confirm.await.expect("confirmed");
        }
    }
    let peak = broker.rss_bytes();
    let grown = peak.saturating_sub(baseline);
    assert!(
        grown > (MESSAGES * BODY / 4) as u64,
        "the queue should have grown the broker: {baseline} -> {peak} bytes"
    );

    ch.queue_delete("big".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    // Bounded wait, not a timing assertion: the memory must come back, however long a loaded machine takes.
    let limit = baseline + grown / 4;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut now = broker.rss_bytes();
    while now > limit && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        now = broker.rss_bytes();
    }
    assert!(
        now <= limit,
        "RSS {now} bytes after the delete; started at {baseline}, peaked at {peak}, expected at most {limit}"
    );
    let _ = conn.close(200, "bye".into()).await;
    broker.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
