//! Dynamic shovels on a cluster of three `warren` processes: a shovel parameter set through one node is on every
//! node, exactly one node runs the shovel and every node lists it; when that node is killed another takes the
//! shovel over and no confirmed message is lost; restart and delete work through any node.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{channel, eventually, three_nodes, Node};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The rows of `/api/shovels` on `node`.
fn listed(node: &Node) -> Vec<Value> {
    let (_, body) = node.get("/shovels");
    body.as_array().cloned().unwrap_or_default()
}

/// Waits until every running node lists `name` once, running, on the same node, and no node lists it twice;
/// that node's name.
fn runner_of(nodes: &[Node], name: &str, not: Option<&str>) -> String {
    let mut runner = String::new();
    eventually(
        60,
        "one node runs the shovel and every node lists it",
        || {
            let mut seen = Vec::new();
            for node in nodes.iter().filter(|n| n.is_up()) {
                let rows: Vec<Value> = listed(node)
                    .into_iter()
                    .filter(|r| r["name"] == name)
                    .collect();
                match rows.as_slice() {
                    [row] if row["state"] == "running" => {
                        seen.push(row["node"].as_str().unwrap_or_default().to_owned())
                    }
                    _ => return false,
                }
            }
            seen.dedup();
            match seen.as_slice() {
                [one] if Some(one.as_str()) != not => {
                    runner = one.clone();
                    true
                }
                _ => false,
            }
        },
    );
    runner
}

async fn publish_confirmed(ch: &Channel, queue: &str, prefix: &str, count: usize) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for i in 0..count {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("{prefix}-{i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        let confirmation = common::within(30, confirm).await.expect("confirmed");
        assert!(confirmation.is_ack(), "{prefix}-{i} was nacked");
    }
}

/// The message count of `queue` through `node`.
async fn depth(node: &Node, queue: &str) -> u32 {
    let (_c, ch) = channel(node).await;
    ch.queue_declare(queue.into(), common::passive(), quorum())
        .await
        .expect("passive declare")
        .message_count()
}

#[test]
fn a_dynamic_shovel_runs_on_one_node_and_moves_when_that_node_dies() {
    let (mut nodes, runtime) = three_nodes();
    // Quorum queues at both ends, so that both outlive any one node.
    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[0]).await;
        for queue in ["sh.src", "sh.dst"] {
            ch.queue_declare(queue.into(), durable(), quorum())
                .await
                .expect("declare");
        }
    });
    let definition = json!({
        "src-uri": "amqp://", "src-queue": "sh.src", "src-queue-args": {"x-queue-type": "quorum"},
        "dest-uri": "amqp://", "dest-queue": "sh.dst", "dest-queue-args": {"x-queue-type": "quorum"},
        "ack-mode": "on-confirm", "reconnect-delay": 1
    });
    let (status, body) = nodes[1].api(
        Method::PUT,
        "/parameters/shovel/%2F/mover",
        Some(json!({ "value": definition })),
    );
    assert!(status.is_success(), "{status} {body}");
    for node in &nodes {
        let (status, _) = node.get("/parameters/shovel/%2F/mover");
        assert_eq!(status, StatusCode::OK, "the parameter is on every node");
    }
    let first = runner_of(&nodes, "mover", None);

    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[2]).await;
        publish_confirmed(&ch, "sh.src", "before", 200).await;
    });
    let moved = |node: &Node, want: u32| {
        runtime.block_on(async {
            depth(node, "sh.src").await == 0 && depth(node, "sh.dst").await >= want
        })
    };
    eventually(60, "200 moved", || moved(&nodes[0], 200));

    // The runner is killed: another node takes the shovel over.
    // Node `nK` is `nodes[K - 1]`.
    let index = first
        .strip_prefix('n')
        .and_then(|k| k.parse::<usize>().ok())
        .map(|k| k - 1)
        .expect("the runner is one of the nodes");
    nodes[index].kill9();
    let second = runner_of(&nodes, "mover", Some(&first));
    assert_ne!(second, first);
    let alive: Vec<usize> = (0..3).filter(|i| nodes[*i].is_up()).collect();
    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[alive[0]]).await;
        publish_confirmed(&ch, "sh.src", "after", 200).await;
    });
    eventually(60, "400 moved", || moved(&nodes[alive[1]], 400));
    let counts: BTreeMap<String, usize> = runtime.block_on(async {
        let (_c, ch) = channel(&nodes[alive[1]]).await;
        let mut counts = BTreeMap::new();
        while let Some(got) = ch
            .basic_get("sh.dst".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            let body = String::from_utf8_lossy(&got.delivery.data).into_owned();
            *counts.entry(body).or_default() += 1;
        }
        counts
    });
    let missing: Vec<String> = ["before", "after"]
        .iter()
        .flat_map(|p| (0..200).map(move |i| format!("{p}-{i}")))
        .filter(|m| !counts.contains_key(m))
        .collect();
    assert!(missing.is_empty(), "confirmed messages lost: {missing:?}");
    assert!(
        counts
            .keys()
            .all(|k| k.starts_with("before-") || k.starts_with("after-")),
        "{counts:?}"
    );

    // The killed node comes back: still one runner, and what is published next is moved.
    nodes[index].restart();
    eventually(60, "the restarted node answers", || {
        nodes[index]
            .try_api(Method::GET, "/overview", Duration::from_secs(2))
            .is_some()
    });
    let third = runner_of(&nodes, "mover", None);
    let alive: Vec<usize> = vec![0, 1, 2];
    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[index]).await;
        publish_confirmed(&ch, "sh.src", "back", 100).await;
    });
    eventually(60, "100 more moved", || moved(&nodes[index], 100));
    let second = third;

    // Restarted and deleted through the nodes that do not run it.
    let other = alive
        .iter()
        .copied()
        .find(|i| format!("n{}", i + 1) != second)
        .expect("a node that does not run it");
    let (status, _) = nodes[other].api(Method::DELETE, "/shovels/vhost/%2F/mover/restart", None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = nodes[other].api(Method::DELETE, "/shovels/vhost/%2F/mover", None);
    assert_eq!(status, StatusCode::NO_CONTENT);
    for i in &alive {
        eventually(10, "the shovel gone from every node", || {
            listed(&nodes[*i]).iter().all(|r| r["name"] != "mover")
                && nodes[*i].get("/parameters/shovel/%2F/mover").0 == StatusCode::NOT_FOUND
        });
    }
}

#[test]
fn a_one_off_shovel_on_a_cluster_moves_what_was_there_and_removes_its_parameter_everywhere() {
    let (nodes, runtime) = three_nodes();
    runtime.block_on(async {
        let (_c, ch) = channel(&nodes[2]).await;
        for queue in ["once.src", "once.dst"] {
            ch.queue_declare(queue.into(), durable(), quorum())
                .await
                .expect("declare");
        }
        publish_confirmed(&ch, "once.src", "m", 50).await;
    });
    // As the web UI's "Move messages" sets it.
    let definition = json!({
        "src-uri": "amqp://", "src-queue": "once.src", "src-queue-args": {"x-queue-type": "quorum"},
        "dest-uri": "amqp://", "dest-queue": "once.dst", "dest-queue-args": {"x-queue-type": "quorum"},
        "src-delete-after": "queue-length", "ack-mode": "on-confirm"
    });
    let (status, body) = nodes[0].api(
        Method::PUT,
        "/parameters/shovel/%2F/once",
        Some(json!({ "value": definition })),
    );
    assert!(status.is_success(), "{status} {body}");
    for node in &nodes {
        eventually(
            60,
            "the one-off shovel done and gone from every node",
            || {
                node.get("/parameters/shovel/%2F/once").0 == StatusCode::NOT_FOUND
                    && listed(node).iter().all(|r| r["name"] != "once")
            },
        );
    }
    let (moved, left) = runtime.block_on(async {
        (
            depth(&nodes[1], "once.dst").await,
            depth(&nodes[1], "once.src").await,
        )
    });
    assert_eq!((moved, left), (50, 0));
}
