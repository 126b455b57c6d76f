//! Warren's own management endpoints through real sockets: a delayed exchange's waiting messages listed and
//! cancelled, deduplication caches of exchanges and queues counted. Everything is declared and published through
//! the API itself.

mod common;

use common::api::call;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use warren::server::RunningServer;

async fn publish(server: &RunningServer, exchange: &str, key: &str, headers: Value) -> bool {
    let (status, body) = call(
        server,
        Method::POST,
        &format!("/exchanges/%2F/{exchange}/publish"),
        Some(
            json!({"routing_key": key, "payload": "m", "payload_encoding": "string",
                    "properties": {"headers": headers}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["routed"] == true
}

#[tokio::test]
async fn a_delayed_exchanges_waiting_messages_are_listed_in_due_order_and_cancelled() {
    let server = common::start_server().await;
    let (status, _) = call(
        &server,
        Method::PUT,
        "/exchanges/%2F/later",
        Some(json!({"type": "x-delayed-message", "durable": true,
                    "arguments": {"x-delayed-type": "direct"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for (key, delay) in [("b", 90_000), ("a", 60_000), ("c", 120_000)] {
        publish(&server, "later", key, json!({"x-delay": delay})).await;
    }
    let (status, listed) = call(
        &server,
        Method::GET,
        "/exchanges/%2F/later/delayed-messages",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["routing_key"].as_str())
        .collect();
    assert_eq!(keys, ["a", "b", "c"], "due order: {listed}");
    let (_, page) = call(
        &server,
        Method::GET,
        "/exchanges/%2F/later/delayed-messages?offset=1&limit=1",
        None,
    )
    .await;
    assert_eq!(page[0]["routing_key"], "b", "{page}");

    let id = listed[0]["id"].as_u64().expect("an id");
    let path = format!("/exchanges/%2F/later/delayed-messages/{id}");
    assert_eq!(
        call(&server, Method::DELETE, &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&server, Method::DELETE, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, listed) = call(
        &server,
        Method::GET,
        "/exchanges/%2F/later/delayed-messages",
        None,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    assert_eq!(
        call(
            &server,
            Method::GET,
            "/exchanges/%2F/amq.direct/delayed-messages",
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/exchanges/%2F/nonesuch/delayed-messages",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/exchanges/%2F/later/delayed-messages?limit=0",
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn deduplication_caches_of_exchanges_and_queues_are_counted() {
    let server = common::start_server().await;
    let (status, _) = call(
        &server,
        Method::PUT,
        "/exchanges/%2F/once",
        Some(json!({"type": "x-message-deduplication", "durable": false,
                    "arguments": {"x-cache-size": 100, "x-cache-ttl": 60000}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &server,
        Method::PUT,
        "/queues/%2F/deduped",
        Some(json!({"arguments": {"x-message-deduplication": true}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &server,
        Method::POST,
        "/bindings/%2F/e/once/q/deduped",
        Some(json!({"routing_key": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    assert!(publish(&server, "once", "", json!({"x-deduplication-header": "k1"})).await);
    assert!(!publish(&server, "once", "", json!({"x-deduplication-header": "k1"})).await);
    assert!(publish(&server, "once", "", json!({"x-deduplication-header": "k2"})).await);

    let (status, cache) = call(
        &server,
        Method::GET,
        "/exchanges/%2F/once/deduplication",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cache,
        json!({"vhost": "/", "name": "once", "entries": 2, "capacity": 100, "ttl": 60000,
               "persistence": "disk"})
    );
    let (status, queue) = call(
        &server,
        Method::GET,
        "/queues/%2F/deduped/deduplication",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue["entries"], 2, "{queue}");

    // Taken out of the queue, a message's key no longer counts.
    let (status, _) = call(
        &server,
        Method::POST,
        "/queues/%2F/deduped/get",
        Some(json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, queue) = call(
        &server,
        Method::GET,
        "/queues/%2F/deduped/deduplication",
        None,
    )
    .await;
    assert_eq!(queue["entries"], 1, "{queue}");

    assert_eq!(
        call(
            &server,
            Method::GET,
            "/exchanges/%2F/amq.fanout/deduplication",
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = call(&server, Method::PUT, "/queues/%2F/plain", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/queues/%2F/plain/deduplication",
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
}
