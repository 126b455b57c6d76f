//! SASL EXTERNAL: the user named by a verified client certificate logs in without a password; an unknown user is
//! refused; EXTERNAL is offered only on TLS listeners that verify peers.

mod common;
mod tls_support;

use std::net::SocketAddr;

use common::{start_server_with, within, RawClient};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tls_support::{Issued, Pki};
use warren::config::{CertLoginFrom, Config, Mechanism, UserConfig, Verify};

/// TLS with verify_peer, EXTERNAL enabled, and `users` added next to guest.
fn with_external(config: &mut Config, pki: &Pki, users: &[&str]) {
    let (cert, key) = pki.write("server", &pki.server("warren"));
    config.ssl.certfile = Some(cert);
    config.ssl.keyfile = Some(key);
    config.ssl.cacertfile = Some(pki.ca_file());
    config.ssl.verify = Verify::Peer;
    config.listeners.ssl = vec!["127.0.0.1:0".parse().expect("address")];
    config.sasl.mechanisms = vec![Mechanism::Plain, Mechanism::Amqplain, Mechanism::External];
    for name in users {
        config.auth.users.push(UserConfig {
            name: (*name).to_owned(),
            password: "never checked".to_owned(),
            vhosts: vec!["/".to_owned()],
        });
    }
}

async fn connect_external(
    addr: SocketAddr,
    pki: &Pki,
    client: Option<&Issued>,
) -> lapin::Result<Connection> {
    let uri = format!(
        "amqps://{}:{}/%2f?auth_mechanism=external",
        addr.ip(),
        addr.port()
    );
    Connection::connect_with_config(
        &uri,
        ConnectionProperties::default(),
        pki.lapin_tls(client),
        lapin::runtime::default_runtime().expect("runtime"),
    )
    .await
}

async fn declare_works(connection: &Connection) {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
}

#[tokio::test]
async fn common_name_logs_in_and_an_unknown_user_is_refused() {
    let pki = Pki::new("external-cn");
    let server = start_server_with(|c| {
        with_external(c, &pki, &["alice"]);
        c.sasl.cert_login_from = CertLoginFrom::CommonName;
    })
    .await;
    let addr = server.tls_addrs[0];
    let alice = pki.client("alice");
    let connection = within(10, connect_external(addr, &pki, Some(&alice)))
        .await
        .expect("alice logs in with her certificate");
    declare_works(&connection).await;
    let listed: Vec<String> = server
        .broker
        .connections()
        .list()
        .into_iter()
        .map(|c| c.details.user)
        .collect();
    assert!(listed.contains(&"alice".to_owned()), "{listed:?}");

    let mallory = pki.client("mallory");
    let refused = within(10, connect_external(addr, &pki, Some(&mallory))).await;
    assert!(refused.is_err(), "an unknown user is refused");

    // No certificate (allowed by this listener for password clients): EXTERNAL has no name to use.
    let refused = within(10, connect_external(addr, &pki, None)).await;
    assert!(
        refused.is_err(),
        "EXTERNAL without a certificate is refused"
    );
}

#[tokio::test]
async fn distinguished_name_is_the_user_name() {
    let pki = Pki::new("external-dn");
    let server = start_server_with(|c| with_external(c, &pki, &["CN=bob,O=Warren tests"])).await;
    let bob = pki.client("bob");
    let connection = within(10, connect_external(server.tls_addrs[0], &pki, Some(&bob)))
        .await
        .expect("bob logs in by his subject DN");
    declare_works(&connection).await;
}

/// The mechanisms field of the connection.start a raw client receives at `addr` (plain TCP only).
async fn offered_on_plain(addr: SocketAddr) -> String {
    let mut raw = RawClient::connect_to(addr).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    let start = raw.read_frame().await.expect("connection.start");
    String::from_utf8_lossy(&start.payload).into_owned()
}

#[tokio::test]
async fn external_is_not_offered_or_accepted_on_a_plain_listener() {
    let pki = Pki::new("external-plain");
    let server = start_server_with(|c| with_external(c, &pki, &["guest"])).await;
    let start = offered_on_plain(server.addr).await;
    assert!(start.contains("PLAIN AMQPLAIN"), "{start}");
    assert!(!start.contains("EXTERNAL"), "{start}");
    let uri = format!("amqp://{}/%2f?auth_mechanism=external", server.addr);
    let refused = within(
        10,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await;
    assert!(
        refused.is_err(),
        "EXTERNAL on a plain connection is refused"
    );
}

#[tokio::test]
async fn external_is_not_offered_without_verify_peer() {
    let pki = Pki::new("external-verify-none");
    let server = start_server_with(|c| {
        with_external(c, &pki, &["alice"]);
        c.ssl.verify = Verify::None;
        c.sasl.cert_login_from = CertLoginFrom::CommonName;
    })
    .await;
    let alice = pki.client("alice");
    let refused = within(
        10,
        connect_external(server.tls_addrs[0], &pki, Some(&alice)),
    )
    .await;
    assert!(refused.is_err(), "no EXTERNAL without verify_peer");
}
