//! The management HTTP API through real sockets: the `rabbitmq_http_client` crate (the Rust client operators use
//! against RabbitMQ) drives it, and raw HTTP (reqwest) checks the status codes and error bodies RabbitMQ 3.10
//! answers with. Each test starts its own broker with the API on a free port.

mod common;

use std::time::Duration;

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use rabbitmq_http_client::api::Client;
use rabbitmq_http_client::commons::PolicyTarget;
use rabbitmq_http_client::password_hashing;
use rabbitmq_http_client::requests::{
    ExchangeParams, Permissions, PolicyParams, QueueParams, UserParams,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use warren::server::RunningServer;

fn base(server: &RunningServer) -> String {
    let addr = server.management_addr.expect("management API enabled");
    format!("http://{addr}/api")
}

fn client(server: &RunningServer) -> Client<String, &'static str, &'static str> {
    Client::new(base(server), "guest", "guest")
}

/// A raw request as `user`; returns the status, the headers and the body as JSON (Null when empty).
async fn call(
    server: &RunningServer,
    method: reqwest::Method,
    path: &str,
    user: (&str, &str),
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", base(server)))
        .basic_auth(user.0, Some(user.1));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body read");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json)
}

const GUEST: (&str, &str) = ("guest", "guest");

#[tokio::test]
async fn a_failed_login_is_401_with_rabbitmqs_challenge_and_tags_limit_what_a_user_may_do() {
    let server = common::start_server().await;
    let (status, headers, body) = call(
        &server,
        reqwest::Method::GET,
        "/overview",
        ("guest", "nope"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"RabbitMQ Management\"")
    );
    assert_eq!(
        body,
        json!({"error": "not_authorized", "reason": "Login failed"})
    );

    let http = client(&server);
    let hash = password_hashing::base64_encoded_salted_password_hash_sha256(
        &password_hashing::salt(),
        "pw",
    );
    http.create_user(&UserParams {
        name: "mgr",
        password_hash: &hash,
        tags: "management",
    })
    .await
    .expect("user created with a password hash");
    // A management user: no admin endpoints, no vhost without permissions.
    let mgr = ("mgr", "pw");
    let (status, _, body) = call(&server, reqwest::Method::GET, "/users", mgr, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "not_authorised", "reason": "Not administrator user"})
    );
    let (status, _, body) = call(&server, reqwest::Method::GET, "/queues/%2F", mgr, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "User not authorised to access virtual host");
    let (status, _, body) = call(&server, reqwest::Method::GET, "/nodes", mgr, None).await;
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::UNAUTHORIZED, json!("Not monitor user"))
    );
    let (status, _, body) = call(&server, reqwest::Method::GET, "/whoami", mgr, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"name": "mgr", "tags": ["management"]}));

    // Tags as a list, as 3.10 takes them too; a user without a management tag cannot use the API.
    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/users/plain",
        GUEST,
        Some(json!({"password": "pw", "tags": []})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/whoami",
        ("plain", "pw"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::UNAUTHORIZED, json!("Not management user"))
    );

    // Given permissions, the management user reaches the vhost.
    http.declare_permissions(&Permissions {
        user: "mgr",
        vhost: "/",
        configure: ".*",
        read: ".*",
        write: ".*",
    })
    .await
    .expect("permissions set");
    let (status, _, _) = call(&server, reqwest::Method::GET, "/queues/%2F", mgr, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn queues_and_exchanges_are_declared_bound_published_to_read_purged_and_deleted() {
    let server = common::start_server().await;
    let http = client(&server);
    http.declare_queue("/", &QueueParams::new_durable_classic_queue("orders", None))
        .await
        .expect("queue declared");
    http.declare_exchange("/", &ExchangeParams::durable_direct("shop", None))
        .await
        .expect("exchange declared");
    http.bind_queue("/", "orders", "shop", Some("new"), None)
        .await
        .expect("bound");

    // Declaring again is 204; an inequivalent declare is 400 with RabbitMQ's text.
    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/queues/%2F/orders",
        GUEST,
        Some(json!({"durable": true, "arguments": {"x-queue-type": "classic"}})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = call(
        &server,
        reqwest::Method::PUT,
        "/queues/%2F/orders",
        GUEST,
        Some(json!({"durable": false})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    assert!(body["reason"]
        .as_str()
        .unwrap_or("")
        .starts_with("inequivalent arg 'durable' for queue 'orders'"));

    let mut properties = serde_json::Map::new();
    properties.insert("delivery_mode".into(), json!(2));
    let routed = http
        .publish_message("/", "shop", "new", "order 1", properties.clone())
        .await
        .expect("published");
    assert!(routed.routed);
    let unrouted = http
        .publish_message("/", "shop", "nowhere", "lost", properties)
        .await
        .expect("published");
    assert!(!unrouted.routed);
    let (status, _, body) = call(&server, reqwest::Method::POST, "/exchanges/%2F/missing/publish", GUEST,
        Some(json!({"properties": {}, "routing_key": "k", "payload": "x", "payload_encoding": "string"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["reason"],
        "404 NOT_FOUND - no exchange 'missing' in vhost '/'"
    );

    let queue = http
        .get_queue_info("/", "orders")
        .await
        .expect("queue listed");
    assert_eq!(queue.message_count, 1);
    assert!(queue.durable);

    // ack_requeue_true leaves the message, marked redelivered; ack_requeue_false takes it.
    let got = http
        .get_messages("/", "orders", 5, "ack_requeue_true")
        .await
        .expect("got");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, "order 1");
    assert_eq!(got[0].message_count, 0);
    let (status, _, body) = call(&server, reqwest::Method::POST, "/queues/%2F/orders/get", GUEST,
        Some(json!({"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64", "truncate": 5}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["redelivered"], true);
    assert_eq!(body[0]["payload"], "b3JkZXI=");
    assert_eq!(body[0]["payload_bytes"], 7);
    assert_eq!(body[0]["properties"], json!({"delivery_mode": 2}));
    assert_eq!(
        http.get_queue_info("/", "orders")
            .await
            .expect("listed")
            .message_count,
        0
    );

    // Purge.
    let publish = json!({"properties": {}, "routing_key": "orders", "payload": "p", "payload_encoding": "string"});
    for _ in 0..3 {
        call(
            &server,
            reqwest::Method::POST,
            "/exchanges/%2F/amq.default/publish",
            GUEST,
            Some(publish.clone()),
        )
        .await;
    }
    assert_eq!(
        http.get_queue_info("/", "orders")
            .await
            .expect("listed")
            .message_count,
        3
    );
    http.purge_queue("/", "orders").await.expect("purged");
    assert_eq!(
        http.get_queue_info("/", "orders")
            .await
            .expect("listed")
            .message_count,
        0
    );

    // Bindings: listed with their properties key, deleted by it; a second delete is 404.
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/bindings/%2F/e/shop/q/orders",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["properties_key"], "new");
    let (status, headers, _) = call(
        &server,
        reqwest::Method::POST,
        "/bindings/%2F/e/shop/q/orders",
        GUEST,
        Some(json!({"routing_key": "old", "arguments": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some("orders/old")
    );
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/queues/%2F/orders/bindings",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = body.as_array().map_or(Vec::new(), |b| {
        b.iter().filter_map(|b| b["routing_key"].as_str()).collect()
    });
    assert_eq!(keys, ["orders", "new", "old"]);
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/bindings/%2F/e/shop/q/orders/new",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = call(
        &server,
        reqwest::Method::DELETE,
        "/bindings/%2F/e/shop/q/orders/new",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );

    // Deleting: amq.* refused as RabbitMQ refuses it; the queue and exchange go, then 404.
    let (status, _, body) = call(
        &server,
        reqwest::Method::DELETE,
        "/exchanges/%2F/amq.direct",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "not_authorised", "reason": "Access refused."})
    );
    http.delete_exchange("/", "shop", false)
        .await
        .expect("exchange deleted");
    http.delete_queue("/", "orders", false)
        .await
        .expect("queue deleted");
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/queues/%2F/orders",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = call(
        &server,
        reqwest::Method::PUT,
        "/queues/nowhere/q",
        GUEST,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
}

#[tokio::test]
async fn list_endpoints_page_sort_filter_and_keep_columns_as_rabbitmq() {
    let server = common::start_server().await;
    for name in ["q-b", "q-a", "other", "q-c"] {
        let (status, _, _) = call(
            &server,
            reqwest::Method::PUT,
            &format!("/queues/%2F/{name}"),
            GUEST,
            Some(json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/queues?columns=name",
        GUEST,
        None,
    )
    .await;
    assert_eq!(
        body,
        json!([{"name": "other"}, {"name": "q-a"}, {"name": "q-b"}, {"name": "q-c"}])
    );
    let (_, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/queues?page=1&page_size=2&name=q-&sort=name&sort_reverse=true&columns=name,vhost",
        GUEST,
        None,
    )
    .await;
    assert_eq!(
        body,
        json!({
            "filtered_count": 3, "item_count": 2, "items": [{"name": "q-c", "vhost": "/"}, {"name": "q-b", "vhost": "/"}],
            "page": 1, "page_count": 2, "page_size": 2, "total_count": 4
        })
    );
    let (status, _, body) =
        call(&server, reqwest::Method::GET, "/queues?page=9", GUEST, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "page_out_of_range");
}

#[tokio::test]
async fn users_permissions_policies_and_definitions_round_trip() {
    let server = common::start_server().await;
    let http = client(&server);
    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/vhosts/shop",
        GUEST,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/vhosts/shop",
        GUEST,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/users/alice",
        GUEST,
        Some(json!({"password": "secret", "tags": "management,policymaker"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(
        &server,
        reqwest::Method::PUT,
        "/permissions/shop/nobody",
        GUEST,
        Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
    )
    .await;
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!("vhost_or_user_not_found"))
    );
    http.declare_permissions(&Permissions {
        user: "alice",
        vhost: "shop",
        configure: ".*",
        read: ".*",
        write: "^w",
    })
    .await
    .expect("permissions");
    let (_, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/permissions/shop/alice",
        GUEST,
        None,
    )
    .await;
    assert_eq!(
        body,
        json!({"user": "alice", "vhost": "shop", "configure": ".*", "write": "^w", "read": ".*"})
    );

    // A policymaker sets a policy in a vhost it may use.
    let mut definition = serde_json::Map::new();
    definition.insert("max-length".into(), json!(5));
    let alice = Client::new(base(&server), "alice", "secret");
    alice
        .declare_policy(&PolicyParams {
            vhost: "shop",
            name: "short",
            pattern: "^q",
            apply_to: PolicyTarget::Queues,
            priority: 1,
            definition,
        })
        .await
        .expect("policy declared by a policymaker");
    let policy = http.get_policy("shop", "short").await.expect("policy read");
    assert_eq!(policy.pattern, "^q");
    let (status, _, body) = call(
        &server,
        reqwest::Method::PUT,
        "/policies/shop/bad",
        GUEST,
        Some(json!({"pattern": ".*", "definition": {"bogus": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["reason"]
        .as_str()
        .unwrap_or("")
        .starts_with("Validation failed"));
    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/queues/shop/q1",
        ("alice", "secret"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/queues/shop/q1",
        GUEST,
        None,
    )
    .await;
    assert_eq!(body["policy"], "short");

    // Export, delete, import: the durable objects come back, live.
    let exported = http
        .export_cluster_wide_definitions()
        .await
        .expect("exported");
    let exported: Value = serde_json::from_str(&exported).expect("export is JSON");
    assert!(exported["queues"]
        .as_array()
        .is_some_and(|q| q.iter().any(|q| q["name"] == "q1")));
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/vhosts/shop",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&server, reqwest::Method::GET, "/vhosts/shop", GUEST, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    http.import_definitions(exported).await.expect("imported");
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/queues/shop/q1",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["policy"], "short");
    let (_, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/permissions/shop/alice",
        GUEST,
        None,
    )
    .await;
    assert_eq!(body["write"], "^w");

    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/users/alice",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/users/alice",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_connection_is_listed_and_closed_with_320_and_the_reason_given() {
    let server = common::start_server().await;
    let amqp = common::connect(&server).await;
    let channel = amqp.create_channel().await.expect("channel");
    channel
        .queue_declare(
            "work".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declared");
    channel
        .basic_publish(
            "".into(),
            "work".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .expect("published");
    let http = client(&server);
    let connections = common::within(5, async {
        loop {
            let list = http.list_connections().await.expect("listed");
            if !list.is_empty() {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].username, "guest");
    let (_, _, overview) = call(&server, reqwest::Method::GET, "/overview", GUEST, None).await;
    assert_eq!(overview["object_totals"]["connections"], 1);
    assert_eq!(overview["object_totals"]["queues"], 1);

    let mut watcher = common::CloseWatcher::new(&amqp);
    http.close_connection(&connections[0].name, Some("maintenance"), false)
        .await
        .expect("closed");
    let (code, text) = watcher.next_close().await;
    assert_eq!(code, 320);
    assert_eq!(text, "CONNECTION_FORCED - maintenance");
    drop(channel);
}

#[tokio::test]
async fn health_checks_and_unknown_paths_answer_as_rabbitmq() {
    let server = common::start_server().await;
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/health/checks/alarms",
        GUEST,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/aliveness-test/%2F",
        GUEST,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let port = server.addr.port();
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        &format!("/health/checks/port-listener/{port}"),
        GUEST,
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ok", "port": port}))
    );
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/health/checks/port-listener/1",
        GUEST,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reason"], "No active listener");
    let (status, _, body) = call(&server, reqwest::Method::GET, "/nonexistent", GUEST, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    let (status, _, _) = call(&server, reqwest::Method::POST, "/overview", GUEST, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (_, _, nodes) = call(&server, reqwest::Method::GET, "/nodes", GUEST, None).await;
    assert_eq!(nodes[0]["running"], true);
    assert_eq!(nodes[0]["mem_alarm"], false);
    let who = client(&server).current_user().await.expect("whoami");
    assert_eq!(who.name, "guest");
}

#[tokio::test]
async fn the_apis_declares_publishes_gets_and_binds_check_the_users_permissions_as_a_channel_does()
{
    let server = common::start_server().await;
    let user = json!({"password": "pw", "tags": "management"});
    let put = |path: &'static str, body: Value| {
        let server = &server;
        async move {
            call(server, reqwest::Method::PUT, path, GUEST, Some(body))
                .await
                .0
        }
    };
    assert_eq!(put("/users/ops", user).await, StatusCode::CREATED);
    // Configure and write on "ops.*" only; read on nothing.
    let permission = json!({"configure": "^ops\\.", "write": "^ops\\.", "read": "^$"});
    assert_eq!(
        put("/permissions/%2F/ops", permission).await,
        StatusCode::CREATED
    );
    let ops = ("ops", "pw");
    let durable = Some(json!({"durable": true}));

    let (status, _, _) = call(
        &server,
        reqwest::Method::PUT,
        "/queues/%2F/ops.q",
        ops,
        durable.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(
        &server,
        reqwest::Method::PUT,
        "/queues/%2F/other",
        ops,
        durable.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "not_authorised",
               "reason": "ACCESS_REFUSED - access to queue 'other' in vhost '/' refused for user 'ops'"})
    );
    // No read permission: no get, no purge; no write on amq.default: no publish through it.
    let get = json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"});
    let (status, _, _) = call(
        &server,
        reqwest::Method::POST,
        "/queues/%2F/ops.q/get",
        ops,
        Some(get),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/queues/%2F/ops.q/contents",
        ops,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let publish = json!({"properties": {}, "routing_key": "ops.q", "payload": "x", "payload_encoding": "string"});
    let (status, _, body) = call(
        &server,
        reqwest::Method::POST,
        "/exchanges/%2F/amq.default/publish",
        ops,
        Some(publish),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["reason"],
        "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'ops'"
    );
    // A binding needs read on its source exchange.
    let (status, _, _) = call(
        &server,
        reqwest::Method::POST,
        "/bindings/%2F/e/amq.direct/q/ops.q",
        ops,
        Some(json!({"routing_key": "k"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/queues/%2F/ops.q",
        ops,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// What `interop-tests/management-differential` found different from RabbitMQ 3.10.8, and Warren now answers as it.
#[tokio::test]
async fn answers_the_management_differential_found_wrong_now_match_rabbitmq() {
    let server = common::start_server().await;
    let get = reqwest::Method::GET;
    let (put, post) = (reqwest::Method::PUT, reqwest::Method::POST);

    // No credentials at all: the challenge and an empty body.
    let response = reqwest::Client::new()
        .get(format!("{}/overview", base(&server)))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(response.text().await.expect("body read"), "");

    // The user who creates a vhost gets full permissions in it.
    let (status, _, _) = call(&server, put.clone(), "/vhosts/v", GUEST, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(&server, get.clone(), "/permissions/v/guest", GUEST, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&body["configure"], &body["read"]),
        (&json!(".*"), &json!(".*"))
    );

    // Permissions need all three patterns.
    let only_configure = Some(json!({"configure": ".*"}));
    let (status, _, body) = call(
        &server,
        put.clone(),
        "/permissions/v/guest",
        GUEST,
        only_configure,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], "[{key_missing,write},{key_missing,read}]");

    // A password hash that is not base64.
    let hash = Some(json!({"password_hash": "a?c", "tags": ""}));
    let (status, _, body) = call(&server, put.clone(), "/users/u", GUEST, hash).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], json!(["not_base64", "a?c"]));

    // Bindings to or from what does not exist: the channel's 404 texts, the source first; an empty listing.
    let q = Some(json!({"durable": true}));
    let (status, _, _) = call(&server, put.clone(), "/queues/v/q", GUEST, q).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = Some(json!({"routing_key": "k"}));
    let (status, _, body) = call(
        &server,
        post.clone(),
        "/bindings/v/e/nox/q/noq",
        GUEST,
        key.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "not_found", "reason": "no exchange 'nox' in vhost 'v'"})
    );
    let (status, _, body) = call(
        &server,
        post.clone(),
        "/bindings/v/e/amq.direct/q/noq",
        GUEST,
        key,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "no queue 'noq' in vhost 'v'");
    let (status, _, body) = call(&server, get.clone(), "/bindings/v/e/nox/q/q", GUEST, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));

    // Missing publish keys in RabbitMQ's order, laid out as Erlang's ~p lays out a long list.
    let payload_only = Some(json!({"payload": "x"}));
    let (status, _, body) = call(
        &server,
        post.clone(),
        "/exchanges/v/amq.direct/publish",
        GUEST,
        payload_only,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["reason"],
        "[{key_missing,routing_key},\n {key_missing,properties},\n {key_missing,payload_encoding}]"
    );

    // A get needs count too (RabbitMQ decodes ackmode, count and encoding).
    let get_body = Some(json!({"ackmode": "ack_requeue_true", "encoding": "auto"}));
    let (status, _, body) = call(&server, post, "/queues/v/q/get", GUEST, get_body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], "[{key_missing,count}]");

    // Topic permissions need exchange, write and read; a vhost limit is refused in parameter validation's words.
    let write_only = Some(json!({"write": ".*"}));
    let (_, _, body) = call(
        &server,
        put.clone(),
        "/topic-permissions/v/guest",
        GUEST,
        write_only,
    )
    .await;
    assert_eq!(
        body["reason"],
        "[{key_missing,exchange},{key_missing,read}]"
    );
    let many = Some(json!({"value": "many"}));
    let (_, _, body) = call(
        &server,
        put.clone(),
        "/vhost-limits/v/max-queues",
        GUEST,
        many,
    )
    .await;
    assert_eq!(
        body["reason"],
        "Validation failed\n\nmax-queues should be a number, actually was <<\"many\">>\n"
    );
    let (_, _, body) = call(&server, get.clone(), "/exchanges?page=0", GUEST, None).await;
    assert_eq!(
        body["reason"],
        "Invalid pagination parameters: page number 0, page size undefined"
    );

    // A vhost's export keeps `vhost` on policies, drops it on queues.
    let policy = Some(json!({"pattern": "^q$", "definition": {"max-length": 1}}));
    let (status, _, _) = call(&server, put, "/policies/v/p", GUEST, policy).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, body) = call(&server, get.clone(), "/definitions/v", GUEST, None).await;
    assert_eq!(body["policies"][0]["vhost"], "v");
    assert!(body["queues"][0].get("vhost").is_none());

    // A connection's client-provided name is listed.
    let properties = lapin::ConnectionProperties::default().with_connection_name("billing".into());
    let amqp = lapin::Connection::connect(&server.uri(), properties)
        .await
        .expect("connected");
    let listed = common::within(5, async {
        loop {
            let (_, _, body) = call(&server, get.clone(), "/connections", GUEST, None).await;
            if body.as_array().is_some_and(|list| !list.is_empty()) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(listed[0]["user_provided_name"], "billing");
    assert_eq!(listed[0]["client_properties"]["connection_name"], "billing");
    drop(amqp);
}

#[tokio::test]
async fn a_vhosts_default_queue_type_types_the_queues_declared_without_one() {
    let server = common::start_server().await;
    let put = reqwest::Method::PUT;
    let get = reqwest::Method::GET;
    // A default Warren cannot honour is refused, and the vhost not created.
    let body = json!({"default_queue_type": "stream"});
    let (status, _, _) = call(&server, put.clone(), "/vhosts/streams", GUEST, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(&server, get.clone(), "/vhosts/streams", GUEST, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let body = json!({"default_queue_type": "quorum"});
    let (status, _, _) = call(&server, put.clone(), "/vhosts/qv", GUEST, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, vhost) = call(&server, get.clone(), "/vhosts/qv", GUEST, None).await;
    assert_eq!(vhost["default_queue_type"], "quorum");
    assert_eq!(vhost["metadata"]["default_queue_type"], "quorum");

    let conn = common::connect_as(&server, "guest", "guest", "qv")
        .await
        .expect("connect to qv");
    let ch = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("jobs".into(), durable, FieldTable::default())
        .await
        .expect("declare");
    // A redeclare without x-queue-type is the same declare.
    ch.queue_declare("jobs".into(), durable, FieldTable::default())
        .await
        .expect("redeclare");
    // An exclusive queue cannot be quorum: classic, RabbitMQ's fallback.
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("mine".into(), exclusive, FieldTable::default())
        .await
        .expect("declare exclusive");
    let (_, _, jobs) = call(&server, get.clone(), "/queues/qv/jobs", GUEST, None).await;
    assert_eq!(jobs["type"], "quorum");
    assert_eq!(jobs["arguments"]["x-queue-type"], "quorum");
    let (_, _, mine) = call(&server, get.clone(), "/queues/qv/mine", GUEST, None).await;
    assert_eq!(mine["type"], "classic");

    // Exported with the vhost, as RabbitMQ exports it.
    let (_, _, definitions) = call(&server, get.clone(), "/definitions", GUEST, None).await;
    let exported = definitions["vhosts"]
        .as_array()
        .expect("vhosts")
        .iter()
        .find(|v| v["name"] == "qv")
        .expect("qv exported")
        .clone();
    assert_eq!(exported["metadata"]["default_queue_type"], "quorum");

    // Changed back to classic: the next new queue is classic.
    let body = json!({"default_queue_type": "classic"});
    let (status, _, _) = call(&server, put.clone(), "/vhosts/qv", GUEST, Some(body)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    ch.queue_declare("later".into(), durable, FieldTable::default())
        .await
        .expect("declare");
    let (_, _, later) = call(&server, get.clone(), "/queues/qv/later", GUEST, None).await;
    assert_eq!(later["type"], "classic");
    // Other vhosts have none.
    let (_, _, root) = call(&server, get, "/vhosts/%2F", GUEST, None).await;
    assert_eq!(root["default_queue_type"], "undefined");
}
