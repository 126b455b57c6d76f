//! Direct reply-to through real sockets, as RabbitMQ: a no-ack consumer of `amq.rabbitmq.reply-to`, requests whose
//! `reply_to` is rewritten to a reply name unique to that consumer, replies published to that name through the
//! default exchange reaching the requester across connections with no queue in between, RabbitMQ's 406s for the
//! misuses, declares of reply names, and replies to a requester that is gone.

mod common;

use common::{declare_plain, refusal};
use futures_lite::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};

const PSEUDO: &str = "amq.rabbitmq.reply-to";

async fn reply_consumer(ch: &Channel) -> Consumer {
    ch.basic_consume(
        PSEUDO.into(),
        "replies".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("consume amq.rabbitmq.reply-to")
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .expect("publish");
}

async fn passive(ch: &Channel, name: &str) -> lapin::Result<lapin::Queue> {
    common::within(
        5,
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
}

/// The responder: takes one request from `rpc` and answers it to its reply_to with the same correlation id.
async fn answer_one(responder: &Connection) -> String {
    let ch = common::confirming_channel(responder).await;
    let mut requests = ch
        .basic_consume(
            "rpc".into(),
            "server".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let request = common::within(5, requests.next())
        .await
        .expect("a request")
        .expect("delivery");
    let reply_to = request
        .properties
        .reply_to()
        .clone()
        .expect("reply_to")
        .to_string();
    let correlation = request.properties.correlation_id().clone().unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions::default(),
            b"pong",
            BasicProperties::default().with_correlation_id(correlation),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "a reply is confirmed");
    request
        .ack(lapin::options::BasicAckOptions::default())
        .await
        .unwrap();
    reply_to
}

#[tokio::test]
async fn an_rpc_round_trip_across_connections_needs_no_reply_queue() {
    let server = common::start_server().await;
    let requester = common::connect(&server).await;
    let responder = common::connect(&server).await;
    let ch = requester.create_channel().await.unwrap();
    declare_plain(&ch, "rpc").await;
    let mut replies = reply_consumer(&ch).await;
    publish(
        &ch,
        "",
        "rpc",
        b"ping",
        BasicProperties::default()
            .with_reply_to(PSEUDO.into())
            .with_correlation_id("c1".into()),
    )
    .await;
    let reply_to = answer_one(&responder).await;
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > PSEUDO.len() + 16,
        "{reply_to}"
    );
    let reply = common::within(5, replies.next())
        .await
        .expect("a reply")
        .expect("delivery");
    assert_eq!(reply.data, b"pong");
    assert_eq!(reply.routing_key.as_str(), reply_to);
    assert_eq!(reply.exchange.as_str(), "");
    assert!(!reply.redelivered);
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("c1")
    );
    // The reply name exists (declare-ok, one consumer) while the consumer does; the pseudo-queue always.
    let declared = passive(&ch, &reply_to).await.expect("reply name exists");
    assert_eq!(declared.consumer_count(), 1);
    passive(&ch, PSEUDO).await.expect("the pseudo-queue exists");
    ch.basic_cancel("replies".into(), BasicCancelOptions::default())
        .await
        .expect("cancel-ok");
    let other = requester.create_channel().await.unwrap();
    let (code, text) = refusal(passive(&other, &reply_to)).await;
    assert_eq!(code, 404, "{text}");
}

#[tokio::test]
async fn misuses_get_rabbitmqs_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.basic_consume(
            PSEUDO.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        (
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge".to_owned()
        )
    );
    // A request with reply_to = amq.rabbitmq.reply-to on a channel without a reply consumer: 406 (the text,
    // "fast reply consumer does not exist", is checked in reply_to's unit tests). Watched on the connection, since
    // no reply of this channel carries the error.
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "".into(),
        "nowhere".into(),
        BasicPublishOptions::default(),
        b"request",
        BasicProperties::default().with_reply_to(PSEUDO.into()),
    )
    .await
    .unwrap();
    assert_eq!(closes.next_code().await, 406);
    let ch = conn.create_channel().await.unwrap();
    let _replies = reply_consumer(&ch).await;
    assert_eq!(
        refusal(ch.basic_consume(
            PSEUDO.into(),
            "again".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default()
        ))
        .await,
        (
            406,
            "PRECONDITION_FAILED - reply consumer already set".to_owned()
        )
    );
}

#[tokio::test]
async fn a_reply_to_a_requester_that_is_gone_is_dropped_and_confirmed() {
    let server = common::start_server().await;
    let requester = common::connect(&server).await;
    let ch = requester.create_channel().await.unwrap();
    let _replies = reply_consumer(&ch).await;
    declare_plain(&ch, "rpc").await;
    publish(
        &ch,
        "",
        "rpc",
        b"ping",
        BasicProperties::default().with_reply_to(PSEUDO.into()),
    )
    .await;
    let responder = common::connect(&server).await;
    let rch = responder.create_channel().await.unwrap();
    rch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let request = rch
        .basic_get(
            "rpc".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the request");
    let reply_to = request.delivery.properties.reply_to().clone().unwrap();
    requester.close(200, "bye".into()).await.unwrap();
    let confirm = rch
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions::default(),
            b"late",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    // The responder's channel lives on.
    rch.basic_qos(1, Default::default())
        .await
        .expect("channel open");
}
