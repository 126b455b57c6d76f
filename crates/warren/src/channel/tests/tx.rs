//! Transactions: publishes and acks held until tx.commit, discarded (acks restored) by tx.rollback, and 406 on a
//! channel that is not transactional.

use warren_protocol::error::ReplyCode;
use warren_protocol::{tx, AMQPClass};

use super::{ack, assert_error, Harness};

fn select() -> AMQPClass {
    AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {}))
}

fn commit() -> AMQPClass {
    AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {}))
}

fn rollback() -> AMQPClass {
    AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {}))
}

/// A transactional harness with queue "q" declared, its replies taken.
async fn transactional() -> Harness {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.method(select()).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {}))]
    );
    h
}

#[tokio::test]
async fn transactional_publishes_reach_the_queue_only_at_commit() {
    let mut h = transactional().await;
    h.publish("", "q", b"a").await.unwrap();
    h.publish("", "q", b"b").await.unwrap();
    assert_eq!(h.ready("q").await, 0);
    h.method(commit()).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}))]
    );
    assert_eq!(h.ready("q").await, 2);
}

#[tokio::test]
async fn rollback_discards_transactional_publishes() {
    let mut h = transactional().await;
    h.publish("", "q", b"a").await.unwrap();
    h.method(rollback()).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {}))]
    );
    h.method(commit()).await.unwrap();
    h.received();
    assert_eq!(h.ready("q").await, 0);
}

#[tokio::test]
async fn rollback_restores_transactional_acks() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.publish("", "q", b"a").await.unwrap();
    assert_eq!(h.get("q").await, (1, false));
    h.method(select()).await.unwrap();
    h.method(ack(1, false)).await.unwrap();
    h.method(rollback()).await.unwrap();
    // The tag is unacked again: acking it is no 406, and the commit settles it.
    h.method(ack(1, false)).await.unwrap();
    h.method(commit()).await.unwrap();
    h.received();
    let result = h.method(ack(1, false)).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - unknown delivery tag 1",
        (60, 80),
    );
}

#[tokio::test]
async fn a_transactional_ack_of_an_unknown_tag_is_refused_at_once() {
    let mut h = transactional().await;
    let result = h.method(ack(5, false)).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - unknown delivery tag 5",
        (60, 80),
    );
}

#[tokio::test]
async fn commit_on_a_non_transactional_channel_is_precondition_failed() {
    let mut h = Harness::open();
    let result = h.method(commit()).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - channel is not transactional",
        (90, 20),
    );
}

#[tokio::test]
async fn rollback_on_a_non_transactional_channel_is_precondition_failed() {
    let mut h = Harness::open();
    let result = h.method(rollback()).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - channel is not transactional",
        (90, 30),
    );
}

#[tokio::test]
async fn a_mandatory_unroutable_transactional_publish_is_returned_before_commit_ok() {
    let mut h = transactional().await;
    h.publish_unflushed("", "nowhere", true, b"lost")
        .await
        .unwrap();
    assert!(
        h.received().is_empty(),
        "nothing returned before the commit"
    );
    h.method(commit()).await.unwrap();
    let frames = h.received();
    assert!(
        matches!(
            &frames[..],
            [
                AMQPClass::Basic(warren_protocol::basic::AMQPMethod::Return(r)),
                AMQPClass::Tx(tx::AMQPMethod::CommitOk(_)),
            ] if r.reply_code == 312
        ),
        "{frames:?}"
    );
}
