//! Shovels between two Warrens in this process, set through the management API as RabbitMQ's shovel plugin is
//! (`PUT /api/parameters/shovel/{vhost}/{name}`), and from the config file (static shovels): messages moved whole,
//! RabbitMQ's optional headers and properties, `src-delete-after`, the status endpoints, and RabbitMQ's refusals.

mod common;

use std::time::Duration;

use common::api::call;
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use warren::server::RunningServer;

/// Publishes `count` persistent messages `prefix0..` to `queue` (declared durable) on `server`, all confirmed.
async fn fill(server: &RunningServer, queue: &str, prefix: &str, count: usize) {
    let conn = common::connect(server).await;
    let ch = common::confirming_channel(&conn).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    common::declare(&ch, queue, durable, FieldTable::default()).await;
    let mut confirms = Vec::with_capacity(count);
    for i in 0..count {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("{prefix}{i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        assert!(confirm.await.expect("confirm").is_ack());
    }
    conn.close(200, "done".into()).await.expect("close");
}

/// Waits (at most 30 s) until `queue` on `server` holds `count` ready messages.
async fn await_count(server: &RunningServer, queue: &str, count: u32) {
    let conn = common::connect(server).await;
    let mut ch = conn.create_channel().await.expect("channel");
    common::within(30, async {
        loop {
            match ch
                .queue_declare(queue.into(), common::passive(), FieldTable::default())
                .await
            {
                Ok(q) if q.message_count() == count => return,
                Ok(_) => {}
                // Not declared yet: the 404 closed the channel.
                Err(_) => ch = conn.create_channel().await.expect("channel"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn set_shovel(server: &RunningServer, name: &str, value: Value) -> (StatusCode, Value) {
    call(
        server,
        Method::PUT,
        &format!("/parameters/shovel/%2F/{name}"),
        Some(json!({ "value": value })),
    )
    .await
}

/// The status of shovel `name` once it satisfies `done` (at most 30 s).
async fn status_when(server: &RunningServer, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::within(30, async {
        loop {
            let (_, status) = call(
                server,
                Method::GET,
                &format!("/shovels/vhost/%2F/{name}"),
                None,
            )
            .await;
            if done(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_dynamic_shovel_moves_every_message_to_another_warren_and_reports_its_status() {
    let source = common::start_server().await;
    let destination = common::start_server().await;
    fill(&source, "orders", "m", 5_000).await;
    let (code, _) = set_shovel(
        &source,
        "to-dr",
        json!({"src-uri": source.uri(), "src-queue": "orders", "dest-uri": destination.uri(),
               "dest-queue": "orders-copy", "dest-add-forward-headers": true, "src-prefetch-count": 200}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    await_count(&destination, "orders-copy", 5_000).await;
    await_count(&source, "orders", 0).await;
    let status = status_when(&source, "to-dr", |s| s["messages_moved"] == 5_000).await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["type"], "dynamic");
    assert_eq!(status["vhost"], "/");
    assert_eq!(status["src_queue"], "orders");
    assert_eq!(status["dest_queue"], "orders-copy");
    assert_eq!(status["src_protocol"], "amqp091");
    // The URIs are shown without their passwords.
    assert!(
        !status["src_uri"].as_str().unwrap().contains("guest:guest"),
        "{status}"
    );

    // Every message arrived once, in order, with the x-shovelled header naming the shovel.
    let conn = common::connect(&destination).await;
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "orders-copy".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..5_000 {
        let delivery = common::within(10, consumer.next()).await.unwrap().unwrap();
        assert_eq!(delivery.data, format!("m{i}").as_bytes());
        if i == 0 {
            assert_eq!(delivery.properties.delivery_mode(), &Some(2));
            let headers = delivery.properties.headers().clone().unwrap();
            let Some(AMQPValue::FieldArray(trail)) = headers.inner().get("x-shovelled") else {
                panic!("no x-shovelled header: {headers:?}");
            };
            let AMQPValue::FieldTable(entry) = &trail.as_slice()[0] else {
                panic!("{trail:?}")
            };
            let text = |k: &str| match entry.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                other => panic!("{k}: {other:?}"),
            };
            assert_eq!(text("shovel-name"), "to-dr");
            assert_eq!(text("shovel-type"), "dynamic");
            assert_eq!(text("shovel-vhost"), "/");
            assert_eq!(text("src-queue"), "orders");
            assert_eq!(text("dest-queue"), "orders-copy");
        }
    }

    // Listed as a parameter, and deleted with it.
    let (_, listed) = call(&source, Method::GET, "/parameters/shovel", None).await;
    assert_eq!(listed[0]["name"], "to-dr");
    assert_eq!(listed[0]["value"]["src-queue"], "orders");
    let (code, _) = call(
        &source,
        Method::DELETE,
        "/parameters/shovel/%2F/to-dr",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (_, statuses) = call(&source, Method::GET, "/shovels", None).await;
    assert_eq!(statuses, json!([]));
    // Stopped: what is published now stays at the source.
    fill(&source, "orders", "late", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    await_count(&source, "orders", 3).await;
}

#[tokio::test]
async fn src_delete_after_queue_length_moves_what_was_there_then_deletes_the_shovel() {
    let source = common::start_server().await;
    let destination = common::start_server().await;
    fill(&source, "backlog", "b", 300).await;
    let (code, _) = set_shovel(
        &source,
        "drain-once",
        json!({"src-uri": source.uri(), "src-queue": "backlog", "dest-uri": destination.uri(),
               "dest-queue": "moved", "src-delete-after": "queue-length", "src-prefetch-count": 7}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    await_count(&destination, "moved", 300).await;
    common::within(30, async {
        loop {
            let (_, params) = call(&source, Method::GET, "/parameters/shovel", None).await;
            if params == json!([]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (_, statuses) = call(&source, Method::GET, "/shovels", None).await;
    assert_eq!(statuses, json!([]));
    fill(&source, "backlog", "after", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    await_count(&source, "backlog", 5).await;
    await_count(&destination, "moved", 300).await;
}

#[tokio::test]
async fn an_exchange_source_with_a_key_and_publish_properties_and_a_timestamp_header() {
    let source = common::start_server().await;
    let destination = common::start_server().await;
    let (code, _) = set_shovel(
        &source,
        "events",
        json!({"src-uri": source.uri(), "src-exchange": "amq.topic", "src-exchange-key": "audit.#",
               "dest-uri": destination.uri(), "dest-queue": "audit", "ack-mode": "on-publish",
               "dest-publish-properties": {"app_id": "shovelled", "priority": 3},
               "dest-add-timestamp-header": true}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    status_when(&source, "events", |s| s["state"] == "running").await;
    let conn = common::connect(&source).await;
    let ch = common::confirming_channel(&conn).await;
    for key in ["audit.login", "billing.invoice", "audit.logout"] {
        common::publish_confirmed(&ch, "amq.topic", key, key, BasicProperties::default()).await;
    }
    await_count(&destination, "audit", 2).await;
    let conn = common::connect(&destination).await;
    let ch = conn.create_channel().await.unwrap();
    let first = common::get_message(&ch, "audit").await;
    assert_eq!(first.delivery.data, b"audit.login");
    assert_eq!(first.delivery.routing_key.as_str(), "audit");
    assert_eq!(
        first
            .delivery
            .properties
            .app_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("shovelled")
    );
    assert_eq!(first.delivery.properties.priority(), &Some(3));
    let headers = first.delivery.properties.headers().clone().unwrap();
    assert!(
        matches!(headers.inner().get("x-shovelled-timestamp"), Some(AMQPValue::LongLongInt(t)) if *t > 1_700_000_000)
    );
    assert!(
        !headers.contains_key("x-shovelled"),
        "forward headers are off by default"
    );
    let (_, status) = call(&source, Method::GET, "/shovels/%2F", None).await;
    assert_eq!(status[0]["src_exchange"], "amq.topic");
    assert_eq!(status[0]["src_exchange_key"], "audit.#");
}

#[tokio::test]
async fn a_static_shovel_from_the_config_file_runs_with_the_broker() {
    let upstream = common::start_server().await;
    fill(&upstream, "feed", "f", 50).await;
    let uri = upstream.uri();
    let local = common::start_server_with(|config| {
        // The same keys as a [[shovels]] table of the config file (tests/config covers reading it).
        let value = json!({"src-uri": uri, "src-queue": "feed", "dest-uri": uri, "dest-queue": "feed-copy"});
        config.shovels.push(warren::config::StaticShovel {
            name: "pull-feed".into(),
            definition: warren::shovel::ShovelDefinition::parse(&value).unwrap(),
        });
    })
    .await;
    await_count(&upstream, "feed-copy", 50).await;
    let (_, statuses) = call(&local, Method::GET, "/shovels", None).await;
    assert_eq!(statuses[0]["name"], "pull-feed");
    assert_eq!(statuses[0]["type"], "static");
    assert!(statuses[0].get("vhost").is_none());
}

#[tokio::test]
async fn a_shovel_that_cannot_connect_is_terminated_with_the_reason_and_retries() {
    let source = common::start_server().await;
    // A port nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, _) = set_shovel(
        &source,
        "nowhere",
        json!({"src-uri": source.uri(), "src-queue": "q", "dest-uri": format!("amqp://guest:guest@{closed}"),
               "reconnect-delay": 0.2}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let status = status_when(&source, "nowhere", |s| s["state"] == "terminated").await;
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string()),
        "{status}"
    );
    assert_eq!(status["last_error"], status["reason"]);
    // Restart is accepted (it fails again, the same way).
    let (code, _) = call(
        &source,
        Method::DELETE,
        "/shovels/vhost/%2F/nowhere/restart",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = call(
        &source,
        Method::DELETE,
        "/shovels/vhost/%2F/absent/restart",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_definitions_are_refused_with_rabbitmqs_validation_errors() {
    let server = common::start_server().await;
    let uri = server.uri();
    let cases = [
        (
            json!({"src-uri": uri, "dest-uri": uri}),
            "Must specify 'src-exchange' or 'src-queue'",
        ),
        (
            json!({"src-uri": uri, "src-queue": "a", "dest-uri": uri, "ack-mode": "no-ack", "src-delete-after": 10}),
            "Cannot specify 'no-ack' and numerical 'delete-after'",
        ),
        (
            json!({"src-queue": "a", "dest-uri": uri}),
            "Key \"src-uri\" not found in shovel",
        ),
    ];
    for (value, reason) in cases {
        let (code, body) = set_shovel(&server, "bad", value).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "bad_request", "reason": format!("Validation failed\n\n{reason}\n")})
        );
    }
    let (_, params) = call(&server, Method::GET, "/parameters/shovel", None).await;
    assert_eq!(params, json!([]));
    let (code, _) = call(
        &server,
        Method::PUT,
        "/parameters/shovel/no-such-vhost/s",
        Some(json!({"value": {"src-uri": uri, "src-queue": "a", "dest-uri": uri}})),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_uri_without_a_host_is_this_node_as_rabbitmqs_direct_connections_are() {
    let server = common::start_server().await;
    fill(&server, "here", "h", 200).await;
    // user_id names a user other than the shovel's: the local node's shovels may forward it, as RabbitMQ's do.
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    let props = BasicProperties::default().with_user_id("guest".into());
    common::publish_confirmed(&ch, "", "here", "signed", props).await;
    let (code, _) = set_shovel(
        &server,
        "local",
        json!({"src-uri": "amqp://", "src-queue": "here", "dest-uri": "amqp:///%2F", "dest-queue": "there"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    await_count(&server, "there", 201).await;
    let status = status_when(&server, "local", |s| s["messages_moved"] == 201).await;
    assert_eq!(status["src_uri"], "amqp://");

    // The internal user is reachable by no one else: no password but the process's own, no stored user of its name.
    let refused = lapin::Connection::connect(
        &format!("amqp://warren-internal:guest@{}/%2f", server.addr),
        lapin::ConnectionProperties::default(),
    )
    .await;
    assert!(
        refused.is_err(),
        "logged in as the internal user with a guessed password"
    );
    let (code, body) = call(
        &server,
        Method::PUT,
        "/users/warren-internal",
        Some(json!({"password": "x", "tags": "administrator"})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn an_idle_shovel_notices_its_destination_connection_closing_and_reconnects() {
    let source = common::start_server().await;
    let destination = common::start_server().await;
    let (code, _) = set_shovel(
        &source,
        "idle",
        json!({"src-uri": source.uri(), "src-queue": "in", "dest-uri": destination.uri(),
               "dest-queue": "out", "reconnect-delay": 2}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    status_when(&source, "idle", |s| s["state"] == "running").await;

    // An operator closes the shovel's connection at the destination while nothing flows.
    let (_, connections) = call(&destination, Method::GET, "/connections", None).await;
    let shovel_connection = connections
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_properties"]["connection_name"] == "Shovel idle")
        .unwrap_or_else(|| panic!("no shovel connection at the destination: {connections}"))
        .clone();
    let name = shovel_connection["name"].as_str().unwrap();
    let path = format!(
        "/connections/{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    let (code, _) = call(&destination, Method::DELETE, &path, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);

    // The shovel ends the session with the reason instead of reporting `running` over a dead connection...
    let status = status_when(&source, "idle", |s| s["state"] == "terminated").await;
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("the destination connection was lost"),
        "{status}"
    );
    // ...and connects again after reconnect-delay: what is published next arrives.
    status_when(&source, "idle", |s| s["state"] == "running").await;
    fill(&source, "in", "after", 3).await;
    await_count(&destination, "out", 3).await;
}
