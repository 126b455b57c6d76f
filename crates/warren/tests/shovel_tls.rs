//! A shovel to an `amqps://` destination: RabbitMQ's `cacertfile` query option verifies the server, and without it
//! (no trusted CA) the shovel is terminated with the TLS failure as its reason.

mod common;
mod tls_support;

use std::time::Duration;

use common::api::call;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use reqwest::Method;
use serde_json::{json, Value};
use tls_support::Pki;
use warren::server::RunningServer;

async fn shovel_status(server: &RunningServer, name: &str, done: impl Fn(&Value) -> bool) -> Value {
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_shovel_publishes_over_tls_verifying_the_server_with_cacertfile() {
    let pki = Pki::new("shovel-tls");
    let (cert, key) = pki.write("server", &pki.server("warren"));
    let ca = pki.ca_file();
    let server = common::start_server_with(|config| {
        config.ssl.certfile = Some(cert);
        config.ssl.keyfile = Some(key);
        config.ssl.cacertfile = Some(pki.ca_file());
        config.listeners.ssl = vec!["127.0.0.1:0".parse().expect("address")];
    })
    .await;
    let tls = server.tls_addrs[0];
    let conn = common::connect(&server).await;
    let ch = common::confirming_channel(&conn).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    common::declare(&ch, "outgoing", durable, FieldTable::default()).await;
    common::publish_n(&ch, "outgoing", 50).await;

    let dest = format!(
        "amqps://guest:guest@127.0.0.1:{}/%2F?cacertfile={}",
        tls.port(),
        ca.display()
    );
    let (code, body) = call(
        &server,
        Method::PUT,
        "/parameters/shovel/%2F/over-tls",
        Some(json!({"value": {"src-uri": "amqp://", "src-queue": "outgoing", "dest-uri": dest, "dest-queue": "received"}})),
    )
    .await;
    assert_eq!(code.as_u16(), 201, "{body}");
    let status = shovel_status(&server, "over-tls", |s| s["messages_moved"] == 50).await;
    assert!(
        status["dest_uri"]
            .as_str()
            .unwrap()
            .starts_with("amqps://guest@127.0.0.1"),
        "{status}"
    );
    common::wait_for_count(&ch, "received", 50).await;

    // Without the CA the server's certificate is not trusted: terminated, with why.
    let untrusted = format!("amqps://guest:guest@127.0.0.1:{}/%2F", tls.port());
    let (code, _) = call(
        &server,
        Method::PUT,
        "/parameters/shovel/%2F/untrusted",
        Some(json!({"value": {"src-uri": "amqp://", "src-queue": "outgoing", "dest-uri": untrusted, "dest-queue": "never"}})),
    )
    .await;
    assert_eq!(code.as_u16(), 201);
    let status = shovel_status(&server, "untrusted", |s| s["state"] == "terminated").await;
    let reason = status["reason"].as_str().unwrap().to_lowercase();
    assert!(
        reason.contains("certificate") || reason.contains("tls") || reason.contains("issuer"),
        "{status}"
    );
}
