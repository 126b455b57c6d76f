//! RabbitMQ definitions JSON through the real binary: a file exported by RabbitMQ 3.10.8 imported offline
//! (`warren definitions import`), its users logging in with their RabbitMQ passwords, Warren's export imported
//! into a fresh data directory exporting the same, `load_definitions` at every start keeping the messages of a
//! durable queue, and a bad file refused whole with its JSON paths.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::{fresh_data_dir, BrokerProcess};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// Exported by RabbitMQ 3.10.8 with `rabbitmqctl export_definitions` after `interop-tests/definitions-roundtrip`
/// created its objects: users alice (password alice-secret) and bob (bob-secret), vhost app, ...
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rabbitmq-3.10-definitions.json")
}

/// Runs `warren definitions ARGS... --data-dir DIR`.
fn definitions(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("definitions")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run warren definitions")
}

fn import(data_dir: &Path, file: &Path) -> Output {
    definitions(data_dir, &["import", file.to_str().expect("utf-8 path")])
}

/// The definitions of `data_dir`, as `warren definitions export -` prints them.
fn export(data_dir: &Path) -> serde_json::Value {
    let out = definitions(data_dir, &["export", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("export is JSON")
}

async fn connect(
    broker: &BrokerProcess,
    user: &str,
    password: &str,
    vhost: &str,
) -> lapin::Result<Connection> {
    let uri = format!("amqp://{user}:{password}@{}/{vhost}", broker.addr);
    common::within(
        20,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

#[tokio::test]
async fn a_rabbitmq_export_imports_and_its_users_log_in_with_their_passwords() {
    let dir = fresh_data_dir("defs-rabbitmq");
    let out = import(&dir, &fixture());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("imported 3 users, 2 vhosts, 4 permissions"),
        "{report}"
    );
    let broker = BrokerProcess::start(&dir, &[]);
    let alice = connect(&broker, "alice", "alice-secret", "app")
        .await
        .expect("alice logs in");
    let ch = alice.create_channel().await.expect("channel");
    for queue in ["work", "prio", "votes", "dead", "ttl.q", "custom.args"] {
        ch.queue_declare(queue.into(), passive(), FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue {queue} imported: {e}"));
    }
    // The imported alternate exchange: `fan` has no bindings, its messages go to `unrouted`, bound to `dead`.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    ch.basic_publish(
        "fan".into(),
        "".into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .expect("publish")
    .await
    .expect("confirmed");
    let dead = ch
        .queue_declare("dead".into(), passive(), FieldTable::default())
        .await
        .expect("dead");
    assert_eq!(dead.message_count(), 1);
    connect(&broker, "bob", "bob-secret", "app")
        .await
        .expect("bob logs in");
    assert!(
        connect(&broker, "bob", "alice-secret", "app")
            .await
            .is_err(),
        "a wrong password is refused"
    );
    broker.stop();
    // The guest user of the file (RabbitMQ's own, hash and all) is the only guest: no seed was added.
    let users: Vec<String> = export(&dir)["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(users, vec!["alice", "bob", "guest"]);
}

#[tokio::test]
async fn warrens_export_imports_into_a_fresh_data_dir_unchanged() {
    let first = fresh_data_dir("defs-first");
    assert!(import(&first, &fixture()).status.success());
    let exported = export(&first);
    let file = first.with_extension("export.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&exported).expect("json"))
        .expect("write export");
    let second = fresh_data_dir("defs-second");
    let out = import(&second, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(export(&second), exported);
    assert_eq!(
        exported["vhosts"][1]["limits"],
        serde_json::json!({"max-connections": 100, "max-queues": 50})
    );
    assert_eq!(exported["exchanges"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn load_definitions_at_every_start_keeps_the_messages_of_durable_queues() {
    let dir = fresh_data_dir("defs-boot");
    let config = dir.with_extension("toml");
    let path = fixture();
    std::fs::write(
        &config,
        format!(
            "[definitions]\nload_definitions = {:?}\n",
            path.to_str().expect("utf-8 path")
        ),
    )
    .expect("write config");
    let args = ["--config", config.to_str().expect("utf-8 path")];
    let broker = BrokerProcess::start(&dir, &args);
    {
        let alice = connect(&broker, "alice", "alice-secret", "app")
            .await
            .expect("alice logs in");
        let ch = alice.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        let persistent = BasicProperties::default().with_delivery_mode(2);
        ch.basic_publish(
            "".into(),
            "work".into(),
            BasicPublishOptions::default(),
            b"kept",
            persistent,
        )
        .await
        .expect("publish")
        .await
        .expect("confirmed");
    }
    broker.stop();
    let broker = BrokerProcess::start(&dir, &args);
    let alice = connect(&broker, "alice", "alice-secret", "app")
        .await
        .expect("alice logs in again");
    let ch = alice.create_channel().await.expect("channel");
    let work = ch
        .queue_declare("work".into(), passive(), FieldTable::default())
        .await
        .expect("work");
    assert_eq!(
        work.message_count(),
        1,
        "the import at the second start lost the message"
    );
    broker.stop();
    // While a broker runs, the offline tools refuse the data directory.
    let broker = BrokerProcess::start(&dir, &args);
    let out = import(&dir, &path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    broker.stop();
}

#[test]
fn a_bad_file_is_refused_whole_with_every_json_path() {
    let dir = fresh_data_dir("defs-bad");
    let file = dir.with_extension("bad.json");
    std::fs::write(
        &file,
        r#"{"vhosts": [{"name": "v"}],
            "users": [{"name": "u", "password": "p", "tags": []}],
            "queues": [{"name": "s", "vhost": "v", "durable": true, "arguments": {"x-queue-type": "stream"}}],
            "exchanges": [{"name": "d", "vhost": "v", "type": "x-delayed-message", "durable": true}],
            "parameters": [{"vhost": "v", "component": "mqtt-retained", "name": "up", "value": {"uri": "amqp://"}}]}"#,
    )
    .expect("write file");
    let out = import(&dir, &file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in [
        "queues[0].arguments: ",
        "exchanges[0].arguments.x-delayed-type: ",
        "parameters[0].component: ",
        "3 problem(s); nothing was imported",
    ] {
        assert!(stderr.contains(path), "{path} missing: {stderr}");
    }
    assert_eq!(
        export(&dir)["users"],
        serde_json::json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn an_imported_durable_delayed_exchange_keeps_its_persistent_messages_across_kill_9() {
    use futures_lite::StreamExt;
    let dir = fresh_data_dir("defs-delayed");
    let file = dir.with_extension("delayed.json");
    std::fs::write(
        &file,
        r#"{"vhosts": [{"name": "/"}],
            "users": [{"name": "guest", "password": "guest", "tags": ["administrator"]}],
            "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
            "exchanges": [{"name": "later", "vhost": "/", "type": "x-delayed-message", "durable": true,
                           "auto_delete": false, "internal": false, "arguments": {"x-delayed-type": "direct"}}],
            "queues": [{"name": "due", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
            "bindings": [{"source": "later", "vhost": "/", "destination": "due", "destination_type": "queue",
                          "routing_key": "k", "arguments": {}}]}"#,
    )
    .expect("write file");
    let out = import(&dir, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = connect(&broker, "guest", "guest", "%2f")
        .await
        .expect("login");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), lapin::types::AMQPValue::LongInt(1500));
    let confirm = ch
        .basic_publish(
            "later".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"held",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    broker.kill9();
    let broker = BrokerProcess::start(&dir, &[]);
    let conn = connect(&broker, "guest", "guest", "%2f")
        .await
        .expect("login");
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "due".into(),
            "c".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = common::within(20, consumer.next())
        .await
        .expect("the delayed message after the restart")
        .unwrap();
    assert_eq!(delivery.data, b"held");
    broker.stop();
    let _ = QueueDeclareOptions::default();
}
