//! The basic class through lapin: properties and bodies reach consumers unchanged, mandatory returns, refused
//! publish flags, consumer tags, exclusive consumers, cancel, round robin, no-ack consumers and basic.get.

mod common;

use common::ready_count;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};

/// Publishes to the default exchange and waits for the confirm when the channel is in confirm mode.
async fn publish(ch: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        properties,
    )
    .await
    .expect("basic.publish")
    .await
    .expect("publish settled");
}

async fn consume(ch: &Channel, queue: &str, tag: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

async fn next_body(consumer: &mut Consumer) -> Vec<u8> {
    common::within(10, consumer.next())
        .await
        .expect("consumer still open")
        .expect("delivery")
        .data
}

fn every_field_type() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    let mut headers = FieldTable::default();
    let values = [
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-6_400_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        (
            "longstr",
            AMQPValue::LongString(LongString::from(b"bytes \x00\xff".to_vec())),
        ),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::LongString("two".into()),
                AMQPValue::Void,
            ])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
        ),
        ("void", AMQPValue::Void),
    ];
    for (key, value) in values {
        headers.insert(ShortString::from(key), value);
    }
    headers
}

#[tokio::test]
async fn all_fourteen_properties_and_every_field_type_reach_the_consumer_unchanged() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "props").await;
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(every_field_type())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into());
    publish(&ch, "props", b"payload", properties.clone()).await;
    let mut consumer = consume(&ch, "props", "c", true).await;
    let delivery = common::within(10, consumer.next()).await.unwrap().unwrap();
    assert_eq!(delivery.properties, properties);
    assert_eq!(delivery.data, b"payload");
    assert_eq!(delivery.routing_key.as_str(), "props");
    assert_eq!(delivery.exchange.as_str(), "");
}

#[tokio::test]
async fn bodies_from_empty_to_sixteen_mebibytes_arrive_intact_across_frames() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let frame_max = conn.configuration().frame_max() as usize;
    assert_eq!(
        frame_max, 131_072,
        "lapin takes RabbitMQ's default frame_max"
    );
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "sizes").await;
    let sizes = [0, 1, frame_max - 8, frame_max - 7, 1 << 20, 16 << 20];
    let body = |size: usize| -> Vec<u8> { (0..size).map(|i| (i % 251) as u8).collect() };
    for size in sizes {
        publish(&ch, "sizes", &body(size), BasicProperties::default()).await;
    }
    let mut consumer = consume(&ch, "sizes", "c", true).await;
    for size in sizes {
        let got = next_body(&mut consumer).await;
        assert_eq!(got.len(), size);
        assert!(got == body(size), "body of {size} bytes differs");
    }
}

#[tokio::test]
async fn mandatory_unroutable_message_comes_back_with_312_no_route() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let properties = BasicProperties::default().with_message_id("m-1".into());
    for mandatory in [false, true] {
        ch.basic_publish(
            "amq.direct".into(),
            if mandatory { "nowhere" } else { "also-nowhere" }.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            b"lost",
            properties.clone(),
        )
        .await
        .unwrap();
    }
    // basic.return precedes the declare-ok on the wire, so lapin holds it once the declare returns.
    common::declare_plain(&ch, "barrier").await;
    let returned = ch.wait_for_confirms().await.unwrap();
    assert_eq!(returned.len(), 1, "only the mandatory message is returned");
    let message = &returned[0];
    assert_eq!(message.reply_code, 312);
    assert_eq!(message.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(message.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(message.delivery.routing_key.as_str(), "nowhere");
    assert_eq!(message.delivery.data, b"lost");
    assert_eq!(message.delivery.properties, properties);
}

#[tokio::test]
async fn on_a_confirm_channel_the_return_arrives_before_the_ack() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    let confirmation = ch
        .basic_publish(
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
    // lapin attaches a return to the ack only if the return was received first.
    match common::within(10, confirmation).await.unwrap() {
        Confirmation::Ack(Some(returned)) => {
            assert_eq!(returned.reply_code, 312);
            assert_eq!(returned.delivery.data, b"back");
        }
        other => panic!("expected an ack carrying the returned message, got {other:?}"),
    }
}

#[tokio::test]
async fn immediate_publish_closes_the_connection_with_540() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "".into(),
        "q".into(),
        BasicPublishOptions {
            immediate: true,
            ..BasicPublishOptions::default()
        },
        b"now",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(closes.next_code().await, 540);
    assert!(!conn.status().connected());
}

#[tokio::test]
async fn publish_to_a_missing_exchange_closes_the_channel_with_404() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "no-such-exchange".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(closes.next_code().await, 404);
    // A soft error: the connection stays usable.
    let other = conn.create_channel().await.unwrap();
    common::declare_plain(&other, "still-fine").await;
}

#[tokio::test]
async fn server_generated_consumer_tag_starts_with_amq_ctag() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "tags").await;
    let first = consume(&ch, "tags", "", false).await;
    let second = consume(&ch, "tags", "", false).await;
    assert!(
        first.tag().as_str().starts_with("amq.ctag-"),
        "{}",
        first.tag()
    );
    assert_ne!(first.tag(), second.tag(), "generated tags are unique");
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_one_channel_closes_the_connection_with_530() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "dup").await;
    let _first = consume(&ch, "dup", "same", false).await;
    let error = ch
        .basic_consume(
            "dup".into(),
            "same".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("a reused consumer tag is refused");
    assert_eq!(common::reply_code(&error), Some(530));
    assert!(error.is_amqp_hard_error());
}

#[tokio::test]
async fn an_exclusive_consumer_keeps_other_consumers_out_with_403() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let setup = conn.create_channel().await.unwrap();
    common::declare_plain(&setup, "excl").await;
    common::declare_plain(&setup, "shared").await;
    let exclusive = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let _owner = setup
        .basic_consume(
            "excl".into(),
            "owner".into(),
            exclusive,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _plain = consume(&setup, "shared", "plain", false).await;

    let intruder = conn.create_channel().await.unwrap();
    let error = intruder
        .basic_consume(
            "excl".into(),
            "second".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("the queue has an exclusive consumer");
    assert_eq!(common::reply_code(&error), Some(403));

    let late = conn.create_channel().await.unwrap();
    let error = late
        .basic_consume(
            "shared".into(),
            "late".into(),
            exclusive,
            FieldTable::default(),
        )
        .await
        .expect_err("an exclusive consumer needs a queue without consumers");
    assert_eq!(common::reply_code(&error), Some(403));
    assert!(
        setup.status().connected(),
        "only the refused channels close"
    );
}

#[tokio::test]
async fn basic_cancel_stops_deliveries_to_that_consumer() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "cancel").await;
    let mut consumer = consume(&ch, "cancel", "c", true).await;
    publish(&ch, "cancel", b"before", BasicProperties::default()).await;
    assert_eq!(next_body(&mut consumer).await, b"before");
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert!(
        common::within(10, consumer.next()).await.is_none(),
        "stream ends"
    );
    publish(&ch, "cancel", b"after", BasicProperties::default()).await;
    let got = ch
        .basic_get("cancel".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message stayed in the queue");
    assert_eq!(got.delivery.data, b"after");
}

#[tokio::test]
async fn two_consumers_of_one_queue_receive_messages_alternately() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "rr").await;
    let mut a = consume(&ch, "rr", "a", true).await;
    let mut b = consume(&ch, "rr", "b", true).await;
    let publisher = common::confirming_channel(&conn).await;
    for i in 0..6 {
        publish(
            &publisher,
            "rr",
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..3 {
        got_a.push(String::from_utf8(next_body(&mut a).await).unwrap());
        got_b.push(String::from_utf8(next_body(&mut b).await).unwrap());
    }
    let (evens, odds) = (vec!["m0", "m2", "m4"], vec!["m1", "m3", "m5"]);
    assert!(
        (got_a == evens && got_b == odds) || (got_a == odds && got_b == evens),
        "not alternating: a={got_a:?} b={got_b:?}"
    );
}

#[tokio::test]
async fn a_no_ack_consumer_gets_every_message_and_nothing_stays_unacked() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "noack").await;
    for i in 0..50u8 {
        publish(&ch, "noack", &[i], BasicProperties::default()).await;
    }
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&consumer_ch, "noack", "c", true).await;
    for i in 0..50u8 {
        let delivery = common::within(10, consumer.next()).await.unwrap().unwrap();
        assert_eq!(delivery.data, [i]);
        assert_eq!(delivery.delivery_tag, u64::from(i) + 1);
        assert!(!delivery.redelivered);
    }
    // Closing the channel requeues nothing: no-ack deliveries are settled on sending.
    consumer_ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(ready_count(&ch, "noack").await, 0);
}

#[tokio::test]
async fn basic_get_reports_the_remaining_count_then_get_empty() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, "get").await;
    for body in ["a", "b", "c"] {
        publish(&ch, "get", body.as_bytes(), BasicProperties::default()).await;
    }
    let mut seen = Vec::new();
    for tag in 1..=3u64 {
        let got = ch
            .basic_get("get".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("get-ok");
        assert_eq!(got.delivery.delivery_tag, tag);
        assert!(!got.delivery.redelivered);
        seen.push((
            String::from_utf8(got.delivery.data).unwrap(),
            got.message_count,
        ));
    }
    assert_eq!(
        seen,
        vec![("a".into(), 2), ("b".into(), 1), ("c".into(), 0)]
    );
    let empty = ch
        .basic_get("get".into(), BasicGetOptions::default())
        .await
        .unwrap();
    assert!(empty.is_none(), "get-empty on an empty queue");
    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert_eq!(ready_count(&ch, "get").await, 0);
}

#[tokio::test]
async fn publish_with_another_users_user_id_is_refused_with_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let mut closes = common::CloseWatcher::new(&conn);
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "uid".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "uid".into(),
        BasicPublishOptions::default(),
        b"spoofed",
        BasicProperties::default().with_user_id("bob".into()),
    )
    .await
    .unwrap();
    assert_eq!(closes.next_code().await, 406);
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "uid".into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 0, "the refused message was not enqueued");
}

/// A body sent in several small frames (a client may cut frames smaller than frame_max) arrives whole and in
/// order, next to one sent in a single large frame: the reader copies small frames out of its read buffer and
/// keeps large ones as slices of it.
#[tokio::test]
async fn bodies_in_small_and_large_frames_arrive_whole() {
    use bytes::BytesMut;
    use warren_protocol::client::put_publish;
    use warren_protocol::content::put_content_header;
    use warren_protocol::frame::{put_frame_header, FRAME_BODY, FRAME_END};

    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "pieces").await;

    let small: Vec<u8> = (0..30u8).collect();
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut raw = common::RawClient::connect(&server).await;
    raw.handshake().await;
    raw.open_channel(1).await;
    let mut out = BytesMut::new();
    for (body, piece) in [(&small, 7), (&large, 60_000)] {
        put_publish(&mut out, 1, "", "pieces", false);
        put_content_header(&mut out, 1, body.len() as u64, &[0, 0]);
        for part in body.chunks(piece) {
            put_frame_header(&mut out, FRAME_BODY, 1, part.len() as u32);
            out.extend_from_slice(part);
            out.extend_from_slice(&[FRAME_END]);
        }
    }
    raw.send(&out).await;

    for expected in [&small, &large] {
        let mut got = None;
        for _ in 0..100 {
            got = ch
                .basic_get("pieces".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if got.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let message = got.expect("the message arrives");
        assert_eq!(&message.delivery.data, expected);
    }
}
