//! connection.update-secret as RabbitMQ answers it for users of its internal backend: update-secret-ok whatever the
//! new secret (the internal backend's credentials never expire, so `rabbit_access_control:update_state/2` does not
//! hand it the secret), for PLAIN and EXTERNAL logins; the connection keeps working; the update is logged with its
//! reason, never with the secret; a deleted user's connection is already closed with 320.

mod common;
mod tls_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{reply_code, reply_text, within};
use futures_lite::StreamExt;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tls_support::Pki;
use warren::broker::PermissionDefinition;
use warren::config::{CertLoginFrom, Mechanism, UserConfig, Verify};
use warren::server::RunningServer;

/// A server with user `u` (password `pw`) allowed everything in "/", and a connection of `u`.
async fn connected_user() -> (RunningServer, Connection) {
    let server = common::start_server().await;
    server
        .broker
        .add_user("u", "pw", Vec::new())
        .expect("user added");
    server
        .broker
        .set_permissions(PermissionDefinition {
            user: "u".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .expect("permissions set");
    let uri = format!("amqp://u:pw@{}/%2f", server.addr);
    let conn = within(
        10,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect("u logs in");
    (server, conn)
}

/// Declares a queue, publishes to it and gets the message back on a new channel.
async fn round_trip_works(conn: &Connection) {
    let ch = conn.create_channel().await.expect("channel");
    let queue = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    ch.basic_publish(
        "".into(),
        queue.name().clone(),
        BasicPublishOptions::default(),
        b"after update-secret",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    let got = common::get_message(&ch, queue.name().as_str()).await;
    assert_eq!(got.data, b"after update-secret");
}

async fn update_secret(conn: &Connection, secret: &str, reason: &str) -> lapin::Result<()> {
    within(5, conn.update_secret(secret.into(), reason.into())).await
}

#[tokio::test]
async fn any_new_secret_is_answered_ok_and_the_connection_keeps_working() {
    let (server, conn) = connected_user().await;
    // The current password, another one, and an empty one: RabbitMQ's internal backend checks none of them.
    for secret in ["pw", "not the password", ""] {
        update_secret(&conn, secret, "rotation")
            .await
            .unwrap_or_else(|e| panic!("update-secret {secret:?} answered: {e}"));
        assert!(conn.status().connected());
    }
    round_trip_works(&conn).await;
    // The stored password is unchanged: update-secret does not set it.
    let uri = format!("amqp://u:pw@{}/%2f", server.addr);
    within(
        10,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect("the old password still logs in");
}

/// A `Write` into a buffer the test reads afterwards.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_update_is_logged_with_user_and_reason_but_not_the_secret() {
    // The process-wide subscriber (this is the only test of this binary that sets one; a thread's own
    // subscriber misses events when tests on other threads touch a callsite first). Other tests' lines land in
    // the buffer too: the reason and the secret below are this test's own.
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let (_server, conn) = connected_user().await;
    update_secret(&conn, "s3cr3t-token", "token refresh")
        .await
        .expect("update-secret-ok");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("user 'u' updated secret, reason: token refresh"),
        "logs: {logs}"
    );
    assert!(
        !logs.contains("s3cr3t-token"),
        "the secret was logged: {logs}"
    );
}

#[tokio::test]
async fn a_deleted_users_connection_is_closed_with_320_before_any_update() {
    let (server, conn) = connected_user().await;
    let mut events = Box::pin(conn.events_listener());
    server.broker.delete_user("u").expect("deleted");
    let close = within(10, async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(error)) if reply_code(&error).is_some() => {
                    return (reply_code(&error), reply_text(&error));
                }
                Some(_) => {}
                None => panic!("connection events ended before a close"),
            }
        }
    })
    .await;
    assert_eq!(
        close,
        (
            Some(320),
            Some("CONNECTION_FORCED - user 'u' is deleted".to_owned())
        )
    );
    assert!(update_secret(&conn, "pw", "after delete").await.is_err());
}

#[tokio::test]
async fn an_external_login_takes_any_new_secret() {
    let pki = Pki::new("update-secret");
    let server = common::start_server_with(|config| {
        let (cert, key) = pki.write("server", &pki.server("warren"));
        config.ssl.certfile = Some(cert);
        config.ssl.keyfile = Some(key);
        config.ssl.cacertfile = Some(pki.ca_file());
        config.ssl.verify = Verify::Peer;
        config.listeners.ssl = vec!["127.0.0.1:0".parse().expect("address")];
        config.sasl.mechanisms = vec![Mechanism::Plain, Mechanism::External];
        config.sasl.cert_login_from = CertLoginFrom::CommonName;
        config.auth.users.push(UserConfig {
            name: "alice".to_owned(),
            password: "never checked".to_owned(),
            vhosts: vec!["/".to_owned()],
        });
    })
    .await;
    let addr = server.tls_addrs[0];
    let uri = format!(
        "amqps://{}:{}/%2f?auth_mechanism=external",
        addr.ip(),
        addr.port()
    );
    let alice = pki.client("alice");
    let conn = within(
        10,
        Connection::connect_with_config(
            &uri,
            ConnectionProperties::default(),
            pki.lapin_tls(Some(&alice)),
            lapin::runtime::default_runtime().expect("runtime"),
        ),
    )
    .await
    .expect("alice logs in with her certificate");
    update_secret(&conn, "anything", "certificate rotated")
        .await
        .expect("update-secret-ok");
    round_trip_works(&conn).await;
}
