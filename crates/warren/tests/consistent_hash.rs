//! The `x-consistent-hash` exchange through a real socket, as RabbitMQ's plugin behaves: binding keys are weights,
//! each message reaches exactly one queue, shares follow the weights, `hash-header` and `hash-property` hash what
//! they name, bad weights and arguments are refused with the plugin's 406 texts, and the exchange with its bindings
//! survives a restart.

mod common;

use common::{declare_plain, refusal};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn chx() -> ExchangeKind {
    ExchangeKind::Custom("x-consistent-hash".into())
}

fn args(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

async fn declare_chx(ch: &Channel, name: &str, arguments: FieldTable, durable: bool) {
    ch.exchange_declare(
        name.into(),
        chx(),
        ExchangeDeclareOptions {
            durable,
            ..ExchangeDeclareOptions::default()
        },
        arguments,
    )
    .await
    .expect("exchange.declare");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, weight: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        weight.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

/// Publishes `n` messages with `props_of(i)` and routing key `key_of(i)`, then waits for every confirm.
async fn publish_many(
    ch: &Channel,
    exchange: &str,
    n: usize,
    key_of: impl Fn(usize) -> String,
    props_of: impl Fn(usize) -> BasicProperties,
) {
    let mut confirms = Vec::with_capacity(n);
    for i in 0..n {
        confirms.push(
            ch.basic_publish(
                exchange.into(),
                key_of(i).as_str().into(),
                BasicPublishOptions::default(),
                b"m",
                props_of(i),
            )
            .await
            .expect("publish"),
        );
    }
    for confirm in confirms {
        assert!(common::within(10, confirm).await.expect("confirm").is_ack());
    }
}

async fn depth(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

/// The depths of three queues, in order.
async fn depths(ch: &Channel, queues: [&str; 3]) -> [u32; 3] {
    [
        depth(ch, queues[0]).await,
        depth(ch, queues[1]).await,
        depth(ch, queues[2]).await,
    ]
}

#[tokio::test]
async fn each_message_reaches_one_queue_and_shares_follow_the_weights() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_chx(&ch, "chx", FieldTable::default(), false).await;
    for (queue, weight) in [("q1", "1"), ("q2", "1"), ("q3", "2")] {
        declare_plain(&ch, queue).await;
        bind(&ch, queue, "chx", weight).await;
    }
    let n = 8000;
    publish_many(
        &ch,
        "chx",
        n,
        |i| format!("key-{i}"),
        |_| BasicProperties::default(),
    )
    .await;
    let counts = depths(&ch, ["q1", "q2", "q3"]).await;
    assert_eq!(counts.iter().sum::<u32>() as usize, n, "{counts:?}");
    for (count, want) in counts.iter().zip([0.25, 0.25, 0.5]) {
        let share = f64::from(*count) / n as f64;
        assert!((share - want).abs() < 0.03, "{counts:?}");
    }
    // The same routing key always goes to the same queue.
    publish_many(
        &ch,
        "chx",
        50,
        |_| "same".into(),
        |_| BasicProperties::default(),
    )
    .await;
    let after = depths(&ch, ["q1", "q2", "q3"]).await;
    let grown: Vec<u32> = after.iter().zip(counts).map(|(a, c)| a - c).collect();
    assert!(
        grown.contains(&50) && grown.iter().sum::<u32>() == 50,
        "{grown:?}"
    );
}

#[tokio::test]
async fn hash_header_and_hash_property_pick_what_is_hashed() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_chx(&ch, "by-header", args(&[("hash-header", "user")]), false).await;
    declare_chx(
        &ch,
        "by-id",
        args(&[("hash-property", "message_id")]),
        false,
    )
    .await;
    for (queue, exchange) in [
        ("h1", "by-header"),
        ("h2", "by-header"),
        ("p1", "by-id"),
        ("p2", "by-id"),
    ] {
        declare_plain(&ch, queue).await;
        bind(&ch, queue, exchange, "1").await;
    }
    // Different routing keys, one header value: one queue gets them all.
    let with_user = |_| {
        let mut headers = FieldTable::default();
        headers.insert("user".into(), AMQPValue::LongString("alice".into()));
        BasicProperties::default().with_headers(headers)
    };
    publish_many(&ch, "by-header", 100, |i| format!("k{i}"), with_user).await;
    let split = (depth(&ch, "h1").await, depth(&ch, "h2").await);
    assert!(split == (100, 0) || split == (0, 100), "{split:?}");
    // Different message ids spread over both queues whatever the routing key.
    let with_id = |i: usize| BasicProperties::default().with_message_id(format!("id-{i}").into());
    publish_many(&ch, "by-id", 400, |_| "same-key".into(), with_id).await;
    let (p1, p2) = (depth(&ch, "p1").await, depth(&ch, "p2").await);
    assert_eq!(p1 + p2, 400);
    assert!(p1 > 100 && p2 > 100, "{p1} {p2}");
}

#[tokio::test]
async fn bad_weights_and_arguments_get_the_plugins_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare_chx(&ch, "chx", FieldTable::default(), false).await;
    declare_plain(&ch, "q").await;
    for (key, text) in [
        ("0", "The binding key must be greater than 0"),
        ("10001", "The binding key must not exceed 10000"),
        ("heavy", "The binding key must be an integer: <<\"heavy\">>"),
    ] {
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(
            refusal(ch.queue_bind(
                "q".into(),
                "chx".into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default()
            ))
            .await,
            (406, format!("PRECONDITION_FAILED - {text}"))
        );
    }
    for (arguments, text) in [
        (
            args(&[("hash-property", "app_id")]),
            "Unsupported property: app_id",
        ),
        (
            args(&[("hash-header", "h"), ("hash-property", "timestamp")]),
            "hash-header and hash-property are mutually exclusive",
        ),
    ] {
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(
            refusal(ch.exchange_declare(
                "bad".into(),
                chx(),
                ExchangeDeclareOptions::default(),
                arguments
            ))
            .await,
            (406, format!("PRECONDITION_FAILED - {text}"))
        );
    }
}

#[tokio::test]
async fn a_durable_consistent_hash_exchange_routes_the_same_after_a_restart() {
    use common::process::{fresh_data_dir, BrokerProcess};
    let dir = fresh_data_dir("consistent-hash-restart");
    let broker = BrokerProcess::start(&dir, &[]);
    let uri = broker.uri();
    let route_of_keys = |uri: String, setup: bool| async move {
        let conn = common::within(
            30,
            lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()),
        )
        .await
        .expect("connect");
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        if setup {
            declare_chx(&ch, "dchx", FieldTable::default(), true).await;
            for q in ["d1", "d2", "d3"] {
                common::declare(&ch, q, durable, FieldTable::default()).await;
                bind(&ch, q, "dchx", "1").await;
            }
        }
        let mut routes = Vec::new();
        for i in 0..30 {
            let before: Vec<u32> = depths(&ch, ["d1", "d2", "d3"]).await.to_vec();
            publish_many(
                &ch,
                "dchx",
                1,
                |_| format!("k{i}"),
                |_| BasicProperties::default(),
            )
            .await;
            let after = depths(&ch, ["d1", "d2", "d3"]).await;
            routes.push(
                after
                    .iter()
                    .zip(&before)
                    .position(|(a, b)| a > b)
                    .expect("routed"),
            );
        }
        routes
    };
    let first = route_of_keys(uri, true).await;
    broker.stop();
    let broker = BrokerProcess::start(&dir, &[]);
    let second = route_of_keys(broker.uri(), false).await;
    assert_eq!(first, second);
    assert!(
        first.iter().any(|&q| q != first[0]),
        "keys spread: {first:?}"
    );
    broker.stop();
}
