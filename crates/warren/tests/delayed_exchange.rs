//! The `x-delayed-message` exchange through a real socket, as RabbitMQ's rabbitmq_delayed_message_exchange plugin
//! behaves: a positive `x-delay` holds the message, which is then routed as the `x-delayed-type` routes (with
//! `x-delay` turned negative); no, zero or negative delay routes at once; a missing or bad `x-delayed-type` is
//! refused with the plugin's replies; a mandatory delayed message is returned at once (the plugin cannot know its
//! route yet) and still delivered. Beyond the plugin: confirms wait for the store, delayed messages survive kill
//! -9 on a durable exchange, and they can be counted, listed and cancelled through the broker's API.

mod common;

use std::time::{Duration, Instant};

use common::process::{fresh_data_dir, BrokerProcess};
use common::{declare_plain, ready_count, refusal, within};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn delayed() -> ExchangeKind {
    ExchangeKind::Custom("x-delayed-message".into())
}

fn delayed_type(kind: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-delayed-type".into(), AMQPValue::LongString(kind.into()));
    t
}

async fn declare_delayed(ch: &Channel, name: &str, kind: &str, durable: bool) {
    within(
        5,
        ch.exchange_declare(
            name.into(),
            delayed(),
            ExchangeDeclareOptions {
                durable,
                ..ExchangeDeclareOptions::default()
            },
            delayed_type(kind),
        ),
    )
    .await
    .expect("exchange.declare");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(
        5,
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        ),
    )
    .await
    .expect("queue.bind");
}

/// Properties with `x-delay` (when given) and other headers.
fn with_delay(
    delay: Option<AMQPValue>,
    extra: &[(&str, &str)],
    persistent: bool,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(delay) = delay {
        headers.insert("x-delay".into(), delay);
    }
    for (k, v) in extra {
        headers.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(if persistent { 2 } else { 1 })
}

fn ms(delay: i64) -> Option<AMQPValue> {
    Some(AMQPValue::LongLongInt(delay))
}

/// Publishes and waits for the confirm; returns whether it was acked and whether a basic.return came with it.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &str,
    properties: BasicProperties,
    mandatory: bool,
) -> (bool, bool) {
    let confirm = within(10, async {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body.as_bytes(),
            properties,
        )
        .await
        .expect("publish sent")
        .await
        .expect("publish confirmed")
    })
    .await;
    let returned = matches!(&confirm, lapin::Confirmation::Ack(Some(_)));
    (confirm.is_ack(), returned)
}

/// Takes one message from `queue`, waiting at most `secs`; the body and its `x-delay` header.
async fn take(ch: &Channel, queue: &str, secs: u64) -> (String, Option<AMQPValue>) {
    within(secs, async {
        loop {
            if let Some(m) = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                let delay = m
                    .delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get("x-delay").cloned());
                return (
                    String::from_utf8_lossy(&m.delivery.data).into_owned(),
                    delay,
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn confirming(conn: &lapin::Connection) -> Channel {
    common::confirming_channel(conn).await
}

#[tokio::test]
async fn routes_after_the_delay_as_each_underlying_type_routes() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming(&conn).await;
    for kind in ["direct", "fanout", "topic", "headers"] {
        let x = format!("dx-{kind}");
        declare_delayed(&ch, &x, kind, false).await;
        let (hit, miss) = (format!("{kind}-hit"), format!("{kind}-miss"));
        declare_plain(&ch, &hit).await;
        declare_plain(&ch, &miss).await;
        let mut match_args = FieldTable::default();
        if kind == "headers" {
            match_args.insert("color".into(), AMQPValue::LongString("red".into()));
        }
        let (hit_key, miss_key) = match kind {
            "topic" => ("orders.*", "payments.#"),
            _ => ("orders", "payments"),
        };
        bind(&ch, &hit, &x, hit_key, match_args.clone()).await;
        if kind != "fanout" {
            let mut other = FieldTable::default();
            if kind == "headers" {
                other.insert("color".into(), AMQPValue::LongString("blue".into()));
            }
            bind(&ch, &miss, &x, miss_key, other).await;
        }
        let started = Instant::now();
        let props = with_delay(ms(400), &[("color", "red")], false);
        let (acked, _) = publish(&ch, &x, "orders.new", "later", props.clone(), false).await;
        assert!(acked);
        let props = BasicProperties::default();
        let (acked, _) = publish(&ch, &x, "orders.new", "now", props, false).await;
        assert!(acked);
        // The undelayed one routes at once (a direct binding of "orders" does not match "orders.new").
        let direct_key = kind == "direct";
        if !direct_key && kind != "headers" {
            assert_eq!(take(&ch, &hit, 5).await.0, "now", "{kind}");
        }
        assert_eq!(ready_count(&ch, &hit).await, 0, "{kind}: held until due");
        if direct_key {
            let props = with_delay(ms(400), &[], false);
            publish(&ch, &x, "orders", "later", props, false).await;
        }
        let (body, delay) = take(&ch, &hit, 10).await;
        assert_eq!(body, "later", "{kind}");
        assert!(
            started.elapsed() >= Duration::from_millis(390),
            "{kind}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            delay,
            Some(AMQPValue::LongLongInt(-400)),
            "{kind}: x-delay turned negative"
        );
        assert_eq!(
            ready_count(&ch, &miss).await,
            0,
            "{kind}: routed as {kind} routes"
        );
    }
}

#[tokio::test]
async fn absent_zero_negative_or_too_long_delay_routes_at_once() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming(&conn).await;
    declare_delayed(&ch, "dx", "direct", false).await;
    declare_plain(&ch, "q").await;
    bind(&ch, "q", "dx", "k", FieldTable::default()).await;
    for (i, delay) in [None, ms(0), ms(-5000), ms(4_294_967_296)]
        .into_iter()
        .enumerate()
    {
        publish(
            &ch,
            "dx",
            "k",
            &format!("m{i}"),
            with_delay(delay, &[], false),
            false,
        )
        .await;
    }
    // Confirmed once in the queue: nothing waits.
    assert_eq!(ready_count(&ch, "q").await, 4);
    let broker = server.broker.clone();
    assert_eq!(broker.delayed_message_count("/", "dx"), Ok(0));
}

#[tokio::test]
async fn missing_or_invalid_delayed_type_is_refused_as_the_plugin_refuses_it() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let declare = |ch: Channel, args: FieldTable| async move {
        ch.exchange_declare(
            "bad".into(),
            delayed(),
            ExchangeDeclareOptions::default(),
            args,
        )
        .await
    };
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        refusal(declare(ch, FieldTable::default())).await,
        (
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
                .to_owned()
        )
    );
    let ch = conn.create_channel().await.expect("channel");
    let mut not_text = FieldTable::default();
    not_text.insert("x-delayed-type".into(), AMQPValue::LongInt(1));
    assert_eq!(refusal(declare(ch, not_text)).await.0, 406);
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        refusal(declare(ch, delayed_type("x-delayed-message"))).await,
        (
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"
                .to_owned()
        )
    );
    // An unknown type is what RabbitMQ's check_type answers for any exchange type: 503, closing the connection.
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        refusal(declare(ch, delayed_type("x-not-valid-type"))).await,
        (
            503,
            "COMMAND_INVALID - unknown exchange type 'x-not-valid-type'".to_owned()
        )
    );
}

#[tokio::test]
async fn a_mandatory_delayed_message_is_returned_at_once_and_still_delivered() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming(&conn).await;
    declare_delayed(&ch, "dx", "direct", false).await;
    declare_plain(&ch, "q").await;
    bind(&ch, "q", "dx", "k", FieldTable::default()).await;
    let (acked, returned) =
        publish(&ch, "dx", "k", "m", with_delay(ms(200), &[], false), true).await;
    assert!(
        acked && returned,
        "the plugin's exchange routes it nowhere now: NO_ROUTE"
    );
    assert_eq!(take(&ch, "q", 10).await.0, "m");
    // Without a delay, mandatory works as for any exchange.
    let (acked, returned) = publish(&ch, "dx", "k", "n", BasicProperties::default(), true).await;
    assert!(acked && !returned);
}

#[tokio::test]
async fn delayed_messages_are_counted_listed_and_cancelled_by_id() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming(&conn).await;
    declare_delayed(&ch, "dx", "topic", true).await;
    declare_plain(&ch, "q").await;
    bind(&ch, "q", "dx", "#", FieldTable::default()).await;
    publish(
        &ch,
        "dx",
        "late",
        "late-body",
        with_delay(ms(60_000), &[], true),
        false,
    )
    .await;
    publish(
        &ch,
        "dx",
        "soon",
        "soon",
        with_delay(ms(30_000), &[], false),
        false,
    )
    .await;
    publish(
        &ch,
        "dx",
        "sooner",
        "x",
        with_delay(ms(700), &[], false),
        false,
    )
    .await;
    let broker = server.broker.clone();
    assert_eq!(broker.delayed_message_count("/", "dx"), Ok(3));
    let listed = broker.delayed_messages("/", "dx", 0, 10).expect("list");
    let keys: Vec<Option<&str>> = listed.iter().map(|m| m.routing_key.as_deref()).collect();
    assert_eq!(
        keys,
        vec![Some("sooner"), Some("soon"), Some("late")],
        "in due order"
    );
    assert_eq!(listed[2].size, 9);
    assert!(listed[0].due_at_ms < listed[1].due_at_ms && listed[1].due_at_ms < listed[2].due_at_ms);
    assert_eq!(
        broker
            .delayed_messages("/", "dx", 1, 1)
            .expect("page")
            .len(),
        1
    );
    // Cancelled: never routed.
    assert_eq!(
        broker.cancel_delayed_message("/", "dx", listed[0].id),
        Ok(true)
    );
    assert_eq!(
        broker.cancel_delayed_message("/", "dx", listed[0].id),
        Ok(false)
    );
    assert_eq!(broker.delayed_message_count("/", "dx"), Ok(2));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(ready_count(&ch, "q").await, 0);
    assert_eq!(
        broker.delayed_message_count("/", "nope"),
        Err(warren::broker::DelayedError::NoSuchExchange("nope".into()))
    );
    assert_eq!(
        broker.delayed_message_count("/", "amq.direct"),
        Err(warren::broker::DelayedError::NotDelayed(
            "amq.direct".into()
        ))
    );
    // Deleting the exchange drops what it held.
    within(5, ch.exchange_delete("dx".into(), Default::default()))
        .await
        .expect("exchange.delete");
    declare_delayed(&ch, "dx", "topic", true).await;
    assert_eq!(broker.delayed_message_count("/", "dx"), Ok(0));
}

/// A durable delayed exchange bound to a durable queue, with confirmed persistent messages: one due while the
/// broker is down, one due after it is back, and a transient one (lost at restart, as transient messages are).
async fn publish_before_crash(broker: &BrokerProcess) {
    let conn = lapin::Connection::connect(&broker.uri(), Default::default())
        .await
        .expect("connect");
    let ch = confirming(&conn).await;
    declare_delayed(&ch, "dx", "direct", true).await;
    within(
        5,
        ch.queue_declare(
            "dq".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
    bind(&ch, "dq", "dx", "k", FieldTable::default()).await;
    for (body, delay, persistent) in [
        ("during-downtime", 500, true),
        ("after-restart", 6_000, true),
        ("transient", 500, false),
    ] {
        let (acked, _) = publish(
            &ch,
            "dx",
            "k",
            body,
            with_delay(ms(delay), &[], persistent),
            false,
        )
        .await;
        assert!(acked, "{body} confirmed");
    }
}

async fn check_after_restart(broker: &BrokerProcess, restarted: Instant) {
    let conn = lapin::Connection::connect(&broker.uri(), Default::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let (body, delay) = take(&ch, "dq", 10).await;
    assert_eq!(body, "during-downtime");
    assert_eq!(delay, Some(AMQPValue::LongLongInt(-500)));
    assert!(
        restarted.elapsed() < Duration::from_secs(5),
        "delivered soon after the restart"
    );
    assert_eq!(ready_count(&ch, "dq").await, 0, "the later one still waits");
    let (body, _) = take(&ch, "dq", 15).await;
    assert_eq!(body, "after-restart");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ready_count(&ch, "dq").await,
        0,
        "the transient one did not survive, nothing twice"
    );
}

#[tokio::test]
async fn confirmed_persistent_delayed_messages_survive_kill_9_and_are_delivered_when_due() {
    let dir = fresh_data_dir("delayed-kill9");
    let broker = BrokerProcess::start(&dir, &[]);
    publish_before_crash(&broker).await;
    broker.kill9();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let restarted = Instant::now();
    let broker = BrokerProcess::start(&dir, &[]);
    check_after_restart(&broker, restarted).await;
}

#[tokio::test]
async fn persistent_delayed_messages_survive_a_clean_restart() {
    let dir = fresh_data_dir("delayed-restart");
    let broker = BrokerProcess::start(&dir, &[]);
    publish_before_crash(&broker).await;
    broker.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let restarted = Instant::now();
    let broker = BrokerProcess::start(&dir, &[]);
    check_after_restart(&broker, restarted).await;
}

/// Messages overdue at a restart are routed as soon as the broker is back, to queues restored in the same start:
/// with many durable queues to restore, a delay store that started routing before its bindings were back would
/// find no route and drop them.
#[tokio::test]
async fn messages_overdue_at_a_restart_reach_queues_restored_in_the_same_start() {
    let dir = fresh_data_dir("delayed-overdue-restore");
    let broker = BrokerProcess::start(&dir, &[]);
    {
        let conn = lapin::Connection::connect(&broker.uri(), Default::default())
            .await
            .expect("connect");
        let ch = confirming(&conn).await;
        declare_delayed(&ch, "dx", "direct", true).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        for i in 0..1000 {
            within(
                5,
                ch.queue_declare(
                    format!("q{i:04}").as_str().into(),
                    durable,
                    FieldTable::default(),
                ),
            )
            .await
            .expect("queue.declare");
        }
        within(
            5,
            ch.queue_declare("target".into(), durable, FieldTable::default()),
        )
        .await
        .expect("queue.declare");
        bind(&ch, "target", "dx", "k", FieldTable::default()).await;
        for i in 0..20 {
            let (acked, _) = publish(
                &ch,
                "dx",
                "k",
                &format!("m{i}"),
                with_delay(ms(300), &[], true),
                false,
            )
            .await;
            assert!(acked, "m{i} confirmed");
        }
    }
    broker.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = lapin::Connection::connect(&broker.uri(), Default::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready_count(&ch, "target").await < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ready_count(&ch, "target").await,
        20,
        "every overdue message routed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ready_count(&ch, "target").await, 20, "and none twice");
}
