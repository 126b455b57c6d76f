//! `/api/parameters` and `/api/global-parameters` through real sockets, with the statuses and bodies RabbitMQ
//! 3.10.8 answered to the same requests (probed by hand against a live node with the management plugin).

mod common;

use common::api::call;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn vhost_limits_and_policies_are_runtime_parameters_as_in_rabbitmq() {
    let server = common::start_server().await;
    assert_eq!(
        call(&server, Method::GET, "/parameters", None).await,
        (StatusCode::OK, json!([]))
    );

    let limits = json!({"value": {"max-connections": 10}});
    let (status, _) = call(
        &server,
        Method::PUT,
        "/parameters/vhost-limits/%2F/limits",
        Some(limits.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // The same limits through their own endpoint.
    let (_, vhost_limits) = call(&server, Method::GET, "/vhost-limits/%2F", None).await;
    assert_eq!(
        vhost_limits,
        json!([{"vhost": "/", "value": {"max-connections": 10}}])
    );
    let (status, _) = call(
        &server,
        Method::PUT,
        "/parameters/vhost-limits/%2F/limits",
        Some(limits),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let policy = json!({"pattern": "^x", "definition": {"max-length": 5}});
    let (status, _) = call(
        &server,
        Method::PUT,
        "/policies/%2F/p1",
        Some(policy.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &server,
        Method::PUT,
        "/operator-policies/%2F/op1",
        Some(policy),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // The whole list leaves policies out; asked by component, they are there.
    let (_, all) = call(&server, Method::GET, "/parameters", None).await;
    assert_eq!(
        all,
        json!([
            {"value": {"max-connections": 10}, "vhost": "/", "component": "vhost-limits", "name": "limits"},
            {"value": {"pattern": "^x", "definition": {"max-length": 5}, "priority": 0, "apply-to": "all"},
             "vhost": "/", "component": "operator_policy", "name": "op1"}
        ])
    );
    let (_, policies) = call(&server, Method::GET, "/parameters/policy", None).await;
    assert_eq!(policies[0]["name"], "p1");
    assert_eq!(policies[0]["component"], "policy");
    let (status, one) = call(
        &server,
        Method::GET,
        "/parameters/vhost-limits/%2F/limits",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["value"], json!({"max-connections": 10}));
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/parameters/vhost-limits/%2F/nope",
            None
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    assert_eq!(
        call(&server, Method::GET, "/parameters/nonesuch", None).await,
        (StatusCode::OK, json!([]))
    );

    // A policy set as a parameter is a policy.
    let (status, _) = call(
        &server,
        Method::PUT,
        "/parameters/policy/%2F/p2",
        Some(
            json!({"value": {"pattern": "^y", "definition": {"message-ttl": 1000}, "priority": 3}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, p2) = call(&server, Method::GET, "/policies/%2F/p2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p2["priority"], 3);

    // Refusals, as RabbitMQ words them.
    assert_eq!(
        call(
            &server,
            Method::PUT,
            "/parameters/mqtt-retained/%2F/s1",
            Some(json!({"value": {"uri": "amqp://"}}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "Validation failed\n\ncomponent mqtt-retained not found\n"})
        )
    );
    assert_eq!(
        call(
            &server,
            Method::PUT,
            "/parameters/vhost-limits/nohost/limits",
            Some(json!({"value": {"max-connections": 3}}))
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    let (status, body) = call(
        &server,
        Method::PUT,
        "/parameters/vhost-limits/%2F/limits",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], "[{key_missing,value}]");
    let (status, _) = call(
        &server,
        Method::PUT,
        "/parameters/vhost-limits/%2F/limits",
        Some(json!({"value": {"max-connections": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Deleted once; the second time it is not there.
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/parameters/vhost-limits/%2F/limits",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/parameters/vhost-limits/%2F/limits",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, vhost_limits) = call(&server, Method::GET, "/vhost-limits/%2F", None).await;
    assert_eq!(vhost_limits, json!([]));
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/parameters/operator_policy/%2F/op1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&server, Method::GET, "/operator-policies/%2F/op1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn global_parameters_show_the_cluster_name_and_refuse_what_warren_does_not_keep() {
    let server = common::start_server().await;
    let (status, list) = call(&server, Method::GET, "/global-parameters", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["name"], "cluster_name");
    let (status, one) = call(
        &server,
        Method::GET,
        "/global-parameters/cluster_name",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["value"], list[0]["value"]);
    let (status, _) = call(&server, Method::GET, "/global-parameters/foo", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // RabbitMQ's body check comes first.
    let (status, body) = call(
        &server,
        Method::PUT,
        "/global-parameters/bar",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,value}]"})
        )
    );
    let (status, body) = call(
        &server,
        Method::PUT,
        "/global-parameters/bar",
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cluster_name only")),
        "{body}"
    );
}
