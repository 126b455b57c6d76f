//! exchange.declare and queue.declare, bind, purge and delete: 403 for reserved names, 404 for missing ones, 405
//! for another connection's exclusive queue, 406 for an inequivalent redeclare, and the empty queue name.

use warren_protocol::error::ReplyCode;
use warren_protocol::{exchange, queue, AMQPClass, FieldTable};

use super::{assert_error, consume, declare, declare_with, passive_declare, Harness};

fn exchange_declare(name: &str, kind: &str, passive: bool) -> AMQPClass {
    AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
        exchange: name.into(),
        kind: kind.into(),
        passive,
        durable: false,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

fn purge(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
        queue: name.into(),
        nowait: false,
    }))
}

fn delete(name: &str, if_empty: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
        queue: name.into(),
        if_unused: false,
        if_empty,
        nowait: false,
    }))
}

fn bind(name: &str, exchange: &str, key: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
        queue: name.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

#[tokio::test]
async fn declaring_a_queue_with_the_amq_prefix_is_access_refused() {
    let mut h = Harness::open();
    let result = h.method(declare("amq.q")).await;
    assert_error(
        result,
        ReplyCode::AccessRefused,
        "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'",
        (50, 10),
    );
}

#[tokio::test]
async fn declaring_an_exchange_with_the_amq_prefix_is_access_refused() {
    let mut h = Harness::open();
    let result = h.method(exchange_declare("amq.x", "direct", false)).await;
    assert_error(
        result,
        ReplyCode::AccessRefused,
        "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'",
        (40, 10),
    );
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_not_found() {
    let mut h = Harness::open();
    let result = h.method(passive_declare("x")).await;
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no queue 'x' in vhost '/'",
        (50, 10),
    );
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_not_found() {
    let mut h = Harness::open();
    let result = h.method(exchange_declare("x", "direct", true)).await;
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no exchange 'x' in vhost '/'",
        (40, 10),
    );
}

fn locked(name: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be \
         originally declared on another connection or the exclusive property value does not match that of the \
         original declaration."
    )
}

#[tokio::test]
async fn another_connections_exclusive_queue_is_resource_locked() {
    let mut owner = Harness::open();
    owner
        .method(declare_with("mine", false, false, true))
        .await
        .unwrap();
    let mut other = owner.another_connection();
    let result = other.method(declare_with("mine", false, false, true)).await;
    assert_error(result, ReplyCode::ResourceLocked, &locked("mine"), (50, 10));
    let result = other.method(passive_declare("mine")).await;
    assert_error(result, ReplyCode::ResourceLocked, &locked("mine"), (50, 10));
    let result = other.method(consume("mine", "c", false)).await;
    assert_error(result, ReplyCode::ResourceLocked, &locked("mine"), (60, 20));
    let result = other.method(delete("mine", false)).await;
    assert_error(result, ReplyCode::ResourceLocked, &locked("mine"), (50, 40));
}

#[tokio::test]
async fn redeclaring_a_queue_with_other_properties_is_precondition_failed() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    let result = h.method(declare_with("q", false, true, false)).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current \
         is 'false'",
        (50, 10),
    );
}

#[tokio::test]
async fn redeclaring_an_exchange_with_another_type_is_precondition_failed() {
    let mut h = Harness::open();
    h.method(exchange_declare("x", "direct", false))
        .await
        .unwrap();
    let result = h.method(exchange_declare("x", "fanout", false)).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current \
         is 'direct'",
        (40, 10),
    );
}

#[tokio::test]
async fn declare_ok_carries_the_queues_message_and_consumer_counts() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.publish("", "q", b"a").await.unwrap();
    h.publish("", "q", b"b").await.unwrap();
    h.declare_queue("idle").await;
    h.method(consume("idle", "c", false)).await.unwrap();
    h.received();
    h.method(declare("q")).await.unwrap();
    h.method(declare("idle")).await.unwrap();
    let counts: Vec<(String, u32, u32)> = h
        .received()
        .into_iter()
        .map(|m| match m {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => {
                (ok.queue.to_string(), ok.message_count, ok.consumer_count)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(counts, [("q".into(), 2, 0), ("idle".into(), 0, 1)]);
}

#[tokio::test]
async fn an_empty_queue_name_stands_for_the_last_declared_queue() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.method(bind("", "amq.fanout", "")).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Queue(queue::AMQPMethod::BindOk(
            queue::BindOk {}
        ))]
    );
    h.publish("amq.fanout", "any", b"m").await.unwrap();
    h.method(purge("")).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Queue(queue::AMQPMethod::PurgeOk(
            queue::PurgeOk { message_count: 1 }
        ))]
    );
}

fn unbind(name: &str, exchange: &str, key: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
        queue: name.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        arguments: FieldTable::default(),
    }))
}

#[tokio::test]
async fn bind_with_an_empty_queue_name_and_key_uses_the_queue_name_as_key() {
    // RabbitMQ's expand_routing_key_shortcut; unbind reads the key the same way.
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.method(bind("", "amq.direct", "")).await.unwrap();
    h.publish("amq.direct", "q", b"by name").await.unwrap();
    h.received();
    assert_eq!(h.ready("q").await, 1);
    h.publish("amq.direct", "", b"by empty key").await.unwrap();
    h.received();
    assert_eq!(h.ready("q").await, 1, "not bound with the empty key");
    h.method(unbind("", "amq.direct", "")).await.unwrap();
    h.publish("amq.direct", "q", b"after unbind").await.unwrap();
    h.received();
    assert_eq!(h.ready("q").await, 1);
    // A named queue with an empty key binds with the empty key.
    h.method(bind("q", "amq.direct", "")).await.unwrap();
    h.publish("amq.direct", "", b"by empty key").await.unwrap();
    h.received();
    assert_eq!(h.ready("q").await, 2);
}

#[tokio::test]
async fn a_passive_declare_of_an_empty_name_is_not_found_even_after_a_declare() {
    // RabbitMQ expands the empty name in other queue methods, not in queue.declare.
    let mut h = Harness::open();
    h.declare_queue("q").await;
    let result = h.method(passive_declare("")).await;
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no queue '' in vhost '/'",
        (50, 10),
    );
}

#[tokio::test]
async fn an_empty_queue_name_with_no_queue_declared_is_not_found() {
    let mut h = Harness::open();
    let result = h.method(purge("")).await;
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no previously declared queue",
        (50, 30),
    );
    let result = h
        .method(AMQPClass::Basic(warren_protocol::basic::AMQPMethod::Get(
            warren_protocol::basic::Get {
                queue: "".into(),
                no_ack: false,
            },
        )))
        .await;
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no previously declared queue",
        (60, 70),
    );
}

#[tokio::test]
async fn deleting_a_queue_reports_its_messages_and_removes_it() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.publish("", "q", b"m").await.unwrap();
    h.method(delete("q", false)).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Queue(queue::AMQPMethod::DeleteOk(
            queue::DeleteOk { message_count: 1 }
        ))]
    );
    let result = h.method(passive_declare("q")).await;
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no queue 'q' in vhost '/'",
        (50, 10),
    );
}

#[tokio::test]
async fn deleting_a_missing_queue_reports_zero_messages() {
    let mut h = Harness::open();
    h.method(delete("nothing", false)).await.unwrap();
    assert_eq!(
        h.received(),
        vec![AMQPClass::Queue(queue::AMQPMethod::DeleteOk(
            queue::DeleteOk { message_count: 0 }
        ))]
    );
}

#[tokio::test]
async fn deleting_a_non_empty_queue_if_empty_is_precondition_failed_and_keeps_it() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.publish("", "q", b"m").await.unwrap();
    let result = h.method(delete("q", true)).await;
    assert_error(
        result,
        ReplyCode::PreconditionFailed,
        "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty",
        (50, 40),
    );
    assert_eq!(h.ready("q").await, 1);
}
