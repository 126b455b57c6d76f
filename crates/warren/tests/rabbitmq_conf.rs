//! A RabbitMQ `rabbitmq.conf` given to `warren --config`: the broker starts with its users and limits, logs the
//! RabbitMQ tuning keys it ignores, and refuses a key it does not support, naming the line.

mod common;

use std::process::Command;

use common::process::{fresh_data_dir, BrokerProcess};
use lapin::{Connection, ConnectionProperties};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_conf_sets_users_and_limits() {
    let dir = fresh_data_dir("rabbitmq-conf");
    let conf = dir.with_extension("conf");
    std::fs::write(
        &conf,
        "## as an operator's /etc/rabbitmq/rabbitmq.conf\n\
         default_user = ops\n\
         default_pass = opspass\n\
         frame_max = 65536\n\
         channel_max = 64\n\
         heartbeat = 20\n\
         management.rates_mode = basic\n",
    )
    .expect("write conf");
    let conf_arg = conf.to_string_lossy().into_owned();
    let broker = BrokerProcess::start(&dir, &["--config", &conf_arg]);
    let ops = format!("amqp://ops:opspass@{}/%2f", broker.addr);
    let conn = Connection::connect(&ops, ConnectionProperties::default())
        .await
        .expect("the default_user logs in");
    let tuned = conn.configuration();
    assert_eq!(tuned.frame_max(), 65536);
    assert_eq!(tuned.channel_max(), 64);
    assert_eq!(tuned.heartbeat(), 20);
    conn.close(200, "done".into()).await.expect("close");
    assert!(
        Connection::connect(&broker.uri(), ConnectionProperties::default())
            .await
            .is_err(),
        "guest is replaced by the default_user"
    );
    let log = std::fs::read_to_string(dir.with_extension("log")).expect("log");
    assert!(
        log.contains(
            ":7: management.rates_mode: a RabbitMQ tuning key with no Warren equivalent; ignored"
        ),
        "{log}"
    );
}

#[test]
fn an_unsupported_key_stops_the_start_naming_its_line() {
    let dir = fresh_data_dir("rabbitmq-conf-refused");
    let conf = dir.with_extension("conf");
    std::fs::write(
        &conf,
        "heartbeat = 20\ncluster_formation.peer_discovery_backend = classic_config\n",
    )
    .expect("write conf");
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("--config")
        .arg(&conf)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("run warren");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(".conf:2: key `cluster_formation.peer_discovery_backend`: not supported by Warren: clustering is not supported yet"),
        "{stderr}"
    );
}
