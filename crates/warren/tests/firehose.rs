//! Firehose tracing through real sockets, as RabbitMQ's `rabbitmqctl trace_on`: while a vhost traces, every publish
//! is copied to `amq.rabbitmq.trace` as `publish.<exchange>` and every delivery and basic.get answer as
//! `deliver.<queue>`, with the body and RabbitMQ's trace headers; nothing is copied while it is off, and traces are
//! not traced.

mod common;

use common::{declare_plain, drain_bodies, publish_confirmed};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

/// Every message now in `queue`: (routing key, headers, body).
async fn take_traces(ch: &Channel, queue: &str) -> Vec<(String, FieldTable, String)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push((
            m.delivery.routing_key.to_string(),
            m.delivery.properties.headers().clone().unwrap_or_default(),
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
        ));
    }
    out
}

fn text(value: Option<&AMQPValue>) -> Option<String> {
    match value? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn a_tracing_vhost_copies_publishes_and_deliveries_to_the_trace_exchange() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    ch.exchange_declare(
        "x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_plain(&ch, "q").await;
    ch.queue_bind(
        "q".into(),
        "x".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_plain(&ch, "traces").await;
    ch.queue_bind(
        "traces".into(),
        "amq.rabbitmq.trace".into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // Off (the default): nothing is traced.
    assert_eq!(server.broker.tracing("/"), Some(false));
    publish_confirmed(&ch, "x", "k", "untraced", BasicProperties::default()).await;
    assert_eq!(drain_bodies(&ch, "q").await, ["untraced"]);
    assert!(take_traces(&ch, "traces").await.is_empty());

    server.broker.set_tracing("/", true).unwrap();
    publish_confirmed(
        &ch,
        "x",
        "k",
        "hello",
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id("m1".into()),
    )
    .await;
    // A consumer's delivery, then a basic.get answer, are both traced.
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consumer_ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = common::within(5, consumer.next()).await.unwrap().unwrap();
    assert_eq!(delivery.data, b"hello");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let traces = take_traces(&ch, "traces").await;
    let keys: Vec<&str> = traces.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(keys, ["publish.x", "deliver.q"], "{traces:?}");
    let (_, publish, body) = &traces[0];
    assert_eq!(body, "hello");
    let h = publish.inner();
    assert_eq!(text(h.get("exchange_name")).as_deref(), Some("x"));
    assert_eq!(text(h.get("vhost")).as_deref(), Some("/"));
    assert_eq!(text(h.get("user")).as_deref(), Some("guest"));
    assert!(text(h.get("connection")).is_some_and(|c| c.contains(" -> ")));
    assert!(text(h.get("node")).is_some());
    assert_eq!(h.get("channel"), Some(&AMQPValue::LongInt(1)));
    let Some(AMQPValue::FieldArray(routed)) = h.get("routed_queues") else {
        panic!("routed_queues: {h:?}");
    };
    assert_eq!(text(routed.as_slice().first()).as_deref(), Some("q"));
    let Some(AMQPValue::FieldArray(keys)) = h.get("routing_keys") else {
        panic!("routing_keys: {h:?}");
    };
    assert_eq!(text(keys.as_slice().first()).as_deref(), Some("k"));
    let Some(AMQPValue::FieldTable(props)) = h.get("properties") else {
        panic!("properties: {h:?}");
    };
    assert_eq!(
        props.inner().get("delivery_mode"),
        Some(&AMQPValue::LongInt(2))
    );
    assert_eq!(text(props.inner().get("message_id")).as_deref(), Some("m1"));
    let (_, deliver, _) = &traces[1];
    assert_eq!(
        deliver.inner().get("redelivered"),
        Some(&AMQPValue::LongInt(0))
    );
    assert_eq!(deliver.inner().get("channel"), Some(&AMQPValue::LongInt(2)));

    publish_confirmed(&ch, "", "q", "got", BasicProperties::default()).await;
    consumer_ch
        .basic_cancel("c".into(), Default::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "", "q", "by-get", BasicProperties::default()).await;
    assert_eq!(drain_bodies(&ch, "q").await, ["by-get"]);
    let keys: Vec<String> = take_traces(&ch, "traces")
        .await
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(keys, ["publish.", "deliver.q", "publish.", "deliver.q"]);

    // Reading the trace queue was not traced (traces are not traced), and off means off again.
    server.broker.set_tracing("/", false).unwrap();
    publish_confirmed(&ch, "x", "k", "after", BasicProperties::default()).await;
    assert_eq!(drain_bodies(&ch, "q").await, ["after"]);
    assert!(take_traces(&ch, "traces").await.is_empty());
    assert!(server.broker.set_tracing("nope", true).is_err());
}
