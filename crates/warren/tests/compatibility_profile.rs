//! The `4.x` compatibility profile (`[server] compatibility = "4.x"`): RabbitMQ 4's defaults where they differ
//! from 3.13's, each checked against the 3.13 default, and the deprecated-feature permits that override them.

mod common;

use std::path::Path;

use common::{connect, declare, publish_confirmed, reply_code, reply_text};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use warren::config::Config;
use warren::server::RunningServer;

const FOUR: &str = "[server]\ncompatibility = \"4.x\"\n";
const THREE: &str = "";
/// Exclusive, so that the 4.x profile takes it.
const EXCLUSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: false,
    exclusive: true,
    auto_delete: false,
    nowait: false,
};

/// A test broker with the profile settings `toml` reads to.
async fn start(toml: &str) -> RunningServer {
    let parsed = Config::from_toml_str(toml, Path::new("compatibility.toml")).expect("config");
    common::start_server_with(|config| {
        config.limits.max_message_size = parsed.limits.max_message_size;
        config.compatibility = parsed.compatibility;
        config.deprecated_features = parsed.deprecated_features;
    })
    .await
}

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    for (key, value) in extra {
        table.insert((*key).into(), value.clone());
    }
    table
}

#[tokio::test]
async fn a_transient_non_exclusive_queue_closes_the_connection_under_4x_only() {
    let server = start(FOUR).await;
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    declare(&ch, "kept", durable, FieldTable::default()).await;
    declare(&ch, "mine", exclusive, FieldTable::default()).await;
    let refused = ch
        .queue_declare(
            "transient".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(reply_code(&refused), Some(541));
    let text = reply_text(&refused).unwrap_or_default();
    assert!(
        text.starts_with(
            "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\nBy default, this feature is not \
             permitted anymore."
        ),
        "{text}"
    );
    assert!(
        text.len() <= 255 && text.ends_with("..."),
        "cut as RabbitMQ cuts: {text}"
    );
    assert!(!conn.status().connected(), "a connection error");

    for toml in [THREE, "[server]\ncompatibility = \"4.x\"\n[deprecated_features]\ntransient_nonexcl_queues = true\n"] {
        let server = start(toml).await;
        let ch = connect(&server).await.create_channel().await.expect("channel");
        declare(&ch, "transient", Default::default(), FieldTable::default()).await;
    }
}

/// Deliveries `ch` receives from two queues of two messages each, neither acked, after `basic.qos(1, global)`.
async fn unacked_after_global_qos(server: &RunningServer) -> usize {
    let conn = connect(server).await;
    let ch = conn.create_channel().await.expect("channel");
    for queue in ["g1", "g2"] {
        declare(&ch, queue, EXCLUSIVE, FieldTable::default()).await;
        for body in ["a", "b"] {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        }
    }
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .expect("qos-ok");
    let mut consumers = Vec::new();
    for queue in ["g1", "g2"] {
        consumers.push(
            ch.basic_consume(
                queue.into(),
                format!("c-{queue}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume"),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut received = 0;
    for consumer in &mut consumers {
        use futures_lite::StreamExt;
        while let Ok(Some(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(100), consumer.next()).await
        {
            received += 1;
        }
    }
    received
}

#[tokio::test]
async fn a_global_qos_limits_each_consumer_instead_under_4x() {
    assert_eq!(
        unacked_after_global_qos(&start(THREE).await).await,
        1,
        "3.13: one delivery for the whole channel"
    );
    assert_eq!(
        unacked_after_global_qos(&start(FOUR).await).await,
        2,
        "4.x: global_qos denied, so one per consumer"
    );
    let permitted = "[server]\ncompatibility = \"4.x\"\n[deprecated_features]\nglobal_qos = true\n";
    assert_eq!(unacked_after_global_qos(&start(permitted).await).await, 1);
}

/// How many times a message in a quorum queue declared with `args` can be rejected with requeue before it is
/// gone, trying at most 30 times.
async fn rejections_until_gone(server: &RunningServer, args: FieldTable) -> usize {
    let conn = connect(server).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirms");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    declare(&ch, "poison", durable, args).await;
    publish_confirmed(&ch, "", "poison", "poison", BasicProperties::default()).await;
    for rejected in 0..30 {
        let Some(message) = ch
            .basic_get("poison".into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        else {
            return rejected;
        };
        message
            .delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("reject");
    }
    30
}

#[tokio::test]
async fn a_quorum_queue_redelivers_at_most_20_times_under_4x_unless_told_otherwise() {
    assert_eq!(
        rejections_until_gone(&start(FOUR).await, quorum(&[])).await,
        21,
        "the first delivery and 20 redeliveries"
    );
    assert_eq!(
        rejections_until_gone(&start(THREE).await, quorum(&[])).await,
        30,
        "3.13: no limit"
    );
    let unlimited = quorum(&[("x-delivery-limit", AMQPValue::LongInt(-1))]);
    assert_eq!(
        rejections_until_gone(&start(FOUR).await, unlimited).await,
        30
    );
    let three = quorum(&[("x-delivery-limit", AMQPValue::LongInt(3))]);
    assert_eq!(rejections_until_gone(&start(FOUR).await, three).await, 4);
}

#[tokio::test]
async fn messages_over_16_mib_are_refused_under_4x() {
    let body = vec![b'x'; (16 << 20) + 1];
    for (toml, accepted) in [(THREE, true), (FOUR, false)] {
        let server = start(toml).await;
        let conn = connect(&server).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(Default::default())
            .await
            .expect("confirms");
        declare(&ch, "big", EXCLUSIVE, FieldTable::default()).await;
        let confirm = ch
            .basic_publish(
                "".into(),
                "big".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .expect("sent")
            .await;
        match confirm {
            Ok(confirmation) => assert!(accepted && confirmation.is_ack(), "{confirmation:?}"),
            Err(error) => {
                assert!(!accepted, "3.13 takes 16 MiB + 1: {error}");
                assert_eq!(reply_code(&error), Some(406));
            }
        }
    }
}
