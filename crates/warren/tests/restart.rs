//! Restarts of the real broker process: durable topology and persistent messages come back, transient ones do
//! not, unacked messages are redelivered with redelivered=true.

mod common;

use common::process::{fresh_data_dir, BrokerProcess};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

async fn connect(broker: &BrokerProcess) -> Connection {
    common::within(
        30,
        Connection::connect(&broker.uri(), ConnectionProperties::default()),
    )
    .await
    .expect("connect")
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

async fn publish_confirmed(
    ch: &lapin::Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
}

async fn drain(ch: &lapin::Channel, queue: &str) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push((m.delivery.data.clone(), m.delivery.redelivered));
    }
    out
}

async fn declare_topology_and_publish(broker: &BrokerProcess) {
    let conn = connect(broker).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Topic,
        durable_x,
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "tx".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare("dq".into(), durable_queue(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare(
        "tq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "dq".into(),
        "dx".into(),
        "a.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..3u8 {
        publish_confirmed(&ch, "dx", "a.b", &[b'p', i], persistent()).await;
        publish_confirmed(&ch, "", "dq", &[b't', i], BasicProperties::default()).await;
    }
    publish_confirmed(&ch, "", "tq", b"transient queue", persistent()).await;
    conn.close(200, "bye".into()).await.unwrap();
}

async fn check_after_restart(broker: &BrokerProcess) {
    let conn = connect(broker).await;
    let ch = conn.create_channel().await.unwrap();
    let dq = ch
        .queue_declare("dq".into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(
        dq.message_count(),
        3,
        "only the persistent messages survive"
    );
    let got = drain(&ch, "dq").await;
    assert_eq!(
        got,
        vec![
            (b"p\0".to_vec(), true),
            (b"p\x01".to_vec(), true),
            (b"p\x02".to_vec(), true)
        ],
        "persistent messages in order, marked redelivered"
    );
    // The durable binding came back: routing through dx reaches dq again.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "dx", "a.c", b"after", persistent()).await;
    assert_eq!(drain(&ch, "dq").await, vec![(b"after".to_vec(), false)]);
    let missing = ch
        .queue_declare("tq".into(), passive(), FieldTable::default())
        .await;
    assert!(missing.is_err(), "transient queue is gone");
    let ch = conn.create_channel().await.unwrap();
    let missing = ch
        .exchange_declare(
            "tx".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(missing.is_err(), "transient exchange is gone");
}

#[tokio::test]
async fn durable_topology_and_persistent_messages_survive_a_clean_restart() {
    let dir = fresh_data_dir("restart-clean");
    let broker = BrokerProcess::start(&dir, &[]);
    declare_topology_and_publish(&broker).await;
    broker.stop();
    let broker = BrokerProcess::start(&dir, &[]);
    check_after_restart(&broker).await;
}

#[tokio::test]
async fn confirmed_persistent_messages_survive_sigkill() {
    let dir = fresh_data_dir("restart-kill");
    let broker = BrokerProcess::start(&dir, &[]);
    declare_topology_and_publish(&broker).await;
    broker.kill9();
    let broker = BrokerProcess::start(&dir, &[]);
    check_after_restart(&broker).await;
}

#[tokio::test]
async fn unacked_messages_are_redelivered_after_restart() {
    let dir = fresh_data_dir("restart-unacked");
    let broker = BrokerProcess::start(&dir, &[]);
    {
        let conn = connect(&broker).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("work".into(), durable_queue(), FieldTable::default())
            .await
            .unwrap();
        publish_confirmed(&ch, "", "work", b"job", persistent()).await;
        let mut consumer = ch
            .basic_consume(
                "work".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let delivery = common::within(10, consumer.next()).await.unwrap().unwrap();
        assert_eq!(delivery.data, b"job");
        assert!(!delivery.redelivered);
        // Not acked: the broker dies holding it.
        broker.kill9();
    }
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(drain(&ch, "work").await, vec![(b"job".to_vec(), true)]);
}

#[tokio::test]
async fn exclusive_queues_are_not_restored() {
    let dir = fresh_data_dir("restart-exclusive");
    let broker = BrokerProcess::start(&dir, &[]);
    {
        let conn = connect(&broker).await;
        let ch = conn.create_channel().await.unwrap();
        let opts = QueueDeclareOptions {
            durable: true,
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare("mine".into(), opts, FieldTable::default())
            .await
            .unwrap();
        broker.kill9();
    }
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    assert!(ch
        .queue_declare("mine".into(), passive(), FieldTable::default())
        .await
        .is_err());
}

#[tokio::test]
async fn a_vhosts_default_queue_type_survives_a_restart() {
    let dir = fresh_data_dir("restart-default-queue-type");
    let broker = BrokerProcess::start(&dir, &[]);
    let http = reqwest::Client::new();
    let api = |broker: &BrokerProcess, path: &str| {
        format!("http://127.0.0.1:{}/api{path}", broker.management_port())
    };
    let created = http
        .put(api(&broker, "/vhosts/qv"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"default_queue_type": "quorum"}))
        .send()
        .await
        .expect("PUT vhost");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    // The limits set afterwards keep it.
    let limits = http
        .put(api(&broker, "/vhost-limits/qv/max-queues"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"value": 10}))
        .send()
        .await
        .expect("PUT limit");
    assert!(limits.status().is_success(), "{}", limits.status());
    broker.stop();
    let broker = BrokerProcess::start(&dir, &[]);
    let vhost: serde_json::Value = http
        .get(api(&broker, "/vhosts/qv"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("GET vhost")
        .json()
        .await
        .expect("JSON");
    assert_eq!(vhost["default_queue_type"], "quorum");
    let uri = format!("amqp://guest:guest@{}/qv", broker.addr);
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("connect to qv");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare("jobs".into(), durable_queue(), FieldTable::default())
        .await
        .expect("declare");
    let queue: serde_json::Value = http
        .get(api(&broker, "/queues/qv/jobs"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("GET queue")
        .json()
        .await
        .expect("JSON");
    assert_eq!(queue["type"], "quorum");
}
