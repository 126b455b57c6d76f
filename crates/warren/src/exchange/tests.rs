//! Unit tests of `BindingTable`: each kind end to end, binding idempotence, removal and per-call deduplication.
//! The topic word rules and the headers value rules are tested beside their code in `topic.rs` and `headers.rs`.

use super::*;
use warren_protocol::types::{AMQPValue, LongString};

fn queue(name: &str) -> Destination {
    Destination::Queue(name.into())
}

fn exchange(name: &str) -> Destination {
    Destination::Exchange(name.into())
}

fn bind(destination: Destination, key: &str) -> Binding {
    Binding {
        destination,
        routing_key: key.into(),
        arguments: FieldTable::default(),
    }
}

fn bind_args(destination: Destination, key: &str, pairs: &[(&str, &str)]) -> Binding {
    let mut binding = bind(destination, key);
    for (k, v) in pairs {
        binding
            .arguments
            .insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    binding
}

fn route(table: &BindingTable, key: &str) -> Vec<Destination> {
    route_with_headers(table, key, None)
}

fn route_with_headers(
    table: &BindingTable,
    key: &str,
    headers: Option<&FieldTable>,
) -> Vec<Destination> {
    let mut out = Vec::new();
    table.route(key, headers, &mut out);
    out
}

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    bind_args(queue("unused"), "", pairs).arguments
}

#[test]
fn kind_parses_and_prints_the_four_names() {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        assert_eq!(ExchangeKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(
        ExchangeKind::parse("x-consistent-hash"),
        Some(ExchangeKind::ConsistentHash)
    );
    assert_eq!(ExchangeKind::parse("x-no-such-type"), None);
    assert_eq!(ExchangeKind::parse("Direct"), None);
    assert_eq!(ExchangeKind::parse(""), None);
}

#[test]
fn direct_routes_on_exact_key_only() {
    let table = BindingTable::new(
        ExchangeKind::Direct,
        vec![
            bind(queue("q1"), "orders"),
            bind(queue("q2"), "orders.eu"),
            bind(queue("q3"), ""),
            bind(queue("q4"), "*"),
        ],
    );
    assert_eq!(route(&table, "orders"), [queue("q1")]);
    assert_eq!(route(&table, "orders.eu"), [queue("q2")]);
    assert_eq!(route(&table, ""), [queue("q3")]);
    assert_eq!(route(&table, "anything"), []);
    assert_eq!(route(&table, "*"), [queue("q4")]);
}

#[test]
fn direct_routes_one_key_to_all_its_destinations_in_bind_order() {
    let table = BindingTable::new(
        ExchangeKind::Direct,
        vec![
            bind(queue("b"), "k"),
            bind(exchange("x"), "k"),
            bind(queue("a"), "k"),
        ],
    );
    assert_eq!(route(&table, "k"), [queue("b"), exchange("x"), queue("a")]);
}

#[test]
fn fanout_routes_everywhere_ignoring_key() {
    let table = BindingTable::new(
        ExchangeKind::Fanout,
        vec![bind(queue("q1"), "a"), bind(exchange("x1"), "b")],
    );
    assert_eq!(route(&table, "zzz"), [queue("q1"), exchange("x1")]);
    assert_eq!(route(&table, ""), [queue("q1"), exchange("x1")]);
}

#[test]
fn topic_routes_through_the_trie() {
    let table = BindingTable::new(
        ExchangeKind::Topic,
        vec![
            bind(queue("all"), "#"),
            bind(queue("eu-orders"), "orders.eu.*"),
            bind(queue("any-created"), "*.*.created"),
        ],
    );
    assert_eq!(
        route(&table, "orders.eu.created"),
        [queue("all"), queue("eu-orders"), queue("any-created")]
    );
    assert_eq!(
        route(&table, "orders.us.created"),
        [queue("all"), queue("any-created")]
    );
    assert_eq!(route(&table, ""), [queue("all")]);
}

#[test]
fn headers_routes_on_arguments_and_ignores_routing_key() {
    let table = BindingTable::new(
        ExchangeKind::Headers,
        vec![
            bind_args(queue("pdf"), "ignored", &[("format", "pdf")]),
            bind_args(
                queue("any"),
                "",
                &[("x-match", "any"), ("format", "zip"), ("type", "log")],
            ),
            bind_args(queue("everything"), "", &[]),
        ],
    );
    let pdf = headers(&[("format", "pdf"), ("type", "log")]);
    assert_eq!(
        route_with_headers(&table, "whatever", Some(&pdf)),
        [queue("pdf"), queue("any"), queue("everything")]
    );
    assert_eq!(route_with_headers(&table, "", None), [queue("everything")]);
}

#[test]
fn non_headers_kinds_ignore_message_headers() {
    let table = BindingTable::new(
        ExchangeKind::Direct,
        vec![bind_args(queue("q"), "k", &[("a", "b")])],
    );
    let h = headers(&[("a", "different")]);
    assert_eq!(route_with_headers(&table, "k", Some(&h)), [queue("q")]);
}

#[test]
fn with_binding_is_idempotent() {
    let table = BindingTable::empty(ExchangeKind::Direct);
    assert!(table.is_empty());
    let table = table
        .with_binding(bind(queue("q"), "k"))
        .expect("new binding");
    assert!(table.with_binding(bind(queue("q"), "k")).is_none());
    assert_eq!(table.bindings().len(), 1);
    assert!(!table.is_empty());
}

#[test]
fn with_binding_treats_different_arguments_as_another_binding() {
    let table = BindingTable::empty(ExchangeKind::Direct)
        .with_binding(bind_args(queue("q"), "k", &[("a", "1")]))
        .expect("first");
    let table = table
        .with_binding(bind_args(queue("q"), "k", &[("a", "2")]))
        .expect("different arguments make a different binding");
    assert!(table
        .with_binding(bind_args(queue("q"), "k", &[("a", "2")]))
        .is_none());
    assert_eq!(table.bindings().len(), 2);
    // Still delivered once.
    assert_eq!(route(&table, "k"), [queue("q")]);
}

#[test]
fn with_binding_leaves_the_old_snapshot_unchanged() {
    let old = BindingTable::new(ExchangeKind::Fanout, vec![bind(queue("a"), "")]);
    let new = old.with_binding(bind(queue("b"), "")).expect("new binding");
    assert_eq!(route(&old, ""), [queue("a")]);
    assert_eq!(route(&new, ""), [queue("a"), queue("b")]);
}

#[test]
fn new_keeps_repeated_bindings_once() {
    let table = BindingTable::new(
        ExchangeKind::Topic,
        vec![
            bind(queue("q"), "a.*"),
            bind(queue("q"), "a.*"),
            bind(queue("q"), "a.b"),
        ],
    );
    assert_eq!(
        table.bindings(),
        [bind(queue("q"), "a.*"), bind(queue("q"), "a.b")]
    );
}

#[test]
fn without_binding_removes_only_the_equal_binding() {
    let table = BindingTable::new(
        ExchangeKind::Direct,
        vec![bind(queue("q"), "a"), bind(queue("q"), "b")],
    );
    let table = table
        .without_binding(&bind(queue("q"), "a"))
        .expect("was bound");
    assert_eq!(table.bindings(), [bind(queue("q"), "b")]);
    assert_eq!(route(&table, "a"), []);
    assert_eq!(route(&table, "b"), [queue("q")]);
    assert!(table.without_binding(&bind(queue("q"), "a")).is_none());
    assert!(table
        .without_binding(&bind_args(queue("q"), "b", &[("x", "y")]))
        .is_none());
    let table = table
        .without_binding(&bind(queue("q"), "b"))
        .expect("was bound");
    assert!(table.is_empty());
}

#[test]
fn without_destination_drops_every_binding_to_it() {
    let table = BindingTable::new(
        ExchangeKind::Topic,
        vec![
            bind(queue("gone"), "a.#"),
            bind(queue("kept"), "a.*"),
            bind(queue("gone"), "#"),
            bind(exchange("gone"), "a.b"),
        ],
    );
    let table = table
        .without_destination(&queue("gone"))
        .expect("was bound");
    assert_eq!(table.bindings().len(), 2);
    assert_eq!(route(&table, "a.b"), [queue("kept"), exchange("gone")]);
    assert!(table.without_destination(&queue("gone")).is_none());
    assert!(table.without_destination(&queue("never")).is_none());
}

#[test]
fn topic_delivers_once_when_several_bindings_of_one_queue_match() {
    let table = BindingTable::new(
        ExchangeKind::Topic,
        vec![
            bind(queue("q"), "a.*"),
            bind(queue("q"), "#"),
            bind(queue("q"), "a.b"),
            bind(queue("other"), "*.b"),
        ],
    );
    assert_eq!(route(&table, "a.b"), [queue("q"), queue("other")]);
}

#[test]
fn headers_delivers_once_when_several_bindings_of_one_queue_match() {
    let table = BindingTable::new(
        ExchangeKind::Headers,
        vec![
            bind_args(queue("q"), "1", &[("a", "1")]),
            bind_args(queue("q"), "2", &[("b", "2")]),
        ],
    );
    let h = headers(&[("a", "1"), ("b", "2")]);
    assert_eq!(route_with_headers(&table, "", Some(&h)), [queue("q")]);
}

#[test]
fn fanout_delivers_once_per_destination() {
    let table = BindingTable::new(
        ExchangeKind::Fanout,
        vec![bind(queue("q"), "a"), bind(queue("q"), "b")],
    );
    assert_eq!(route(&table, "x"), [queue("q")]);
}

#[test]
fn route_appends_and_keeps_what_out_held() {
    let table = BindingTable::new(ExchangeKind::Fanout, vec![bind(queue("q"), "")]);
    let mut out = vec![queue("q"), exchange("earlier")];
    table.route("", None, &mut out);
    assert_eq!(out, [queue("q"), exchange("earlier"), queue("q")]);
}

#[test]
fn empty_tables_route_nowhere() {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let table = BindingTable::empty(kind);
        assert_eq!(table.kind(), kind);
        assert_eq!(
            route_with_headers(&table, "", Some(&headers(&[("a", "b")]))),
            []
        );
    }
}
