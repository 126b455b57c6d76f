//! Replicated quorum queues on a cluster of three `warren` processes, through lapin: a queue declared on one node
//! is published to, got from and consumed from on the others, and every confirmed message outlives the kill -9 of
//! each node in turn (the queue's leader among them).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{channel, eventually, three_nodes, Node};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

async fn declare(ch: &Channel, queue: &str) -> u32 {
    declare_with(ch, queue, &[]).await
}

/// Declares quorum queue `queue` with `extra` arguments too; the messages it holds.
async fn declare_with(ch: &Channel, queue: &str, extra: &[(&str, AMQPValue)]) -> u32 {
    let mut arguments = quorum_arguments();
    for (key, value) in extra {
        arguments.insert((*key).into(), value.clone());
    }
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        arguments,
    )
    .await
    .expect("queue.declare")
    .message_count()
}

/// Publishes `bodies` persistent with confirms; whether each was acked (true) or nacked.
async fn publish_acks(
    ch: &Channel,
    queue: &str,
    bodies: impl Iterator<Item = String>,
) -> Vec<bool> {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut acks = Vec::new();
    for body in bodies {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        // One at a time, so each publish meets the queue as the one before left it.
        acks.push(
            common::within(30, confirm)
                .await
                .expect("confirmed")
                .is_ack(),
        );
    }
    acks
}

/// The body of the next message basic.get takes (auto-ack) from `queue`, if any.
async fn get_body(ch: &Channel, queue: &str) -> Option<String> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .map(|got| String::from_utf8_lossy(&got.delivery.data).into_owned())
}

/// Publishes `bodies` persistent with confirms; every confirm must be an ack.
async fn publish_confirmed(ch: &Channel, queue: &str, bodies: impl Iterator<Item = String>) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut confirms = Vec::new();
    for body in bodies {
        confirms.push(
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish"),
        );
    }
    for confirm in confirms {
        let confirm = common::within(30, confirm).await.expect("confirmed");
        assert!(confirm.is_ack(), "a publish was nacked");
    }
}

/// Consumes and acks `n` messages; their bodies.
async fn consume_acked(ch: &Channel, queue: &str, n: usize) -> Vec<String> {
    ch.basic_qos(20, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut bodies = Vec::new();
    while bodies.len() < n {
        let delivery = common::within(30, consumer.next())
            .await
            .expect("consumer open")
            .expect("delivery");
        bodies.push(String::from_utf8_lossy(&delivery.data).into_owned());
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    bodies
}

#[test]
fn a_quorum_queue_declared_on_one_node_is_used_from_every_node() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        assert_eq!(declare(&ch1, "qq").await, 0);

        // Published on n2, confirmed once a majority has each message.
        let (_c2, ch2) = channel(&nodes[1]).await;
        publish_confirmed(&ch2, "qq", (0..100).map(|i| format!("m{i}"))).await;

        // n3 sees the queue and its messages: a redeclare counts them, a get takes the first.
        let (_c3, ch3) = channel(&nodes[2]).await;
        assert_eq!(declare(&ch3, "qq").await, 100);
        let got = ch3
            .basic_get("qq".into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
            .expect("a message");
        assert_eq!(&got.delivery.data[..], b"m0");
        got.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");

        // A consumer on n3 receives the rest, in order, once each.
        let bodies = consume_acked(&ch3, "qq", 99).await;
        let expected: Vec<String> = (1..100).map(|i| format!("m{i}")).collect();
        assert_eq!(bodies, expected);

        // Acked everywhere: n1 counts nothing left.
        let mut left = u32::MAX;
        for _ in 0..50 {
            left = declare(&ch1, "qq").await;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0);

        // An argument a replicated quorum queue does not honour yet is refused, not ignored.
        let mut arguments = quorum_arguments();
        arguments.insert("x-max-priority".into(), AMQPValue::LongLongInt(10));
        let (_c4, ch4) = channel(&nodes[0]).await;
        let refused = ch4
            .queue_declare(
                "qq-priority".into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await
            .expect_err("refused");
        assert!(
            refused.to_string().contains("PRECONDITION_FAILED"),
            "{refused}"
        );

        // Deleted on n2: gone on n1.
        let deleted = ch2
            .queue_delete("qq".into(), QueueDeleteOptions::default())
            .await
            .expect("queue.delete");
        assert_eq!(deleted, 0);
        // Deleted on n1 too once it applies the change (a passive declare of a missing queue closes the channel).
        let mut gone = false;
        for _ in 0..50 {
            let (_c, ch) = channel(&nodes[0]).await;
            let passive = ch
                .queue_declare(
                    "qq".into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            if passive.is_err() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "the queue is still on n1");
    });
}

#[test]
fn length_limits_ttl_delivery_limit_and_single_active_consumer_hold_on_every_node() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        let (_c2, ch2) = channel(&nodes[1]).await;
        let (_c3, ch3) = channel(&nodes[2]).await;

        // reject-publish: what would go over three messages is nacked, wherever it is published.
        let reject = [
            ("x-max-length", AMQPValue::LongLongInt(3)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ];
        declare_with(&ch1, "qq-reject", &reject).await;
        let acks = publish_acks(&ch2, "qq-reject", (0..5).map(|i| format!("r{i}"))).await;
        assert_eq!(acks, [true, true, true, false, false]);
        assert_eq!(declare_with(&ch3, "qq-reject", &reject).await, 3);

        // drop-head (the default): the oldest make room.
        let drop_head = [("x-max-length-bytes", AMQPValue::LongLongInt(4))];
        declare_with(&ch1, "qq-drop", &drop_head).await;
        let acks = publish_acks(&ch2, "qq-drop", (0..5).map(|i| format!("d{i}"))).await;
        assert!(acks.iter().all(|ack| *ack));
        assert_eq!(get_body(&ch3, "qq-drop").await.as_deref(), Some("d3"));
        assert_eq!(get_body(&ch3, "qq-drop").await.as_deref(), Some("d4"));
        assert_eq!(get_body(&ch3, "qq-drop").await, None);

        // x-message-ttl, and a message's own expiration: gone once past, with nobody consuming.
        let ttl = [("x-message-ttl", AMQPValue::LongLongInt(300))];
        declare_with(&ch1, "qq-ttl", &ttl).await;
        publish_acks(&ch2, "qq-ttl", (0..3).map(|i| format!("t{i}"))).await;
        declare_with(&ch1, "qq-expiration", &[]).await;
        for (body, expiration) in [("short", "200"), ("long", "600000")] {
            ch2.basic_publish(
                "".into(),
                "qq-expiration".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_expiration(expiration.into()),
            )
            .await
            .expect("publish")
            .await
            .expect("confirmed");
        }
        eventually_async(|| async {
            declare_with(&ch3, "qq-ttl", &ttl).await == 0
                && declare_with(&ch3, "qq-expiration", &[]).await == 1
        })
        .await;
        assert_eq!(
            get_body(&ch3, "qq-expiration").await.as_deref(),
            Some("long")
        );

        // x-delivery-limit 1: returned twice, the message is gone.
        let limited = [("x-delivery-limit", AMQPValue::LongLongInt(1))];
        declare_with(&ch1, "qq-limit", &limited).await;
        publish_acks(&ch2, "qq-limit", std::iter::once("once".to_owned())).await;
        for redelivered in [false, true] {
            let got = ch3
                .basic_get("qq-limit".into(), BasicGetOptions::default())
                .await
                .expect("basic.get")
                .expect("the message");
            assert_eq!(got.delivery.redelivered, redelivered);
            got.delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
                .expect("basic.nack");
        }
        eventually_async(|| async { declare_with(&ch1, "qq-limit", &limited).await == 0 }).await;

        // A single active consumer: the first to attach (on n2) gets everything, the one on n3 takes over when it
        // is cancelled.
        let sac = [("x-single-active-consumer", AMQPValue::Boolean(true))];
        declare_with(&ch1, "qq-sac", &sac).await;
        let mut first = ch2
            .basic_consume(
                "qq-sac".into(),
                "first".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        let mut second = ch3
            .basic_consume(
                "qq-sac".into(),
                "second".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        publish_acks(&ch1, "qq-sac", (0..10).map(|i| format!("s{i}"))).await;
        ack_in_order(&mut first, "s", 10).await;
        publish_acks(&ch1, "qq-sac", std::iter::once("after".to_owned())).await;
        ch2.basic_cancel("first".into(), BasicCancelOptions::default())
            .await
            .expect("basic.cancel");
        let delivery = common::within(30, second.next())
            .await
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(&delivery.data[..], b"after");
    });
}

/// Takes `n` deliveries from `consumer`, which must be `{prefix}0` .. in order, and acks each.
async fn ack_in_order(consumer: &mut lapin::Consumer, prefix: &str, n: usize) {
    for i in 0..n {
        let delivery = common::within(30, consumer.next())
            .await
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(delivery.data, format!("{prefix}{i}").into_bytes());
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

/// Whether `queue` exists, as a passive declare on a channel of its own on `node` tells.
async fn exists(node: &Node, queue: &str) -> bool {
    let (_conn, ch) = channel(node).await;
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .is_ok()
}

/// Takes every message of `queue` with basic.get on `ch` and nacks it without requeue.
async fn reject_all(ch: &Channel, queue: &str) -> usize {
    let mut rejected = 0;
    while let Some(got) = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
    {
        got.delivery
            .nack(BasicNackOptions {
                requeue: false,
                ..BasicNackOptions::default()
            })
            .await
            .expect("basic.nack");
        rejected += 1;
    }
    rejected
}

/// The `x-first-death-reason` and `x-first-death-queue` of the next message basic.get takes from `queue`.
async fn first_death(ch: &Channel, queue: &str) -> Option<(String, String)> {
    let got = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")?;
    let headers = got
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let text = |key: &str| match headers.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{key}: {other:?}"),
    };
    Some((text("x-first-death-reason"), text("x-first-death-queue")))
}

#[test]
fn dead_letters_expiry_and_priorities_on_a_replicated_queue() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        let (_c2, ch2) = channel(&nodes[1]).await;
        let (_c3, ch3) = channel(&nodes[2]).await;
        let to = |queue: &str| {
            [
                ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
                (
                    "x-dead-letter-routing-key",
                    AMQPValue::LongString(queue.into()),
                ),
            ]
        };

        // At most once (the default): rejected on n3, expired, pushed out by max-length and past the delivery
        // limit, each reaches the dead-letter queue with its reason.
        declare(&ch1, "dlq").await;
        let mut source = to("dlq").to_vec();
        source.extend([
            ("x-max-length", AMQPValue::LongLongInt(2)),
            ("x-delivery-limit", AMQPValue::LongLongInt(0)),
        ]);
        declare_with(&ch1, "src", &source).await;
        publish_acks(&ch2, "src", ["rejected".to_owned()].into_iter()).await;
        assert_eq!(reject_all(&ch3, "src").await, 1);
        publish_acks(&ch2, "src", (0..3).map(|i| format!("m{i}"))).await;
        let got = ch3
            .basic_get("src".into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
            .expect("m1");
        got.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("basic.nack");
        let mut ttl = to("dlq").to_vec();
        ttl.push(("x-message-ttl", AMQPValue::LongLongInt(100)));
        declare_with(&ch1, "src-ttl", &ttl).await;
        publish_acks(&ch2, "src-ttl", ["expired".to_owned()].into_iter()).await;
        eventually_async(|| async { declare(&ch1, "dlq").await == 4 }).await;
        let mut deaths = Vec::new();
        while let Some(death) = first_death(&ch2, "dlq").await {
            deaths.push(death);
        }
        deaths.sort();
        let expected = [
            ("delivery_limit", "src"),
            ("expired", "src-ttl"),
            ("maxlen", "src"),
            ("rejected", "src"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(r, q)| ((*r).to_owned(), (*q).to_owned()))
            .collect();
        assert_eq!(deaths, expected);

        // At least once: what dies while the dead-letter exchange routes nowhere is kept, counted against
        // max-length, and delivered once the target exists.
        let mut kept = to("dlq-later").to_vec();
        kept.extend([
            (
                "x-dead-letter-strategy",
                AMQPValue::LongString("at-least-once".into()),
            ),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
            ("x-max-length", AMQPValue::LongLongInt(5)),
        ]);
        declare_with(&ch1, "src-kept", &kept).await;
        publish_acks(&ch2, "src-kept", (0..5).map(|i| format!("k{i}"))).await;
        assert_eq!(reject_all(&ch3, "src-kept").await, 5);
        assert_eq!(
            publish_acks(&ch2, "src-kept", ["over".to_owned()].into_iter()).await,
            [false],
            "the kept letters fill the queue"
        );
        declare(&ch1, "dlq-later").await;
        eventually_async(|| async { declare(&ch2, "dlq-later").await == 5 }).await;
        eventually_async(|| async {
            publish_acks(&ch2, "src-kept", ["room".to_owned()].into_iter()).await == [true]
        })
        .await;

        // x-expires: unused, the queue is deleted on every node; with a consumer it stays.
        let expires = [("x-expires", AMQPValue::LongLongInt(1_500))];
        declare_with(&ch1, "qq-unused", &expires).await;
        declare_with(&ch1, "qq-used", &expires).await;
        // Kept: a dropped lapin consumer is cancelled.
        let _keeps = ch2
            .basic_consume(
                "qq-used".into(),
                "keeps".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        // A passive declare is a use too: look seldom, so the queue has the time to expire in between.
        let mut gone = false;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if !exists(&nodes[0], "qq-unused").await {
                gone = true;
                break;
            }
        }
        assert!(gone, "the unused queue did not expire");
        eventually_async(|| async {
            !exists(&nodes[1], "qq-unused").await && !exists(&nodes[2], "qq-unused").await
        })
        .await;
        assert!(exists(&nodes[2], "qq-used").await);

        // Consumer priorities: the consumer of priority 10 (on n2) takes everything while it has credit; the one
        // of priority 0 (on n3) gets nothing.
        declare(&ch1, "qq-prio").await;
        let mut arguments = FieldTable::default();
        arguments.insert("x-priority".into(), AMQPValue::LongInt(10));
        let mut high = ch2
            .basic_consume(
                "qq-prio".into(),
                "high".into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .expect("basic.consume");
        let mut low = ch3
            .basic_consume(
                "qq-prio".into(),
                "low".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        publish_acks(&ch1, "qq-prio", (0..20).map(|i| format!("p{i}"))).await;
        ack_in_order(&mut high, "p", 20).await;
        let nothing = tokio::time::timeout(Duration::from_millis(500), low.next()).await;
        assert!(nothing.is_err(), "the low priority consumer got a message");

        // Message priorities as RabbitMQ 4.0's quorum queues: above 4 is high, two high for each normal one.
        declare(&ch1, "qq-levels").await;
        ch2.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        for (body, priority) in [
            ("n1", 0),
            ("n2", 4),
            ("n3", 1),
            ("h1", 5),
            ("h2", 9),
            ("h3", 9),
        ] {
            ch2.basic_publish(
                "".into(),
                "qq-levels".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_priority(priority),
            )
            .await
            .expect("publish")
            .await
            .expect("confirmed");
        }
        let mut order = Vec::new();
        while let Some(body) = get_body(&ch3, "qq-levels").await {
            order.push(body);
        }
        assert_eq!(order, ["h1", "h2", "n1", "h3", "n2", "n3"]);
    });
}

/// Polls `check` every 100 ms for up to 30 s until it holds.
async fn eventually_async<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 30 s");
}

#[test]
fn confirmed_messages_outlive_the_kill_of_each_node_in_turn() {
    let (mut nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c, ch) = channel(&nodes[0]).await;
        declare(&ch, "durable-qq").await;
        publish_confirmed(&ch, "durable-qq", (0..300).map(|i| format!("m{i}"))).await;
    });
    let mut received = BTreeSet::new();
    for victim in 0..3 {
        nodes[victim].kill9();
        let reader = (victim + 1) % 3;
        let bodies = rt.block_on(async {
            let (_c, ch) = channel(&nodes[reader]).await;
            let bodies = consume_acked(&ch, "durable-qq", 100).await;
            ch.close(200, "done".into()).await.expect("close");
            bodies
        });
        for body in bodies {
            assert!(received.insert(body.clone()), "{body} delivered twice");
        }
        // The acks committed (applied on the reader) before the reader is the next node killed.
        let left = 300 - received.len() as u64;
        eventually(30, "the acks applied", || {
            let (_, queue) = nodes[reader].get("/queues/%2F/durable-qq");
            queue["messages_unacknowledged"] == 0 && queue["messages_ready"] == left
        });
        nodes[victim].restart();
        eventually(30, "the restarted node back in the cluster", || {
            nodes[victim].leader().is_some()
        });
    }
    let expected: BTreeSet<String> = (0..300).map(|i| format!("m{i}")).collect();
    assert_eq!(received, expected);
}

#[test]
fn at_least_once_dead_letters_kept_by_a_killed_leader_are_sent_by_the_next() {
    let (mut nodes, rt) = three_nodes();
    let kept = [
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString("dlq-after".into()),
        ),
        (
            "x-dead-letter-strategy",
            AMQPValue::LongString("at-least-once".into()),
        ),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
    ];
    // The letters die while their target does not exist.
    rt.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        declare_with(&ch1, "src-failover", &kept).await;
        let (_c2, ch2) = channel(&nodes[1]).await;
        publish_confirmed(&ch2, "src-failover", (0..20).map(|i| format!("d{i}"))).await;
        assert_eq!(reject_all(&ch2, "src-failover").await, 20);
    });
    // Its leader (n1, client-local, unless another node won the first election under load) is killed.
    let mut leader = String::new();
    eventually(30, "the queue's leader known", || {
        let (_, queue) = nodes[1].get("/queues/%2F/src-failover");
        leader = queue["leader"].as_str().unwrap_or_default().to_owned();
        !leader.is_empty()
    });
    let victim = match leader.as_str() {
        "n1" => 0,
        "n2" => 1,
        _ => 2,
    };
    let (a, b) = ((victim + 1) % 3, (victim + 2) % 3);
    nodes[victim].kill9();
    eventually(30, "a new leader", || {
        let (_, queue) = nodes[a].get("/queues/%2F/src-failover");
        queue["leader"] != leader.as_str() && queue["leader"].is_string()
    });
    rt.block_on(async {
        let (_ca, cha) = channel(&nodes[a]).await;
        declare(&cha, "dlq-after").await;
        let (_cb, chb) = channel(&nodes[b]).await;
        eventually_async(|| async { declare(&chb, "dlq-after").await >= 20 }).await;
        let mut bodies = BTreeSet::new();
        while let Some(body) = get_body(&chb, "dlq-after").await {
            bodies.insert(body);
        }
        let expected: BTreeSet<String> = (0..20).map(|i| format!("d{i}")).collect();
        assert_eq!(bodies, expected, "every kept letter, duplicates aside");
    });
    nodes[victim].restart();
}

#[test]
fn exchanges_and_bindings_made_on_one_node_route_on_every_node() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        declare(&ch1, "orders").await;
        ch1.exchange_declare(
            "shop".into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");

        // Bound on n2 to the exchange declared on n1.
        let (_c2, ch2) = channel(&nodes[1]).await;
        ch2.queue_bind(
            "orders".into(),
            "shop".into(),
            "order.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");

        // Published through the exchange on n3: routed there to the queue.
        let (_c3, ch3) = channel(&nodes[2]).await;
        ch3.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        for key in ["order.new", "stock.low", "order.paid"] {
            let confirm = ch3
                .basic_publish(
                    "shop".into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    key.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(confirm.is_ack());
        }
        let bodies = consume_acked(&ch1, "orders", 2).await;
        assert_eq!(bodies, vec!["order.new", "order.paid"]);

        // Unbound and deleted on n3: gone on n1.
        ch3.queue_unbind(
            "orders".into(),
            "shop".into(),
            "order.*".into(),
            FieldTable::default(),
        )
        .await
        .expect("queue.unbind");
        ch3.exchange_delete("shop".into(), ExchangeDeleteOptions::default())
            .await
            .expect("exchange.delete");
    });
    eventually(10, "the exchange gone on n1", || {
        nodes[0].get("/exchanges/%2F/shop").0 == reqwest::StatusCode::NOT_FOUND
    });
    let (_, bindings) = nodes[1].get("/queues/%2F/orders/bindings");
    assert_eq!(
        bindings.as_array().map(Vec::len),
        Some(1),
        "only the default binding is left: {bindings}"
    );
}

/// `warren ctl` against `node`'s management API.
fn ctl(node: &Node, args: &[&str]) -> std::process::Output {
    let port = node.process().management_port();
    std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["ctl", "-n", &format!("http://127.0.0.1:{port}")])
        .args(args)
        .env_remove("WARREN_CTL_URL")
        .env_remove("WARREN_CTL_USER")
        .env_remove("WARREN_CTL_PASSWORD")
        .output()
        .expect("the binary runs")
}

fn members(node: &Node, queue: &str) -> Vec<String> {
    let (_, body) = node.get(&format!("/queues/%2F/{queue}"));
    body["members"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn members_are_added_and_removed_and_a_non_member_serves_the_queue() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c, ch) = channel(&nodes[0]).await;
        let mut arguments = quorum_arguments();
        arguments.insert("x-quorum-initial-group-size".into(), AMQPValue::LongInt(2));
        ch.queue_declare(
            "pair".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .expect("queue.declare");
    });
    eventually(10, "two members", || members(&nodes[0], "pair").len() == 2);
    let outsider = (0..3)
        .find(|i| !members(&nodes[0], "pair").contains(&format!("n{}", i + 1)))
        .expect("a node outside the group");
    let outsider_name = format!("n{}", outsider + 1);

    // The node outside the group follows it as a learner: clients use the queue through it.
    rt.block_on(async {
        let (_c, ch) = channel(&nodes[outsider]).await;
        publish_confirmed(&ch, "pair", (0..10).map(|i| format!("m{i}"))).await;
        let bodies = consume_acked(&ch, "pair", 10).await;
        assert_eq!(bodies.len(), 10);
    });

    // add_member makes it a voter; delete_member takes another out; shrink and grow as rabbitmq-queues.
    let added = ctl(&nodes[0], &["add_member", "pair", &outsider_name]);
    assert!(added.status.success(), "{added:?}");
    eventually(10, "three members", || {
        members(&nodes[0], "pair").len() == 3
    });
    let removed = ctl(&nodes[1], &["delete_member", "pair", &outsider_name]);
    assert!(removed.status.success(), "{removed:?}");
    eventually(10, "two members again", || {
        !members(&nodes[0], "pair").contains(&outsider_name)
    });
    let grown = ctl(&nodes[2], &["grow", &outsider_name, "all"]);
    assert!(grown.status.success(), "{grown:?}");
    let table = String::from_utf8_lossy(&grown.stdout);
    assert!(table.contains("pair") && table.contains("ok"), "{table}");
    eventually(10, "grown to three", || {
        members(&nodes[0], "pair").len() == 3
    });
    let shrunk = ctl(&nodes[0], &["shrink", &outsider_name]);
    assert!(shrunk.status.success(), "{shrunk:?}");
    eventually(10, "shrunk to two", || {
        members(&nodes[0], "pair").len() == 2
    });

    // A node that is not in the cluster is refused.
    let refused = ctl(&nodes[0], &["add_member", "pair", "n9"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a member of the cluster"),
        "{refused:?}"
    );
}

#[test]
fn leaders_are_placed_by_the_queue_leader_locator() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        // client-local (the default): the node that took the declare leads.
        for (i, node) in nodes.iter().enumerate() {
            let (_c, ch) = channel(node).await;
            declare(&ch, &format!("local-{i}")).await;
        }
        // balanced: three more queues declared on n1 go to the three nodes, each leading the fewest in turn.
        let (_c, ch) = channel(&nodes[0]).await;
        let balanced = [(
            "x-queue-leader-locator",
            AMQPValue::LongString("balanced".into()),
        )];
        for i in 0..3 {
            declare_with(&ch, &format!("balanced-{i}"), &balanced).await;
        }
    });
    let leader_of = |queue: &str| {
        let (_, json) = nodes[0].get(&format!("/queues/%2F/{queue}"));
        json["leader"].as_str().map(str::to_owned)
    };
    // n1 learns a leader elected elsewhere from that leader's first heartbeat: until then it names none.
    for i in 0..3 {
        let queue = format!("local-{i}");
        eventually(10, "n1 knows the queue's leader", || {
            leader_of(&queue).is_some()
        });
        assert_eq!(leader_of(&queue), Some(format!("n{}", i + 1)));
    }
    for i in 0..3 {
        let queue = format!("balanced-{i}");
        eventually(10, "n1 knows the queue's leader", || {
            leader_of(&queue).is_some()
        });
    }
    let leaders: BTreeSet<String> = (0..3)
        .filter_map(|i| leader_of(&format!("balanced-{i}")))
        .collect();
    assert_eq!(leaders.len(), 3, "{leaders:?}");
}

#[test]
fn a_policy_sets_the_limits_of_a_replicated_queue_on_every_node() {
    let (nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c, ch) = channel(&nodes[0]).await;
        declare(&ch, "qq-policy").await;
    });
    let (status, _) = nodes[0].api(
        reqwest::Method::PUT,
        "/policies/%2F/two",
        Some(serde_json::json!({
            "pattern": "^qq-policy$",
            "definition": {"max-length": 2},
            "apply-to": "queues"
        })),
    );
    assert!(status.is_success(), "{status}");
    eventually(30, "the policy's limit applied", || {
        let (_, queue) = nodes[2].get("/queues/%2F/qq-policy");
        queue["policy"] == "two"
    });
    // The leader writes the new limits to the queue's log within its next tick.
    std::thread::sleep(Duration::from_millis(1500));
    rt.block_on(async {
        let (_c2, ch2) = channel(&nodes[1]).await;
        publish_acks(&ch2, "qq-policy", (0..5).map(|i| format!("p{i}"))).await;
        let (_c3, ch3) = channel(&nodes[2]).await;
        eventually_async(|| async { declare(&ch3, "qq-policy").await == 2 }).await;
        assert_eq!(get_body(&ch3, "qq-policy").await.as_deref(), Some("p3"));
    });
    // Cleared: the queue takes more again.
    let (status, _) = nodes[0].api(reqwest::Method::DELETE, "/policies/%2F/two", None);
    assert!(status.is_success(), "{status}");
    std::thread::sleep(Duration::from_millis(1500));
    rt.block_on(async {
        let (_c2, ch2) = channel(&nodes[1]).await;
        publish_acks(&ch2, "qq-policy", (5..10).map(|i| format!("p{i}"))).await;
        let (_c3, ch3) = channel(&nodes[2]).await;
        eventually_async(|| async { declare(&ch3, "qq-policy").await == 6 }).await;
    });
}

#[test]
fn a_vhosts_default_queue_type_set_on_one_node_types_the_declares_on_every_node() {
    let (nodes, rt) = three_nodes();
    let body = serde_json::json!({"default_queue_type": "quorum"});
    let (status, _) = nodes[0].api(reqwest::Method::PUT, "/vhosts/qv", Some(body));
    assert_eq!(status, reqwest::StatusCode::CREATED);
    eventually(30, "the default on n2", || {
        nodes[1].get("/vhosts/qv").1["default_queue_type"] == "quorum"
    });
    rt.block_on(async {
        let uri = format!("amqp://guest:guest@{}/qv", nodes[1].process().addr);
        let conn = Connection::connect(&uri, ConnectionProperties::default())
            .await
            .expect("connect to qv");
        let ch = conn.create_channel().await.expect("channel");
        ch.queue_declare(
            "jobs".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    });
    // Replicated: on n3 too, with its members and a leader.
    let (_, queue) = nodes[2].get("/queues/qv/jobs");
    assert_eq!(queue["type"], "quorum", "{queue}");
    assert_eq!(queue["arguments"]["x-queue-type"], "quorum");
    assert_eq!(
        queue["members"].as_array().map(Vec::len),
        Some(3),
        "{queue}"
    );
}

#[test]
fn a_follower_far_behind_catches_up_from_the_log() {
    let (mut nodes, rt) = three_nodes();
    rt.block_on(async {
        let (_c, ch) = channel(&nodes[0]).await;
        declare(&ch, "far-behind").await;
    });
    // n3 misses more than any one request could carry under a small body limit (8 MiB of messages).
    nodes[2].kill9();
    rt.block_on(async {
        let (_c, ch) = channel(&nodes[0]).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let body = vec![b'x'; 8 * 1024];
        let mut confirms = Vec::new();
        for _ in 0..1024 {
            confirms.push(
                ch.basic_publish(
                    "".into(),
                    "far-behind".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish"),
            );
        }
        for confirm in confirms {
            assert!(common::within(60, confirm)
                .await
                .expect("confirmed")
                .is_ack());
        }
    });
    nodes[2].restart();
    eventually(60, "n3 caught up with the queue's log", || {
        nodes[2].get("/queues/%2F/far-behind").1["messages"] == 1024
    });
}
