//! Methods RabbitMQ refuses with 540 NOT_IMPLEMENTED, and the small methods answered in place.

use warren_protocol::error::ReplyCode;
use warren_protocol::{access, basic, channel, AMQPClass};

use super::{assert_error, declare, Harness};

fn flow(active: bool) -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active }))
}

fn recover(requeue: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue }))
}

#[tokio::test]
async fn channel_flow_inactive_is_not_implemented() {
    let mut h = Harness::open();
    let result = h.method(flow(false)).await;
    assert_error(
        result,
        ReplyCode::NotImplemented,
        "NOT_IMPLEMENTED - active=false",
        (20, 20),
    );
}

#[tokio::test]
async fn channel_flow_active_is_answered_with_flow_ok() {
    let mut h = Harness::open();
    h.method(flow(true)).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Channel(channel::AMQPMethod::FlowOk(
            channel::FlowOk { active: true }
        ))]
    );
}

#[tokio::test]
async fn basic_recover_without_requeue_is_not_implemented() {
    let mut h = Harness::open();
    let result = h.method(recover(false)).await;
    assert_error(
        result,
        ReplyCode::NotImplemented,
        "NOT_IMPLEMENTED - requeue=false",
        (60, 110),
    );
}

#[tokio::test]
async fn basic_recover_with_requeue_redelivers_unacked_messages_after_recover_ok() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.publish("", "q", b"m").await.unwrap();
    assert_eq!(h.get("q").await, (1, false));
    h.method(recover(true)).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
            basic::RecoverOk {}
        ))]
    );
    assert_eq!(h.get("q").await, (2, true));
}

#[tokio::test]
async fn publish_with_immediate_is_not_implemented() {
    let mut h = Harness::open();
    let publish = basic::Publish {
        exchange: "".into(),
        routing_key: "q".into(),
        mandatory: false,
        immediate: true,
    };
    let result = h
        .method(AMQPClass::Basic(basic::AMQPMethod::Publish(publish)))
        .await;
    assert_error(
        result,
        ReplyCode::NotImplemented,
        "NOT_IMPLEMENTED - immediate=true",
        (60, 40),
    );
}

#[tokio::test]
async fn access_request_is_answered_with_request_ok() {
    let mut h = Harness::open();
    let request = access::Request {
        realm: "/data".into(),
        exclusive: false,
        passive: true,
        active: true,
        write: true,
        read: true,
    };
    h.method(AMQPClass::Access(access::AMQPMethod::Request(request)))
        .await
        .unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Access(access::AMQPMethod::RequestOk(
            access::RequestOk {}
        ))]
    );
}

#[tokio::test]
async fn replies_reach_the_client_in_the_order_of_their_methods() {
    let mut h = Harness::open();
    h.method(declare("q")).await.unwrap();
    h.method(flow(true)).await.unwrap();
    h.method(declare("r")).await.unwrap();
    let names: Vec<String> = h
        .received()
        .into_iter()
        .map(|m| match m {
            AMQPClass::Queue(warren_protocol::queue::AMQPMethod::DeclareOk(ok)) => {
                ok.queue.to_string()
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => "flow-ok".into(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, ["q", "flow-ok", "r"]);
}
