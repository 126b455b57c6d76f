//! Certificate reload without a restart: new certificate files are picked up (their change is noticed by the
//! broker's poll); new connections get the new certificate while an open TLS connection carries on.

mod common;
mod tls_support;

use std::time::Duration;

use common::{start_server_with, within};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tls_support::{der_of, served_certificate, Pki};

#[tokio::test]
async fn new_connections_get_the_new_certificate_and_open_ones_stay() {
    let pki = Pki::new("reload");
    let first = pki.server("first");
    let (cert, key) = pki.write("server", &first);
    let server = start_server_with(|c| {
        c.ssl.certfile = Some(cert);
        c.ssl.keyfile = Some(key);
        c.listeners.ssl = vec!["127.0.0.1:0".parse().expect("address")];
    })
    .await;
    let addr = server.tls_addrs[0];
    assert_eq!(
        served_certificate(&pki, addr).await.expect("tls"),
        der_of(&first.cert_pem)
    );
    let uri = format!("amqps://guest:guest@{addr}/%2f");
    let open = Connection::connect_with_config(
        &uri,
        ConnectionProperties::default(),
        pki.lapin_tls(None),
        lapin::runtime::default_runtime().expect("runtime"),
    )
    .await
    .expect("amqps connects");
    let channel = open.create_channel().await.expect("channel");

    let second = pki.server("second");
    pki.write("server", &second);
    let wanted = der_of(&second.cert_pem);
    within(30, async {
        while served_certificate(&pki, addr).await.ok().as_ref() != Some(&wanted) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // The connection opened before the reload still works.
    channel
        .queue_declare(
            "after-reload".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("the open connection carries on");
}
