//! Publisher confirms and mandatory returns: acks in sequence, coalesced with multiple=true, basic.return 312
//! NO_ROUTE before the confirm of an unroutable mandatory message.

use warren_protocol::error::ReplyCode;
use warren_protocol::{basic, confirm, tx, AMQPClass, FrameKind};

use super::{assert_error, content_header, Harness};
use crate::channel::effect::Effect;
use crate::channel::ChannelEffects;

fn confirm_select() -> AMQPClass {
    AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
        nowait: false,
    }))
}

fn tx_select() -> AMQPClass {
    AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {}))
}

fn acked(delivery_tag: u64, multiple: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag,
        multiple,
    }))
}

/// A harness in confirm mode with queue "q" declared, its replies taken.
async fn confirming() -> Harness {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.method(confirm_select()).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
            confirm::SelectOk {}
        ))]
    );
    h
}

#[tokio::test]
async fn publishes_on_a_confirm_channel_are_acked_with_increasing_sequence_numbers() {
    let mut h = confirming().await;
    for seq in 1..=3 {
        h.publish("", "q", b"m").await.unwrap();
        assert_eq!(h.expect_frames(1).await, vec![acked(seq, false)]);
    }
}

#[tokio::test]
async fn confirms_settled_together_coalesce_into_one_multiple_ack() {
    let mut h = confirming().await;
    for _ in 0..3 {
        h.publish_unflushed("", "q", false, b"m").await.unwrap();
    }
    h.flush_publish_runs().await;
    assert_eq!(h.expect_frames(1).await, vec![acked(3, true)]);
}

#[tokio::test]
async fn tx_select_on_a_confirm_channel_is_precondition_failed() {
    let mut h = confirming().await;
    let result = h.method(tx_select()).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        (90, 10),
    );
}

#[tokio::test]
async fn confirm_select_on_a_transactional_channel_is_precondition_failed() {
    let mut h = Harness::open();
    h.method(tx_select()).await.unwrap();
    let result = h.method(confirm_select()).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        (85, 10),
    );
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_is_returned_with_no_route_before_its_ack() {
    let mut h = confirming().await;
    h.publish_unflushed("", "nowhere", true, b"lost")
        .await
        .unwrap();
    let frames = h.expect_frames(2).await;
    let AMQPClass::Basic(basic::AMQPMethod::Return(returned)) = &frames[0] else {
        panic!("expected basic.return first, got {frames:?}");
    };
    assert_eq!(
        (
            returned.reply_code,
            returned.reply_text.as_str(),
            returned.exchange.as_str(),
            returned.routing_key.as_str()
        ),
        (312, "NO_ROUTE", "", "nowhere")
    );
    assert_eq!(frames[1], acked(1, false));
}

#[tokio::test]
async fn the_confirm_of_a_returned_message_is_released_only_after_the_return_is_written() {
    // The writer may emit a confirm as soon as its last share is gone, so the order is the effects' to keep.
    let mut h = confirming().await;
    h.start_publish("", "nowhere", true).unwrap();
    h.content(FrameKind::Header, &content_header(4))
        .await
        .unwrap();
    let (channel, mut ctx) = h.parts();
    let mut effects = ChannelEffects::default();
    channel
        .handle_content(
            &mut ctx,
            FrameKind::Body,
            warren_protocol::FramePayload::Borrowed(b"lost"),
            &mut effects,
        )
        .unwrap();
    assert!(matches!(effects.next_effect(), Some(Effect::Write(_))));
    let release = effects.next_effect();
    assert!(matches!(release, Some(Effect::ReleaseConfirm(_))));
    assert!(effects.next_effect().is_none());
    assert!(
        h.received().is_empty(),
        "no ack while the effect holds the confirm, and no return before the driver writes it"
    );
    drop(release);
    assert_eq!(h.received(), vec![acked(1, false)]);
}

#[tokio::test]
async fn an_unroutable_publish_without_mandatory_is_acked_and_dropped() {
    let mut h = confirming().await;
    h.publish("", "nowhere", b"lost").await.unwrap();
    assert_eq!(h.expect_frames(1).await, vec![acked(1, false)]);
    assert!(h.quiet().await.is_empty());
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_without_confirms_is_only_returned() {
    let mut h = Harness::open();
    h.publish_unflushed("", "nowhere", true, b"lost")
        .await
        .unwrap();
    let frames = h.received();
    assert!(
        matches!(&frames[..], [AMQPClass::Basic(basic::AMQPMethod::Return(r))] if r.reply_code == 312),
        "{frames:?}"
    );
}
