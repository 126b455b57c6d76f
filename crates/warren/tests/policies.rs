//! Policies and operator policies end to end: set through the broker's API (what the management API and `warren
//! ctl` call) or the config file, applied at once to running queues and exchanges, combined with queue arguments
//! and each other as RabbitMQ combines them, and kept across a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::process::{fresh_data_dir, BrokerProcess};
use common::{
    confirming_channel, connect, declare, drain_bodies, publish_confirmed, ready_count,
    start_server, wait_for_count, within,
};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::json;
use warren::broker::{Broker, PolicyError, PolicyInput, PolicyKind};

fn policy(
    pattern: &str,
    apply_to: &str,
    priority: i64,
    definition: serde_json::Value,
) -> PolicyInput {
    PolicyInput {
        pattern: pattern.into(),
        apply_to: Some(apply_to.into()),
        priority: Some(json!(priority)),
        definition,
    }
}

/// Sets a policy off the async workers, as the management API does (it commits to disk).
async fn set(broker: &Arc<Broker>, kind: PolicyKind, name: &str, input: PolicyInput) {
    let broker = broker.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || broker.set_policy(kind, "/", &name, &input))
        .await
        .expect("set_policy ran")
        .expect("policy accepted");
}

async fn clear(broker: &Arc<Broker>, kind: PolicyKind, name: &str) -> bool {
    let broker = broker.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || broker.clear_policy(kind, "/", &name))
        .await
        .expect("clear_policy ran")
        .expect("policy cleared")
}

fn arguments(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

#[tokio::test]
async fn a_policy_limits_a_running_queue_at_once_and_clearing_it_lifts_the_limit() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare(
        &ch,
        "work",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for i in 0..5 {
        publish_confirmed(
            &ch,
            "",
            "work",
            &format!("m{i}"),
            BasicProperties::default(),
        )
        .await;
    }
    set(
        &server.broker,
        PolicyKind::Policy,
        "cap",
        policy("^work$", "queues", 0, json!({"max-length": 2})),
    )
    .await;
    wait_for_count(&ch, "work", 2).await;
    publish_confirmed(&ch, "", "work", "m5", BasicProperties::default()).await;
    assert_eq!(ready_count(&ch, "work").await, 2);
    assert!(clear(&server.broker, PolicyKind::Policy, "cap").await);
    assert!(
        !clear(&server.broker, PolicyKind::Policy, "cap").await,
        "already gone"
    );
    publish_confirmed(&ch, "", "work", "m6", BasicProperties::default()).await;
    assert_eq!(drain_bodies(&ch, "work").await, vec!["m4", "m5", "m6"]);
}

#[tokio::test]
async fn a_shortened_ttl_expires_queued_messages_and_the_original_redeclare_still_matches() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let args = arguments(&[("x-message-ttl", AMQPValue::LongInt(600_000))]);
    declare(&ch, "slow", QueueDeclareOptions::default(), args.clone()).await;
    publish_confirmed(&ch, "", "slow", "old", BasicProperties::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The smaller of argument and policy applies, counted from when the message was enqueued: already past.
    set(
        &server.broker,
        PolicyKind::Policy,
        "fast",
        policy("^slow$", "all", 0, json!({"message-ttl": 200})),
    )
    .await;
    wait_for_count(&ch, "slow", 0).await;
    // A client that redeclares with its original arguments is not refused: the policy is not an argument.
    declare(&ch, "slow", QueueDeclareOptions::default(), args).await;
}

#[tokio::test]
async fn a_policy_dead_letter_exchange_and_ttl_make_a_retry_queue() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    set(
        &server.broker,
        PolicyKind::Policy,
        "retry",
        policy(
            "^retry\\.",
            "queues",
            0,
            json!({"message-ttl": 100, "dead-letter-exchange": "", "dead-letter-routing-key": "work"}),
        ),
    )
    .await;
    declare(
        &ch,
        "work",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare(
        &ch,
        "retry.1",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_confirmed(&ch, "", "retry.1", "again", BasicProperties::default()).await;
    let message = within(10, async {
        loop {
            if let Some(m) = ch
                .basic_get("work".into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(message.delivery.data, b"again");
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let reason = headers.inner().get("x-first-death-reason").cloned();
    assert_eq!(
        reason,
        Some(AMQPValue::LongString(LongString::from("expired")))
    );
}

#[tokio::test]
async fn an_operator_policy_limit_wins_when_lower_and_a_higher_priority_policy_wins_over_a_lower() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let broker = &server.broker;
    set(
        broker,
        PolicyKind::Policy,
        "broad",
        policy(".*", "all", 0, json!({"max-length": 1})),
    )
    .await;
    set(
        broker,
        PolicyKind::Policy,
        "narrow",
        policy("^jobs$", "queues", 10, json!({"max-length": 10})),
    )
    .await;
    set(
        broker,
        PolicyKind::Operator,
        "ceiling",
        policy(".*", "queues", 0, json!({"max-length": 3})),
    )
    .await;
    declare(
        &ch,
        "jobs",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare(
        &ch,
        "other",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for i in 0..6 {
        publish_confirmed(
            &ch,
            "",
            "jobs",
            &format!("j{i}"),
            BasicProperties::default(),
        )
        .await;
        publish_confirmed(
            &ch,
            "",
            "other",
            &format!("o{i}"),
            BasicProperties::default(),
        )
        .await;
    }
    // "jobs": "narrow" (10) applies, the operator's 3 is lower. "other": "broad" (1) is lower than 3.
    assert_eq!(drain_bodies(&ch, "jobs").await, vec!["j3", "j4", "j5"]);
    assert_eq!(drain_bodies(&ch, "other").await, vec!["o5"]);
    let listed = broker.policies(PolicyKind::Policy, Some("/"));
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["narrow", "broad"], "highest priority first");
    assert_eq!(broker.policies(PolicyKind::Operator, None).len(), 1);
}

#[tokio::test]
async fn a_policy_gives_an_exchange_its_alternate_exchange() {
    let server = start_server().await;
    let conn = connect(&server).await;
    let ch = confirming_channel(&conn).await;
    ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare orders");
    ch.exchange_declare(
        "unrouted".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare unrouted");
    declare(
        &ch,
        "lost",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    ch.queue_bind(
        "lost".into(),
        "unrouted".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    publish_confirmed(
        &ch,
        "orders",
        "nobody",
        "before",
        BasicProperties::default(),
    )
    .await;
    set(
        &server.broker,
        PolicyKind::Policy,
        "ae",
        policy(
            "^orders$",
            "exchanges",
            0,
            json!({"alternate-exchange": "unrouted"}),
        ),
    )
    .await;
    publish_confirmed(&ch, "orders", "nobody", "after", BasicProperties::default()).await;
    assert_eq!(drain_bodies(&ch, "lost").await, vec!["after"]);
}

#[tokio::test]
async fn a_bad_policy_is_refused_in_rabbitmqs_words_and_changes_nothing() {
    let server = start_server().await;
    let broker = server.broker.clone();
    let refused = tokio::task::spawn_blocking(move || {
        let bad = broker.set_policy(
            PolicyKind::Policy,
            "/",
            "p",
            &policy(".", "all", 0, json!({"message-ttl": "soon"})),
        );
        let unknown = broker.set_policy(
            PolicyKind::Policy,
            "/",
            "p",
            &policy(".", "all", 0, json!({"colour": "red"})),
        );
        let vhost = broker.set_policy(
            PolicyKind::Policy,
            "nowhere",
            "p",
            &policy(".", "all", 0, json!({"max-length": 1})),
        );
        let mirror = broker.set_policy(
            PolicyKind::Policy,
            "/",
            "p",
            &policy(".", "all", 0, json!({"ha-mode": "all"})),
        );
        (
            bad,
            unknown,
            vhost,
            mirror,
            broker.policies(PolicyKind::Policy, None),
        )
    })
    .await
    .expect("ran");
    assert_eq!(
        refused.0.unwrap_err().to_string(),
        "<<\"soon\">> is not a valid message TTL"
    );
    assert_eq!(
        refused.1.unwrap_err().to_string(),
        "[{<<\"colour\">>,<<\"red\">>}] are not recognised policy settings"
    );
    assert!(matches!(refused.2, Err(PolicyError::NoSuchVhost(_))));
    assert!(refused.3.unwrap_err().to_string().contains("not supported"));
    assert!(refused.4.is_empty());
}

#[tokio::test]
async fn config_file_policies_apply_and_stored_policies_survive_a_restart() {
    let data_dir = fresh_data_dir("policies-restart");
    let config = data_dir.with_extension("toml");
    std::fs::write(
        &config,
        r#"
[[policies]]
name = "cap"
pattern = "^capped$"
apply-to = "queues"
definition = { max-length = 1 }
"#,
    )
    .expect("write config");
    let config_arg = config.to_str().expect("utf-8 path");
    let publish_three = |broker: &BrokerProcess, tag: &'static str| {
        let uri = broker.uri();
        async move {
            let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .expect("connect");
            let ch = confirming_channel(&conn).await;
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            declare(&ch, "capped", durable, FieldTable::default()).await;
            for i in 0..3 {
                publish_confirmed(
                    &ch,
                    "",
                    "capped",
                    &format!("{tag}{i}"),
                    BasicProperties::default(),
                )
                .await;
            }
            let count = ready_count(&ch, "capped").await;
            let _ = conn.close(200, "bye".into()).await;
            count
        }
    };
    let broker = BrokerProcess::start(&data_dir, &["--config", config_arg]);
    assert_eq!(
        publish_three(&broker, "a").await,
        1,
        "the config file's policy applies"
    );
    broker.stop();
    // Started again without the config file: the policy was stored.
    let broker = BrokerProcess::start(&data_dir, &[]);
    assert_eq!(
        publish_three(&broker, "b").await,
        1,
        "the stored policy applies after a restart"
    );
    broker.stop();
}
