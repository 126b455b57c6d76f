//! RabbitMQ's limits through a real socket: per-vhost `max-connections` and `max-queues`, per-user
//! `max-connections` and `max-channels`, and the node's `connection_max` and `channel_max_per_node`, each refused
//! with RabbitMQ's reply code and text (that they survive a restart: broker::admin's unit tests).

mod common;

use common::{connect_as, refusal};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;
use warren::auth::limits::LimitMap;
use warren::broker::PermissionDefinition;
use warren::server::RunningServer;

fn map(value: serde_json::Value) -> LimitMap {
    value.as_object().cloned().expect("a JSON object")
}

/// Adds user `name` (password `pw`) with every permission in "/".
fn add_user(server: &RunningServer, name: &str) {
    server
        .broker
        .add_user(name, "pw", Vec::new())
        .expect("user added");
    server
        .broker
        .set_permissions(PermissionDefinition {
            user: name.into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .expect("permissions set");
}

/// The code and text connection.open was refused with.
async fn open_refused(server: &RunningServer, user: &str, password: &str) -> (u16, String) {
    refusal(connect_as(server, user, password, "%2f")).await
}

#[tokio::test]
async fn vhost_connection_limit_refuses_the_next_connection_with_530() {
    let server = common::start_server().await;
    server
        .broker
        .set_vhost_limits("/", map(json!({"max-connections": 1})))
        .expect("limits set");
    let first = common::connect(&server).await;
    assert_eq!(
        open_refused(&server, "guest", "guest").await,
        (
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (1) is reached"
                .to_owned()
        )
    );
    first.close(200, "bye".into()).await.expect("closed");
    // Counted live: once the first is gone (it leaves the registry after close-ok), a new one may open.
    let mut opened = None;
    for _ in 0..50 {
        if let Ok(conn) = connect_as(&server, "guest", "guest", "%2f").await {
            opened = Some(conn);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(opened.is_some(), "a connection opens once the first closed");
    // Negative means no limit, as RabbitMQ; 0 allows none.
    server
        .broker
        .set_vhost_limits("/", map(json!({"max-connections": -1})))
        .expect("limits set");
    let _second = common::connect(&server).await;
    server
        .broker
        .set_vhost_limits("/", map(json!({"max-connections": 0})))
        .expect("limits set");
    assert_eq!(open_refused(&server, "guest", "guest").await.0, 530);
}

#[tokio::test]
async fn user_connection_and_channel_limits_are_counted_across_connections() {
    let server = common::start_server().await;
    add_user(&server, "u");
    server
        .broker
        .set_user_limits("u", map(json!({"max-connections": 2, "max-channels": 2})))
        .expect("limits set");
    let a = connect_as(&server, "u", "pw", "%2f").await.expect("first");
    let b = connect_as(&server, "u", "pw", "%2f").await.expect("second");
    assert_eq!(
        open_refused(&server, "u", "pw").await,
        (
            530,
            "NOT_ALLOWED - connection refused for user 'u': user connection limit (2) is reached"
                .to_owned()
        )
    );
    // Another user is not limited by u's limit.
    let _guest = common::connect(&server).await;
    let _ch1 = a.create_channel().await.expect("channel 1");
    let _ch2 = b
        .create_channel()
        .await
        .expect("channel 2 (on the other connection)");
    assert_eq!(
        refusal(a.create_channel()).await,
        (
            530,
            "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of 2"
                .to_owned()
        )
    );
    server
        .broker
        .clear_user_limits("u", Some("max-channels"))
        .expect("cleared");
    b.create_channel().await.expect("no channel limit any more");
}

#[tokio::test]
async fn vhost_queue_limit_refuses_new_queues_with_406_but_not_redeclares() {
    let server = common::start_server().await;
    server
        .broker
        .set_vhost_limits("/", map(json!({"max-queues": 1})))
        .expect("limits set");
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "q1").await;
    common::declare_plain(&ch, "q1").await;
    assert_eq!(
        refusal(ch.queue_declare(
            "q2".into(),
            QueueDeclareOptions::default(),
            FieldTable::default()
        ))
        .await,
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost '/' (1) is reached"
                .to_owned()
        )
    );
    // A server-named queue counts too.
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default()
        ))
        .await
        .0,
        406
    );
}

#[tokio::test]
async fn node_connection_and_channel_maxima_refuse_with_530() {
    let server = common::start_server_with(|c| {
        c.limits.max_connections = 1;
        c.limits.max_channels_per_node = 1;
    })
    .await;
    let conn = common::connect(&server).await;
    assert_eq!(
        open_refused(&server, "guest", "guest").await,
        (
            530,
            "NOT_ALLOWED - connection refused: node connection limit (1) is reached".to_owned()
        )
    );
    let _ch = conn.create_channel().await.expect("first channel");
    let (code, text) = refusal(conn.create_channel()).await;
    assert_eq!(code, 530);
    assert!(
        text.starts_with("NOT_ALLOWED - number of channels opened on node '")
            && text.ends_with("' has reached the maximum allowed limit of 1"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_limits_are_refused_with_rabbitmq_texts() {
    let server = common::start_server().await;
    let error = server
        .broker
        .set_vhost_limits("/", map(json!({"max-channels": 1})))
        .expect_err("not a vhost limit");
    assert_eq!(
        error.to_string(),
        r#"Unrecognised terms [{<<"max-channels">>,1}] in limits"#
    );
    let error = server
        .broker
        .set_user_limits("guest", map(json!({"max-connections": "5"})))
        .expect_err("not a number");
    assert_eq!(
        error.to_string(),
        r#"max-connections should be a number, actually was <<"5">>"#
    );
    assert!(server
        .broker
        .set_vhost_limits("nope", LimitMap::new())
        .is_err());
    assert_eq!(server.broker.vhost_limits("/"), Some(LimitMap::new()));
}
