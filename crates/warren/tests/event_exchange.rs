//! The event exchange `amq.rabbitmq.event` (RabbitMQ's rabbitmq_event_exchange plugin) through real sockets: absent
//! unless `[event_exchange]` turns it on; then a queue bound to it receives an event for each queue, exchange,
//! binding, connection, channel, consumer, login, policy, vhost, user and permission change, with the plugin's
//! routing keys and headers; clients cannot publish to it (internal).

mod common;

use std::time::Duration;

use common::{connect_as, declare_plain, refusal};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren::broker::{PolicyInput, PolicyKind};
use warren::server::RunningServer;

const EVENTS: &str = "amq.rabbitmq.event";

async fn events_on() -> RunningServer {
    common::start_server_with(|config| config.event_exchange.enabled = true).await
}

/// A server-named queue bound to the event exchange with `key`.
async fn watch(ch: &Channel, key: &str) -> String {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let name = q.name().to_string();
    ch.queue_bind(
        name.as_str().into(),
        EVENTS.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    name
}

/// The events in `queue` once it has stopped growing: (routing key, headers).
async fn take_events(ch: &Channel, queue: &str) -> Vec<(String, FieldTable)> {
    // Events reach their queue without the change waiting for them: give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        assert_eq!(m.delivery.exchange.as_str(), EVENTS);
        assert!(
            m.delivery.data.is_empty(),
            "the plugin's events have no body"
        );
        assert_eq!(m.delivery.properties.delivery_mode(), &Some(2));
        assert!(m.delivery.properties.timestamp().is_some());
        out.push((
            m.delivery.routing_key.to_string(),
            m.delivery.properties.headers().clone().unwrap_or_default(),
        ));
    }
    out
}

fn text(headers: &FieldTable, name: &str) -> String {
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {name} is not a long string: {other:?} in {headers:?}"),
    }
}

fn keys(events: &[(String, FieldTable)]) -> Vec<&str> {
    events.iter().map(|(k, _)| k.as_str()).collect()
}

fn find<'a>(events: &'a [(String, FieldTable)], key: &str) -> &'a FieldTable {
    events
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, h)| h)
        .unwrap_or_else(|| panic!("no {key} event in {:?}", keys(events)))
}

#[tokio::test]
async fn without_the_setting_the_event_exchange_does_not_exist() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare_plain(&ch, "q").await;
    let (code, text) = refusal(ch.queue_bind(
        "q".into(),
        EVENTS.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(code, 404, "{text}");
    assert_eq!(
        text,
        "NOT_FOUND - no exchange 'amq.rabbitmq.event' in vhost '/'"
    );
}

#[tokio::test]
async fn the_event_exchange_is_an_internal_durable_topic_exchange() {
    let server = events_on().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    // Redeclaring it as the plugin declares it is equivalent; publishing to it is refused as for any internal one.
    ch.exchange_declare(
        EVENTS.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            internal: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Watched on the connection: the publish has no reply, and a method sent after it may race the close.
    let mut closes = common::CloseWatcher::new(&conn);
    ch.basic_publish(
        EVENTS.into(),
        "queue.created".into(),
        BasicPublishOptions::default(),
        b"forged",
        BasicProperties::default(),
    )
    .await
    .expect("sent");
    let (code, text) = closes.next_close().await;
    assert_eq!(code, 403, "{text}");
    assert_eq!(
        text,
        "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.event' in vhost '/'"
    );
}

#[tokio::test]
async fn a_bound_queue_receives_each_topology_connection_and_consumer_event() {
    let server = events_on().await;
    let watcher = common::connect(&server).await;
    let wch = watcher.create_channel().await.unwrap();
    let all = watch(&wch, "#").await;
    let queues_only = watch(&wch, "queue.*").await;
    take_events(&wch, &all).await;

    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(60000));
    ch.queue_declare("q".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    ch.exchange_declare(
        "x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "q".into(),
        "x".into(),
        "rk".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            "q".into(),
            "ctag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    ch.queue_unbind("q".into(), "x".into(), "rk".into(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_delete("q".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.exchange_delete("x".into(), Default::default())
        .await
        .unwrap();
    ch.queue_declare(
        "mine".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    let events = take_events(&wch, &all).await;
    assert_eq!(
        keys(&events),
        [
            "user.authentication.success",
            "connection.created",
            "channel.created",
            "queue.created",
            "exchange.created",
            "binding.created",
            "consumer.created",
            "consumer.deleted",
            "binding.deleted",
            "queue.deleted",
            "exchange.deleted",
            "queue.created",
            "channel.closed",
            "queue.deleted",
            "connection.closed",
        ],
        "RabbitMQ 3.10.8's sequence for the same client (its exchange-delete-in-progress parameter events aside)"
    );
    let created = find(&events, "queue.created");
    assert_eq!(text(created, "name"), "q");
    assert_eq!(text(created, "vhost"), "/");
    assert_eq!(text(created, "user_who_performed_action"), "guest");
    assert_eq!(
        created.inner().get("durable"),
        Some(&AMQPValue::Boolean(false))
    );
    assert_eq!(
        created.inner().get("arguments"),
        Some(&AMQPValue::FieldArray(
            vec![AMQPValue::LongString(
                "{<<\"x-message-ttl\">>,signedint,60000}".into()
            )]
            .into()
        ))
    );
    let binding = find(&events, "binding.created");
    assert_eq!(text(binding, "source_name"), "x");
    assert_eq!(text(binding, "destination_name"), "q");
    assert_eq!(text(binding, "destination_kind"), "queue");
    assert_eq!(text(binding, "routing_key"), "rk");
    let connection = find(&events, "connection.created");
    let channel = find(&events, "channel.created");
    let consumer = find(&events, "consumer.created");
    assert_eq!(text(channel, "connection"), text(connection, "pid"));
    assert_eq!(text(consumer, "channel"), text(channel, "pid"));
    assert_eq!(text(consumer, "consumer_tag"), "ctag");
    assert_eq!(
        consumer.inner().get("ack_required"),
        Some(&AMQPValue::Boolean(true))
    );
    assert_eq!(
        connection.inner().get("channel_max"),
        Some(&AMQPValue::LongLongInt(2047))
    );
    // The exclusive queue goes with its connection, deleted by the broker itself.
    let (_, cleanup) = events
        .iter()
        .rfind(|(k, _)| k == "queue.deleted")
        .expect("the exclusive queue's deletion");
    assert_eq!(text(cleanup, "name"), "mine");
    assert_eq!(text(cleanup, "user_who_performed_action"), "rmq-internal");

    let queue_events = take_events(&wch, &queues_only).await;
    assert_eq!(
        keys(&queue_events),
        [
            "queue.created",
            "queue.deleted",
            "queue.created",
            "queue.deleted"
        ]
    );
}

#[tokio::test]
async fn logins_refused_and_accepted_are_reported() {
    let server = events_on().await;
    let watcher = common::connect(&server).await;
    let wch = watcher.create_channel().await.unwrap();
    let q = watch(&wch, "user.#").await;
    assert!(connect_as(&server, "guest", "wrong", "%2f").await.is_err());
    let events = take_events(&wch, &q).await;
    assert_eq!(keys(&events), ["user.authentication.failure"]);
    let failure = &events[0].1;
    assert_eq!(text(failure, "name"), "guest");
    assert_eq!(text(failure, "auth_mechanism"), "PLAIN");
    assert_eq!(text(failure, "connection_type"), "network");
    assert_eq!(text(failure, "peer_host"), "{127,0,0,1}");
    // RabbitMQ's reason is an Erlang string: an array of code points.
    let Some(AMQPValue::FieldArray(error)) = failure.inner().get("error") else {
        panic!("error is an array: {failure:?}");
    };
    let reason: String = error
        .as_slice()
        .iter()
        .filter_map(|c| match c {
            AMQPValue::LongLongInt(c) => char::from_u32(*c as u32),
            _ => None,
        })
        .collect();
    assert_eq!(reason, "user 'guest' - invalid credentials");
    connect_as(&server, "guest", "guest", "%2f").await.unwrap();
    let events = take_events(&wch, &q).await;
    assert_eq!(keys(&events), ["user.authentication.success"]);
}

#[tokio::test]
async fn policies_vhosts_users_and_permissions_set_through_the_admin_api_are_reported() {
    let server = events_on().await;
    let watcher = common::connect(&server).await;
    let wch = watcher.create_channel().await.unwrap();
    let q = watch(&wch, "#").await;
    take_events(&wch, &q).await;
    let broker = server.broker.clone();
    tokio::task::spawn_blocking(move || {
        let input = PolicyInput {
            pattern: "^probe".into(),
            apply_to: Some("queues".into()),
            priority: Some(3.into()),
            definition: serde_json::json!({"message-ttl": 1000}),
        };
        broker
            .set_policy(PolicyKind::Policy, "/", "ttl", &input)
            .unwrap();
        broker.clear_policy(PolicyKind::Policy, "/", "ttl").unwrap();
        broker.add_vhost("pv").unwrap();
        broker
            .add_user("pu", "pw", vec!["administrator".into()])
            .unwrap();
        broker
            .set_permissions(warren::broker::PermissionDefinition {
                user: "pu".into(),
                vhost: "pv".into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            })
            .unwrap();
        broker.clear_permissions("pu", "pv").unwrap();
        broker.delete_user("pu").unwrap();
    })
    .await
    .unwrap();
    server.broker.delete_vhost("pv").await.unwrap();
    let events = take_events(&wch, &q).await;
    assert_eq!(
        keys(&events),
        [
            "policy.set",
            "policy.cleared",
            "vhost.created",
            "user.created",
            "user.tags.set",
            "permission.created",
            "permission.deleted",
            "user.deleted",
            "vhost.deleted",
        ]
    );
    let set = find(&events, "policy.set");
    assert_eq!(text(set, "pattern"), "^probe");
    assert_eq!(text(set, "apply-to"), "queues");
    assert_eq!(
        set.inner().get("priority"),
        Some(&AMQPValue::LongLongInt(3))
    );
    let Some(AMQPValue::FieldTable(definition)) = set.inner().get("definition") else {
        panic!("definition is a table: {set:?}");
    };
    assert_eq!(
        definition.inner().get("message-ttl"),
        Some(&AMQPValue::LongLongInt(1000))
    );
}

#[tokio::test]
async fn events_of_queues_bound_to_the_event_exchange_do_not_loop() {
    let server = events_on().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    let q = watch(&ch, "#").await;
    // Deleting a second watcher raises events about a queue bound to the exchange; each is published once.
    let other = watch(&ch, "#").await;
    ch.queue_delete(other.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let events = take_events(&ch, &q).await;
    assert_eq!(
        keys(&events),
        [
            "binding.created",
            "queue.created",
            "binding.created",
            "binding.deleted",
            "queue.deleted"
        ]
    );
}
