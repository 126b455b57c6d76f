//! The Prometheus endpoint over plain HTTP: every metric the RabbitMQ-Overview Grafana dashboard (10991) queries,
//! with RabbitMQ's type; the message counters moving by exactly what lapin clients did; per-queue series; the
//! detailed families; 404 elsewhere.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{confirming_channel, connect, declare, publish_n, start_server, within};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The metric names the RabbitMQ-Overview dashboard (RabbitMQ 3.10's copy) queries, with the type RabbitMQ 3.10's
/// rabbitmq_prometheus gives each (from a live scrape; docs/metrics.md).
const DASHBOARD: &[(&str, &str)] = &[
    ("rabbitmq_build_info", "untyped"),
    ("rabbitmq_identity_info", "untyped"),
    ("rabbitmq_channel_consumers", "gauge"),
    ("rabbitmq_channels", "gauge"),
    ("rabbitmq_channels_closed_total", "counter"),
    ("rabbitmq_channels_opened_total", "counter"),
    ("rabbitmq_connections", "gauge"),
    ("rabbitmq_connections_closed_total", "counter"),
    ("rabbitmq_connections_opened_total", "counter"),
    ("rabbitmq_consumers", "gauge"),
    ("rabbitmq_disk_space_available_bytes", "gauge"),
    ("rabbitmq_global_messages_acknowledged_total", "counter"),
    ("rabbitmq_global_messages_confirmed_total", "counter"),
    (
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "counter",
    ),
    (
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "counter",
    ),
    (
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
        "counter",
    ),
    (
        "rabbitmq_global_messages_delivered_get_manual_ack_total",
        "counter",
    ),
    ("rabbitmq_global_messages_get_empty_total", "counter"),
    ("rabbitmq_global_messages_received_confirm_total", "counter"),
    ("rabbitmq_global_messages_received_total", "counter"),
    ("rabbitmq_global_messages_redelivered_total", "counter"),
    ("rabbitmq_global_messages_routed_total", "counter"),
    (
        "rabbitmq_global_messages_unroutable_dropped_total",
        "counter",
    ),
    (
        "rabbitmq_global_messages_unroutable_returned_total",
        "counter",
    ),
    ("rabbitmq_process_max_fds", "gauge"),
    ("rabbitmq_process_max_tcp_sockets", "gauge"),
    ("rabbitmq_process_open_fds", "gauge"),
    ("rabbitmq_process_open_tcp_sockets", "gauge"),
    ("rabbitmq_process_resident_memory_bytes", "gauge"),
    ("rabbitmq_queue_messages_ready", "gauge"),
    ("rabbitmq_queue_messages_unacked", "gauge"),
    ("rabbitmq_queues", "gauge"),
    ("rabbitmq_queues_created_total", "counter"),
    ("rabbitmq_queues_declared_total", "counter"),
    ("rabbitmq_queues_deleted_total", "counter"),
    ("rabbitmq_resident_memory_limit_bytes", "gauge"),
];

/// Also asked of Warren by the issue: the alarm gauges and the rest of the node figures.
const ALSO: &[(&str, &str)] = &[
    ("rabbitmq_alarms_memory_used_watermark", "untyped"),
    ("rabbitmq_alarms_free_disk_space_watermark", "untyped"),
    ("rabbitmq_alarms_file_descriptor_limit", "untyped"),
    ("rabbitmq_disk_space_available_limit_bytes", "gauge"),
    ("rabbitmq_queue_messages", "gauge"),
    ("rabbitmq_global_messages_delivered_total", "counter"),
    ("warren_store_fsyncs_total", "counter"),
    ("warren_store_group_commit_batch_size", "histogram"),
    ("warren_confirm_latency_seconds", "histogram"),
    ("warren_spill_file_bytes", "gauge"),
];

/// One HTTP/1.1 GET over a fresh connection: (status, content type, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    within(10, async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the endpoint");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let response = String::from_utf8(response).expect("utf-8 response");
        let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    })
    .await
}

/// A parsed exposition: the TYPE of each family, and the samples.
#[derive(Debug, Default)]
struct Scrape {
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses the Prometheus text format 0.0.4 (labels without commas or quotes inside values, as here).
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                scrape.types.insert(name.to_owned(), kind.to_owned());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                scrape.helps.insert(name.to_owned(), help.to_owned());
            } else if !line.is_empty() && !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("sample value");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().expect("numeric sample"),
                };
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => {
                        let labels = labels.trim_end_matches('}');
                        let labels = labels
                            .split(',')
                            .filter(|l| !l.is_empty())
                            .map(|l| {
                                let (k, v) = l.split_once('=').expect("label k=v");
                                (k.to_owned(), v.trim_matches('"').to_owned())
                            })
                            .collect();
                        (name, labels)
                    }
                    None => (series, HashMap::new()),
                };
                scrape.samples.push((name.to_owned(), labels, value));
            }
        }
        scrape
    }

    /// The value of the series `name` whose labels include `labels`; None if there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    fn has_sample(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

async fn scrape(addr: SocketAddr, path: &str) -> Scrape {
    let (status, content_type, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&body)
}

/// The global counters and churn counters whose moves the message test checks, with their labels.
const CLASSIC: &[(&str, &str)] = &[
    ("protocol", "amqp091"),
    ("queue_type", "rabbit_classic_queue"),
];
const PROTOCOL: &[(&str, &str)] = &[("protocol", "amqp091")];

/// A series (name and some of its labels) and how far it must move.
type Move<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Each counter's value in `now` minus its value in `before`.
fn deltas(before: &Scrape, now: &Scrape, expected: &[Move<'_>]) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(name, labels, want)| {
            let was = before.value(name, labels).unwrap_or(f64::NAN);
            let is = now.value(name, labels).unwrap_or(f64::NAN);
            (is - was != *want).then(|| format!("{name}: moved by {} (expected {want})", is - was))
        })
        .collect()
}

#[tokio::test]
async fn a_scrape_has_every_dashboard_metric_with_rabbitmqs_type() {
    let server = start_server().await;
    let addr = server
        .prometheus_addr
        .expect("the endpoint is on by default");
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare(
        &ch,
        "dashboard-q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for path in ["/metrics", "/metrics/per-object"] {
        let scrape = scrape(addr, path).await;
        for (name, kind) in DASHBOARD.iter().chain(ALSO) {
            assert_eq!(
                scrape.types.get(*name).map(String::as_str),
                Some(*kind),
                "{path}: TYPE of {name}"
            );
            let sample = match *kind {
                "histogram" => format!("{name}_count"),
                _ => name.to_string(),
            };
            assert!(scrape.has_sample(&sample), "{path}: no sample of {sample}");
        }
        // RabbitMQ's help texts, as its 3.10 scrape shows them.
        assert_eq!(
            scrape.helps["rabbitmq_global_messages_received_total"],
            "Total number of messages received from publishers"
        );
        assert_eq!(
            scrape.helps["rabbitmq_queue_messages_ready"],
            "Messages ready to be delivered to consumers"
        );
        let identity = scrape
            .samples
            .iter()
            .find(|(n, _, _)| n == "rabbitmq_identity_info")
            .expect("identity");
        for label in [
            "rabbitmq_node",
            "rabbitmq_cluster",
            "rabbitmq_cluster_permanent_id",
        ] {
            assert!(!identity.1[label].is_empty(), "{label}");
        }
        assert_eq!(scrape.value("rabbitmq_connections", &[]), Some(1.0));
        assert_eq!(scrape.value("rabbitmq_channels", &[]), Some(1.0));
        assert_eq!(scrape.value("rabbitmq_queues", &[]), Some(1.0));
        assert!(
            scrape
                .value("rabbitmq_process_open_fds", &[])
                .unwrap_or(0.0)
                > 0.0
        );
        assert!(scrape.value("rabbitmq_process_max_fds", &[]).unwrap_or(0.0) > 0.0);
    }
    // Aggregated: one unlabelled series of the queue figures; per object: one per queue.
    let aggregated = scrape(addr, "/metrics").await;
    assert!(aggregated
        .samples
        .iter()
        .filter(|(n, _, _)| n == "rabbitmq_queue_messages_ready")
        .all(|(_, labels, _)| labels.is_empty()));
    let per_object = scrape(addr, "/metrics/per-object").await;
    assert_eq!(
        per_object.value(
            "rabbitmq_queue_messages_ready",
            &[("vhost", "/"), ("queue", "dashboard-q")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn message_counters_move_by_exactly_what_clients_did() {
    let server = start_server().await;
    let addr = server.prometheus_addr.expect("endpoint");
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    declare(&ch, "counted", durable, FieldTable::default()).await;
    let before = scrape(addr, "/metrics").await;

    // 10 routed, 3 returned (mandatory), 2 dropped; all 15 confirmed.
    publish_n(&ch, "counted", 10).await;
    for mandatory in [true, true, true, false, false] {
        let options = BasicPublishOptions {
            mandatory,
            ..Default::default()
        };
        let confirm = ch
            .basic_publish(
                "".into(),
                "nowhere".into(),
                options,
                b"x",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }

    // basic.get: 4 acked at once, 1 without ack, 1 nacked back and fetched again (redelivered), acked.
    let getter = conn.create_channel().await.expect("channel");
    let manual = BasicGetOptions { no_ack: false };
    let mut last = 0;
    for _ in 0..4 {
        last = getter
            .basic_get("counted".into(), manual)
            .await
            .expect("get")
            .expect("a message")
            .delivery
            .delivery_tag;
    }
    getter
        .basic_ack(last, BasicAckOptions { multiple: true })
        .await
        .expect("ack");
    getter
        .basic_get("counted".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("a message");
    let tag = getter
        .basic_get("counted".into(), manual)
        .await
        .expect("get")
        .expect("a message")
        .delivery
        .delivery_tag;
    getter
        .basic_nack(
            tag,
            BasicNackOptions {
                requeue: true,
                multiple: false,
            },
        )
        .await
        .expect("nack");
    let again = getter
        .basic_get("counted".into(), manual)
        .await
        .expect("get")
        .expect("the message again");
    assert!(again.delivery.redelivered);
    getter
        .basic_ack(again.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack");

    // 4 left: a consumer that acknowledges takes them; they show as unacked, per queue, until acked.
    let mut consumer = getter
        .basic_consume(
            "counted".into(),
            "manual".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut tags = Vec::new();
    for _ in 0..4 {
        let delivery = within(5, consumer.next())
            .await
            .expect("delivery")
            .expect("ok");
        tags.push(delivery.delivery_tag);
    }
    let rows = |s: &Scrape| {
        let labels = [("vhost", "/"), ("queue", "counted")];
        (
            s.value("rabbitmq_queue_messages_ready", &labels),
            s.value("rabbitmq_queue_messages_unacked", &labels),
            s.value("rabbitmq_queue_consumers", &labels),
        )
    };
    eventually(addr, "/metrics/per-object", |s| {
        rows(s) == (Some(0.0), Some(4.0), Some(1.0))
    })
    .await;
    for tag in tags {
        getter
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .expect("ack");
    }
    getter
        .basic_cancel("manual".into(), BasicCancelOptions::default())
        .await
        .expect("cancel");

    // 2 more, taken by an auto-ack consumer on a channel of its own, which then closes.
    publish_n(&ch, "counted", 2).await;
    let auto = conn.create_channel().await.expect("channel");
    let mut auto_consumer = auto
        .basic_consume(
            "counted".into(),
            "auto".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for _ in 0..2 {
        within(5, auto_consumer.next())
            .await
            .expect("delivery")
            .expect("ok");
    }
    auto.close(200, "done".into()).await.expect("channel close");
    assert!(getter
        .basic_get("counted".into(), manual)
        .await
        .expect("get")
        .is_none());

    // Churn: a queue declared, created and deleted; a connection opened and closed.
    declare(
        &ch,
        "churn",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    ch.queue_delete("churn".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let other = connect(&server).await;
    other.close(200, "bye".into()).await.expect("close");

    let expected: &[Move<'_>] = &[
        ("rabbitmq_global_messages_received_total", PROTOCOL, 17.0),
        (
            "rabbitmq_global_messages_received_confirm_total",
            PROTOCOL,
            17.0,
        ),
        ("rabbitmq_global_messages_routed_total", PROTOCOL, 12.0),
        (
            "rabbitmq_global_messages_unroutable_returned_total",
            PROTOCOL,
            3.0,
        ),
        (
            "rabbitmq_global_messages_unroutable_dropped_total",
            PROTOCOL,
            2.0,
        ),
        ("rabbitmq_global_messages_confirmed_total", PROTOCOL, 17.0),
        ("rabbitmq_global_messages_delivered_total", CLASSIC, 13.0),
        (
            "rabbitmq_global_messages_delivered_get_manual_ack_total",
            CLASSIC,
            6.0,
        ),
        (
            "rabbitmq_global_messages_delivered_get_auto_ack_total",
            CLASSIC,
            1.0,
        ),
        (
            "rabbitmq_global_messages_delivered_consume_manual_ack_total",
            CLASSIC,
            4.0,
        ),
        (
            "rabbitmq_global_messages_delivered_consume_auto_ack_total",
            CLASSIC,
            2.0,
        ),
        ("rabbitmq_global_messages_redelivered_total", CLASSIC, 1.0),
        ("rabbitmq_global_messages_acknowledged_total", CLASSIC, 9.0),
        ("rabbitmq_global_messages_get_empty_total", CLASSIC, 1.0),
        ("rabbitmq_channels_opened_total", &[], 2.0),
        ("rabbitmq_channels_closed_total", &[], 1.0),
        ("rabbitmq_queues_declared_total", &[], 1.0),
        ("rabbitmq_queues_created_total", &[], 1.0),
        ("rabbitmq_queues_deleted_total", &[], 1.0),
        ("rabbitmq_connections_opened_total", &[], 1.0),
        ("rabbitmq_connections_closed_total", &[], 1.0),
    ];
    let mut last = Vec::new();
    for _ in 0..100 {
        let now = scrape(addr, "/metrics").await;
        last = deltas(&before, &now, expected);
        if last.is_empty() {
            assert_eq!(now.value("rabbitmq_queue_messages_ready", &[]), Some(0.0));
            assert_eq!(now.value("rabbitmq_connections", &[]), Some(1.0));
            assert_eq!(now.value("rabbitmq_channels", &[]), Some(2.0));
            // Confirms went out in batches: at least one latency observation, at most one per confirm.
            let batches = now
                .value("warren_confirm_latency_seconds_count", &[])
                .unwrap_or(0.0);
            assert!((1.0..=17.0).contains(&batches), "{batches}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("counters did not settle: {last:#?}");
}

/// Scrapes `path` until `check` holds (the queues publish their counts once per round).
async fn eventually(addr: SocketAddr, path: &str, check: impl Fn(&Scrape) -> bool) {
    for _ in 0..100 {
        if check(&scrape(addr, path).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never showed the expected figures");
}

#[tokio::test]
async fn detailed_answers_the_families_asked_for_in_the_vhosts_asked_for() {
    let server = start_server().await;
    let addr = server.prometheus_addr.expect("endpoint");
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "deep",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_n(&ch, "deep", 3).await;
    let labels = [("vhost", "/"), ("queue", "deep")];
    eventually(
        addr,
        "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F",
        |s| s.value("rabbitmq_detailed_queue_messages_ready", &labels) == Some(3.0),
    )
    .await;
    let detailed = scrape(
        addr,
        "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F",
    )
    .await;
    assert_eq!(
        detailed.value("rabbitmq_detailed_queue_messages", &labels),
        Some(3.0)
    );
    assert_eq!(
        detailed.types["rabbitmq_detailed_queue_messages_unacked"],
        "gauge"
    );
    // Only the family asked for, and the identity.
    assert!(!detailed
        .types
        .contains_key("rabbitmq_detailed_queue_consumers"));
    assert!(!detailed
        .types
        .contains_key("rabbitmq_global_messages_received_total"));
    assert!(detailed.types.contains_key("rabbitmq_identity_info"));
    // Another vhost: no queue series.
    let elsewhere = scrape(
        addr,
        "/metrics/detailed?family=queue_coarse_metrics&vhost=other",
    )
    .await;
    assert!(!elsewhere.has_sample("rabbitmq_detailed_queue_messages_ready"));
    // Two families, one of them unknown (answered with nothing, as RabbitMQ answers it).
    let two = scrape(
        addr,
        "/metrics/detailed?family=queue_consumer_count&family=no_such_family",
    )
    .await;
    assert_eq!(
        two.value("rabbitmq_detailed_queue_consumers", &labels),
        Some(0.0)
    );
    let unknown = scrape(addr, "/metrics/detailed?family=no_such_family").await;
    let families: Vec<&String> = unknown.types.keys().collect();
    assert_eq!(unknown.types.len(), 2, "{families:?}");
}

#[tokio::test]
async fn other_paths_are_not_found_and_the_endpoint_can_be_turned_off() {
    let server = start_server().await;
    let addr = server.prometheus_addr.expect("endpoint");
    let (status, content_type, body) = get(addr, "/nope").await;
    assert_eq!(status, 404);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, r#"{"error":"Object Not Found","reason":"Not Found"}"#);
    let off = common::start_server_with(|c| c.prometheus.enabled = false).await;
    assert!(off.prometheus_addr.is_none());
}

#[tokio::test]
async fn return_per_object_metrics_makes_metrics_per_queue() {
    let server = common::start_server_with(|c| c.prometheus.return_per_object_metrics = true).await;
    let addr = server.prometheus_addr.expect("endpoint");
    let conn = connect(&server).await;
    let ch = conn.create_channel().await.expect("channel");
    declare(
        &ch,
        "each",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    eventually(addr, "/metrics", |s| {
        s.value(
            "rabbitmq_queue_messages_ready",
            &[("vhost", "/"), ("queue", "each")],
        ) == Some(0.0)
    })
    .await;
}
