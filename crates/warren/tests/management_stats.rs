//! The management API's statistics through real sockets: `message_stats` counts and rates on the overview and
//! on queues, sampled every `collect_statistics_interval` (here 200 ms, so a test sees two samples quickly).

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::Value;
use warren::server::RunningServer;

async fn get(server: &RunningServer, path: &str) -> Value {
    let addr = server.management_addr.expect("management API enabled");
    reqwest::Client::new()
        .get(format!("http://{addr}/api{path}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON body")
}

async fn start() -> RunningServer {
    common::start_server_with(|config| {
        config.management.collect_statistics_interval = Duration::from_millis(200);
    })
    .await
}

#[tokio::test]
async fn overview_and_queues_count_and_rate_publishes_deliveries_and_acks() {
    let server = start().await;
    let fresh = get(&server, "/overview").await;
    assert_eq!(fresh["rates_mode"], "basic");
    assert_eq!(fresh["message_stats"], serde_json::json!({}), "{fresh}");

    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        "stats".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    // Published over a few samples, so a rate is seen while they flow.
    for _ in 0..5 {
        for _ in 0..40 {
            ch.basic_publish(
                "".into(),
                "stats".into(),
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queue = get(&server, "/queues/%2F/stats").await;
    assert_eq!(queue["message_stats"]["publish"], 200, "{queue}");
    assert!(queue["message_stats"].get("ack").is_none(), "{queue}");
    assert!(
        queue["messages_ready_details"]["rate"].is_number(),
        "{queue}"
    );

    let mut consumer = ch
        .basic_consume(
            "stats".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for _ in 0..200 {
        let delivery = common::within(10, consumer.next())
            .await
            .expect("a delivery")
            .expect("delivered");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }

    // Counts: exact once the queue's actor has published its round (at once) and the reader flushed its batch.
    let mut overview = Value::Null;
    for _ in 0..50 {
        overview = get(&server, "/overview").await;
        if overview["message_stats"]["ack"] == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = &overview["message_stats"];
    assert_eq!(stats["publish"], 200, "{overview}");
    assert_eq!(stats["confirm"], 200, "{overview}");
    assert_eq!(stats["deliver"], 200, "{overview}");
    assert_eq!(stats["deliver_get"], 200, "{overview}");
    assert_eq!(stats["ack"], 200, "{overview}");
    assert_eq!(stats["redeliver"], 0, "{overview}");
    assert!(stats["publish_details"]["rate"].is_number(), "{overview}");
    assert_eq!(overview["queue_totals"]["messages"], 0, "{overview}");

    let queue = get(&server, "/queues/%2F/stats").await;
    let stats = &queue["message_stats"];
    assert_eq!(stats["publish"], 200, "{queue}");
    assert_eq!(stats["deliver"], 200, "{queue}");
    assert_eq!(stats["deliver_get"], 200, "{queue}");
    assert_eq!(stats["ack"], 200, "{queue}");
    // The listing carries the same fields.
    let listed = get(&server, "/queues/%2F").await;
    assert_eq!(listed[0]["message_stats"]["ack"], 200, "{listed}");
}

#[tokio::test]
async fn a_steady_publisher_shows_a_nonzero_publish_rate() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        "rated".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    // Publishing for 1.2 s: six samples apart, every pair of samples sees publishes between them.
    let publisher = {
        let ch = ch.clone();
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + Duration::from_millis(1200);
            while tokio::time::Instant::now() < until {
                ch.basic_publish(
                    "".into(),
                    "rated".into(),
                    BasicPublishOptions::default(),
                    b"m",
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(900)).await;
    let overview = get(&server, "/overview").await;
    let queue = get(&server, "/queues/%2F/rated").await;
    publisher.await.expect("publisher");
    let node_rate = overview["message_stats"]["publish_details"]["rate"]
        .as_f64()
        .expect("a rate");
    let queue_rate = queue["message_stats"]["publish_details"]["rate"]
        .as_f64()
        .expect("a rate");
    let depth_rate = queue["messages_ready_details"]["rate"]
        .as_f64()
        .expect("a rate");
    assert!(node_rate > 0.0, "{overview}");
    assert!(queue_rate > 0.0, "{queue}");
    assert!(depth_rate > 0.0, "{queue}");
}

fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn channels_are_listed_with_their_modes_prefetch_consumers_and_unacked_deliveries() {
    let server = start().await;
    let conn = common::connect(&server).await;
    let confirming = conn.create_channel().await.expect("channel");
    confirming
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    confirming
        .basic_qos(10, lapin::options::BasicQosOptions::default())
        .await
        .expect("qos");
    confirming
        .queue_declare(
            "listed".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    for _ in 0..3 {
        confirming
            .basic_publish(
                "".into(),
                "listed".into(),
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
    let mut consumer = confirming
        .basic_consume(
            "listed".into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for _ in 0..3 {
        common::within(10, consumer.next())
            .await
            .expect("a delivery")
            .expect("delivered");
    }
    let transactional = conn.create_channel().await.expect("channel");
    transactional.tx_select().await.expect("tx mode");

    let channels = get(&server, "/channels").await;
    let channels = channels.as_array().expect("a list");
    assert_eq!(channels.len(), 2, "{channels:?}");
    let first = &channels[0];
    assert_eq!(first["number"], 1);
    assert_eq!(first["confirm"], true);
    assert_eq!(first["transactional"], false);
    assert_eq!(first["prefetch_count"], 10);
    assert_eq!(first["consumer_count"], 1);
    assert_eq!(first["messages_unacknowledged"], 3);
    assert_eq!(first["messages_unconfirmed"], 0);
    assert_eq!(first["user"], "guest");
    assert_eq!(first["vhost"], "/");
    let connection = first["connection_details"]["name"]
        .as_str()
        .expect("connection name")
        .to_owned();
    assert_eq!(first["name"], format!("{connection} (1)"));
    assert_eq!(channels[1]["transactional"], true);
    assert_eq!(channels[1]["confirm"], false);

    let one = get(
        &server,
        &format!("/channels/{}", encode(&format!("{connection} (2)"))),
    )
    .await;
    assert_eq!(one["number"], 2, "{one}");
    let of_connection = get(
        &server,
        &format!("/connections/{}/channels", encode(&connection)),
    )
    .await;
    assert_eq!(
        of_connection.as_array().map(Vec::len),
        Some(2),
        "{of_connection}"
    );
    let of_vhost = get(&server, "/vhosts/%2F/channels").await;
    assert_eq!(of_vhost.as_array().map(Vec::len), Some(2), "{of_vhost}");

    transactional.close(200, "bye".into()).await.expect("close");
    let channels = get(&server, "/channels").await;
    assert_eq!(channels.as_array().map(Vec::len), Some(1), "{channels}");
    let overview = get(&server, "/overview").await;
    assert_eq!(overview["object_totals"]["channels"], 1, "{overview}");
}

/// Polls `path` until `done` holds of its body (counts reach the API once the reader or actor that made them has
/// flushed), for at most 5 s; the last body either way.
async fn settled(server: &RunningServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut body = Value::Null;
    for _ in 0..50 {
        body = get(server, path).await;
        if done(&body) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    body
}

#[tokio::test]
async fn channels_exchanges_vhosts_and_connections_count_their_own_traffic() {
    let server = start().await;
    let (status, _) = common::api::call(&server, reqwest::Method::PUT, "/vhosts/other", None).await;
    assert!(status.is_success(), "{status}");
    let (status, _) = common::api::call(
        &server,
        reqwest::Method::PUT,
        "/permissions/other/guest",
        Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
    )
    .await;
    assert!(status.is_success(), "{status}");

    let conn = common::connect(&server).await;
    let publisher = conn.create_channel().await.expect("channel");
    for queue in ["fan-a", "fan-b"] {
        publisher
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare");
        publisher
            .queue_bind(
                queue.into(),
                "amq.fanout".into(),
                "".into(),
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
    }
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    for _ in 0..30 {
        common::publish_confirmed(
            &publisher,
            "amq.fanout",
            "",
            "m",
            BasicProperties::default(),
        )
        .await;
    }
    // Mandatory and routed nowhere: returned (and still confirmed).
    for _ in 0..5 {
        publisher
            .basic_publish(
                "amq.direct".into(),
                "nobody".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                b"r",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    let consumer = conn.create_channel().await.expect("channel");
    for queue in ["fan-a", "fan-b"] {
        let mut deliveries = consumer
            .basic_consume(
                queue.into(),
                format!("c-{queue}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        for _ in 0..30 {
            let delivery = common::within(10, deliveries.next())
                .await
                .expect("a delivery")
                .expect("delivered");
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    let empty = consumer
        .basic_get("fan-a".into(), lapin::options::BasicGetOptions::default())
        .await
        .expect("get");
    assert!(empty.is_none());

    let other = common::connect_as(&server, "guest", "guest", "other")
        .await
        .expect("connect to other");
    let other_ch = other.create_channel().await.expect("channel");
    other_ch
        .queue_declare(
            "kept".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    other_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    for _ in 0..7 {
        common::publish_confirmed(&other_ch, "", "kept", "o", BasicProperties::default()).await;
    }

    let fanout = settled(&server, "/exchanges/%2F/amq.fanout", |x| {
        x["message_stats"]["publish_in"] == 30
    })
    .await;
    assert_eq!(fanout["message_stats"]["publish_in"], 30, "{fanout}");
    assert_eq!(fanout["message_stats"]["publish_out"], 60, "{fanout}");
    assert!(
        fanout["message_stats"]["publish_in_details"]["rate"].is_number(),
        "{fanout}"
    );
    let direct = get(&server, "/exchanges/%2F/amq.direct").await;
    assert_eq!(direct["message_stats"]["publish_in"], 5, "{direct}");
    assert_eq!(direct["message_stats"]["publish_out"], 0, "{direct}");
    let default = get(&server, "/exchanges/other/amq.default").await;
    assert_eq!(default["message_stats"]["publish_in"], 7, "{default}");
    let untouched = get(&server, "/exchanges/%2F/amq.topic").await;
    assert!(untouched.get("message_stats").is_none(), "{untouched}");

    let channels = settled(&server, "/vhosts/%2F/channels", |list| {
        list.as_array().is_some_and(|l| {
            l.iter().any(|c| c["message_stats"]["ack"] == 60)
                && l.iter().any(|c| c["message_stats"]["confirm"] == 35)
        })
    })
    .await;
    let list = channels.as_array().expect("a list");
    let stats_of = |number: u64| {
        list.iter()
            .find(|c| c["number"] == number)
            .map(|c| c["message_stats"].clone())
            .unwrap_or(Value::Null)
    };
    let published = stats_of(1);
    assert_eq!(published["publish"], 35, "{channels}");
    assert_eq!(published["confirm"], 35, "{channels}");
    assert_eq!(published["return_unroutable"], 5, "{channels}");
    assert!(published.get("deliver").is_none(), "{channels}");
    let consumed = stats_of(2);
    assert_eq!(consumed["deliver"], 60, "{channels}");
    assert_eq!(consumed["deliver_get"], 60, "{channels}");
    assert_eq!(consumed["ack"], 60, "{channels}");
    assert_eq!(consumed["get_empty"], 1, "{channels}");
    assert!(consumed.get("publish").is_none(), "{channels}");

    let root = settled(&server, "/vhosts/%2F", |v| v["message_stats"]["ack"] == 60).await;
    let stats = &root["message_stats"];
    assert_eq!(stats["publish"], 35, "{root}");
    assert_eq!(stats["confirm"], 35, "{root}");
    assert_eq!(stats["return_unroutable"], 5, "{root}");
    assert_eq!(stats["deliver"], 60, "{root}");
    assert_eq!(stats["ack"], 60, "{root}");
    assert_eq!(stats["get_empty"], 1, "{root}");
    assert_eq!(root["messages"], 0, "{root}");
    let second = settled(&server, "/vhosts/other", |v| {
        v["message_stats"]["confirm"] == 7
    })
    .await;
    assert_eq!(second["message_stats"]["publish"], 7, "{second}");
    assert_eq!(second["message_stats"]["ack"], 0, "{second}");
    assert_eq!(second["messages"], 7, "{second}");
    assert_eq!(second["messages_ready"], 7, "{second}");

    let connections = get(&server, "/connections").await;
    for c in connections.as_array().expect("a list") {
        assert!(c["recv_oct"].as_u64().is_some_and(|n| n > 0), "{c}");
        assert!(c["send_oct"].as_u64().is_some_and(|n| n > 0), "{c}");
        assert!(c["recv_cnt"].as_u64().is_some_and(|n| n > 0), "{c}");
        assert!(c["recv_oct_details"]["rate"].is_number(), "{c}");
    }
}
