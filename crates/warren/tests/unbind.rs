//! queue.unbind and exchange.unbind of what is not there: RabbitMQ answers unbind-ok when the queue, either
//! exchange or the binding is missing (cleanup code in many clients unbinds without knowing what is left), and
//! refuses only the default exchange (403) and a binding that exists on another connection's exclusive queue (405).

mod common;

use common::{declare_plain, refused_code, within};
use lapin::options::{ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

async fn queue_unbind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within(
        5,
        ch.queue_unbind(
            queue.into(),
            exchange.into(),
            key.into(),
            FieldTable::default(),
        ),
    )
    .await
}

async fn exchange_unbind(ch: &Channel, destination: &str, source: &str) -> lapin::Result<()> {
    within(
        5,
        ch.exchange_unbind(
            destination.into(),
            source.into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
}

async fn declare_fanout(ch: &Channel, name: &str) {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
}

#[tokio::test]
async fn queue_unbind_of_a_missing_queue_exchange_or_binding_succeeds() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare_plain(&ch, "q").await;
    queue_unbind(&ch, "no-such-queue", "amq.direct", "k")
        .await
        .expect("missing queue: unbind-ok");
    queue_unbind(&ch, "q", "no-such-exchange", "k")
        .await
        .expect("missing exchange: unbind-ok");
    queue_unbind(&ch, "no-such-queue", "no-such-exchange", "k")
        .await
        .expect("both missing: unbind-ok");
    queue_unbind(&ch, "q", "amq.direct", "never-bound")
        .await
        .expect("missing binding: unbind-ok");
    // The channel is still open.
    declare_plain(&ch, "q").await;
    assert_eq!(
        refused_code(queue_unbind(&ch, "q", "", "q")).await,
        403,
        "the default exchange is still refused"
    );
}

#[tokio::test]
async fn exchange_unbind_of_a_missing_exchange_or_binding_succeeds() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare_fanout(&ch, "x").await;
    exchange_unbind(&ch, "x", "no-such-source")
        .await
        .expect("missing source: unbind-ok");
    exchange_unbind(&ch, "no-such-destination", "x")
        .await
        .expect("missing destination: unbind-ok");
    exchange_unbind(&ch, "amq.topic", "x")
        .await
        .expect("missing binding: unbind-ok");
    // A real binding still goes.
    ch.exchange_bind(
        "amq.topic".into(),
        "x".into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    exchange_unbind(&ch, "amq.topic", "x")
        .await
        .expect("unbind-ok");
    assert_eq!(refused_code(exchange_unbind(&ch, "", "x")).await, 403);
}

#[tokio::test]
async fn another_connections_exclusive_queue_refuses_only_an_unbind_that_would_remove_something() {
    let server = common::start_server().await;
    let owner = common::connect(&server).await;
    let other = common::connect(&server).await;
    let owner_ch = owner.create_channel().await.expect("channel");
    common::declare(
        &owner_ch,
        "mine",
        lapin::options::QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
    let ch = other.create_channel().await.expect("channel");
    queue_unbind(&ch, "mine", "amq.direct", "k")
        .await
        .expect("no such binding: unbind-ok, as RabbitMQ");
    owner_ch
        .queue_bind(
            "mine".into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
    assert_eq!(
        refused_code(queue_unbind(&ch, "mine", "amq.direct", "k")).await,
        405
    );
}
