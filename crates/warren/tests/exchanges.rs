//! Exchange lifecycle through lapin: declaring (passive, redeclare, reserved names, the predeclared `amq.*`
//! exchanges), deleting (if-unused, missing, bindings removed) and auto-delete, with RabbitMQ's reply codes.

mod common;

use common::confirming_channel;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

async fn channel(conn: &Connection) -> Channel {
    conn.create_channel().await.unwrap()
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn declare(ch: &Channel, name: &str, kind: ExchangeKind, options: ExchangeDeclareOptions) {
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .unwrap();
}

async fn declare_bound_queue(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Whether a passive declare finds the exchange (404 otherwise), on a fresh channel since a 404 closes it.
async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = channel(conn).await;
    let result = common::within(
        5,
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            passive(),
            FieldTable::default(),
        ),
    )
    .await;
    match result {
        Ok(()) => true,
        Err(e) if common::reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive declare of '{name}' failed: {e:?}"),
    }
}

#[tokio::test]
async fn declaring_the_default_exchange_is_refused_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    let code = common::refused_code(ch.exchange_declare(
        "".into(),
        ExchangeKind::Direct,
        durable(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn deleting_the_default_exchange_is_refused_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    let code =
        common::refused_code(ch.exchange_delete("".into(), ExchangeDeleteOptions::default())).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn binding_a_queue_to_the_default_exchange_is_refused_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let code = common::refused_code(ch.queue_bind(
        "q".into(),
        "".into(),
        "q".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn binding_an_exchange_to_the_default_exchange_is_refused_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    declare(&ch, "x", ExchangeKind::Fanout, Default::default()).await;
    let code = common::refused_code(ch.exchange_bind(
        "x".into(),
        "".into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn declaring_a_new_exchange_with_the_amq_prefix_is_refused_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    let error = common::within(
        5,
        ch.exchange_declare(
            "amq.custom".into(),
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(common::reply_code(&error), Some(403));
    assert!(!exchange_exists(&conn, "amq.custom").await);
}

#[tokio::test]
async fn predeclared_amq_exchanges_exist() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    for name in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
    ] {
        common::within(
            5,
            ch.exchange_declare(
                name.into(),
                ExchangeKind::Direct,
                passive(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} is predeclared: {e:?}"));
    }
}

#[tokio::test]
async fn redeclaring_amq_direct_as_durable_direct_succeeds_and_it_routes() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(&ch, "amq.direct", ExchangeKind::Direct, durable()).await;
    declare_bound_queue(&ch, "q", "amq.direct", "k").await;
    common::publish_confirmed(&ch, "amq.direct", "k", "m", BasicProperties::default()).await;
    assert_eq!(common::drain_bodies(&ch, "q").await, ["m"]);
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_404() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    let code = common::refused_code(ch.exchange_declare(
        "missing".into(),
        ExchangeKind::Direct,
        passive(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn redeclaring_with_another_type_is_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    declare(&ch, "x", ExchangeKind::Direct, Default::default()).await;
    let error = common::within(
        5,
        ch.exchange_declare(
            "x".into(),
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(common::reply_code(&error), Some(406));
    let text = common::reply_text(&error).unwrap();
    assert!(text.contains("inequivalent arg 'type'"), "{text}");
}

#[tokio::test]
async fn redeclaring_with_another_durable_flag_is_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    declare(&ch, "x", ExchangeKind::Topic, Default::default()).await;
    let code = common::refused_code(ch.exchange_declare(
        "x".into(),
        ExchangeKind::Topic,
        durable(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 406);
    // Redeclaring with the same properties is fine.
    let ch2 = channel(&conn).await;
    declare(&ch2, "x", ExchangeKind::Topic, Default::default()).await;
}

#[tokio::test]
async fn declaring_an_unknown_exchange_type_closes_the_connection_with_503() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    let error = common::within(
        5,
        ch.exchange_declare(
            "x".into(),
            ExchangeKind::Custom("x-no-such-type".into()),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(common::reply_code(&error), Some(503));
    assert!(error.is_amqp_hard_error(), "{error:?}");
    assert!(conn.create_channel().await.is_err());
}

#[tokio::test]
async fn delete_if_unused_of_a_bound_exchange_is_406_and_keeps_it() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    declare(&ch, "x", ExchangeKind::Fanout, Default::default()).await;
    declare_bound_queue(&ch, "q", "x", "").await;
    let code = common::refused_code(ch.exchange_delete(
        "x".into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    ))
    .await;
    assert_eq!(code, 406);
    assert!(exchange_exists(&conn, "x").await);
}

#[tokio::test]
async fn delete_if_unused_ignores_bindings_where_the_exchange_is_the_destination() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    declare(&ch, "src", ExchangeKind::Fanout, Default::default()).await;
    declare(&ch, "dst", ExchangeKind::Fanout, Default::default()).await;
    ch.exchange_bind(
        "dst".into(),
        "src".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // RabbitMQ counts only the bindings an exchange is the source of as "in use".
    ch.exchange_delete(
        "dst".into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!exchange_exists(&conn, "dst").await);
}

#[tokio::test]
async fn deleting_an_exchange_removes_it_and_its_bindings() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(&ch, "x", ExchangeKind::Fanout, Default::default()).await;
    declare_bound_queue(&ch, "q", "x", "").await;
    ch.exchange_delete("x".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    assert!(!exchange_exists(&conn, "x").await);
    // A new exchange of the same name starts without the old binding.
    declare(&ch, "x", ExchangeKind::Fanout, Default::default()).await;
    common::publish_confirmed(&ch, "x", "", "m", BasicProperties::default()).await;
    assert!(common::drain_bodies(&ch, "q").await.is_empty());
}

#[tokio::test]
async fn deleting_a_missing_exchange_succeeds() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    ch.exchange_delete("never-declared".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    // The channel is still open.
    declare(&ch, "x", ExchangeKind::Direct, Default::default()).await;
}

#[tokio::test]
async fn auto_delete_exchange_is_deleted_when_its_last_binding_is_removed() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    ch.exchange_declare(
        "ad".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Never bound: it stays.
    assert!(exchange_exists(&conn, "ad").await);
    declare_bound_queue(&ch, "q1", "ad", "k1").await;
    declare_bound_queue(&ch, "q2", "ad", "k2").await;
    ch.queue_unbind("q1".into(), "ad".into(), "k1".into(), FieldTable::default())
        .await
        .unwrap();
    assert!(exchange_exists(&conn, "ad").await);
    ch.queue_unbind("q2".into(), "ad".into(), "k2".into(), FieldTable::default())
        .await
        .unwrap();
    assert!(!exchange_exists(&conn, "ad").await);
}

#[tokio::test]
async fn auto_delete_exchange_is_deleted_when_its_last_bound_queue_is_deleted() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = channel(&conn).await;
    ch.exchange_declare(
        "ad".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_bound_queue(&ch, "q", "ad", "").await;
    ch.queue_delete("q".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert!(!exchange_exists(&conn, "ad").await);
}
