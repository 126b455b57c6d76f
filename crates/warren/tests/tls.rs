//! TLS listeners: lapin over amqps:// with and without client certificates, verify_peer with
//! fail_if_no_peer_cert, plain and TLS listeners side by side (IPv4 and IPv6), startup errors naming the file, and
//! the wrong kind of client on each port getting a clean end instead of a hang.

mod common;
mod tls_support;

use std::net::SocketAddr;
use std::time::Duration;

use common::{start_server_with, within};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tls_support::{Issued, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::config::{Config, Verify};
use warren::server::RunningServer;

/// Points `config` at `pki`'s server certificate and adds one TLS listener on a free loopback port.
fn with_tls(config: &mut Config, pki: &Pki) {
    let (cert, key) = pki.write("server", &pki.server("warren"));
    config.ssl.certfile = Some(cert);
    config.ssl.keyfile = Some(key);
    config.ssl.cacertfile = Some(pki.ca_file());
    config.listeners.ssl = vec!["127.0.0.1:0".parse().expect("address")];
}

async fn connect_tls(
    addr: SocketAddr,
    pki: &Pki,
    client: Option<&Issued>,
    query: &str,
) -> lapin::Result<Connection> {
    let host = match addr {
        SocketAddr::V4(_) => addr.ip().to_string(),
        SocketAddr::V6(_) => format!("[{}]", addr.ip()),
    };
    let uri = format!("amqps://guest:guest@{host}:{}/%2f{query}", addr.port());
    Connection::connect_with_config(
        &uri,
        ConnectionProperties::default(),
        pki.lapin_tls(client),
        lapin::runtime::default_runtime().expect("runtime"),
    )
    .await
}

/// Declares a queue, publishes one message and gets it back over `connection`.
async fn round_trip(connection: &Connection, queue: &str) {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            b"over tls",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("published");
    let message = common::get_message(&channel, queue).await;
    assert_eq!(message.delivery.data, b"over tls");
}

#[tokio::test]
async fn lapin_over_tls_next_to_plain_tcp() {
    let pki = Pki::new("plain-and-tls");
    let server = start_server_with(|c| with_tls(c, &pki)).await;
    let tls = within(10, connect_tls(server.tls_addrs[0], &pki, None, ""))
        .await
        .expect("amqps connects");
    round_trip(&tls, "tls-q").await;
    let plain = common::connect(&server).await;
    round_trip(&plain, "plain-q").await;
}

#[tokio::test]
async fn several_listeners_ipv4_and_ipv6() {
    let pki = Pki::new("several");
    let server = start_server_with(|c| {
        with_tls(c, &pki);
        c.listeners.ssl.push("[::1]:0".parse().expect("v6"));
        c.listeners.tcp = vec!["[::1]:0".parse().expect("v6")];
    })
    .await;
    assert_eq!(server.tls_addrs.len(), 2);
    let v4 = within(10, connect_tls(server.tls_addrs[0], &pki, None, ""))
        .await
        .expect("amqps connects");
    round_trip(&v4, "q-tls-v4").await;
    // The ::1 listeners, over TLS and plain, each answer AMQP's protocol header with connection.start.
    let head = within(10, tls_support::amqp_over_tls(&pki, server.tls_addrs[1]))
        .await
        .expect("TLS on ::1");
    assert_eq!(&head[..3], &[1, 0, 0]);
    assert!(server.tls_addrs[1].is_ipv6());
    let v6 = server.plain_addrs[1];
    assert!(v6.is_ipv6());
    let mut raw = common::RawClient::connect_to(v6).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    let start = raw
        .read_frame()
        .await
        .expect("connection.start on plain ::1");
    assert_eq!(start.method_ids(), Some((10, 10)));
}

#[tokio::test]
async fn verify_peer_takes_a_client_certificate_and_fail_if_no_peer_cert_refuses_none() {
    let pki = Pki::new("verify-peer");
    let server = start_server_with(|c| {
        with_tls(c, &pki);
        c.ssl.verify = Verify::Peer;
        c.ssl.fail_if_no_peer_cert = true;
    })
    .await;
    let client = pki.client("guest");
    let connection = within(
        10,
        connect_tls(server.tls_addrs[0], &pki, Some(&client), ""),
    )
    .await
    .expect("a client with a certificate connects");
    round_trip(&connection, "cert-q").await;

    let refused = within(10, connect_tls(server.tls_addrs[0], &pki, None, "")).await;
    assert!(
        refused.is_err(),
        "a client without a certificate is refused"
    );

    // A certificate from another CA is refused as well.
    let stranger = Pki::new("stranger").client("guest");
    let refused = within(
        10,
        connect_tls(server.tls_addrs[0], &pki, Some(&stranger), ""),
    )
    .await;
    assert!(
        refused.is_err(),
        "a certificate of an unknown CA is refused"
    );
}

#[tokio::test]
async fn verify_peer_without_fail_if_no_peer_cert_lets_a_password_client_in() {
    let pki = Pki::new("verify-optional");
    let server = start_server_with(|c| {
        with_tls(c, &pki);
        c.ssl.verify = Verify::Peer;
    })
    .await;
    let connection = within(10, connect_tls(server.tls_addrs[0], &pki, None, ""))
        .await
        .expect("no certificate, PLAIN login");
    round_trip(&connection, "optional-q").await;
}

#[tokio::test]
async fn plain_client_on_the_tls_port_is_closed() {
    let pki = Pki::new("plain-on-tls");
    let server = start_server_with(|c| {
        with_tls(c, &pki);
        c.ssl.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(server.tls_addrs[0])
        .await
        .expect("connect");
    stream
        .write_all(b"AMQP\x00\x00\x09\x01")
        .await
        .expect("header");
    let mut reply = Vec::new();
    // The broker closes the socket (a reset counts too): `within` fails the test if it hangs instead.
    let _ = within(10, stream.read_to_end(&mut reply)).await;
    // Nothing of AMQP comes back: at most a TLS alert record.
    assert!(
        reply.is_empty() || reply[0] == 0x15,
        "unexpected reply {reply:?}"
    );

    // A client that says nothing at all is dropped at the TLS handshake deadline.
    let mut silent = TcpStream::connect(server.tls_addrs[0])
        .await
        .expect("connect");
    let mut reply = Vec::new();
    let _ = within(10, silent.read_to_end(&mut reply)).await;
    assert!(reply.is_empty());
}

#[tokio::test]
async fn tls_client_on_the_plain_port_fails_cleanly() {
    let pki = Pki::new("tls-on-plain");
    let server = start_server_with(|c| with_tls(c, &pki)).await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(server.addr.ip().into());
    let result = within(10, pki.rustls_client().connect(name, tcp)).await;
    assert!(
        result.is_err(),
        "the TLS handshake fails against a plain listener"
    );
}

#[tokio::test]
async fn missing_or_bad_files_are_startup_errors_naming_the_file() {
    let pki = Pki::new("bad-files");
    let start = |adjust: Box<dyn FnOnce(&mut Config)>| async {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            management: warren::config::ManagementConfig {
                listen: "127.0.0.1:0".parse().expect("loopback address"),
                enabled: true,
                ..warren::config::ManagementConfig::default()
            },
            data_dir: pki.dir.join("data"),
            ..Config::default()
        };
        config.prometheus.listen = "127.0.0.1:0".parse().expect("address");
        with_tls(&mut config, &pki);
        adjust(&mut config);
        match RunningServer::start(config).await {
            Ok(_) => panic!("the server started"),
            Err(error) => error.to_string(),
        }
    };
    let missing = pki.dir.join("nowhere.pem");
    let cert = missing.clone();
    let error = start(Box::new(move |c| c.ssl.certfile = Some(cert))).await;
    assert!(
        error.contains("ssl_options.certfile") && error.contains(&missing.display().to_string()),
        "{error}"
    );

    let garbage = pki.dir.join("garbage.key");
    std::fs::write(&garbage, "not a key").expect("write");
    let key = garbage.clone();
    let error = start(Box::new(move |c| c.ssl.keyfile = Some(key))).await;
    assert!(
        error.contains("ssl_options.keyfile") && error.contains(&garbage.display().to_string()),
        "{error}"
    );

    let error = start(Box::new(|c| c.ssl.certfile = None)).await;
    assert!(error.contains("ssl_options.certfile"), "{error}");
}
