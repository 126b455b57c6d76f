//! basic.qos and consumers: per-consumer and channel-wide prefetch, consumer tags, exclusive consumers.

use warren_protocol::error::ReplyCode;
use warren_protocol::{basic, AMQPClass};

use super::{ack, assert_error, consume, delivery_tags, qos, Harness};

fn consume_ok(tag: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
        consumer_tag: tag.into(),
    }))
}

#[tokio::test]
async fn a_consumer_with_prefetch_n_gets_n_unacked_deliveries_until_an_ack() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    for _ in 0..5 {
        h.publish("", "q", b"m").await.unwrap();
    }
    h.method(qos(2, false)).await.unwrap();
    h.method(consume("q", "c", false)).await.unwrap();
    let frames = h.expect_frames(4).await;
    assert_eq!(
        frames[0],
        AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}))
    );
    assert_eq!(
        frames[1],
        consume_ok("c"),
        "consume-ok precedes the first delivery"
    );
    assert_eq!(delivery_tags(&frames), [1, 2]);
    assert!(h.quiet().await.is_empty(), "only 2 unacked");

    h.method(ack(1, false)).await.unwrap();
    assert_eq!(delivery_tags(&h.expect_frames(1).await), [3]);
    assert!(h.quiet().await.is_empty(), "still 2 unacked");

    h.method(ack(3, true)).await.unwrap();
    assert_eq!(delivery_tags(&h.expect_frames(2).await), [4, 5]);
}

#[tokio::test]
async fn global_prefetch_limits_the_whole_channel_across_consumers() {
    let mut h = Harness::open();
    for queue in ["q1", "q2"] {
        h.declare_queue(queue).await;
        for _ in 0..4 {
            h.publish("", queue, b"m").await.unwrap();
        }
    }
    h.method(qos(3, true)).await.unwrap();
    h.method(consume("q1", "c1", false)).await.unwrap();
    h.method(consume("q2", "c2", false)).await.unwrap();
    // qos-ok, two consume-oks, three deliveries.
    let frames = h.expect_frames(6).await;
    assert_eq!(delivery_tags(&frames), [1, 2, 3]);
    assert!(h.quiet().await.is_empty(), "3 unacked on the channel");

    h.method(ack(2, false)).await.unwrap();
    assert_eq!(delivery_tags(&h.expect_frames(1).await), [4]);
    assert!(
        h.quiet().await.is_empty(),
        "one ack lets exactly one more through"
    );
}

fn consume_no_ack(queue: &str, tag: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: queue.into(),
        consumer_tag: tag.into(),
        no_local: false,
        no_ack: true,
        exclusive: false,
        nowait: false,
        arguments: Default::default(),
    }))
}

/// The consumer tags of the basic.deliver frames among `frames`.
fn delivered_to(frames: &[AMQPClass]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => Some(d.consumer_tag.to_string()),
            _ => None,
        })
        .collect()
}

async fn queue_with(h: &mut Harness, queue: &str, messages: usize) {
    h.declare_queue(queue).await;
    for _ in 0..messages {
        h.publish("", queue, b"m").await.unwrap();
    }
}

#[tokio::test]
async fn a_no_ack_consumer_is_held_back_while_the_channel_is_at_its_global_limit() {
    // RabbitMQ's limiter is asked before every delivery to a consumer on a limited channel, no-ack ones too; only
    // deliveries that must be acked count against the limit.
    let mut h = Harness::open();
    queue_with(&mut h, "acked", 1).await;
    queue_with(&mut h, "auto", 3).await;
    h.method(qos(1, true)).await.unwrap();
    h.method(consume("acked", "acker", false)).await.unwrap();
    assert_eq!(delivered_to(&h.expect_frames(3).await), ["acker"]);
    h.method(consume_no_ack("auto", "noack")).await.unwrap();
    assert_eq!(h.expect_frames(1).await, vec![consume_ok("noack")]);
    assert!(
        h.quiet().await.is_empty(),
        "held while 1 delivery is unacked"
    );
    h.method(ack(1, false)).await.unwrap();
    assert_eq!(
        delivered_to(&h.expect_frames(3).await),
        ["noack", "noack", "noack"],
        "no-ack deliveries do not count against the limit"
    );
}

#[tokio::test]
async fn a_per_consumer_qos_removes_the_global_limit() {
    // RabbitMQ 3.13's channel unlimits its limiter on basic.qos global=false.
    let mut h = Harness::open();
    queue_with(&mut h, "q", 3).await;
    h.method(qos(1, true)).await.unwrap();
    h.method(qos(0, false)).await.unwrap();
    h.method(consume("q", "c", false)).await.unwrap();
    assert_eq!(delivery_tags(&h.expect_frames(6).await), [1, 2, 3]);
}

#[tokio::test]
async fn a_global_limit_counts_the_deliveries_unacked_when_it_is_set() {
    let mut h = Harness::open();
    queue_with(&mut h, "got", 1).await;
    queue_with(&mut h, "auto", 2).await;
    let (tag, _) = h.get("got").await;
    h.method(qos(1, true)).await.unwrap();
    h.method(consume_no_ack("auto", "noack")).await.unwrap();
    assert_eq!(h.expect_frames(2).await.len(), 2, "qos-ok, consume-ok");
    assert!(
        h.quiet().await.is_empty(),
        "the basic.get delivery fills the limit"
    );
    h.method(ack(tag, false)).await.unwrap();
    assert_eq!(delivered_to(&h.expect_frames(2).await), ["noack", "noack"]);
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_the_channel_is_not_allowed() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.method(consume("q", "c", false)).await.unwrap();
    let result = h.method(consume("q", "c", false)).await;
    assert_error(
        result,
        ReplyCode::NotAllowed,
        "NOT_ALLOWED - attempt to reuse consumer tag 'c'",
        (60, 20),
    );
}

#[tokio::test]
async fn consuming_from_a_queue_in_exclusive_use_is_access_refused_and_frees_the_tag() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.declare_queue("other").await;
    h.method(consume("q", "first", true)).await.unwrap();
    let result = h.method(consume("q", "second", false)).await;
    assert_error(
        result,
        ReplyCode::AccessRefused,
        "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use",
        (60, 20),
    );
    // The refused consumer's tag was given back: it can name a consumer elsewhere.
    h.method(consume("other", "second", false)).await.unwrap();
    assert_eq!(
        h.received(),
        vec![consume_ok("first"), consume_ok("second")]
    );
}

#[tokio::test]
async fn cancel_of_an_unknown_consumer_tag_is_answered_with_cancel_ok() {
    let mut h = Harness::open();
    let cancel = basic::Cancel {
        consumer_tag: "nobody".into(),
        nowait: false,
    };
    h.method(AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)))
        .await
        .unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Basic(basic::AMQPMethod::CancelOk(
            basic::CancelOk {
                consumer_tag: "nobody".into(),
            }
        ))]
    );
}

#[tokio::test]
async fn cancel_of_a_consumer_is_answered_by_its_queue_and_stops_deliveries() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.method(consume("q", "c", false)).await.unwrap();
    let cancel = basic::Cancel {
        consumer_tag: "c".into(),
        nowait: false,
    };
    h.method(AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)))
        .await
        .unwrap();
    assert_eq!(
        h.received(),
        vec![
            consume_ok("c"),
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: "c".into(),
            })),
        ]
    );
    h.publish("", "q", b"m").await.unwrap();
    assert!(h.quiet().await.is_empty());
    assert_eq!(h.ready("q").await, 1);
}
