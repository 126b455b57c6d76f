//! How queue and exchange names are read, through lapin, as RabbitMQ 3.13's `rabbit_channel` reads them: an empty
//! name in queue.bind, unbind, purge, delete, basic.consume and basic.get is the channel's last declared queue (404
//! "no previously declared queue" without one), never in queue.declare; queue.bind with an empty name and key binds
//! with the queue's name as key; CR and LF are stripped from names in declares, deletes and binds.

mod common;

use common::{declare_plain, passive, publish_confirmed, refusal, within};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

const NO_QUEUE: &str = "NOT_FOUND - no previously declared queue";

/// Whether a passive declare finds `name`, on a fresh channel (a 404 closes it).
async fn exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    within(
        5,
        ch.queue_declare(name.into(), passive(), FieldTable::default()),
    )
    .await
    .is_ok()
}

#[tokio::test]
async fn an_empty_queue_name_is_the_last_declared_queue_in_every_method() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    declare_plain(&ch, "first").await;
    declare_plain(&ch, "last").await;
    // Empty queue name and empty key: bound to amq.direct with the key "last".
    ch.queue_bind(
        "".into(),
        "amq.direct".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    publish_confirmed(
        &ch,
        "amq.direct",
        "last",
        "routed",
        BasicProperties::default(),
    )
    .await;
    let got = within(5, ch.basic_get("".into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
        .expect("a message in 'last'");
    assert_eq!(got.delivery.data, b"routed");
    for _ in 0..2 {
        publish_confirmed(&ch, "", "last", "m", BasicProperties::default()).await;
    }
    let purged = within(5, ch.queue_purge("".into(), QueuePurgeOptions::default()))
        .await
        .expect("queue.purge");
    assert_eq!(purged, 2);
    let mut consumer = within(
        5,
        ch.basic_consume(
            "".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume");
    publish_confirmed(&ch, "", "last", "consumed", BasicProperties::default()).await;
    let delivery = within(5, consumer.next())
        .await
        .expect("a delivery")
        .expect("delivery");
    assert_eq!(delivery.data, b"consumed");
    ch.queue_unbind(
        "".into(),
        "amq.direct".into(),
        "".into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind");
    within(5, ch.queue_delete("".into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    assert!(!exists(&conn, "last").await);
    assert!(exists(&conn, "first").await);
}

#[tokio::test]
async fn an_empty_queue_name_without_a_declared_queue_is_not_found() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let fresh = || async { conn.create_channel().await.expect("channel") };
    let ch: Channel = fresh().await;
    let bind = ch.queue_bind(
        "".into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    );
    assert_eq!(refusal(bind).await, (404, NO_QUEUE.into()));
    let ch = fresh().await;
    let unbind = ch.queue_unbind(
        "".into(),
        "amq.direct".into(),
        "".into(),
        FieldTable::default(),
    );
    assert_eq!(refusal(unbind).await, (404, NO_QUEUE.into()));
    let ch = fresh().await;
    let purge = ch.queue_purge("".into(), QueuePurgeOptions::default());
    assert_eq!(refusal(purge).await, (404, NO_QUEUE.into()));
    let ch = fresh().await;
    let delete = ch.queue_delete("".into(), QueueDeleteOptions::default());
    assert_eq!(refusal(delete).await, (404, NO_QUEUE.into()));
    let ch = fresh().await;
    let get = ch.basic_get("".into(), BasicGetOptions::default());
    assert_eq!(refusal(get).await, (404, NO_QUEUE.into()));
    let ch = fresh().await;
    let consume = ch.basic_consume(
        "".into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    assert_eq!(refusal(consume).await, (404, NO_QUEUE.into()));
}

#[tokio::test]
async fn a_passive_declare_of_an_empty_name_is_not_found_even_after_a_declare() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare_plain(&ch, "q").await;
    let declare = ch.queue_declare("".into(), passive(), FieldTable::default());
    assert_eq!(
        refusal(declare).await,
        (404, "NOT_FOUND - no queue '' in vhost '/'".into())
    );
}

/// Whether a passive exchange.declare finds `name`, on a fresh channel.
async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    let options = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        5,
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            options,
            FieldTable::default(),
        ),
    )
    .await
    .is_ok()
}

#[tokio::test]
async fn cr_and_lf_are_stripped_from_names_in_declares_deletes_and_binds() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    let declared = common::declare(
        &ch,
        "cr\r\nq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert_eq!(declared.name().as_str(), "crq");
    within(
        5,
        ch.queue_declare("c\nr\rq".into(), passive(), FieldTable::default()),
    )
    .await
    .expect("passive declare finds 'crq'");
    ch.exchange_declare(
        "x\n1".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    assert!(exchange_exists(&conn, "x1").await);
    // Routing keys keep theirs.
    ch.queue_bind(
        "cr\nq".into(),
        "x1\r".into(),
        "a\nb".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    publish_confirmed(&ch, "x1", "", "bound", BasicProperties::default()).await;
    assert_eq!(common::ready_count(&ch, "crq").await, 1);
    ch.exchange_bind(
        "x1\n".into(),
        "amq.fanout\r".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    publish_confirmed(&ch, "amq.fanout", "", "via e2e", BasicProperties::default()).await;
    assert_eq!(common::ready_count(&ch, "crq").await, 2);
    ch.exchange_unbind(
        "x1\r\n".into(),
        "amq.fanout".into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    ch.queue_unbind(
        "crq\n".into(),
        "\nx1".into(),
        "a\nb".into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind");
    publish_confirmed(
        &ch,
        "amq.fanout",
        "",
        "unrouted",
        BasicProperties::default(),
    )
    .await;
    publish_confirmed(&ch, "x1", "", "unrouted", BasicProperties::default()).await;
    assert_eq!(common::ready_count(&ch, "crq").await, 2);
    // Not stripped in basic.get and queue.purge, as in RabbitMQ.
    let other = conn.create_channel().await.expect("channel");
    let get = other.basic_get("crq\n".into(), BasicGetOptions::default());
    assert_eq!(
        refusal(get).await,
        (404, "NOT_FOUND - no queue 'crq\n' in vhost '/'".into())
    );
    within(
        5,
        ch.exchange_delete("x1\r\n".into(), ExchangeDeleteOptions::default()),
    )
    .await
    .expect("exchange.delete");
    assert!(!exchange_exists(&conn, "x1").await);
    let deleted = within(
        5,
        ch.queue_delete("\ncrq".into(), QueueDeleteOptions::default()),
    )
    .await
    .expect("queue.delete");
    assert_eq!(deleted, 2);
    assert!(!exists(&conn, "crq").await);
}
