//! Queue semantics across a restart of the real broker process: message TTLs (`x-message-ttl` and the per-message
//! `expiration`) count from the original publish, not from the restart, so a message whose deadline passed while
//! the broker was down is expired (and dead-lettered) right after recovery; and a priority queue's persistent
//! messages come back in priority order.

mod common;

use std::time::{Duration, Instant};

use common::process::{fresh_data_dir, BrokerProcess};
use common::{confirming_channel, declare, drain_bodies, publish_confirmed, ready_count, within};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

async fn connect(broker: &BrokerProcess) -> Connection {
    within(
        30,
        Connection::connect(&broker.uri(), ConnectionProperties::default()),
    )
    .await
    .expect("connect")
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// A durable queue with these arguments.
async fn durable(ch: &lapin::Channel, name: &str, arguments: &[(&str, AMQPValue)]) {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        table.insert(ShortString::from(*key), value.clone());
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    declare(ch, name, options, table).await;
}

/// Dead-letters through the default exchange into queue `dead`.
fn dead_lettering() -> [(&'static str, AMQPValue); 2] {
    [
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString(LongString::from("")),
        ),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(LongString::from("dead")),
        ),
    ]
}

/// Waits (at most 10 s) until `queue` holds `n` messages, then takes them: (body, x-first-death-reason), sorted.
async fn take_dead(ch: &lapin::Channel, queue: &str, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    within(10, async {
        while got.len() < n {
            let message = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get");
            match message {
                Some(m) => {
                    let reason = m
                        .delivery
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get("x-first-death-reason").cloned());
                    let reason = match reason {
                        Some(AMQPValue::LongString(s)) => {
                            String::from_utf8_lossy(s.as_bytes()).into_owned()
                        }
                        other => format!("{other:?}"),
                    };
                    got.push((
                        String::from_utf8_lossy(&m.delivery.data).into_owned(),
                        reason,
                    ));
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    got.sort();
    got
}

#[tokio::test]
async fn message_ttls_count_from_the_original_publish_across_a_restart() {
    let dir = fresh_data_dir("restart-ttl");
    let broker = BrokerProcess::start(&dir, &[]);
    let started = Instant::now();
    let published = {
        let conn = connect(&broker).await;
        let ch = confirming_channel(&conn).await;
        durable(&ch, "dead", &[]).await;
        let ttl = |ms| ("x-message-ttl", AMQPValue::LongInt(ms));
        let [dlx, dlx_key] = dead_lettering();
        durable(&ch, "ttl-3s", &[ttl(3_000), dlx.clone(), dlx_key.clone()]).await;
        durable(&ch, "ttl-1.5s", &[ttl(1_500), dlx.clone(), dlx_key.clone()]).await;
        durable(&ch, "own-ttl", &[dlx, dlx_key]).await;
        durable(&ch, "ttl-60s", &[ttl(60_000)]).await;
        publish_confirmed(&ch, "", "ttl-3s", "queue ttl", persistent()).await;
        publish_confirmed(&ch, "", "ttl-1.5s", "short", persistent()).await;
        let own = persistent().with_expiration(ShortString::from("3000"));
        publish_confirmed(&ch, "", "own-ttl", "own expiration", own).await;
        publish_confirmed(&ch, "", "ttl-60s", "keeps", persistent()).await;
        // Every message was published (and stamped by the broker) by now: their deadlines are at most 3 s away.
        let published = Instant::now();
        conn.close(200, "bye".into()).await.expect("close");
        published
    };
    // Down from 1 s to 1.8 s after the publishes: the 1.5 s TTL runs out meanwhile, the 3 s ones do not.
    let at = |ms| (started + Duration::from_millis(ms)).saturating_duration_since(Instant::now());
    tokio::time::sleep(at(1_000)).await;
    broker.stop();
    tokio::time::sleep(at(1_800)).await;
    let restarted = Instant::now();
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = connect(&broker).await;
    let ch = confirming_channel(&conn).await;

    // Its deadline passed while the broker was down: expired and dead-lettered at once, not 1.5 s after the
    // restart.
    assert_eq!(ready_count(&ch, "ttl-1.5s").await, 0);
    assert_eq!(
        take_dead(&ch, "dead", 1).await,
        vec![("short".to_owned(), "expired".to_owned())]
    );

    // 3.8 s after the publish the 3 s TTLs have run out; counted from the restart they would run to 4.8 s at least.
    tokio::time::sleep(
        (published + Duration::from_millis(3_800)).saturating_duration_since(Instant::now()),
    )
    .await;
    if Instant::now() >= restarted + Duration::from_secs(3) {
        eprintln!("the restart took so long that restart-based expiry would have expired them too");
    }
    assert_eq!(
        ready_count(&ch, "ttl-3s").await,
        0,
        "x-message-ttl counts from the publish"
    );
    assert_eq!(
        ready_count(&ch, "own-ttl").await,
        0,
        "expiration counts from the publish"
    );
    assert_eq!(
        take_dead(&ch, "dead", 2).await,
        vec![
            ("own expiration".to_owned(), "expired".to_owned()),
            ("queue ttl".to_owned(), "expired".to_owned())
        ]
    );
    assert_eq!(drain_bodies(&ch, "ttl-60s").await, vec!["keeps"]);
}

#[tokio::test]
async fn a_priority_queue_returns_its_persistent_messages_in_priority_order_after_a_restart() {
    let dir = fresh_data_dir("restart-priority");
    let broker = BrokerProcess::start(&dir, &[]);
    {
        let conn = connect(&broker).await;
        let ch = confirming_channel(&conn).await;
        durable(
            &ch,
            "prio",
            &[("x-max-priority", AMQPValue::ShortShortUInt(10))],
        )
        .await;
        for (body, priority) in [
            ("none", None),
            ("low", Some(1)),
            ("mid", Some(5)),
            ("top", Some(9)),
            ("over", Some(200)),
            ("mid-2", Some(5)),
        ] {
            let properties = match priority {
                Some(p) => persistent().with_priority(p),
                None => persistent(),
            };
            publish_confirmed(&ch, "", "prio", body, properties).await;
        }
    }
    // No shutdown code runs: the order must come from what the store recovered.
    broker.kill9();
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        drain_bodies(&ch, "prio").await,
        vec!["over", "top", "mid", "mid-2", "low", "none"]
    );
}
