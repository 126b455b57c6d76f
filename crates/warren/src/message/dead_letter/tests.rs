//! The dead-lettered copy checked against what RabbitMQ 3.13 gives, rule by rule.

use std::time::Duration;

use warren_protocol::types::FieldArray;

use super::*;

/// A time in the middle of a second: `x-death` keeps whole seconds.
fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(seconds * 1000 + 999)
}

const T0: u64 = 1_700_000_000;

fn death<'a>(reason: DeathReason, queue: &'a str, exchange: &'a str, key: &'a str) -> Death<'a> {
    Death {
        reason,
        queue,
        exchange,
        routing_key: key,
        earlier_keys: None,
        time: at(T0),
    }
}

fn raw(properties: &AMQPProperties) -> Bytes {
    encode_properties(properties).unwrap()
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn array(items: &[&str]) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(
        items.iter().map(|s| text(s)).collect::<Vec<_>>(),
    ))
}

fn with_headers(pairs: &[(&str, AMQPValue)]) -> AMQPProperties {
    let mut headers = FieldTable::default();
    for (key, value) in pairs {
        headers.insert((*key).into(), value.clone());
    }
    AMQPProperties::default().with_headers(headers)
}

fn headers(copy: &DeadLettered) -> FieldTable {
    decode_properties(&copy.properties_raw)
        .unwrap()
        .headers()
        .clone()
        .unwrap()
}

fn header(headers: &FieldTable, key: &str) -> Option<AMQPValue> {
    headers.inner().get(key).cloned()
}

/// The `x-death` entries, most recent first.
fn x_death(copy: &DeadLettered) -> Vec<FieldTable> {
    match header(&headers(copy), "x-death") {
        Some(AMQPValue::FieldArray(entries)) => entries
            .as_slice()
            .iter()
            .map(|e| match e {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death entry {other:?}"),
            })
            .collect(),
        other => panic!("x-death {other:?}"),
    }
}

/// (queue, reason, count) of each entry.
fn summary(copy: &DeadLettered) -> Vec<(String, String, i64)> {
    x_death(copy)
        .iter()
        .map(|e| {
            let count = match e.inner()["count"] {
                AMQPValue::LongLongInt(n) => n,
                ref other => panic!("count {other:?}"),
            };
            (
                string(&e.inner()["queue"]),
                string(&e.inner()["reason"]),
                count,
            )
        })
        .collect()
}

fn string(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => s.to_string(),
        other => panic!("not a long string: {other:?}"),
    }
}

fn keys(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn first_death_writes_every_header_and_moves_the_expiration() {
    let published = with_headers(&[("app", text("v"))])
        .with_expiration("60000".into())
        .with_delivery_mode(2);
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "orders", "shop", "order.new"),
        None,
    )
    .unwrap();

    let properties = decode_properties(&copy.properties_raw).unwrap();
    assert_eq!(properties.expiration(), &None);
    assert_eq!(properties.delivery_mode(), &Some(2));
    let h = headers(&copy);
    let names: Vec<_> = h.inner().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "app",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason",
            "x-last-death-exchange",
            "x-last-death-queue",
            "x-last-death-reason",
        ]
    );
    for (key, value) in [
        ("app", "v"),
        ("x-first-death-exchange", "shop"),
        ("x-first-death-queue", "orders"),
        ("x-first-death-reason", "expired"),
        ("x-last-death-exchange", "shop"),
        ("x-last-death-queue", "orders"),
        ("x-last-death-reason", "expired"),
    ] {
        assert_eq!(header(&h, key), Some(text(value)), "{key}");
    }

    let entries = x_death(&copy);
    assert_eq!(entries.len(), 1);
    let mut expected = FieldTable::default();
    expected.insert("count".into(), AMQPValue::LongLongInt(1));
    expected.insert("reason".into(), text("expired"));
    expected.insert("queue".into(), text("orders"));
    expected.insert("time".into(), AMQPValue::Timestamp(T0));
    expected.insert("exchange".into(), text("shop"));
    expected.insert("routing-keys".into(), array(&["order.new"]));
    expected.insert("original-expiration".into(), text("60000"));
    assert_eq!(entries[0], expected);

    assert_eq!(copy.routing_keys.keys, keys(&["order.new"]));
    assert_eq!(copy.routing_key(), "order.new");
}

#[test]
fn count_is_a_signed_long_and_time_a_timestamp_on_the_wire() {
    let copy = dead_letter(&[0, 0], &death(DeathReason::Rejected, "q", "", "q"), None).unwrap();
    let bytes = &copy.properties_raw[..];
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"\x05countl\x00\x00\x00\x00\x00\x00\x00\x01"));
    assert!(find(&[b"\x04timeT".as_slice(), &T0.to_be_bytes()].concat()));
    // The header table is written sorted by key, as RabbitMQ writes a table it rebuilt.
    let first = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
    assert!(first(b"x-death") < first(b"x-first-death-exchange"));
    assert!(first(b"x-first-death-reason") < first(b"x-last-death-exchange"));
}

#[test]
fn a_message_without_properties_gets_only_headers() {
    let copy = dead_letter(&[0, 0], &death(DeathReason::Maxlen, "q", "ex", "k"), None).unwrap();
    assert_eq!(&copy.properties_raw[..2], &[0x20, 0x00]);
    let properties = decode_properties(&copy.properties_raw).unwrap();
    assert_eq!(
        properties,
        AMQPProperties::default().with_headers(headers(&copy))
    );
    assert_eq!(summary(&copy), [("q".into(), "maxlen".into(), 1)]);
    assert!(!x_death(&copy)[0].contains_key("original-expiration"));
}

#[test]
fn every_other_property_survives() {
    let mut app_headers = FieldTable::default();
    app_headers.insert("nested".into(), array(&["a", "b"]));
    app_headers.insert("n".into(), AMQPValue::LongInt(-5));
    let published = AMQPProperties::default()
        .with_content_type("text/plain".into())
        .with_content_encoding("gzip".into())
        .with_headers(app_headers.clone())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_expiration("1000".into())
        .with_message_id("m-1".into())
        .with_timestamp(1_600_000_000)
        .with_type("order".into())
        .with_user_id("guest".into())
        .with_app_id("shop".into())
        .with_cluster_id("c".into());
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "q", "x", "k"),
        None,
    )
    .unwrap();
    let h = headers(&copy);
    assert_eq!(header(&h, "nested"), Some(array(&["a", "b"])));
    assert_eq!(header(&h, "n"), Some(AMQPValue::LongInt(-5)));
    let expected = AMQPProperties::default()
        .with_content_type("text/plain".into())
        .with_content_encoding("gzip".into())
        .with_headers(h)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_message_id("m-1".into())
        .with_timestamp(1_600_000_000)
        .with_type("order".into())
        .with_user_id("guest".into())
        .with_app_id("shop".into())
        .with_cluster_id("c".into());
    assert_eq!(decode_properties(&copy.properties_raw).unwrap(), expected);
}

#[test]
fn the_same_queue_and_reason_again_counts_and_moves_to_the_front() {
    // Rejected in q1, expired in q2, rejected in q1 again (a client resent it there).
    let first = dead_letter(
        &[0, 0],
        &death(DeathReason::Rejected, "q1", "x0", "k"),
        None,
    )
    .unwrap();
    let mut second_death = death(DeathReason::Expired, "q2", "dlx1", "k");
    second_death.time = at(T0 + 10);
    let second = dead_letter(&first.properties_raw, &second_death, None).unwrap();
    assert_eq!(
        summary(&second),
        [
            ("q2".into(), "expired".into(), 1),
            ("q1".into(), "rejected".into(), 1)
        ]
    );
    let mut third_death = death(DeathReason::Rejected, "q1", "dlx2", "other");
    third_death.time = at(T0 + 20);
    let third = dead_letter(&second.properties_raw, &third_death, None).unwrap();
    assert_eq!(
        summary(&third),
        [
            ("q1".into(), "rejected".into(), 2),
            ("q2".into(), "expired".into(), 1)
        ]
    );
    // The counted entry keeps the time, exchange and keys of its first death.
    let entry = &x_death(&third)[0];
    assert_eq!(entry.inner()["time"], AMQPValue::Timestamp(T0));
    assert_eq!(entry.inner()["exchange"], text("x0"));
    assert_eq!(entry.inner()["routing-keys"], array(&["k"]));
    assert_eq!(
        x_death(&third)[1].inner()["time"],
        AMQPValue::Timestamp(T0 + 10)
    );

    // x-first-death-* stay those of the first death; x-last-death-* follow the latest.
    let h = headers(&third);
    assert_eq!(header(&h, "x-first-death-queue"), Some(text("q1")));
    assert_eq!(header(&h, "x-first-death-reason"), Some(text("rejected")));
    assert_eq!(header(&h, "x-first-death-exchange"), Some(text("x0")));
    assert_eq!(header(&h, "x-last-death-queue"), Some(text("q1")));
    assert_eq!(header(&h, "x-last-death-reason"), Some(text("rejected")));
    assert_eq!(header(&h, "x-last-death-exchange"), Some(text("dlx2")));
    let h = headers(&second);
    assert_eq!(header(&h, "x-first-death-queue"), Some(text("q1")));
    assert_eq!(header(&h, "x-last-death-queue"), Some(text("q2")));
    assert_eq!(header(&h, "x-last-death-reason"), Some(text("expired")));
    assert_eq!(header(&h, "x-last-death-exchange"), Some(text("dlx1")));
}

#[test]
fn another_reason_in_the_same_queue_is_a_new_entry_in_front() {
    let first = dead_letter(&[0, 0], &death(DeathReason::Rejected, "q", "x", "k"), None).unwrap();
    let second = dead_letter(
        &first.properties_raw,
        &death(DeathReason::Expired, "q", "dlx", "k"),
        None,
    )
    .unwrap();
    assert_eq!(
        summary(&second),
        [
            ("q".into(), "expired".into(), 1),
            ("q".into(), "rejected".into(), 1)
        ]
    );
    assert_eq!(x_death(&second)[0].inner()["exchange"], text("dlx"));
}

#[test]
fn a_dead_letter_routing_key_routes_alone_and_the_cc_header_stays() {
    let published = with_headers(&[("CC", array(&["c1", "c2"]))]);
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Rejected, "q", "x", "k"),
        Some("dead"),
    )
    .unwrap();
    assert_eq!(copy.routing_keys.keys, keys(&["dead"]));
    assert_eq!(copy.routing_key(), "dead");
    // 3.13 keeps CC beside a dead-letter routing key (3.10 removed it).
    assert_eq!(header(&headers(&copy), "CC"), Some(array(&["c1", "c2"])));
    // The history records the keys it was published with, CC included.
    assert_eq!(
        x_death(&copy)[0].inner()["routing-keys"],
        array(&["k", "c1", "c2"])
    );
}

#[test]
fn without_a_dead_letter_routing_key_cc_and_bcc_keys_route_the_copy() {
    let published = with_headers(&[("CC", array(&["c1"])), ("BCC", array(&["b1", "b2"]))]);
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Rejected, "q", "x", "k"),
        None,
    )
    .unwrap();
    assert_eq!(copy.routing_keys.keys, keys(&["k", "c1", "b1", "b2"]));
    assert_eq!(copy.routing_keys.bcc, keys(&["b1", "b2"]));
    let h = headers(&copy);
    assert_eq!(header(&h, "BCC"), None);
    assert_eq!(header(&h, "CC"), Some(array(&["c1"])));
    assert_eq!(
        x_death(&copy)[0].inner()["routing-keys"],
        array(&["k", "c1"])
    );
}

#[test]
fn a_bcc_key_takes_out_only_its_first_occurrence() {
    let published = with_headers(&[("CC", array(&["a"])), ("BCC", array(&["a"]))]);
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "q", "x", "a"),
        None,
    )
    .unwrap();
    assert_eq!(copy.routing_keys.keys, keys(&["a", "a", "a"]));
    assert_eq!(
        x_death(&copy)[0].inner()["routing-keys"],
        array(&["a", "a"])
    );
}

#[test]
fn a_later_death_uses_the_keys_the_copy_was_routed_with() {
    // Routed on with the original keys: BCC keys route again but stay out of the history.
    let published = with_headers(&[("CC", array(&["c1"])), ("BCC", array(&["b1"]))]);
    let first = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "q1", "x", "k"),
        None,
    )
    .unwrap();
    let mut again = death(DeathReason::Expired, "q2", "dlx", first.routing_key());
    again.earlier_keys = Some(&first.routing_keys);
    let second = dead_letter(&first.properties_raw, &again, None).unwrap();
    assert_eq!(second.routing_keys.keys, keys(&["k", "c1", "b1"]));
    assert_eq!(
        x_death(&second)[0].inner()["routing-keys"],
        array(&["k", "c1"])
    );

    // Routed on with a dead-letter routing key: the next death records that key alone, not the CC header kept.
    let first = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "q1", "x", "k"),
        Some("dead"),
    )
    .unwrap();
    assert_eq!(first.routing_keys.bcc, keys(&["b1"]));
    let mut again = death(DeathReason::Expired, "q2", "dlx", first.routing_key());
    again.earlier_keys = Some(&first.routing_keys);
    let second = dead_letter(&first.properties_raw, &again, None).unwrap();
    assert_eq!(second.routing_keys.keys, keys(&["dead"]));
    assert_eq!(
        x_death(&second)[0].inner()["routing-keys"],
        array(&["dead"])
    );
    // Without the kept keys the copy's CC header counts again.
    let guessed = dead_letter(
        &first.properties_raw,
        &death(DeathReason::Expired, "q2", "dlx", "dead"),
        None,
    )
    .unwrap();
    assert_eq!(guessed.routing_keys.keys, keys(&["dead", "c1"]));
}

#[test]
fn an_automatic_loop_is_a_cycle_and_a_rejection_breaks_it() {
    // q1 expires into q2, q2 expires back into q1: dropped for q1.
    let first = dead_letter(&[0, 0], &death(DeathReason::Expired, "q1", "", "q2"), None).unwrap();
    assert!(!first.is_cycle("q2"));
    assert!(first.is_cycle("q1"), "a queue dead-lettering into itself");
    let second = dead_letter(
        &first.properties_raw,
        &death(DeathReason::Expired, "q2", "", "q1"),
        None,
    )
    .unwrap();
    assert!(second.is_cycle("q1"));
    assert!(second.is_cycle("q2"));
    assert!(!second.is_cycle("q3"));
    assert_eq!(second.death_queues(), keys(&["q2", "q1"]));

    // This death a rejection: never a cycle.
    let rejected = dead_letter(
        &first.properties_raw,
        &death(DeathReason::Rejected, "q2", "", "q1"),
        None,
    )
    .unwrap();
    assert!(!rejected.is_cycle("q1"));
    assert!(!rejected.is_cycle("q2"));

    // A rejection in the loop: q1 rejected into q2, q2 expires into q1: not a cycle for q1; q2 itself is.
    let first = dead_letter(&[0, 0], &death(DeathReason::Rejected, "q1", "", "q2"), None).unwrap();
    let second = dead_letter(
        &first.properties_raw,
        &death(DeathReason::Expired, "q2", "", "q1"),
        None,
    )
    .unwrap();
    assert!(!second.is_cycle("q1"));
    assert!(second.is_cycle("q2"));

    // A rejection older than the last death in the target does not break the cycle.
    let third = dead_letter(
        &second.properties_raw,
        &death(DeathReason::Maxlen, "q1", "", "q2"),
        None,
    )
    .unwrap();
    assert!(third.is_cycle("q1"));
    assert!(third.is_cycle("q2"));
}

#[test]
fn a_history_a_client_republished_goes_on() {
    // A consumer republishes a dead-lettered message with its x-death but without x-first-death-*.
    let mut entry = FieldTable::default();
    entry.insert("count".into(), AMQPValue::LongInt(3));
    entry.insert("reason".into(), text("expired"));
    entry.insert("queue".into(), text("old"));
    entry.insert("time".into(), AMQPValue::Timestamp(5));
    entry.insert("exchange".into(), text("oldx"));
    entry.insert("routing-keys".into(), array(&["r"]));
    entry.insert("original-expiration".into(), text("10"));
    entry.insert("extra".into(), text("dropped"));
    let published = with_headers(&[(
        "x-death",
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(entry)])),
    )]);
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Rejected, "q", "x", "k"),
        None,
    )
    .unwrap();
    assert_eq!(
        summary(&copy),
        [
            ("q".into(), "rejected".into(), 1),
            ("old".into(), "expired".into(), 3)
        ]
    );
    let old = &x_death(&copy)[1];
    assert_eq!(old.inner()["count"], AMQPValue::LongLongInt(3));
    assert_eq!(old.inner()["time"], AMQPValue::Timestamp(5));
    assert_eq!(old.inner()["original-expiration"], text("10"));
    assert!(!old.contains_key("extra"));
    let h = headers(&copy);
    assert_eq!(header(&h, "x-first-death-queue"), None);
    assert_eq!(header(&h, "x-last-death-queue"), Some(text("q")));

    // An x-death that is not an array is replaced, and this death counts as the first.
    let published = with_headers(&[("x-death", text("garbled by a client"))]);
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Rejected, "q", "x", "k"),
        None,
    )
    .unwrap();
    assert_eq!(summary(&copy), [("q".into(), "rejected".into(), 1)]);
    assert_eq!(
        header(&headers(&copy), "x-first-death-queue"),
        Some(text("q"))
    );
}

#[test]
fn original_expiration_is_the_parsed_integer() {
    let published = AMQPProperties::default().with_expiration("060000".into());
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "q", "x", "k"),
        None,
    )
    .unwrap();
    assert_eq!(
        x_death(&copy)[0].inner()["original-expiration"],
        text("60000")
    );
    // Not an integer (RabbitMQ refuses it at publish; Warren does not yet): kept as it was.
    let published = AMQPProperties::default().with_expiration("soon".into());
    let copy = dead_letter(
        &raw(&published),
        &death(DeathReason::Expired, "q", "x", "k"),
        None,
    )
    .unwrap();
    assert_eq!(
        x_death(&copy)[0].inner()["original-expiration"],
        text("soon")
    );
    // A second death has no expiration left to record.
    let again = dead_letter(
        &copy.properties_raw,
        &death(DeathReason::Expired, "q2", "x", "k"),
        None,
    )
    .unwrap();
    assert!(!x_death(&again)[0].contains_key("original-expiration"));
}

#[test]
fn properties_that_do_not_decode_are_refused() {
    let d = death(DeathReason::Rejected, "q", "x", "k");
    // Flags announce a content type that is not there.
    assert!(dead_letter(&[0x80, 0x00], &d, None).is_err());
    // Headers nested past the bound are refused before amq-protocol's recursive decoder sees them.
    let mut table = vec![0u8, 0, 0, 0];
    for _ in 0..40 {
        let mut outer = ((table.len() + 2) as u32).to_be_bytes().to_vec();
        outer.extend([0, b'F']);
        outer.extend(&table);
        table = outer;
    }
    let mut deep = vec![0x20, 0x00];
    deep.extend(table);
    assert!(dead_letter(&deep, &d, None).is_err());
}

#[test]
fn reasons_are_named_as_rabbitmq_names_them() {
    let names: Vec<_> = [
        DeathReason::Rejected,
        DeathReason::Expired,
        DeathReason::Maxlen,
        DeathReason::DeliveryLimit,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(names, ["rejected", "expired", "maxlen", "delivery_limit"]);
}
