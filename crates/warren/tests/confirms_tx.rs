//! Publisher confirms and transactions through lapin: what gets acked and when, the two modes refusing each other,
//! and tx.commit / tx.rollback applied to publishes, acks, nacks and rejects.

mod common;

use common::ready_count;

use futures_lite::future::poll_once;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) -> lapin::PublisherConfirm {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish")
}

async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

async fn tx_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    ch
}

/// (body, redelivered) of the next message in `queue`, acked at once; None on get-empty.
async fn get(ch: &Channel, queue: &str) -> Option<(String, bool)> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .map(|m| {
            (
                String::from_utf8_lossy(&m.delivery.data).into_owned(),
                m.delivery.redelivered,
            )
        })
}

fn msg(body: &str, redelivered: bool) -> Option<(String, bool)> {
    Some((body.to_string(), redelivered))
}

#[tokio::test]
async fn every_publish_on_a_confirm_channel_is_acked() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirm_channel(&conn).await;
    // A second confirm.select is harmless.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    common::declare_plain(&ch, "q").await;
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(publish(&ch, "", "q", &format!("m{i}")).await);
    }
    for confirm in pending {
        assert_eq!(
            common::within(10, confirm).await.unwrap(),
            Confirmation::Ack(None)
        );
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    assert_eq!(ready_count(&ch, "q").await, 200);
}

#[tokio::test]
async fn unroutable_messages_are_acked() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirm_channel(&conn).await;
    for key in ["nowhere", "nobody"] {
        let confirm = publish(&ch, "amq.direct", key, "lost").await;
        assert_eq!(
            common::within(10, confirm).await.unwrap(),
            Confirmation::Ack(None)
        );
    }
}

#[tokio::test]
async fn a_message_routed_to_several_queues_is_acked_once_all_hold_it() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirm_channel(&conn).await;
    ch.exchange_declare(
        "fan".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for queue in ["f1", "f2", "f3"] {
        common::declare_plain(&ch, queue).await;
        ch.queue_bind(
            queue.into(),
            "fan".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let confirm = publish(&ch, "fan", "", "everyone").await;
    assert!(common::within(10, confirm).await.unwrap().is_ack());
    for queue in ["f1", "f2", "f3"] {
        assert_eq!(get(&ch, queue).await, msg("everyone", false));
    }
}

#[tokio::test]
async fn confirm_select_on_a_transactional_channel_closes_it_with_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    let error = ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect_err("a tx channel cannot become a confirm channel");
    assert_eq!(common::reply_code(&error), Some(406));
    assert!(error.is_amqp_soft_error());
}

#[tokio::test]
async fn tx_select_on_a_confirm_channel_closes_it_with_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirm_channel(&conn).await;
    let error = ch
        .tx_select()
        .await
        .expect_err("a confirm channel cannot become transactional");
    assert_eq!(common::reply_code(&error), Some(406));
    assert!(error.is_amqp_soft_error());
}

#[tokio::test]
async fn tx_commit_and_rollback_on_a_non_transactional_channel_close_it_with_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let error = ch.tx_commit().await.expect_err("no transaction to commit");
    assert_eq!(common::reply_code(&error), Some(406));
    let ch = conn.create_channel().await.unwrap();
    let error = ch
        .tx_rollback()
        .await
        .expect_err("no transaction to roll back");
    assert_eq!(common::reply_code(&error), Some(406));
}

#[tokio::test]
async fn transactional_publishes_stay_invisible_until_commit() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let observer = conn.create_channel().await.unwrap();
    common::declare_plain(&observer, "q").await;
    common::declare_plain(&observer, "watched").await;
    let mut consumer = observer
        .basic_consume(
            "watched".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ch = tx_channel(&conn).await;
    for body in ["a", "b", "c"] {
        publish(&ch, "", "q", body).await;
        publish(&ch, "", "watched", body).await;
    }
    assert_eq!(ready_count(&observer, "q").await, 0);
    assert_eq!(get(&observer, "q").await, None);
    assert!(
        poll_once(consumer.next()).await.is_none(),
        "nothing delivered"
    );

    ch.tx_commit().await.unwrap();
    for body in ["a", "b", "c"] {
        let d = common::within(10, consumer.next()).await.unwrap().unwrap();
        assert_eq!(d.data, body.as_bytes());
        assert_eq!(get(&observer, "q").await, msg(body, false));
    }
}

#[tokio::test]
async fn rollback_discards_transactional_publishes() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    common::declare_plain(&ch, "q").await;
    publish(&ch, "", "q", "dropped-1").await;
    publish(&ch, "", "q", "dropped-2").await;
    ch.tx_rollback().await.unwrap();
    // The channel stays transactional: the next publish waits for its own commit.
    publish(&ch, "", "q", "kept").await;
    assert_eq!(ready_count(&ch, "q").await, 0);
    ch.tx_commit().await.unwrap();
    assert_eq!(get(&ch, "q").await, msg("kept", false));
    assert_eq!(get(&ch, "q").await, None);
}

#[tokio::test]
async fn a_mandatory_unroutable_transactional_publish_is_returned_at_commit() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    ch.basic_publish(
        "".into(),
        "no-such-queue".into(),
        BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        },
        b"back",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    common::declare_plain(&ch, "barrier").await;
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    ch.tx_commit().await.unwrap();
    let returned = ch.wait_for_confirms().await.unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].reply_code, 312);
    assert_eq!(returned[0].delivery.data, b"back");
}

/// Fills `queue` with `bodies` and takes them all on `ch` with basic.get (unacked); returns their delivery tags.
async fn take_unacked(conn: &Connection, ch: &Channel, queue: &str, bodies: &[&str]) -> Vec<u64> {
    let publisher = confirm_channel(conn).await;
    common::declare_plain(&publisher, queue).await;
    for body in bodies {
        assert!(publish(&publisher, "", queue, body)
            .await
            .await
            .unwrap()
            .is_ack());
    }
    let mut tags = Vec::new();
    for body in bodies {
        let m = ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("get-ok");
        assert_eq!(m.delivery.data, body.as_bytes());
        tags.push(m.delivery.delivery_tag);
    }
    tags
}

#[tokio::test]
async fn acks_inside_a_transaction_take_effect_on_commit() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    let tags = take_unacked(&conn, &ch, "q", &["a", "b", "c"]).await;
    ch.basic_ack(tags[1], BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    // a and b are acked; closing the channel requeues only c.
    ch.close(200, "bye".into()).await.unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_eq!(get(&other, "q").await, msg("c", true));
    assert_eq!(get(&other, "q").await, None);
}

#[tokio::test]
async fn acks_rolled_back_leave_messages_unacked_and_requeued_on_close() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    let tags = take_unacked(&conn, &ch, "q", &["a", "b"]).await;
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_ack(tags[1], BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_rollback().await.unwrap();
    ch.tx_commit().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_eq!(get(&other, "q").await, msg("a", true));
    assert_eq!(get(&other, "q").await, msg("b", true));
    assert_eq!(get(&other, "q").await, None);
}

#[tokio::test]
async fn a_rolled_back_ack_can_be_given_again_and_committed() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    let tags = take_unacked(&conn, &ch, "q", &["a"]).await;
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_rollback().await.unwrap();
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_eq!(get(&other, "q").await, None);
}

#[tokio::test]
async fn nack_and_reject_inside_a_transaction_take_effect_on_commit() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    let tags = take_unacked(&conn, &ch, "q", &["a", "b"]).await;
    ch.basic_nack(
        tags[0],
        BasicNackOptions {
            requeue: true,
            multiple: false,
        },
    )
    .await
    .unwrap();
    ch.basic_reject(tags[1], BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let observer = conn.create_channel().await.unwrap();
    assert_eq!(
        get(&observer, "q").await,
        None,
        "nothing requeued before commit"
    );
    ch.tx_commit().await.unwrap();
    assert_eq!(get(&observer, "q").await, msg("a", true));
    assert_eq!(get(&observer, "q").await, None, "b was dropped");
}

#[tokio::test]
async fn acking_an_unknown_tag_inside_a_transaction_closes_the_channel_with_406_at_once() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = tx_channel(&conn).await;
    let tags = take_unacked(&conn, &ch, "q", &["a"]).await;
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    // RabbitMQ checks the tag when the ack arrives, not at commit: a second ack of it is refused at once.
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    assert_eq!(closes.next_code().await, 406);
    // The closed channel's pending acks were never committed: the message is back.
    let other = conn.create_channel().await.unwrap();
    assert_eq!(get(&other, "q").await, msg("a", true));
}

#[tokio::test]
async fn a_transactional_ack_frees_prefetch_credit_only_on_commit() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = tx_channel(&conn).await;
    common::declare_plain(&ch, "q").await;
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let publisher = confirm_channel(&conn).await;
    for body in ["a", "b"] {
        assert!(publish(&publisher, "", "q", body)
            .await
            .await
            .unwrap()
            .is_ack());
    }
    let first = common::within(10, consumer.next()).await.unwrap().unwrap();
    assert_eq!(first.data, b"a");
    ch.basic_ack(first.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    assert_eq!(ready_count(&ch, "q").await, 1);
    assert!(
        poll_once(consumer.next()).await.is_none(),
        "ack not committed yet"
    );
    ch.tx_commit().await.unwrap();
    let second = common::within(10, consumer.next()).await.unwrap().unwrap();
    assert_eq!(second.data, b"b");
}
