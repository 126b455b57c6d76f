//! Classic queues across a cluster of three `warren` processes, through lapin: a durable classic queue lives on
//! the node that declared it, as in RabbitMQ, and clients connected to any node bind, publish with confirms, get,
//! consume, ack, requeue, purge and delete it; while its home node is down the others answer RabbitMQ's 404, and
//! its confirmed messages are there when the node is back.

mod common;

use std::time::Duration;

use common::cluster::{channel, eventually, three_nodes};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use serde_json::json;

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Publishes `count` persistent messages `prefix-i` to `exchange` with `key`, with confirms: every one acked.
async fn publish_confirmed(ch: &Channel, exchange: &str, key: &str, prefix: &str, count: usize) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut confirms = Vec::new();
    for i in 0..count {
        let body = format!("{prefix}-{i}");
        confirms.push(
            ch.basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish"),
        );
    }
    for confirm in confirms {
        let confirmation = common::within(30, confirm).await.expect("confirmed");
        assert!(confirmation.is_ack(), "a publish to the queue was nacked");
    }
}

#[test]
fn a_classic_queue_is_used_through_every_node() {
    let (nodes, runtime) = three_nodes();
    let connections = runtime.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        let (c2, ch2) = channel(&nodes[1]).await;
        let (_c3, ch3) = channel(&nodes[2]).await;
        ch1.queue_declare("cq".into(), durable(), FieldTable::default())
            .await
            .expect("declared on n1");
        // Known on every node once the declare returned: a passive declare on n3 finds it.
        let found = ch3
            .queue_declare("cq".into(), passive(), FieldTable::default())
            .await
            .expect("passive declare on n3");
        assert_eq!(found.message_count(), 0);
        // Bound on n2: the binding routes on every node.
        ch2.queue_bind(
            "cq".into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bound on n2");
        publish_confirmed(&ch2, "amq.direct", "k", "via-n2", 40).await;
        publish_confirmed(&ch3, "", "cq", "via-n3", 10).await;
        let counted = ch3
            .queue_declare("cq".into(), passive(), FieldTable::default())
            .await
            .expect("passive declare on n3");
        assert_eq!(counted.message_count(), 50);

        // basic.get on n3, rejected with requeue: it comes back redelivered, first in line.
        let got = ch3
            .basic_get("cq".into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get")
            .expect("a message");
        assert_eq!(&got.delivery.data[..], b"via-n2-0");
        assert!(!got.delivery.redelivered);
        got.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("nack");
        let again = ch3
            .basic_get("cq".into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get")
            .expect("a message");
        assert_eq!(&again.delivery.data[..], b"via-n2-0");
        assert!(
            again.delivery.redelivered,
            "a requeued message is redelivered"
        );
        again
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");

        // A consumer on n2 with a prefetch: it receives in order and its acks reach the home node.
        let consuming = c2.create_channel().await.expect("channel");
        consuming
            .basic_qos(5, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut consumer = consuming
            .basic_consume(
                "cq".into(),
                "on-n2".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume on n2");
        let mut bodies = Vec::new();
        for _ in 0..20 {
            let delivery = common::within(30, consumer.next())
                .await
                .expect("a delivery")
                .expect("delivered");
            bodies.push(String::from_utf8_lossy(&delivery.data).into_owned());
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        let expected: Vec<String> = (1..21).map(|i| format!("via-n2-{i}")).collect();
        assert_eq!(bodies, expected);
        consuming
            .basic_cancel("on-n2".into(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        consuming.close(200, "done".into()).await.expect("close");
        (c2, ch1, ch2, ch3)
    });
    // 29 left: those on n2's prefetch, unacked, went back when its channel closed. Purged from n1, the home.
    eventually(
        10,
        "the unacked deliveries of the closed channel back",
        || {
            let (_, q) = nodes[2].get("/queues/%2F/cq");
            q["messages_ready"] == 29
        },
    );
    // Listed on every node with its home node, as RabbitMQ lists a classic queue.
    for node in &nodes {
        let (_, q) = node.get("/queues/%2F/cq");
        assert_eq!(q["node"], "n1", "{q}");
    }
    let (ch2, ch3) = runtime.block_on(async move {
        let (_c2, ch1, ch2, ch3) = connections;
        let purged = ch1
            .queue_purge("cq".into(), QueuePurgeOptions::default())
            .await
            .expect("purge on n1");
        assert_eq!(purged, 29);

        // Deleted from n3: gone from every node.
        publish_confirmed(&ch2, "amq.direct", "k", "late", 3).await;
        let deleted = ch3
            .queue_delete("cq".into(), QueueDeleteOptions::default())
            .await
            .expect("delete on n3");
        assert_eq!(deleted, 3);
        (ch2, ch3)
    });
    for node in &nodes {
        eventually(10, "the queue gone from every node", || {
            node.get("/queues/%2F/cq").0 == reqwest::StatusCode::NOT_FOUND
        });
    }
    drop((ch2, ch3));
    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[1]).await;
        let error = ch
            .queue_declare("cq".into(), passive(), FieldTable::default())
            .await
            .expect_err("deleted");
        assert!(error.to_string().contains("NOT_FOUND"), "{error}");
    });
}

#[test]
fn a_consumer_elsewhere_gets_its_unacked_messages_requeued_when_its_connection_closes() {
    let (nodes, runtime) = three_nodes();
    let connections = runtime.block_on(async {
        let (c1, ch1) = channel(&nodes[0]).await;
        ch1.queue_declare("held".into(), durable(), FieldTable::default())
            .await
            .expect("declared on n1");
        publish_confirmed(&ch1, "", "held", "m", 5).await;
        let (c3, ch3) = channel(&nodes[2]).await;
        let mut consumer = ch3
            .basic_consume(
                "held".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume on n3");
        for _ in 0..5 {
            common::within(30, consumer.next())
                .await
                .expect("a delivery")
                .expect("delivered");
        }
        // Unacked on n3's connection: closing it gives them back to the queue on n1.
        c3.close(200, "bye".into()).await.expect("close");
        (c1, ch1)
    });
    eventually(20, "the five back in the queue", || {
        let (_, q) = nodes[0].get("/queues/%2F/held");
        q["messages_ready"] == 5
    });
    runtime.block_on(async move {
        let (_c1, ch1) = connections;
        let got = ch1
            .basic_get("held".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
            .expect("a message");
        assert!(got.delivery.redelivered);
    });
}

#[test]
fn a_classic_queue_whose_home_node_is_down_answers_rabbitmqs_404_until_it_is_back() {
    let (mut nodes, runtime) = three_nodes();
    runtime.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        ch1.queue_declare("homed".into(), durable(), FieldTable::default())
            .await
            .expect("declared on n1");
        let (_c2, ch2) = channel(&nodes[1]).await;
        publish_confirmed(&ch2, "", "homed", "kept", 30).await;
        let (_c3, ch3) = channel(&nodes[2]).await;
        let mut watching = ch3
            .basic_consume(
                "homed".into(),
                "watcher".into(),
                BasicConsumeOptions {
                    no_ack: false,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume on n3");
        let first = common::within(30, watching.next())
            .await
            .expect("a delivery")
            .expect("delivered");
        first
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("nack");
    });
    nodes[0].kill9();
    runtime.block_on(async {
        // Once n2 notices n1 is gone: RabbitMQ's 404 for a durable queue whose home node is down.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let text = loop {
            let (_c, ch) = channel(&nodes[1]).await;
            match ch
                .queue_declare("homed".into(), passive(), FieldTable::default())
                .await
            {
                Err(error) => break error.to_string(),
                Ok(_) => {
                    assert!(std::time::Instant::now() < deadline, "no 404 within 30 s");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert!(
            text.contains(
                "NOT_FOUND - home node 'n1' of durable queue 'homed' in vhost '/' is down or inaccessible"
            ),
            "{text}"
        );
        let (_c, ch) = channel(&nodes[2]).await;
        let error = ch
            .basic_get("homed".into(), BasicGetOptions { no_ack: true })
            .await
            .expect_err("basic.get while its home is down");
        assert!(error.to_string().contains("is down or inaccessible"), "{error}");
        // A publish routed to it from another node is nacked: the home node cannot take it.
        let (_c, ch) = channel(&nodes[1]).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let confirm = ch
            .basic_publish(
                "".into(),
                "homed".into(),
                BasicPublishOptions::default(),
                b"while-down",
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        let confirmation = common::within(60, confirm).await.expect("confirmed");
        assert!(confirmation.is_nack(), "a publish its home node never took was acked");
    });
    // Listed as RabbitMQ lists a queue whose node is down, in the listing and alone.
    let (_, listed) = nodes[1].get("/queues/%2F");
    let listed = listed
        .as_array()
        .and_then(|all| all.iter().find(|q| q["name"] == "homed"))
        .cloned()
        .unwrap_or_else(|| panic!("homed in {listed}"));
    assert_eq!(
        (&listed["state"], &listed["node"]),
        (&json!("down"), &json!("n1")),
        "{listed}"
    );
    let (_, alone) = nodes[2].get("/queues/%2F/homed");
    assert_eq!(alone["state"], "down", "{alone}");
    nodes[0].restart();
    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[1]).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let count = loop {
            let (_c, ch) = channel(&nodes[1]).await;
            match ch
                .queue_declare("homed".into(), passive(), FieldTable::default())
                .await
            {
                Ok(ok) => break ok.message_count(),
                Err(_) => {
                    assert!(std::time::Instant::now() < deadline, "not back within 60 s");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
        assert_eq!(count, 30, "every confirmed message kept by the home node");
        let mut bodies = std::collections::BTreeSet::new();
        while let Some(got) = ch
            .basic_get("homed".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            bodies.insert(String::from_utf8_lossy(&got.delivery.data).into_owned());
        }
        let expected: std::collections::BTreeSet<String> =
            (0..30).map(|i| format!("kept-{i}")).collect();
        assert_eq!(bodies, expected);
    });
    let (_, back) = nodes[1].get("/queues/%2F/homed");
    assert_eq!(back["state"], "running", "{back}");
}

#[test]
fn a_consumer_elsewhere_that_holds_its_channel_prefetch_for_long_keeps_its_session() {
    let (nodes, runtime) = three_nodes();
    let _open = runtime.block_on(async {
        let (_c1, ch1) = channel(&nodes[0]).await;
        ch1.queue_declare("slow".into(), durable(), FieldTable::default())
            .await
            .expect("declared on n1");
        publish_confirmed(&ch1, "", "slow", "m", 6).await;
        let (_c2, ch2) = channel(&nodes[1]).await;
        // A channel-wide prefetch of 2, which only n2 knows of: the home node hands n2 more than its channel can
        // take, and n2 holds them until the client acks.
        ch2.basic_qos(2, BasicQosOptions { global: true })
            .await
            .expect("qos");
        let mut consumer = ch2
            .basic_consume(
                "slow".into(),
                "slow-consumer".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume on n2");
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(
                common::within(30, consumer.next())
                    .await
                    .expect("a delivery")
                    .expect("delivered"),
            );
        }
        // Longer than a session may go unpolled (15 s): kept open meanwhile, nothing is requeued or cancelled.
        tokio::time::sleep(Duration::from_secs(20)).await;
        for delivery in held {
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        let mut bodies = Vec::new();
        for _ in 0..4 {
            let delivery = common::within(30, consumer.next())
                .await
                .expect("a delivery")
                .expect("delivered");
            assert!(
                !delivery.redelivered,
                "requeued while its consumer held its prefetch"
            );
            bodies.push(String::from_utf8_lossy(&delivery.data).into_owned());
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        assert_eq!(bodies, vec!["m-2", "m-3", "m-4", "m-5"]);
        // Still a consumer of the queue: a new message reaches it (a closed session would have cancelled it).
        tokio::time::sleep(Duration::from_secs(3)).await;
        ch1.basic_publish(
            "".into(),
            "slow".into(),
            BasicPublishOptions::default(),
            b"m-6",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
        let last = common::within(10, consumer.next())
            .await
            .expect("a delivery after holding")
            .expect("delivered");
        assert_eq!(&last.data[..], b"m-6");
        last.ack(BasicAckOptions::default()).await.expect("ack");
        (ch2, consumer)
    });
    // Every ack reached the queue: nothing was requeued behind the consumer's back.
    eventually(10, "the queue empty at its home", || {
        let (_, q) = nodes[0].get("/queues/%2F/slow");
        q["messages"] == 0
    });
}
