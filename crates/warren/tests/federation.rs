//! Federation between Warrens in this process, configured as RabbitMQ's federation plugin is: `federation-upstream`
//! parameters and a policy with `federation-upstream-set` or `federation-upstream`. Exchanges across two and three
//! brokers with topic bindings kept in step, loop prevention, and a federated queue that pulls only for consumers.

mod common;

use std::time::Duration;

use common::api::call;
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use warren::server::RunningServer;

async fn node(name: &str) -> RunningServer {
    let name = name.to_owned();
    common::start_server_with(move |c| c.server.cluster_name = name).await
}

async fn put(server: &RunningServer, path: &str, body: Value) {
    let (code, reply) = call(server, Method::PUT, path, Some(body)).await;
    assert!(
        code == StatusCode::CREATED || code == StatusCode::NO_CONTENT,
        "{path}: {code} {reply}"
    );
}

/// Federates `server`'s exchanges or queues matching `pattern` from the upstream at `uri`.
async fn federate(
    server: &RunningServer,
    upstream: &str,
    uri: &str,
    extra: Value,
    pattern: &str,
    apply_to: &str,
) {
    let mut value = json!({"uri": uri});
    if let (Value::Object(v), Value::Object(e)) = (&mut value, extra) {
        v.extend(e);
    }
    put(
        server,
        &format!("/parameters/federation-upstream/%2F/{upstream}"),
        json!({"value": value}),
    )
    .await;
    put(
        server,
        &format!("/policies/%2F/federate-{upstream}"),
        json!({"pattern": pattern, "apply-to": apply_to, "definition": {"federation-upstream-set": "all"}}),
    )
    .await;
}

/// Waits until every link of `server` is running (at least `count` of them).
async fn links_running(server: &RunningServer, count: usize) -> Value {
    common::within(30, async {
        loop {
            let (_, links) = call(server, Method::GET, "/federation-links", None).await;
            let all = links.as_array().cloned().unwrap_or_default();
            if all.len() >= count && all.iter().all(|l| l["status"] == "running") {
                return links;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn declare_topic(server: &RunningServer, exchange: &str) -> lapin::Channel {
    let conn = common::connect(server).await;
    let ch = common::confirming_channel(&conn).await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await
    .unwrap();
    std::mem::forget(conn);
    ch
}

async fn bind_queue(ch: &lapin::Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Publishes confirmed to `exchange` with `key`, until `queue` on `reader` holds `count` (the link may still be
/// binding upstream when the first publish goes out: a publish that found no binding there is published again).
async fn publish_until(
    publisher: &lapin::Channel,
    exchange: &str,
    key: &str,
    reader: &lapin::Channel,
    queue: &str,
    count: u32,
) {
    common::within(30, async {
        loop {
            common::publish_confirmed(publisher, exchange, key, key, BasicProperties::default())
                .await;
            for _ in 0..20 {
                if common::ready_count(reader, queue).await >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    })
    .await;
}

fn received_from(message: &lapin::message::BasicGetMessage) -> Vec<(String, String)> {
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let Some(AMQPValue::FieldArray(trail)) = headers.inner().get("x-received-from") else {
        return Vec::new();
    };
    trail
        .as_slice()
        .iter()
        .map(|e| {
            let AMQPValue::FieldTable(t) = e else {
                panic!("{e:?}")
            };
            let text = |k: &str| match t.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                other => panic!("{k}: {other:?}"),
            };
            (text("cluster-name"), text("exchange"))
        })
        .collect()
}

#[tokio::test]
async fn a_federated_topic_exchange_receives_what_its_bindings_ask_for_and_follows_them() {
    let upstream = node("upstream-a").await;
    let downstream = node("downstream-b").await;
    let down = declare_topic(&downstream, "events").await;
    bind_queue(&down, "eu", "events", "eu.#").await;
    federate(
        &downstream,
        "a",
        &upstream.uri(),
        json!({}),
        "^events$",
        "exchanges",
    )
    .await;
    let links = links_running(&downstream, 1).await;
    assert_eq!(links[0]["type"], "exchange");
    assert_eq!(links[0]["exchange"], "events");
    assert_eq!(links[0]["upstream_exchange"], "events");
    assert_eq!(links[0]["upstream"], "a");
    assert_eq!(links[0]["node"], "downstream-b");

    // The link declared the upstream exchange and its queue, bound with the downstream binding's key.
    let up = declare_topic(&upstream, "events").await;
    publish_until(&up, "events", "eu.fr", &down, "eu", 1).await;
    let (_, bindings) = call(&upstream, Method::GET, "/bindings/%2F", None).await;
    let federation_queue = "federation: events -> downstream-b";
    assert!(
        bindings
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["destination"] == federation_queue && b["routing_key"] == "eu.#"),
        "{bindings}"
    );
    common::publish_confirmed(&up, "events", "us.ny", "us.ny", BasicProperties::default()).await;
    let message = common::get_message(&down, "eu").await;
    assert_eq!(message.delivery.routing_key.as_str(), "eu.fr");
    assert_eq!(
        received_from(&message),
        vec![("upstream-a".to_owned(), "events".to_owned())]
    );

    // A binding made downstream is made upstream, and one removed is removed there.
    bind_queue(&down, "us", "events", "us.*").await;
    publish_until(&up, "events", "us.ny", &down, "us", 1).await;
    down.queue_unbind(
        "us".into(),
        "events".into(),
        "us.*".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    common::within(10, async {
        loop {
            let (_, bindings) = call(&upstream, Method::GET, "/bindings/%2F", None).await;
            if !bindings
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["destination"] == federation_queue && b["routing_key"] == "us.*")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The eu message published with no binding for it never arrived; "us.ny" arrived once.
    assert_eq!(common::ready_count(&down, "eu").await, 0);

    // Clearing the policy stops the link.
    let (code, _) = call(
        &downstream,
        Method::DELETE,
        "/policies/%2F/federate-a",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    common::within(10, async {
        loop {
            let (_, links) = call(&downstream, Method::GET, "/federation-links", None).await;
            if links == json!([]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn three_warrens_in_a_chain_honour_max_hops_and_mutual_links_do_not_loop() {
    let a = node("node-a").await;
    let b = node("node-b").await;
    let c = node("node-c").await;
    let on_a = declare_topic(&a, "fed").await;
    let on_b = declare_topic(&b, "fed").await;
    let on_c = declare_topic(&c, "fed").await;
    bind_queue(&on_a, "qa", "fed", "#").await;
    bind_queue(&on_b, "qb", "fed", "#").await;
    bind_queue(&on_c, "qc", "fed", "#").await;
    // b and a federate from each other (max-hops 1); c from b with max-hops 2, so a's messages reach c via b.
    federate(&b, "from-a", &a.uri(), json!({}), "^fed$", "exchanges").await;
    federate(&a, "from-b", &b.uri(), json!({}), "^fed$", "exchanges").await;
    federate(
        &c,
        "from-b",
        &b.uri(),
        json!({"max-hops": 2}),
        "^fed$",
        "exchanges",
    )
    .await;
    links_running(&a, 1).await;
    links_running(&b, 1).await;
    links_running(&c, 1).await;

    publish_until(&on_a, "fed", "from.a", &on_c, "qc", 1).await;
    let at_c = common::get_message(&on_c, "qc").await;
    let trail: Vec<String> = received_from(&at_c)
        .into_iter()
        .map(|(cluster, _)| cluster)
        .collect();
    assert_eq!(
        trail,
        vec!["node-b".to_owned(), "node-a".to_owned()],
        "newest entry first"
    );
    // Settled: a's own queue got each publish once (no copy came back from b), b got them from a.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published = common::ready_count(&on_a, "qa").await;
    assert!(published >= 1);
    assert_eq!(common::ready_count(&on_b, "qb").await, published);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        common::ready_count(&on_a, "qa").await,
        published,
        "a message looped back to a"
    );
}

#[tokio::test]
async fn a_federated_queue_pulls_from_its_upstream_only_while_it_has_consumers() {
    let upstream = node("queue-up").await;
    let downstream = node("queue-down").await;
    let up_conn = common::connect(&upstream).await;
    let up = common::confirming_channel(&up_conn).await;
    common::declare(
        &up,
        "jobs",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
    common::publish_n(&up, "jobs", 100).await;
    let down_conn = common::connect(&downstream).await;
    let down = down_conn.create_channel().await.unwrap();
    common::declare(
        &down,
        "jobs",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
    federate(
        &downstream,
        "up",
        &upstream.uri(),
        json!({"prefetch-count": 10}),
        "^jobs$",
        "queues",
    )
    .await;
    links_running(&downstream, 1).await;
    // No consumer here: nothing moves.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(common::ready_count(&up, "jobs").await, 100);
    assert_eq!(common::ready_count(&down, "jobs").await, 0);

    let mut consumer = down
        .basic_consume(
            "jobs".into(),
            "worker".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < 100 {
        let delivery = common::within(30, consumer.next()).await.unwrap().unwrap();
        bodies.push(String::from_utf8_lossy(&delivery.data).into_owned());
    }
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    assert_eq!(common::ready_count(&up, "jobs").await, 0);
    let (_, links) = call(&downstream, Method::GET, "/federation-links/%2F", None).await;
    assert_eq!(links[0]["type"], "queue");
    assert_eq!(links[0]["upstream_queue"], "jobs");
    assert_eq!(links[0]["messages_moved"], 100);
}

/// A queue link stops consuming upstream whenever the local queue has `prefetch-count` ready messages, with
/// deliveries of the cancelled consumer still on their way: those are moved too, so none stays unacked upstream
/// (held by the link's channel, neither delivered nor requeued) while the consumer here waits for it.
#[tokio::test]
async fn a_queue_link_paused_by_a_slow_consumer_leaves_nothing_unacked_upstream() {
    const COUNT: usize = 3000;
    let upstream = node("pause-up").await;
    let downstream = node("pause-down").await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let up_conn = common::connect(&upstream).await;
    let up = common::confirming_channel(&up_conn).await;
    common::declare(&up, "jobs", durable, FieldTable::default()).await;
    common::publish_n(&up, "jobs", COUNT).await;
    let down_conn = common::connect(&downstream).await;
    let down = down_conn.create_channel().await.unwrap();
    common::declare(&down, "jobs", durable, FieldTable::default()).await;
    federate(
        &downstream,
        "up",
        &upstream.uri(),
        json!({"prefetch-count": 50}),
        "^jobs$",
        "queues",
    )
    .await;
    links_running(&downstream, 1).await;

    // One message at a time, acked: slower than the link fills the local queue, so the link pauses and resumes.
    down.basic_qos(1, lapin::options::BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = down
        .basic_consume(
            "jobs".into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    common::within(60, async {
        while seen.len() < COUNT {
            let delivery = consumer.next().await.unwrap().unwrap();
            seen.insert(String::from_utf8_lossy(&delivery.data).into_owned());
            delivery
                .ack(lapin::options::BasicAckOptions::default())
                .await
                .unwrap();
        }
    })
    .await;
    assert_eq!(common::ready_count(&up, "jobs").await, 0);
    // The link's last acks upstream follow the confirms here: awaited, not assumed.
    common::within(10, async {
        loop {
            let (_, queue) = call(&upstream, Method::GET, "/queues/%2F/jobs", None).await;
            if queue["messages_unacknowledged"] == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn bad_upstreams_and_policies_are_refused_with_rabbitmqs_words() {
    let server = common::start_server().await;
    let (code, body) = call(
        &server,
        Method::PUT,
        "/parameters/federation-upstream/%2F/u",
        Some(json!({"value": {"max-hops": 2}})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["reason"],
        "Validation failed\n\nKey \"uri\" not found in federation-upstream\n"
    );
    let (code, body) = call(
        &server,
        Method::PUT,
        "/policies/%2F/both",
        Some(json!({"pattern": ".*", "definition": {"federation-upstream": "a", "federation-upstream-set": "all"}})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_x_federation_upstream_exchange_a_rabbitmq_downstream_declares_filters_as_rabbitmqs() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    // What RabbitMQ's exchange link declares on its upstream: the upstream exchange, an internal auto-delete
    // x-federation-upstream exchange bound to it, and the link's queue bound to that.
    let declare = |name: &'static str, kind: &'static str, internal: bool, args: FieldTable| {
        let ch = ch.clone();
        async move {
            let options = ExchangeDeclareOptions {
                durable: true,
                internal,
                auto_delete: internal,
                ..Default::default()
            };
            ch.exchange_declare(
                name.into(),
                ExchangeKind::Custom(kind.into()),
                options,
                args,
            )
            .await
            .unwrap();
        }
    };
    declare("orders", "topic", false, FieldTable::default()).await;
    let mut args = FieldTable::default();
    args.insert("x-max-hops".into(), AMQPValue::LongLongInt(1));
    args.insert(
        "x-downstream-name".into(),
        AMQPValue::LongString("rabbit-down".into()),
    );
    args.insert(
        "x-downstream-vhost".into(),
        AMQPValue::LongString("/".into()),
    );
    declare(
        "federation: orders -> rabbit-down A",
        "x-federation-upstream",
        true,
        args,
    )
    .await;
    ch.exchange_bind(
        "federation: orders -> rabbit-down A".into(),
        "orders".into(),
        "#".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    bind_queue(
        &ch,
        "federation: orders -> rabbit-down",
        "federation: orders -> rabbit-down A",
        "",
    )
    .await;

    let trail = |cluster: &str| {
        let mut entry = FieldTable::default();
        entry.insert("cluster-name".into(), AMQPValue::LongString(cluster.into()));
        entry.insert("vhost".into(), AMQPValue::LongString("/".into()));
        let mut array = lapin::types::FieldArray::default();
        array.push(AMQPValue::FieldTable(entry));
        let mut headers = FieldTable::default();
        headers.insert("x-received-from".into(), AMQPValue::FieldArray(array));
        BasicProperties::default().with_headers(headers)
    };
    common::publish_confirmed(&ch, "orders", "new", "fresh", BasicProperties::default()).await;
    // One hop already: max-hops 1 stops it; so does having come from the downstream itself.
    common::publish_confirmed(&ch, "orders", "new", "one-hop", trail("elsewhere")).await;
    common::publish_confirmed(
        &ch,
        "orders",
        "new",
        "from-downstream",
        trail("rabbit-down"),
    )
    .await;
    let bodies = common::drain_bodies(&ch, "federation: orders -> rabbit-down").await;
    assert_eq!(bodies, vec!["fresh".to_owned()]);
}

#[tokio::test]
async fn an_idle_link_notices_its_local_connection_closing_and_reconnects() {
    let upstream = node("upstream-idle").await;
    let downstream = node("downstream-idle").await;
    let down = declare_topic(&downstream, "quiet").await;
    bind_queue(&down, "quiet-q", "quiet", "#").await;
    federate(
        &downstream,
        "idle",
        &upstream.uri(),
        json!({"reconnect-delay": 2}),
        "^quiet$",
        "exchanges",
    )
    .await;
    links_running(&downstream, 1).await;

    // An operator closes the link's own connection here while nothing flows (a closed upstream connection also
    // ends its consumer; this one has no consumer to tell it).
    let (_, connections) = call(&downstream, Method::GET, "/connections", None).await;
    let link = connections
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["client_properties"]["connection_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Federation link"))
        })
        .unwrap_or_else(|| panic!("no link connection here: {connections}"))
        .clone();
    let path = format!(
        "/connections/{}",
        percent_encoding::utf8_percent_encode(
            link["name"].as_str().unwrap(),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let (code, _) = call(&downstream, Method::DELETE, &path, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);

    // The link reports the error instead of `running` over a dead connection, then starts again.
    let failed = common::within(30, async {
        loop {
            let (_, links) = call(&downstream, Method::GET, "/federation-links", None).await;
            if links[0]["status"] == "error" {
                return links[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("the local connection was lost"),
        "{failed}"
    );
    links_running(&downstream, 1).await;
    let up = declare_topic(&upstream, "quiet").await;
    publish_until(&up, "quiet", "any.key", &down, "quiet-q", 1).await;
}
