//! basic.ack, nack and reject: 406 PRECONDITION_FAILED for a tag the channel does not hold, and which tags
//! `multiple` covers.

use warren_protocol::error::ReplyCode;
use warren_protocol::{basic, AMQPClass};

use super::{ack, assert_error, Harness};

/// A harness with `count` messages taken from queue "q" by basic.get, unacked under tags 1..=count.
async fn with_unacked(count: u64) -> Harness {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    for _ in 0..count {
        h.publish("", "q", b"m").await.unwrap();
    }
    for tag in 1..=count {
        assert_eq!(h.get("q").await, (tag, false));
    }
    h
}

fn unknown(tag: u64) -> String {
    format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
}

#[tokio::test]
async fn acking_an_unknown_delivery_tag_is_precondition_failed() {
    let mut h = with_unacked(1).await;
    let result = h.method(ack(7, false)).await;
    assert_error(result, ReplyCode::PreconditionFailed, &unknown(7), (60, 80));
}

#[tokio::test]
async fn acking_a_delivery_tag_twice_is_precondition_failed() {
    let mut h = with_unacked(1).await;
    h.method(ack(1, false)).await.unwrap();
    let result = h.method(ack(1, false)).await;
    assert_error(result, ReplyCode::PreconditionFailed, &unknown(1), (60, 80));
}

#[tokio::test]
async fn nacking_an_unknown_delivery_tag_is_precondition_failed() {
    let mut h = with_unacked(1).await;
    let nack = basic::Nack {
        delivery_tag: 2,
        multiple: false,
        requeue: true,
    };
    let result = h
        .method(AMQPClass::Basic(basic::AMQPMethod::Nack(nack)))
        .await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        &unknown(2),
        (60, 120),
    );
}

#[tokio::test]
async fn rejecting_an_unknown_delivery_tag_is_precondition_failed() {
    let mut h = with_unacked(0).await;
    let reject = basic::Reject {
        delivery_tag: 1,
        requeue: false,
    };
    let result = h
        .method(AMQPClass::Basic(basic::AMQPMethod::Reject(reject)))
        .await;
    assert_error(result, ReplyCode::PreconditionFailed, &unknown(1), (60, 90));
}

#[tokio::test]
async fn ack_multiple_settles_every_tag_up_to_the_given_one() {
    let mut h = with_unacked(3).await;
    h.method(ack(2, true)).await.unwrap();
    let result = h.method(ack(1, false)).await;
    assert_error(result, ReplyCode::PreconditionFailed, &unknown(1), (60, 80));
    h.method(ack(3, false)).await.unwrap();
}

#[tokio::test]
async fn ack_multiple_of_tag_zero_acks_every_unacked_delivery() {
    let mut h = with_unacked(3).await;
    h.method(ack(0, true)).await.unwrap();
    for tag in 1..=3 {
        let result = h.method(ack(tag, false)).await;
        assert_error(
            result,
            ReplyCode::PreconditionFailed,
            &unknown(tag),
            (60, 80),
        );
    }
    // Acked for good: closing the channel requeues nothing.
    let mut effects = crate::channel::ChannelEffects::default();
    h.channel.shutdown(&mut effects);
    assert!(effects.is_empty(), "nothing to settle or cancel");
}

#[tokio::test]
async fn nack_with_requeue_puts_the_message_back_marked_redelivered() {
    let mut h = with_unacked(1).await;
    let nack = basic::Nack {
        delivery_tag: 1,
        multiple: false,
        requeue: true,
    };
    h.method(AMQPClass::Basic(basic::AMQPMethod::Nack(nack)))
        .await
        .unwrap();
    assert_eq!(h.get("q").await, (2, true));
}

#[tokio::test]
async fn closing_the_channel_requeues_its_unacked_deliveries() {
    let mut h = with_unacked(2).await;
    let mut effects = crate::channel::ChannelEffects::default();
    h.channel.shutdown(&mut effects);
    let (channel, mut ctx) = h.parts();
    crate::channel::runtime::execute(channel, &mut ctx, &mut effects)
        .await
        .unwrap();
    let mut other = h.another_connection();
    assert_eq!(other.get("q").await, (1, true));
    assert_eq!(other.get("q").await, (2, true));
}
