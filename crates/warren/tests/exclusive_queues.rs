//! Exclusive queues through lapin: locked (405 RESOURCE_LOCKED) to every other connection, usable by the owner,
//! deleted when the owning connection closes.

mod common;

use std::time::Duration;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    }
}

/// The owner's connection with exclusive queue "mine" declared, and a second connection's channel.
async fn owner_and_other(
    server: &warren::server::RunningServer,
) -> (Connection, Connection, Channel) {
    let owner = common::connect(server).await;
    let ch = owner.create_channel().await.unwrap();
    ch.queue_declare("mine".into(), exclusive(), FieldTable::default())
        .await
        .unwrap();
    let other = common::connect(server).await;
    let other_ch = other.create_channel().await.unwrap();
    (owner, other, other_ch)
}

#[tokio::test]
async fn exclusive_queue_declare_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let code =
        common::refused_code(ch.queue_declare("mine".into(), exclusive(), FieldTable::default()))
            .await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_non_exclusive_declare_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let code = common::refused_code(ch.queue_declare(
        "mine".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_passive_declare_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let code =
        common::refused_code(ch.queue_declare("mine".into(), passive, FieldTable::default())).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_consume_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let code = common::refused_code(ch.basic_consume(
        "mine".into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_bind_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let code = common::refused_code(ch.queue_bind(
        "mine".into(),
        "amq.fanout".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_purge_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let code =
        common::refused_code(ch.queue_purge("mine".into(), QueuePurgeOptions::default())).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_get_from_another_connection_is_405() {
    let server = common::start_server().await;
    let (_owner, _other, ch) = owner_and_other(&server).await;
    let code = common::refused_code(ch.basic_get("mine".into(), BasicGetOptions::default())).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn exclusive_queue_delete_from_another_connection_is_405_and_keeps_it() {
    let server = common::start_server().await;
    let (owner, _other, ch) = owner_and_other(&server).await;
    let code =
        common::refused_code(ch.queue_delete("mine".into(), QueueDeleteOptions::default())).await;
    assert_eq!(code, 405);
    let owner_ch = owner.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    owner_ch
        .queue_declare("mine".into(), passive, FieldTable::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn exclusive_queue_still_receives_publishes_from_another_connection() {
    let server = common::start_server().await;
    let (owner, _other, ch) = owner_and_other(&server).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    common::publish_confirmed(&ch, "", "mine", "for-owner", BasicProperties::default()).await;
    let owner_ch = owner.create_channel().await.unwrap();
    assert_eq!(common::drain_bodies(&owner_ch, "mine").await, ["for-owner"]);
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_the_owning_connection_closes() {
    let server = common::start_server().await;
    let owner = common::connect(&server).await;
    // Kept open until the connection closes: lapin closes a dropped channel by itself, which races the
    // connection.close below.
    let owner_ch = owner.create_channel().await.unwrap();
    owner_ch
        .queue_declare("mine".into(), exclusive(), FieldTable::default())
        .await
        .unwrap();
    let other = common::connect(&server).await;
    common::within(5, owner.close(200, "bye".into()))
        .await
        .unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // The broker deletes the queue after the close handshake: poll until it is gone.
    common::within(5, async {
        loop {
            let ch = other.create_channel().await.unwrap();
            match ch
                .queue_declare("mine".into(), passive, FieldTable::default())
                .await
            {
                Err(e) if common::reply_code(&e) == Some(404) => return,
                Err(e) if common::reply_code(&e) == Some(405) => {}
                Err(e) => panic!("unexpected failure: {e:?}"),
                Ok(_) => panic!("another connection may not see the exclusive queue"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The name is free again.
    let ch = other.create_channel().await.unwrap();
    ch.queue_declare("mine".into(), exclusive(), FieldTable::default())
        .await
        .unwrap();
}

/// Once the owner's connection.close-ok has arrived, its exclusive queues are gone: another connection's passive
/// declare right after gets 404, never a 405 for a queue still locked by a closed connection (py-amqp's tutorial
/// tests do exactly this).
#[tokio::test]
async fn exclusive_queues_are_gone_when_close_ok_arrives() {
    let server = common::start_server().await;
    let other = common::connect(&server).await;
    for round in 0..30 {
        let owner = common::connect(&server).await;
        let ch = owner.create_channel().await.unwrap();
        let queue = ch
            .queue_declare("".into(), exclusive(), FieldTable::default())
            .await
            .unwrap();
        owner.close(200, "bye".into()).await.expect("close-ok");
        let probe = other.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let code = common::refused_code(probe.queue_declare(
            queue.name().as_str().into(),
            passive,
            FieldTable::default(),
        ))
        .await;
        assert_eq!(
            code, 404,
            "round {round}: the closed connection's queue is still there"
        );
    }
}
