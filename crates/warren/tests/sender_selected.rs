//! Sender-selected distribution through a real socket, as RabbitMQ: `CC` and `BCC` headers add routing keys on any
//! exchange (the default one included), each queue gets the message once, `BCC` never reaches a consumer, and a
//! `CC` that is not an array is refused with RabbitMQ's 406.

mod common;

use common::{declare_plain, publish_confirmed, refusal};
use lapin::options::{BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren::server::RunningServer;

fn routing_headers(cc: &[&str], bcc: &[&str]) -> BasicProperties {
    let array = |keys: &[&str]| {
        AMQPValue::FieldArray(FieldArray::from(
            keys.iter()
                .map(|k| AMQPValue::LongString((*k).into()))
                .collect::<Vec<_>>(),
        ))
    };
    let mut headers = FieldTable::default();
    if !cc.is_empty() {
        headers.insert("CC".into(), array(cc));
    }
    if !bcc.is_empty() {
        headers.insert("BCC".into(), array(bcc));
    }
    headers.insert("app".into(), AMQPValue::LongString("kept".into()));
    BasicProperties::default().with_headers(headers)
}

/// Every message in `queue` (no-ack gets): each body with its headers.
async fn take_all(ch: &Channel, queue: &str) -> Vec<(String, FieldTable)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        out.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            headers,
        ));
    }
    out
}

async fn setup(
    kind: ExchangeKind,
    bindings: &[(&str, &str)],
) -> (RunningServer, lapin::Connection, Channel) {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    ch.exchange_declare(
        "x".into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    for (queue, key) in bindings {
        declare_plain(&ch, queue).await;
        ch.queue_bind(
            (*queue).into(),
            "x".into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
    }
    (server, conn, ch)
}

#[tokio::test]
async fn cc_and_bcc_add_routing_keys_and_bcc_is_removed() {
    let (_server, _conn, ch) = setup(
        ExchangeKind::Direct,
        &[("qa", "a"), ("qb", "b"), ("qc", "c"), ("qd", "d")],
    )
    .await;
    // First a plain publish, so the channel's route cache holds the route of "a" alone.
    publish_confirmed(&ch, "x", "a", "plain", BasicProperties::default()).await;
    // "a" again in CC: still one copy for qa.
    publish_confirmed(
        &ch,
        "x",
        "a",
        "selected",
        routing_headers(&["b", "a"], &["c"]),
    )
    .await;
    let qa = take_all(&ch, "qa").await;
    assert_eq!(
        qa.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(),
        ["plain", "selected"]
    );
    for queue in ["qb", "qc"] {
        let got = take_all(&ch, queue).await;
        assert_eq!(got.len(), 1, "{queue}: {got:?}");
        let headers = got[0].1.inner();
        assert!(headers.get("BCC").is_none(), "BCC delivered: {headers:?}");
        assert!(headers.get("CC").is_some(), "CC is kept");
        assert!(headers.get("app").is_some());
    }
    assert!(take_all(&ch, "qd").await.is_empty());
}

#[tokio::test]
async fn topic_patterns_and_the_default_exchange_route_the_extra_keys() {
    let (_server, _conn, ch) = setup(
        ExchangeKind::Topic,
        &[("orders", "orders.*"), ("audit", "#.audit")],
    )
    .await;
    publish_confirmed(
        &ch,
        "x",
        "orders.new",
        "m1",
        routing_headers(&[], &["x.audit"]),
    )
    .await;
    assert_eq!(take_all(&ch, "orders").await.len(), 1);
    assert_eq!(take_all(&ch, "audit").await.len(), 1);
    // The default exchange routes each key to the queue of that name.
    publish_confirmed(
        &ch,
        "",
        "orders",
        "m2",
        routing_headers(&["audit", "nowhere"], &[]),
    )
    .await;
    assert_eq!(take_all(&ch, "orders").await.len(), 1);
    assert_eq!(take_all(&ch, "audit").await.len(), 1);
}

#[tokio::test]
async fn a_cc_header_that_is_not_an_array_is_refused_with_406() {
    let (_server, conn, ch) = setup(ExchangeKind::Direct, &[("qa", "a")]).await;
    let mut headers = FieldTable::default();
    headers.insert("CC".into(), AMQPValue::LongString("b".into()));
    let publish = async {
        ch.basic_publish(
            "x".into(),
            "a".into(),
            Default::default(),
            b"m",
            BasicProperties::default().with_headers(headers),
        )
        .await?
        .await
    };
    assert_eq!(
        refusal(publish).await,
        (
            406,
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
                .to_owned()
        )
    );
    // The connection lives on.
    let ch = conn.create_channel().await.expect("a new channel");
    assert!(take_all(&ch, "qa").await.is_empty());
}
