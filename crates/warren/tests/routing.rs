//! Routing through lapin: the default exchange, direct, fanout, topic and headers exchanges, exchange-to-exchange
//! bindings, alternate exchanges, and the refusals of publishing to internal or missing exchanges.

mod common;

use common::confirming_channel;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};

async fn declare_queue(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    ch.exchange_declare(name.into(), kind, ExchangeDeclareOptions::default(), args)
        .await
        .unwrap();
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap();
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) {
    common::publish_confirmed(ch, exchange, key, body, BasicProperties::default()).await;
}

/// A field table of long-string values, as clients usually send header values.
fn table(entries: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), AMQPValue::LongString((*v).into()));
    }
    t
}

async fn publish_with_headers(ch: &Channel, exchange: &str, body: &str, headers: &[(&str, &str)]) {
    let props = BasicProperties::default().with_headers(table(headers));
    common::publish_confirmed(ch, exchange, "", body, props).await;
}

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_queue(&ch, "alpha").await;
    declare_queue(&ch, "beta").await;
    publish(&ch, "", "alpha", "to-alpha").await;
    publish(&ch, "", "beta", "to-beta").await;
    publish(&ch, "", "nobody", "dropped").await;
    assert_eq!(common::drain_bodies(&ch, "alpha").await, ["to-alpha"]);
    assert_eq!(common::drain_bodies(&ch, "beta").await, ["to-beta"]);
}

#[tokio::test]
async fn direct_exchange_routes_by_exact_key_in_publish_order() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "orders", ExchangeKind::Direct, FieldTable::default()).await;
    declare_queue(&ch, "eu").await;
    declare_queue(&ch, "us").await;
    bind(&ch, "eu", "orders", "eu", FieldTable::default()).await;
    bind(&ch, "us", "orders", "us", FieldTable::default()).await;
    bind(&ch, "us", "orders", "americas", FieldTable::default()).await;
    for (key, body) in [
        ("eu", "1"),
        ("us", "2"),
        ("americas", "3"),
        ("eu.x", "4"),
        ("eu", "5"),
    ] {
        publish(&ch, "orders", key, body).await;
    }
    assert_eq!(common::drain_bodies(&ch, "eu").await, ["1", "5"]);
    assert_eq!(common::drain_bodies(&ch, "us").await, ["2", "3"]);
}

#[tokio::test]
async fn fanout_exchange_copies_to_every_bound_queue_ignoring_the_key() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "news", ExchangeKind::Fanout, FieldTable::default()).await;
    for q in ["f1", "f2", "f3"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "f1", "news", "", FieldTable::default()).await;
    bind(&ch, "f2", "news", "ignored", FieldTable::default()).await;
    publish(&ch, "news", "any.key", "a").await;
    publish(&ch, "news", "", "b").await;
    assert_eq!(common::drain_bodies(&ch, "f1").await, ["a", "b"]);
    assert_eq!(common::drain_bodies(&ch, "f2").await, ["a", "b"]);
    assert!(common::drain_bodies(&ch, "f3").await.is_empty());
}

#[tokio::test]
async fn topic_star_matches_exactly_one_word() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "logs", ExchangeKind::Topic, FieldTable::default()).await;
    declare_queue(&ch, "errors").await;
    bind(&ch, "errors", "logs", "*.error", FieldTable::default()).await;
    for key in ["app.error", "error", "app.db.error", "app.info", "db.error"] {
        publish(&ch, "logs", key, key).await;
    }
    assert_eq!(
        common::drain_bodies(&ch, "errors").await,
        ["app.error", "db.error"]
    );
}

#[tokio::test]
async fn topic_hash_matches_zero_or_more_words() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "logs", ExchangeKind::Topic, FieldTable::default()).await;
    declare_queue(&ch, "app").await;
    declare_queue(&ch, "all").await;
    bind(&ch, "app", "logs", "app.#", FieldTable::default()).await;
    bind(&ch, "all", "logs", "#", FieldTable::default()).await;
    for key in ["app", "app.db", "app.db.slow", "web.app", ""] {
        publish(&ch, "logs", key, &format!("<{key}>")).await;
    }
    assert_eq!(
        common::drain_bodies(&ch, "app").await,
        ["<app>", "<app.db>", "<app.db.slow>"]
    );
    assert_eq!(common::drain_bodies(&ch, "all").await.len(), 5);
}

#[tokio::test]
async fn topic_queue_matching_several_patterns_receives_each_message_once() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "events", ExchangeKind::Topic, FieldTable::default()).await;
    declare_queue(&ch, "q").await;
    declare_queue(&ch, "other").await;
    bind(&ch, "q", "events", "user.*", FieldTable::default()).await;
    bind(&ch, "q", "events", "*.created", FieldTable::default()).await;
    bind(&ch, "q", "events", "#", FieldTable::default()).await;
    bind(&ch, "other", "events", "order.*", FieldTable::default()).await;
    publish(&ch, "events", "user.created", "m1").await;
    publish(&ch, "events", "order.created", "m2").await;
    assert_eq!(common::drain_bodies(&ch, "q").await, ["m1", "m2"]);
    assert_eq!(common::drain_bodies(&ch, "other").await, ["m2"]);
}

/// Declares a headers exchange "hx" with one queue "hq" bound by `binding`, publishes each (body, headers) and
/// returns the bodies that reached the queue.
async fn headers_route(
    binding: &[(&str, &str)],
    messages: &[(&str, &[(&str, &str)])],
) -> Vec<String> {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "hx", ExchangeKind::Headers, FieldTable::default()).await;
    declare_queue(&ch, "hq").await;
    bind(&ch, "hq", "hx", "", table(binding)).await;
    for (body, headers) in messages {
        publish_with_headers(&ch, "hx", body, headers).await;
    }
    common::drain_bodies(&ch, "hq").await
}

#[tokio::test]
async fn headers_all_requires_every_bound_header_and_ignores_x_arguments() {
    let got = headers_route(
        &[("x-match", "all"), ("a", "1"), ("b", "2"), ("x-tag", "t")],
        &[
            ("both", &[("a", "1"), ("b", "2")]),
            ("extra", &[("a", "1"), ("b", "2"), ("c", "3")]),
            ("only-a", &[("a", "1")]),
            ("wrong-b", &[("a", "1"), ("b", "3")]),
            ("none", &[]),
        ],
    )
    .await;
    assert_eq!(got, ["both", "extra"]);
}

#[tokio::test]
async fn headers_any_requires_one_bound_header_and_ignores_x_arguments() {
    let got = headers_route(
        &[("x-match", "any"), ("a", "1"), ("b", "2"), ("x-tag", "t")],
        &[
            ("a", &[("a", "1")]),
            ("b", &[("b", "2"), ("c", "9")]),
            ("wrong", &[("a", "2"), ("b", "1")]),
            ("x-only", &[("x-tag", "t")]),
            ("none", &[]),
        ],
    )
    .await;
    assert_eq!(got, ["a", "b"]);
}

#[tokio::test]
async fn headers_all_with_x_also_requires_x_headers() {
    let got = headers_route(
        &[("x-match", "all-with-x"), ("x-tenant", "blue"), ("a", "1")],
        &[
            ("both", &[("x-tenant", "blue"), ("a", "1")]),
            ("no-x", &[("a", "1")]),
            ("other-tenant", &[("x-tenant", "red"), ("a", "1")]),
        ],
    )
    .await;
    assert_eq!(got, ["both"]);
}

#[tokio::test]
async fn headers_any_with_x_matches_on_an_x_header_alone() {
    let got = headers_route(
        &[("x-match", "any-with-x"), ("x-tenant", "blue"), ("a", "1")],
        &[
            ("x-only", &[("x-tenant", "blue")]),
            ("a-only", &[("a", "1")]),
            ("neither", &[("x-tenant", "red"), ("a", "2")]),
        ],
    )
    .await;
    assert_eq!(got, ["x-only", "a-only"]);
}

#[tokio::test]
async fn headers_binding_with_an_unknown_x_match_is_refused_with_406() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = conn.create_channel().await.unwrap();
    declare_exchange(&ch, "hx", ExchangeKind::Headers, FieldTable::default()).await;
    declare_queue(&ch, "hq").await;
    let code = common::refused_code(ch.queue_bind(
        "hq".into(),
        "hx".into(),
        "".into(),
        QueueBindOptions::default(),
        table(&[("x-match", "some")]),
    ))
    .await;
    assert_eq!(code, 406);
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes_through_the_chain_until_unbound() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "front", ExchangeKind::Direct, FieldTable::default()).await;
    declare_exchange(&ch, "middle", ExchangeKind::Topic, FieldTable::default()).await;
    declare_exchange(&ch, "back", ExchangeKind::Fanout, FieldTable::default()).await;
    declare_queue(&ch, "end").await;
    let e2e = |dest: &'static str, src: &'static str, key: &'static str| {
        ch.exchange_bind(
            dest.into(),
            src.into(),
            key.into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
    };
    e2e("middle", "front", "a.b").await.unwrap();
    e2e("back", "middle", "a.*").await.unwrap();
    bind(&ch, "end", "back", "", FieldTable::default()).await;
    publish(&ch, "front", "a.b", "through").await;
    publish(&ch, "front", "a.c", "stopped-at-front").await;
    assert_eq!(common::drain_bodies(&ch, "end").await, ["through"]);

    ch.exchange_unbind(
        "back".into(),
        "middle".into(),
        "a.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "front", "a.b", "after-unbind").await;
    assert!(common::drain_bodies(&ch, "end").await.is_empty());
}

#[tokio::test]
async fn exchange_binding_cycle_delivers_once_and_does_not_hang() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "a", ExchangeKind::Fanout, FieldTable::default()).await;
    declare_exchange(&ch, "b", ExchangeKind::Fanout, FieldTable::default()).await;
    for (dest, src) in [("b", "a"), ("a", "b")] {
        ch.exchange_bind(
            dest.into(),
            src.into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    declare_queue(&ch, "qa").await;
    declare_queue(&ch, "qb").await;
    bind(&ch, "qa", "a", "", FieldTable::default()).await;
    bind(&ch, "qb", "b", "", FieldTable::default()).await;
    publish(&ch, "a", "", "from-a").await;
    publish(&ch, "b", "", "from-b").await;
    assert_eq!(common::drain_bodies(&ch, "qa").await, ["from-a", "from-b"]);
    assert_eq!(common::drain_bodies(&ch, "qb").await, ["from-a", "from-b"]);
}

#[tokio::test]
async fn alternate_exchange_receives_only_unroutable_messages() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "unrouted", ExchangeKind::Fanout, FieldTable::default()).await;
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("unrouted".into()),
    );
    declare_exchange(&ch, "main", ExchangeKind::Direct, args).await;
    declare_queue(&ch, "routed").await;
    declare_queue(&ch, "lost").await;
    bind(&ch, "routed", "main", "known", FieldTable::default()).await;
    bind(&ch, "lost", "unrouted", "", FieldTable::default()).await;
    publish(&ch, "main", "known", "kept").await;
    publish(&ch, "main", "unknown", "caught").await;
    assert_eq!(common::drain_bodies(&ch, "routed").await, ["kept"]);
    assert_eq!(common::drain_bodies(&ch, "lost").await, ["caught"]);
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_refused_with_403_but_it_routes_from_a_binding() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    ch.exchange_declare(
        "inner".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_exchange(&ch, "outer", ExchangeKind::Fanout, FieldTable::default()).await;
    ch.exchange_bind(
        "inner".into(),
        "outer".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "inner", "", FieldTable::default()).await;
    publish(&ch, "outer", "", "via-outer").await;
    assert_eq!(common::drain_bodies(&ch, "q").await, ["via-outer"]);

    let confirm = ch
        .basic_publish(
            "inner".into(),
            "".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(common::refused_code(confirm).await, 403);
    let ch2 = conn.create_channel().await.unwrap();
    assert!(common::drain_bodies(&ch2, "q").await.is_empty());
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_with_404() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let confirm = ch
        .basic_publish(
            "no-such-exchange".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(common::refused_code(confirm).await, 404);
    // Only the channel closed: the connection still works.
    let ch2 = confirming_channel(&conn).await;
    declare_queue(&ch2, "still-open").await;
}

/// A channel remembers its last route; every topology change must show in its next publish with the same exchange
/// and routing key, whichever connection made the change.
#[tokio::test]
async fn repeated_publishes_follow_topology_changes() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let admin = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    let other = admin.create_channel().await.unwrap();
    declare_exchange(&ch, "events", ExchangeKind::Direct, FieldTable::default()).await;
    declare_queue(&ch, "first").await;
    bind(&ch, "first", "events", "k", FieldTable::default()).await;
    publish(&ch, "events", "k", "1").await;

    declare_queue(&other, "second").await;
    bind(&other, "second", "events", "k", FieldTable::default()).await;
    publish(&ch, "events", "k", "2").await;

    other
        .queue_unbind(
            "first".into(),
            "events".into(),
            "k".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish(&ch, "events", "k", "3").await;
    assert_eq!(common::drain_bodies(&ch, "first").await, ["1", "2"]);
    assert_eq!(common::drain_bodies(&ch, "second").await, ["2", "3"]);

    // A queue deleted and declared again under the same name is a new queue: the next publish must reach it.
    publish(&ch, "", "first", "4").await;
    other
        .queue_delete("first".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    declare_queue(&other, "first").await;
    publish(&ch, "", "first", "5").await;
    assert_eq!(common::drain_bodies(&ch, "first").await, ["5"]);

    // An exchange deleted under a publisher: the next publish to it is refused with 404.
    other
        .exchange_delete("events".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let refused = ch
        .basic_publish(
            "events".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"6",
            BasicProperties::default(),
        )
        .await;
    let code = match refused {
        Err(error) => common::reply_code(&error),
        Ok(confirm) => confirm.await.err().and_then(|e| common::reply_code(&e)),
    };
    assert_eq!(code, Some(404));
}

/// Messages to a headers exchange route by their own headers, even when exchange and routing key repeat.
#[tokio::test]
async fn headers_routes_are_not_reused_across_messages() {
    let server = common::start_server().await;
    let conn = common::connect(&server).await;
    let ch = confirming_channel(&conn).await;
    declare_exchange(&ch, "by-kind", ExchangeKind::Headers, FieldTable::default()).await;
    declare_queue(&ch, "red").await;
    declare_queue(&ch, "blue").await;
    bind(&ch, "red", "by-kind", "", table(&[("colour", "red")])).await;
    bind(&ch, "blue", "by-kind", "", table(&[("colour", "blue")])).await;
    for (body, colour) in [("a", "red"), ("b", "blue"), ("c", "red"), ("d", "blue")] {
        publish_with_headers(&ch, "by-kind", body, &[("colour", colour)]).await;
    }
    assert_eq!(common::drain_bodies(&ch, "red").await, ["a", "c"]);
    assert_eq!(common::drain_bodies(&ch, "blue").await, ["b", "d"]);
}
