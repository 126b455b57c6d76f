//! Consumer acknowledgements through lapin: ack, nack and reject in all their forms, refused tags, requeueing when
//! a channel or connection closes, basic.recover, prefetch limits and channel.flow.

mod common;

use common::ready_count;

use futures_lite::future::{or, poll_once};
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};

/// Publishes each body to `queue` on a confirm channel of its own and waits until all are confirmed (enqueued).
async fn publish_all(conn: &Connection, queue: &str, bodies: &[&str]) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for body in bodies {
        let confirm = ch
            .basic_publish(
                "".into(),
                (*queue).into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    ch.close(200, "done".into()).await.unwrap();
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

async fn next(consumer: &mut Consumer) -> Delivery {
    common::within(10, consumer.next())
        .await
        .expect("consumer still open")
        .expect("delivery")
}

/// (body, delivery tag, redelivered) of a delivery, for compact assertions.
fn summary(d: &Delivery) -> (String, u64, bool) {
    (
        String::from_utf8_lossy(&d.data).into_owned(),
        d.delivery_tag,
        d.redelivered,
    )
}

async fn get(ch: &Channel, queue: &str) -> Option<(String, u64, bool)> {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .map(|m| summary(&m.delivery))
}

fn s(body: &str, tag: u64, redelivered: bool) -> Option<(String, u64, bool)> {
    Some((body.to_string(), tag, redelivered))
}

#[tokio::test]
async fn ack_and_ack_multiple_remove_messages_for_good() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b", "c", "d"]).await;
    assert_eq!(get(&ch, "q").await, s("a", 1, false));
    assert_eq!(get(&ch, "q").await, s("b", 2, false));
    assert_eq!(get(&ch, "q").await, s("c", 3, false));
    assert_eq!(get(&ch, "q").await, s("d", 4, false));
    ch.basic_ack(1, BasicAckOptions::default()).await.unwrap();
    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    // Only "d" was still unacked: closing the channel requeues it alone.
    ch.close(200, "bye".into()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(get(&ch, "q").await, s("d", 1, true));
    assert_eq!(get(&ch, "q").await, None);
}

#[tokio::test]
async fn nack_with_requeue_redelivers_ahead_of_later_messages_marked_redelivered() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b", "c"]).await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, "q", "c").await;
    assert_eq!(summary(&next(&mut consumer).await), ("a".into(), 1, false));
    ch.basic_nack(
        1,
        BasicNackOptions {
            requeue: true,
            multiple: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(summary(&next(&mut consumer).await), ("a".into(), 2, true));
    ch.basic_ack(2, BasicAckOptions::default()).await.unwrap();
    assert_eq!(summary(&next(&mut consumer).await), ("b".into(), 3, false));
    ch.basic_ack(3, BasicAckOptions::default()).await.unwrap();
    assert_eq!(summary(&next(&mut consumer).await), ("c".into(), 4, false));
}

#[tokio::test]
async fn nack_without_requeue_drops_the_message() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b"]).await;
    assert_eq!(get(&ch, "q").await, s("a", 1, false));
    ch.basic_nack(1, BasicNackOptions::default()).await.unwrap();
    assert_eq!(ready_count(&ch, "q").await, 1);
    ch.close(200, "bye".into()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(get(&ch, "q").await, s("b", 1, false));
    assert_eq!(get(&ch, "q").await, None);
}

#[tokio::test]
async fn nack_multiple_settles_every_tag_up_to_the_given_one() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b", "c", "d", "e"]).await;
    for tag in 1..=5 {
        assert!(get(&ch, "q").await.is_some(), "message {tag}");
    }
    let requeue = BasicNackOptions {
        multiple: true,
        requeue: true,
    };
    ch.basic_nack(2, requeue).await.unwrap();
    let drop = BasicNackOptions {
        multiple: true,
        requeue: false,
    };
    ch.basic_nack(4, drop).await.unwrap();
    // a and b are back in their places; c and d are gone; e is still unacked.
    assert_eq!(get(&ch, "q").await, s("a", 6, true));
    assert_eq!(get(&ch, "q").await, s("b", 7, true));
    assert_eq!(get(&ch, "q").await, None);
    ch.basic_ack(5, BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn reject_requeues_or_drops_a_single_message() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b", "c"]).await;
    assert_eq!(get(&ch, "q").await, s("a", 1, false));
    assert_eq!(get(&ch, "q").await, s("b", 2, false));
    ch.basic_reject(2, BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    ch.basic_reject(1, BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    assert_eq!(get(&ch, "q").await, s("b", 3, true));
    assert_eq!(get(&ch, "q").await, s("c", 4, false));
    assert_eq!(get(&ch, "q").await, None);
}

#[tokio::test]
async fn acking_an_unknown_delivery_tag_closes_the_channel_with_406_and_requeues() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a"]).await;
    assert_eq!(get(&ch, "q").await, s("a", 1, false));
    ch.basic_ack(99, BasicAckOptions::default()).await.unwrap();
    assert_eq!(closes.next_code().await, 406);
    let other = conn.create_channel().await.unwrap();
    assert_eq!(get(&other, "q").await, s("a", 1, true));
}

#[tokio::test]
async fn acking_a_delivery_tag_twice_closes_the_channel_with_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b"]).await;
    let mut consumer = consume(&ch, "q", "c").await;
    let first = next(&mut consumer).await;
    ch.basic_ack(first.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_ack(first.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    assert_eq!(closes.next_code().await, 406);
    // The consumer stream reports the same close.
    let mut error = None;
    while let Some(item) = common::within(10, consumer.next()).await {
        if let Err(e) = item {
            error = Some(e);
            break;
        }
    }
    assert_eq!(error.as_ref().and_then(common::reply_code), Some(406));
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_messages_in_order_marked_redelivered() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b", "c"]).await;
    let mut consumer = consume(&ch, "q", "first").await;
    for body in ["a", "b", "c"] {
        assert_eq!(next(&mut consumer).await.data, body.as_bytes());
    }
    ch.close(200, "bye".into()).await.unwrap();

    let other_conn = common::connect(&server).await;
    let other = other_conn.create_channel().await.unwrap();
    let mut consumer = consume(&other, "q", "second").await;
    for (i, body) in ["a", "b", "c"].into_iter().enumerate() {
        let d = next(&mut consumer).await;
        assert_eq!(summary(&d), (body.into(), i as u64 + 1, true));
    }
}

#[tokio::test]
async fn closing_the_connection_requeues_unacked_messages_marked_redelivered() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b"]).await;
    let mut consumer = consume(&ch, "q", "c").await;
    next(&mut consumer).await;
    next(&mut consumer).await;
    assert_eq!(get(&ch, "q").await, None);

    let other_conn = common::connect(&server).await;
    let other = other_conn.create_channel().await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    // The connection's cleanup runs after close-ok; wait until both messages are back.
    common::within(10, async {
        while ready_count(&other, "q").await < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(get(&other, "q").await, s("a", 1, true));
    assert_eq!(get(&other, "q").await, s("b", 2, true));
}

#[tokio::test]
async fn basic_recover_with_requeue_redelivers_unacked_messages() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    publish_all(&conn, "q", &["a", "b"]).await;
    let mut consumer = consume(&ch, "q", "c").await;
    assert_eq!(summary(&next(&mut consumer).await), ("a".into(), 1, false));
    assert_eq!(summary(&next(&mut consumer).await), ("b".into(), 2, false));
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    assert_eq!(summary(&next(&mut consumer).await), ("a".into(), 3, true));
    assert_eq!(summary(&next(&mut consumer).await), ("b".into(), 4, true));
    ch.basic_ack(4, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert_eq!(ready_count(&ch, "q").await, 0);
}

#[tokio::test]
async fn basic_recover_without_requeue_closes_the_connection_with_540() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let error = ch
        .basic_recover(BasicRecoverOptions { requeue: false })
        .await
        .expect_err("requeue=false is not implemented, as in RabbitMQ");
    assert_eq!(common::reply_code(&error), Some(540));
}

#[tokio::test]
async fn per_consumer_prefetch_holds_back_deliveries_until_acked() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    ch.basic_qos(2, BasicQosOptions { global: false })
        .await
        .unwrap();
    let mut consumer = consume(&ch, "q", "c").await;
    publish_all(&conn, "q", &["m1", "m2", "m3", "m4", "m5"]).await;
    assert_eq!(next(&mut consumer).await.data, b"m1");
    assert_eq!(next(&mut consumer).await.data, b"m2");
    assert_eq!(ready_count(&ch, "q").await, 3);
    assert!(poll_once(consumer.next()).await.is_none(), "only 2 unacked");

    ch.basic_ack(1, BasicAckOptions::default()).await.unwrap();
    assert_eq!(next(&mut consumer).await.data, b"m3");
    assert_eq!(ready_count(&ch, "q").await, 2);
    assert!(
        poll_once(consumer.next()).await.is_none(),
        "still 2 unacked"
    );

    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert_eq!(next(&mut consumer).await.data, b"m4");
    assert_eq!(next(&mut consumer).await.data, b"m5");
}

#[tokio::test]
async fn global_prefetch_limits_the_whole_channel_across_consumers() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q1").await;
    common::declare_plain(&ch, "q2").await;
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut c1 = consume(&ch, "q1", "c1").await;
    let mut c2 = consume(&ch, "q2", "c2").await;
    publish_all(&conn, "q1", &["a", "b", "c", "d"]).await;
    publish_all(&conn, "q2", &["w", "x", "y", "z"]).await;
    let mut tags = Vec::new();
    for _ in 0..3 {
        let d = common::within(10, or(c1.next(), c2.next()))
            .await
            .unwrap()
            .unwrap();
        tags.push(d.delivery_tag);
    }
    let ready = ready_count(&ch, "q1").await + ready_count(&ch, "q2").await;
    assert_eq!(ready, 5, "3 of 8 messages delivered");
    assert!(poll_once(c1.next()).await.is_none());
    assert!(poll_once(c2.next()).await.is_none());

    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    common::within(10, or(c1.next(), c2.next()))
        .await
        .unwrap()
        .unwrap();
    let ready = ready_count(&ch, "q1").await + ready_count(&ch, "q2").await;
    assert_eq!(ready, 4, "one ack lets exactly one more through");
    assert!(poll_once(c1.next()).await.is_none());
    assert!(poll_once(c2.next()).await.is_none());
}

#[tokio::test]
async fn prefetch_does_not_limit_a_no_ack_consumer() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q").await;
    ch.basic_qos(1, BasicQosOptions { global: false })
        .await
        .unwrap();
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish_all(&conn, "q", &["a", "b", "c"]).await;
    for body in ["a", "b", "c"] {
        assert_eq!(next(&mut consumer).await.data, body.as_bytes());
    }
}

#[tokio::test]
async fn prefetch_size_other_than_zero_closes_the_connection_with_540() {
    // lapin cannot set prefetch_size, so this one speaks raw frames.
    let server = common::start_server().await;
    let mut raw = common::RawClient::connect(&server).await;
    raw.handshake().await;
    raw.open_channel(1).await;
    // basic.qos: prefetch_size 4096, prefetch_count 10, global false
    raw.send_frame(1, 1, &[0, 60, 0, 10, 0, 0, 0x10, 0, 0, 10, 0])
        .await;
    let close = raw.read_frame().await.expect("connection.close");
    assert_eq!(close.method_ids(), Some((10, 50)));
    assert_eq!(close.close_code(), Some(540));
}

#[tokio::test]
async fn channel_flow_active_false_closes_the_connection_with_540() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let active = ch
        .channel_flow(ChannelFlowOptions { active: true })
        .await
        .unwrap();
    assert!(active, "flow active=true is accepted");
    let error = ch
        .channel_flow(ChannelFlowOptions { active: false })
        .await
        .expect_err("active=false is not implemented, as in RabbitMQ");
    assert_eq!(common::reply_code(&error), Some(540));
    assert!(error.is_amqp_hard_error());
}
