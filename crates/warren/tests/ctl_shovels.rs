//! `warren ctl`'s runtime parameter, shovel and federation commands (`set_parameter`, `list_parameters`,
//! `clear_parameter`, `shovel_status`, `restart_shovel`, `delete_shovel`, `federation_status`,
//! `restart_federation_link`) run as a user runs them: the real binary, its output and exit codes, against two
//! Warrens in this process. A shovel set with `set_parameter` on one moves messages to the other; what it moved is
//! counted at both ends over AMQP. A federation upstream set the same way links the two.
//!
//! Kept apart from `tests/ctl.rs`, whose node may be RabbitMQ (`WARREN_CTL_TEST_URL`): these need two nodes the
//! test starts itself.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use warren::server::RunningServer;

/// `warren ctl -n <server's management API> ARGS`, none of the WARREN_CTL_* variables of the test's environment
/// leaking in. Run on the blocking pool: the servers answering it run on this test's runtime.
async fn ctl(server: &RunningServer, args: &[&str]) -> Output {
    let addr = server.management_addr.expect("management API enabled");
    let mut all = vec!["ctl".to_owned(), "-n".to_owned(), format!("http://{addr}")];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(&all)
            .env_remove("WARREN_CTL_URL")
            .env_remove("WARREN_CTL_USER")
            .env_remove("WARREN_CTL_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("the blocking task finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it is not `code`.
#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Runs a command that must succeed and returns its standard output.
async fn ok(server: &RunningServer, args: &[&str]) -> String {
    let output = ctl(server, args).await;
    assert_exit(&output, 0);
    stdout(&output)
}

/// Runs a command that must fail with `code` and returns its standard error.
async fn refused(server: &RunningServer, args: &[&str], code: i32) -> String {
    let output = ctl(server, args).await;
    assert_exit(&output, code);
    stderr(&output)
}

/// The rows of a `table` output (after the banner line, if `banner`) as header name -> cell maps.
fn table(text: &str, banner: bool) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines().skip(usize::from(banner));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split('\t').collect();
    lines
        .map(|line| {
            columns
                .iter()
                .zip(line.split('\t'))
                .map(|(column, cell)| ((*column).to_owned(), cell.to_owned()))
                .collect()
        })
        .collect()
}

/// The `shovel_status` row of shovel `name` once `done` holds for it (at most 30 s).
async fn shovel_row_when(
    server: &RunningServer,
    name: &str,
    done: impl Fn(&std::collections::HashMap<String, String>) -> bool,
) -> std::collections::HashMap<String, String> {
    let mut last = String::new();
    for _ in 0..300 {
        last = ok(server, &["shovel_status", "-q"]).await;
        if let Some(row) = table(&last, false)
            .into_iter()
            .find(|row| row.get("name").map(String::as_str) == Some(name))
        {
            if done(&row) {
                return row;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("shovel {name} never reached the state wanted; last shovel_status:\n{last}");
}

/// Waits (at most 30 s) until `queue` on `server` holds `count` ready messages.
async fn await_count(server: &RunningServer, queue: &str, count: u32) {
    let conn = common::connect(server).await;
    let ch = conn.create_channel().await.expect("channel");
    common::within(30, async {
        while common::ready_count(&ch, queue).await != count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Publishes `n` confirmed messages to `queue` (declared) on `server`.
async fn publish(server: &RunningServer, queue: &str, n: usize) {
    let conn = common::connect(server).await;
    let ch = common::confirming_channel(&conn).await;
    common::declare_plain(&ch, queue).await;
    common::publish_n(&ch, queue, n).await;
    conn.close(200, "done".into()).await.expect("close");
}

#[tokio::test]
async fn a_shovel_set_with_set_parameter_moves_messages_is_restarted_and_deleted() {
    let source = common::start_server().await;
    let destination = common::start_server().await;
    publish(&source, "orders", 3).await;
    // Declared beforehand, so that its count can be read from the start.
    publish(&destination, "orders-copy", 0).await;

    let value = json!({"src-uri": source.uri(), "src-queue": "orders",
                       "dest-uri": destination.uri(), "dest-queue": "orders-copy"})
    .to_string();
    let out = ok(&source, &["set_parameter", "shovel", "to-b", &value]).await;
    assert_eq!(
        out,
        format!(
            "Setting runtime parameter \"to-b\" for component \"shovel\" to \"{value}\" in vhost \"/\" ...\n"
        )
    );
    // It runs: what was at the source is at the destination.
    await_count(&destination, "orders-copy", 3).await;
    await_count(&source, "orders", 0).await;

    // Listed with its value as the JSON it was set to (keys sorted, as the node stores an object).
    let listed = ok(&source, &["list_parameters"]).await;
    assert_eq!(
        listed,
        format!(
            "Listing runtime parameters for vhost \"/\" ...\ncomponent\tname\tvalue\nshovel\tto-b\t{value}\n"
        )
    );
    let as_json = ok(&source, &["list_parameters", "--formatter", "json"]).await;
    let rows: Value = serde_json::from_str(&as_json).expect("list_parameters json parses");
    assert_eq!(
        rows,
        json!([{"component": "shovel", "name": "to-b", "value": value}])
    );
    assert_eq!(
        ok(&destination, &["list_parameters", "-q"]).await,
        "",
        "the destination has no parameters"
    );

    // shovel_status: running, with rabbitmqctl's columns and Warren's count of what it moved.
    let status = ok(&source, &["shovel_status"]).await;
    assert!(
        status.starts_with("Shovel status on node "),
        "banner: {status}"
    );
    let header = status.lines().nth(1).unwrap_or_default();
    assert_eq!(
        header,
        "destination\tdestination_exchange\tdestination_exchange_key\tdestination_protocol\tdestination_queue\t\
         last_changed\tname\tsource\tsource_exchange\tsource_exchange_key\tsource_protocol\tsource_queue\tstate\t\
         termination_reason\ttype\tvhost\tmessages_moved\tlast_error"
    );
    let row = shovel_row_when(&source, "to-b", |row| row["messages_moved"] == "3").await;
    assert_eq!(row["state"], "running");
    assert_eq!(row["type"], "dynamic");
    assert_eq!(row["vhost"], "/");
    assert_eq!(row["source_queue"], "orders");
    assert_eq!(row["destination_queue"], "orders-copy");
    assert_eq!(row["source_protocol"], "amqp091");
    assert_eq!(row["destination_protocol"], "amqp091");
    assert_eq!(row["termination_reason"], "");
    assert_eq!(row["last_error"], "");
    assert!(
        row["source"].starts_with("amqp://") && !row["source"].contains("guest:guest"),
        "the URI is shown without its password: {}",
        row["source"]
    );
    let as_json = ok(&source, &["shovel_status", "--formatter", "json"]).await;
    let statuses: Value = serde_json::from_str(&as_json).expect("shovel_status json parses");
    assert_eq!(statuses[0]["name"], "to-b");
    assert_eq!(statuses[0]["state"], "running");
    assert_eq!(statuses[0]["messages_moved"], 3);
    assert_eq!(statuses[0]["destination_exchange"], Value::Null);

    // restart_shovel: a new run of the same definition (its count starts again), which moves what comes next.
    let out = ok(&source, &["restart_shovel", "to-b"]).await;
    assert!(
        out.starts_with("Restarting dynamic Shovel to-b in virtual host / on node "),
        "{out}"
    );
    let row = shovel_row_when(&source, "to-b", |row| row["state"] == "running").await;
    assert_eq!(
        row["messages_moved"], "0",
        "the restarted run moved nothing yet"
    );
    publish(&source, "orders", 2).await;
    await_count(&destination, "orders-copy", 5).await;
    shovel_row_when(&source, "to-b", |row| row["messages_moved"] == "2").await;

    // clear_parameter stops a second shovel; delete_shovel the first.
    let second = json!({"src-uri": source.uri(), "src-queue": "other",
                        "dest-uri": destination.uri(), "dest-queue": "orders-copy"})
    .to_string();
    ok(&source, &["set_parameter", "shovel", "second", &second]).await;
    shovel_row_when(&source, "second", |row| row["state"] == "running").await;
    let out = ok(&source, &["clear_parameter", "shovel", "second"]).await;
    assert_eq!(
        out,
        "Clearing runtime parameter \"second\" for component \"shovel\" on vhost \"/\" ...\n"
    );
    let out = ok(&source, &["delete_shovel", "to-b"]).await;
    assert_eq!(out, "Deleting shovel to-b in vhost /\n");
    assert_eq!(ok(&source, &["shovel_status", "-q"]).await, "");
    assert_eq!(ok(&source, &["list_parameters", "-q"]).await, "");
    // Stopped: what is published now stays at the source.
    publish(&source, "orders", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    await_count(&source, "orders", 1).await;
    await_count(&destination, "orders-copy", 5).await;

    // Refusals: each names what is wrong, with rabbitmqctl's exit codes.
    let said = refused(&source, &["restart_shovel", "to-b"], 65).await;
    assert!(
        said.contains("Shovel with the given name was not found on the target node")
            && said.contains("and / or virtual host '/'"),
        "{said}"
    );
    let said = refused(&source, &["delete_shovel", "to-b"], 65).await;
    assert!(
        said.contains("Shovel with the given name was not found"),
        "{said}"
    );
    let said = refused(&source, &["clear_parameter", "shovel", "to-b"], 65).await;
    assert!(said.contains("Parameter does not exist"), "{said}");
    let said = refused(
        &source,
        &["clear_parameter", "-p", "nosuch", "shovel", "to-b"],
        65,
    )
    .await;
    assert!(
        said.contains("Virtual host 'nosuch' does not exist"),
        "{said}"
    );
    let said = refused(&source, &["list_parameters", "-p", "nosuch"], 65).await;
    assert!(
        said.contains("Virtual host 'nosuch' does not exist"),
        "{said}"
    );
    let said = refused(
        &source,
        &["set_parameter", "-p", "nosuch", "shovel", "s", &value],
        65,
    )
    .await;
    assert!(
        said.contains("Virtual host 'nosuch' does not exist"),
        "{said}"
    );
    // A value the shovel component refuses: the node's reason, whole.
    let incomplete = json!({"src-uri": source.uri(), "src-queue": "orders"}).to_string();
    let said = refused(
        &source,
        &["set_parameter", "shovel", "broken", &incomplete],
        65,
    )
    .await;
    assert!(said.starts_with("Error:\nValidation failed\n\n"), "{said}");
    assert!(said.len() > "Error:\nValidation failed\n\n".len(), "{said}");
    // Not JSON: refused before the node is asked.
    let said = refused(&source, &["set_parameter", "shovel", "broken", "{nope"], 65).await;
    assert!(
        said.contains("the parameter value is not valid JSON"),
        "{said}"
    );
    // Another component's check: a federation upstream needs a uri.
    let said = refused(
        &source,
        &["set_parameter", "federation-upstream", "up", "{}"],
        65,
    )
    .await;
    assert!(said.starts_with("Error:\nValidation failed\n\n"), "{said}");
    // A component the node does not have.
    let said = refused(&source, &["set_parameter", "no-such-plugin", "p", "{}"], 65).await;
    assert!(
        said.contains("Validation failed") && said.contains("component no-such-plugin not found"),
        "{said}"
    );
    // Nothing refused was stored, nor started.
    assert_eq!(ok(&source, &["list_parameters", "-q"]).await, "");
    assert_eq!(ok(&source, &["shovel_status", "-q"]).await, "");
    // shovel_status is node-wide: -p is a usage error.
    refused(&source, &["shovel_status", "-p", "/"], 64).await;
}

/// The `federation_status` rows (of `--only-down` when `down`) once `done` holds for them (at most 30 s).
async fn links_when(
    server: &RunningServer,
    down: bool,
    done: impl Fn(&[std::collections::HashMap<String, String>]) -> bool,
) -> Vec<std::collections::HashMap<String, String>> {
    let args: &[&str] = if down {
        &["federation_status", "--only-down", "-q"]
    } else {
        &["federation_status", "-q"]
    };
    let mut last = String::new();
    for _ in 0..300 {
        last = ok(server, args).await;
        let rows = table(&last, false);
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the links never reached the state wanted; last federation_status:\n{last}");
}

#[tokio::test]
async fn federation_status_lists_the_links_and_restart_federation_link_restarts_one() {
    let upstream = common::start_server().await;
    let downstream = common::start_server().await;
    let conn = common::connect(&downstream).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.exchange_declare(
        "fed.x".into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions::default(),
        lapin::types::FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let reader = conn.create_channel().await.expect("channel");
    common::declare_plain(&reader, "fed.q").await;
    reader
        .queue_bind(
            "fed.q".into(),
            "fed.x".into(),
            "k".into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("queue.bind");

    // One upstream that answers, one where nothing listens (port 1 on loopback).
    let good = json!({"uri": upstream.uri()}).to_string();
    ok(
        &downstream,
        &["set_parameter", "federation-upstream", "good", &good],
    )
    .await;
    let bad = json!({"uri": "amqp://127.0.0.1:1", "reconnect-delay": 1}).to_string();
    ok(
        &downstream,
        &["set_parameter", "federation-upstream", "bad", &bad],
    )
    .await;
    ok(
        &downstream,
        &[
            "set_policy",
            "--apply-to",
            "exchanges",
            "federate",
            "^fed\\.",
            r#"{"federation-upstream-set": "all"}"#,
        ],
    )
    .await;

    // federation_status: one row per link (the node starts them within a second), under rabbitmqctl's banner and
    // columns.
    let rows = links_when(&downstream, false, |rows| {
        rows.iter()
            .any(|r| r["upstream"] == "good" && r["status"] == "running")
            && rows
                .iter()
                .any(|r| r["upstream"] == "bad" && !r["error"].is_empty())
    })
    .await;
    let out = ok(&downstream, &["federation_status"]).await;
    assert!(
        out.starts_with("Listing federation links on node "),
        "banner: {out}"
    );
    assert_eq!(
        out.lines().nth(1).unwrap_or_default(),
        "error\texchange\tid\tlast_changed\tqueue\tstatus\ttype\tupstream\tupstream_exchange\t\
         upstream_queue\turi\tvhost\tmessages_moved\tlast_error"
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let good_link = rows.iter().find(|r| r["upstream"] == "good").expect("good");
    assert_eq!(good_link["type"], "exchange");
    assert_eq!(good_link["exchange"], "fed.x");
    assert_eq!(good_link["upstream_exchange"], "fed.x");
    assert_eq!(good_link["queue"], "");
    assert_eq!(good_link["upstream_queue"], "");
    assert_eq!(good_link["vhost"], "/");
    assert_eq!(good_link["error"], "");
    let bad_link = rows.iter().find(|r| r["upstream"] == "bad").expect("bad");
    assert!(
        bad_link["uri"].starts_with("amqp://127.0.0.1:1"),
        "{bad_link:?}"
    );

    // --only-down: the link that is not connected, not the running one.
    let out = ok(&downstream, &["federation_status", "--only-down"]).await;
    assert!(
        out.starts_with("Listing federation links which are down on node "),
        "{out}"
    );
    let down = links_when(&downstream, true, |rows| {
        rows.iter().all(|r| r["upstream"] == "bad")
    })
    .await;
    assert!(
        down.iter().all(|r| r["status"] != "running"),
        "only links not running: {down:?}"
    );

    let json_out = ok(&downstream, &["federation_status", "--formatter", "json"]).await;
    let links: Value = serde_json::from_str(&json_out).expect("federation_status json parses");
    assert_eq!(links.as_array().map(Vec::len), Some(2), "{links}");

    // The running link moves what is published upstream (published again until the link's binding is there).
    let publisher_conn = common::connect(&upstream).await;
    let publisher = common::confirming_channel(&publisher_conn).await;
    common::within(30, async {
        while common::ready_count(&reader, "fed.q").await == 0 {
            common::publish_confirmed(&publisher, "fed.x", "k", "k", Default::default()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let id = good_link["id"].clone();
    links_when(&downstream, false, |rows| {
        rows.iter()
            .any(|r| r["id"] == id && r["messages_moved"] != "0")
    })
    .await;

    // restart_federation_link by ID: the link starts again (a new run, its count from zero), and runs.
    let out = ok(&downstream, &["restart_federation_link", &id]).await;
    assert!(
        out.starts_with(&format!("Restarting federation link {id} on node ")),
        "{out}"
    );
    links_when(&downstream, false, |rows| {
        rows.iter()
            .any(|r| r["id"] == id && r["status"] == "running" && r["messages_moved"] == "0")
    })
    .await;

    // An ID no link has: rabbitmqctl's words and exit code.
    let said = refused(&downstream, &["restart_federation_link", "nosuchid"], 69).await;
    assert!(
        said.contains("Link with the given ID was not found"),
        "{said}"
    );
    // Node-wide, as rabbitmqctl: -p is a usage error.
    refused(&downstream, &["federation_status", "-p", "/"], 64).await;
}
