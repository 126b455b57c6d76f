//! RabbitMQ's access control through a real socket: logins against hashed users (SHA-256, SHA-512, MD5), the
//! vhost check of connection.open (530), the configure/write/read check of every method with RabbitMQ's 403 texts,
//! topic permissions, permission changes applying to the next method, and deleting a user or a vhost closing its
//! connections with 320.

mod common;

use common::{connect_as, refusal, reply_code, reply_text, within};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use warren::broker::{PermissionDefinition, TopicPermissionDefinition, UserDefinition};
use warren::server::RunningServer;

/// Gives `user` these regexes in "/".
fn grant(server: &RunningServer, user: &str, configure: &str, write: &str, read: &str) {
    server
        .broker
        .set_permissions(PermissionDefinition {
            user: user.into(),
            vhost: "/".into(),
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        })
        .expect("permissions set");
}

/// A server with user `u` (password `pw`, no permissions yet) and, as guest, exchange `x` (direct) and queue `q`.
async fn setup() -> (RunningServer, Connection) {
    let server = common::start_server().await;
    server
        .broker
        .add_user("u", "pw", Vec::new())
        .expect("user added");
    let admin = common::connect(&server).await;
    let ch = admin.create_channel().await.unwrap();
    ch.exchange_declare(
        "x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    common::declare_plain(&ch, "q").await;
    (server, admin)
}

/// RabbitMQ 3.x's refusal of a configure, write or read check (checked against 3.10.8): the text names the
/// resource, not the permission.
fn denied(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'u'"),
    )
}

async fn confirming(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

async fn publish(ch: &Channel, exchange: &str, key: &str) -> lapin::Result<()> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await?;
    confirm.await.map(drop)
}

#[tokio::test]
async fn connection_open_needs_a_permission_in_the_vhost() {
    let (server, _admin) = setup().await;
    let error = connect_as(&server, "u", "pw", "%2f")
        .await
        .expect_err("no permission in /");
    assert_eq!(reply_code(&error), Some(530));
    assert_eq!(
        reply_text(&error).as_deref(),
        Some("NOT_ALLOWED - access to vhost '/' refused for user 'u'")
    );
    // Any permission, even one matching nothing, opens the vhost.
    grant(&server, "u", "", "", "");
    let conn = connect_as(&server, "u", "pw", "%2f").await.expect("opens");
    // A passive declare needs no permission.
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("q".into(), common::passive(), FieldTable::default())
        .await
        .expect("passive declare allowed");
    assert!(connect_as(&server, "u", "wrong", "%2f").await.is_err());
}

#[tokio::test]
async fn declares_and_deletes_need_configure() {
    let (server, _admin) = setup().await;
    grant(&server, "u", "^mine", ".*", ".*");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    common::declare_plain(&ch, "mine-q").await;
    let declare = |ch: &Channel, name: &str| {
        let (ch, name) = (ch.clone(), name.to_owned());
        async move {
            ch.queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(refusal(declare(&ch, "q")).await, denied("queue", "q"));
    // A server-named queue is checked under its amq.gen- name.
    let ch = conn.create_channel().await.unwrap();
    let (code, text) = refusal(declare(&ch, "")).await;
    assert_eq!(code, 403);
    assert!(
        text.starts_with("ACCESS_REFUSED - access to queue 'amq.gen-")
            && text.ends_with("' in vhost '/' refused for user 'u'"),
        "{text}"
    );
    grant(&server, "u", "^(mine|amq\\.gen-)", ".*", ".*");
    let ch = conn.create_channel().await.unwrap();
    let q = declare(&ch, "").await.expect("server-named queue allowed");
    assert!(q.name().as_str().starts_with("amq.gen-"));

    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.queue_delete("q".into(), QueueDeleteOptions::default())).await,
        denied("queue", "q")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.exchange_declare(
            "y".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default()
        ))
        .await,
        denied("exchange", "y")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.exchange_delete("x".into(), ExchangeDeleteOptions::default())).await,
        denied("exchange", "x")
    );
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "mine-x".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("allowed");
    ch.exchange_delete("mine-x".into(), ExchangeDeleteOptions::default())
        .await
        .expect("allowed");
    ch.queue_delete("mine-q".into(), QueueDeleteOptions::default())
        .await
        .expect("allowed");
}

#[tokio::test]
async fn an_alternate_or_dead_letter_exchange_needs_write_on_it() {
    let (server, _admin) = setup().await;
    grant(&server, "u", ".*", "^mine", ".*");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("x".into()),
    );
    assert_eq!(
        refusal(ch.exchange_declare(
            "mine-ae".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            args
        ))
        .await,
        denied("exchange", "x")
    );
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("x".into()),
    );
    assert_eq!(
        refusal(ch.queue_declare("mine-dl".into(), QueueDeclareOptions::default(), args)).await,
        denied("exchange", "x")
    );
}

#[tokio::test]
async fn bindings_need_write_on_the_destination_and_read_on_the_source() {
    let (server, _admin) = setup().await;
    grant(&server, "u", "", "^nothing$", ".*");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let bind = |ch: &Channel| {
        let ch = ch.clone();
        async move {
            ch.queue_bind(
                "q".into(),
                "x".into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(refusal(bind(&ch)).await, denied("queue", "q"));
    grant(&server, "u", "", ".*", "^nothing$");
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(refusal(bind(&ch)).await, denied("exchange", "x"));
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.queue_unbind("q".into(), "x".into(), "k".into(), FieldTable::default())).await,
        denied("exchange", "x")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.exchange_bind(
            "amq.fanout".into(),
            "x".into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default()
        ))
        .await,
        denied("exchange", "x")
    );
    grant(&server, "u", "", "^q$", ".*");
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.exchange_unbind(
            "amq.fanout".into(),
            "x".into(),
            "k".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default()
        ))
        .await,
        denied("exchange", "amq.fanout")
    );
    let ch = conn.create_channel().await.unwrap();
    bind(&ch).await.expect("write on q, read on x: allowed");
    ch.queue_unbind("q".into(), "x".into(), "k".into(), FieldTable::default())
        .await
        .expect("allowed");
}

#[tokio::test]
async fn publish_needs_write_on_the_exchange_and_the_default_exchange_is_amq_default() {
    let (server, _admin) = setup().await;
    grant(&server, "u", "", "^x$", ".*");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = confirming(&conn).await;
    publish(&ch, "x", "k").await.expect("write on x");
    assert_eq!(
        refusal(publish(&ch, "", "q")).await,
        denied("exchange", "amq.default")
    );
    let ch = confirming(&conn).await;
    assert_eq!(
        refusal(publish(&ch, "amq.direct", "q")).await,
        denied("exchange", "amq.direct")
    );
    // Refused before the exchange is looked up, as RabbitMQ does.
    let ch = confirming(&conn).await;
    assert_eq!(
        refusal(publish(&ch, "missing", "q")).await,
        denied("exchange", "missing")
    );
}

#[tokio::test]
async fn consume_get_and_purge_need_read_on_the_queue() {
    let (server, _admin) = setup().await;
    grant(&server, "u", "", ".*", "^nothing$");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.basic_get("q".into(), BasicGetOptions::default())).await,
        denied("queue", "q")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        denied("queue", "q")
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.queue_purge("q".into(), QueuePurgeOptions::default())).await,
        denied("queue", "q")
    );
    grant(&server, "u", "", ".*", "^q$");
    let ch = conn.create_channel().await.unwrap();
    ch.basic_get("q".into(), BasicGetOptions::default())
        .await
        .expect("read on q");
    ch.queue_purge("q".into(), QueuePurgeOptions::default())
        .await
        .expect("read on q");
}

#[tokio::test]
async fn a_permission_change_applies_to_the_next_publish_on_an_open_channel() {
    let (server, _admin) = setup().await;
    grant(&server, "u", "", ".*", "");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = confirming(&conn).await;
    for _ in 0..3 {
        publish(&ch, "x", "k").await.expect("allowed");
    }
    grant(&server, "u", "", "^y$", "");
    assert_eq!(
        refusal(publish(&ch, "x", "k")).await,
        denied("exchange", "x")
    );
}

#[tokio::test]
async fn topic_permissions_check_routing_and_binding_keys() {
    let (server, _admin) = setup().await;
    grant(&server, "u", "", ".*", ".*");
    server
        .broker
        .set_topic_permissions(TopicPermissionDefinition {
            user: "u".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{username}\\.".into(),
            read: "^{vhost}\\.".into(),
        })
        .expect("topic permissions set");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let ch = confirming(&conn).await;
    publish(&ch, "amq.topic", "u.orders")
        .await
        .expect("own prefix");
    assert_eq!(
        refusal(publish(&ch, "amq.topic", "v.orders")).await,
        (
            403,
            "ACCESS_REFUSED - access to topic 'v.orders' in exchange 'amq.topic' in vhost '/' refused for \
             user 'u'"
                .to_owned()
        )
    );
    // Other exchanges are not restricted by it.
    let ch = confirming(&conn).await;
    publish(&ch, "x", "v.orders")
        .await
        .expect("not a topic exchange");
    ch.queue_bind(
        "q".into(),
        "amq.topic".into(),
        "/.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("binding key matches {vhost}");
    assert_eq!(
        refusal(ch.queue_bind(
            "q".into(),
            "amq.topic".into(),
            "other.#".into(),
            QueueBindOptions::default(),
            FieldTable::default()
        ))
        .await,
        (
            403,
            "ACCESS_REFUSED - access to topic 'other.#' in exchange 'amq.topic' in vhost '/' refused for \
             user 'u'"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn users_hashed_with_sha256_sha512_or_md5_log_in() {
    let server = common::start_server().await;
    // base64(salt ++ H(salt ++ "guest")) with salt 908DC60A, as RabbitMQ stores them.
    let users = [
        (
            "s256",
            "rabbit_password_hashing_sha256",
            "kI3GCrswBLNZQzHJJ95QLoyfAVooYhnvf7jbqiW9BjOYUloe",
        ),
        (
            "s512",
            "rabbit_password_hashing_sha512",
            "kI3GCrf65LdSkFyP8BVa8fB/67dDZ7ljrRF4WEjLDwWuHFxFQjgE88vc4EqLc8+dW4j5onKsGl4Ty32Icokl1iJrRxk=",
        ),
        ("md5", "rabbit_password_hashing_md5", "kI3GCsLphS59YDqYemSoxQGij64="),
    ];
    for (name, algorithm, hash) in users {
        server
            .broker
            .put_user(UserDefinition {
                name: name.into(),
                password_hash: hash.into(),
                hashing_algorithm: algorithm.into(),
                tags: vec!["monitoring".into(), "custom-tag".into()],
                limits: Default::default(),
            })
            .expect("user stored");
        grant(&server, name, ".*", ".*", ".*");
        let conn = connect_as(&server, name, "guest", "%2f")
            .await
            .unwrap_or_else(|e| panic!("{name} logs in: {e:?}"));
        conn.close(200, "bye".into()).await.unwrap();
        assert!(connect_as(&server, name, "guests", "%2f").await.is_err());
    }
    let listed = server.broker.users();
    let md5 = listed.iter().find(|u| u.name == "md5").unwrap();
    assert_eq!(
        md5.tags,
        vec!["monitoring".to_owned(), "custom-tag".to_owned()]
    );
    // A changed password replaces the hash (SHA-256 now) and the old one stops working.
    server.broker.change_password("md5", "new").unwrap();
    assert!(connect_as(&server, "md5", "guest", "%2f").await.is_err());
    connect_as(&server, "md5", "new", "%2f")
        .await
        .expect("new password");
}

#[tokio::test]
async fn the_default_user_comes_from_the_config_at_first_start() {
    let server = common::start_server_with(|config| {
        config.auth.default_user = Some(warren::config::DefaultUser {
            name: "admin".into(),
            password: "s3cret".into(),
        });
        config.auth.default_permissions.configure = "^admin-".into();
    })
    .await;
    let conn = connect_as(&server, "admin", "s3cret", "%2f")
        .await
        .expect("default user logs in");
    assert!(connect_as(&server, "guest", "guest", "%2f").await.is_err());
    let users = server.broker.users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].tags, vec!["administrator".to_owned()]);
    assert_ne!(users[0].password_hash, "s3cret");
    let ch = conn.create_channel().await.unwrap();
    let (code, text) = refusal(ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            403,
            "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'admin'"
        )
    );
}

/// The reply code and text of the next connection.close the broker sends on `conn`.
async fn next_connection_close(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
) -> (u16, String) {
    loop {
        match within(10, events.next()).await {
            Some(lapin::Event::Error(error)) => {
                if let (Some(code), Some(text)) = (reply_code(&error), reply_text(&error)) {
                    return (code, text);
                }
            }
            Some(_) => {}
            None => panic!("connection events ended before a close"),
        }
    }
}

#[tokio::test]
async fn deleting_a_user_closes_its_connections_with_320() {
    let (server, admin) = setup().await;
    grant(&server, "u", ".*", ".*", ".*");
    let conn = connect_as(&server, "u", "pw", "%2f").await.unwrap();
    let mut events = Box::pin(conn.events_listener());
    server.broker.delete_user("u").expect("deleted");
    assert_eq!(
        next_connection_close(&mut events).await,
        (320, "CONNECTION_FORCED - user 'u' is deleted".to_owned())
    );
    assert!(connect_as(&server, "u", "pw", "%2f").await.is_err());
    assert!(server.broker.permissions().iter().all(|p| p.user != "u"));
    // Other users' connections stay.
    assert!(admin.status().connected());
}

#[tokio::test]
async fn deleting_a_vhost_closes_its_connections_and_removes_its_queues() {
    let server = common::start_server().await;
    server.broker.add_vhost("tmp").expect("added");
    server
        .broker
        .set_permissions(PermissionDefinition {
            user: "guest".into(),
            vhost: "tmp".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .unwrap();
    let conn = connect_as(&server, "guest", "guest", "tmp").await.unwrap();
    let ch = confirming(&conn).await;
    common::declare_plain(&ch, "doomed").await;
    publish(&ch, "", "doomed").await.unwrap();
    let mut events = Box::pin(conn.events_listener());
    server.broker.delete_vhost("tmp").await.expect("deleted");
    assert_eq!(
        next_connection_close(&mut events).await,
        (320, "CONNECTION_FORCED - vhost 'tmp' is deleted".to_owned())
    );
    let error = connect_as(&server, "guest", "guest", "tmp")
        .await
        .expect_err("gone");
    assert_eq!(reply_code(&error), Some(530));
    assert!(!server.broker.vhost_names().contains(&"tmp".to_owned()));
    // Created again, it is empty.
    server.broker.add_vhost("tmp").unwrap();
    server
        .broker
        .set_permissions(PermissionDefinition {
            user: "guest".into(),
            vhost: "tmp".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .unwrap();
    let conn = connect_as(&server, "guest", "guest", "tmp").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(ch.queue_declare("doomed".into(), common::passive(), FieldTable::default())).await,
        (
            404,
            "NOT_FOUND - no queue 'doomed' in vhost 'tmp'".to_owned()
        )
    );
}
