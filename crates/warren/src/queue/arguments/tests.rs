//! One test per RabbitMQ rule, each asserting the exact reply text RabbitMQ 3.13 sends.

use super::*;
use warren_protocol::types::{DecimalValue, FieldArray};
use warren_protocol::LongString;

fn s(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
}

fn table(args: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (key, value) in args {
        t.insert((*key).into(), value.clone());
    }
    t
}

/// Flags of a declare: (durable, exclusive, auto_delete).
type Flags = (bool, bool, bool);
const DURABLE: Flags = (true, false, false);

fn parse_with(args: &[(&str, AMQPValue)], (d, e, a): Flags) -> Result<QueueArguments, AmqpError> {
    QueueArguments::parse(&table(args), "q", "/", d, e, a)
}

fn parse(args: &[(&str, AMQPValue)]) -> QueueArguments {
    parse_with(args, DURABLE).unwrap_or_else(|e| panic!("refused: {}", e.text))
}

/// The reply text of a refused durable declare of queue 'q' in vhost '/', which must be a 406.
fn refusal_with(args: &[(&str, AMQPValue)], flags: Flags) -> String {
    let error = parse_with(args, flags).expect_err("refused");
    assert_eq!(error.reply_code(), 406, "{}", error.text);
    error.text
}

fn refusal(args: &[(&str, AMQPValue)]) -> String {
    refusal_with(args, DURABLE)
}

fn invalid(key: &str, term: &str) -> String {
    format!("PRECONDITION_FAILED - invalid arg '{key}' for queue 'q' in vhost '/': {term}")
}

/// Every AMQP integer type RabbitMQ counts as one, each with the value 7.
fn sevens() -> Vec<AMQPValue> {
    vec![
        AMQPValue::ShortShortInt(7),
        AMQPValue::ShortShortUInt(7),
        AMQPValue::ShortInt(7),
        AMQPValue::ShortUInt(7),
        AMQPValue::LongInt(7),
        AMQPValue::LongUInt(7),
        AMQPValue::LongLongInt(7),
    ]
}

/// Every non-integer type, with the name RabbitMQ prints for it.
fn non_integers() -> Vec<(AMQPValue, &'static str)> {
    vec![
        (s("10"), "longstr"),
        (AMQPValue::Boolean(true), "bool"),
        (AMQPValue::Float(1.0), "float"),
        (AMQPValue::Double(1.0), "double"),
        (
            AMQPValue::DecimalValue(DecimalValue { scale: 0, value: 1 }),
            "decimal",
        ),
        (AMQPValue::Timestamp(1), "timestamp"),
        (AMQPValue::FieldTable(FieldTable::default()), "table"),
        (AMQPValue::FieldArray(FieldArray::default()), "array"),
        (AMQPValue::ByteArray(vec![1].into()), "binary"),
        (AMQPValue::Void, "void"),
    ]
}

const INTEGER_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
];

#[test]
fn every_amqp_integer_type_is_accepted_for_integer_arguments() {
    for value in sevens() {
        let args = parse(&[
            ("x-expires", value.clone()),
            ("x-message-ttl", value.clone()),
            ("x-max-length", value.clone()),
            ("x-max-length-bytes", value.clone()),
            ("x-max-priority", value.clone()),
        ]);
        assert_eq!(args.expires, Some(7), "{value:?}");
        assert_eq!(args.message_ttl, Some(7));
        assert_eq!(args.max_length, Some(7));
        assert_eq!(args.max_length_bytes, Some(7));
        assert_eq!(args.max_priority, Some(7));
    }
}

#[test]
fn a_non_integer_for_an_integer_argument_is_expected_integer() {
    for key in INTEGER_ARGS {
        for (value, name) in non_integers() {
            assert_eq!(
                refusal(&[(key, value)]),
                invalid(key, &format!("\"expected integer, got {name}\""))
            );
        }
    }
}

#[test]
fn a_negative_integer_is_value_negative() {
    for key in INTEGER_ARGS {
        assert_eq!(
            refusal(&[(key, AMQPValue::ShortShortInt(-1))]),
            invalid(key, "{value_negative,-1}")
        );
    }
    assert_eq!(
        refusal(&[("x-max-length", AMQPValue::LongLongInt(i64::MIN))]),
        invalid("x-max-length", "{value_negative,-9223372036854775808}")
    );
}

#[test]
fn x_expires_zero_is_value_zero_but_a_zero_ttl_is_accepted() {
    assert_eq!(
        refusal(&[("x-expires", AMQPValue::LongInt(0))]),
        invalid("x-expires", "{value_zero,0}")
    );
    assert_eq!(
        parse(&[("x-message-ttl", AMQPValue::LongInt(0))]).message_ttl,
        Some(0)
    );
}

#[test]
fn a_ttl_or_expiry_over_ten_years_is_value_too_large() {
    let ten_years = 315_360_000_000;
    for key in ["x-expires", "x-message-ttl"] {
        let ok = parse(&[(key, AMQPValue::LongLongInt(ten_years))]);
        assert_eq!(ok.expires.or(ok.message_ttl), Some(ten_years as u64));
        assert_eq!(
            refusal(&[(key, AMQPValue::LongLongInt(ten_years + 1))]),
            invalid(key, "{value_too_large,315360000001}")
        );
    }
}

#[test]
fn x_max_priority_over_255_is_max_value_exceeded_and_zero_reads_as_one() {
    assert_eq!(
        refusal(&[("x-max-priority", AMQPValue::ShortInt(300))]),
        invalid("x-max-priority", "{max_value_exceeded,300}")
    );
    assert_eq!(
        parse(&[("x-max-priority", AMQPValue::ShortUInt(255))]).max_priority,
        Some(255)
    );
    assert_eq!(
        parse(&[("x-max-priority", AMQPValue::ShortShortUInt(0))]).max_priority,
        Some(1)
    );
}

#[test]
fn x_overflow_must_be_a_known_mode_string() {
    assert_eq!(
        refusal(&[("x-overflow", s("drop-tail"))]),
        invalid("x-overflow", "invalid_overflow")
    );
    assert_eq!(
        refusal(&[("x-overflow", AMQPValue::LongInt(1))]),
        invalid("x-overflow", "{unacceptable_type,signedint}")
    );
    for (mode, overflow) in [
        ("drop-head", Overflow::DropHead),
        ("reject-publish", Overflow::RejectPublish),
        ("reject-publish-dlx", Overflow::RejectPublishDlx),
    ] {
        assert_eq!(parse(&[("x-overflow", s(mode))]).overflow, Some(overflow));
    }
}

#[test]
fn a_dead_letter_exchange_that_is_not_a_string_is_an_invalid_type() {
    assert_eq!(
        refusal(&[("x-dead-letter-exchange", AMQPValue::LongLongInt(1))]),
        "PRECONDITION_FAILED - invalid type 'long' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
    );
}

#[test]
fn a_dead_letter_routing_key_needs_a_string_and_an_exchange() {
    assert_eq!(
        refusal(&[("x-dead-letter-routing-key", s("k"))]),
        invalid(
            "x-dead-letter-routing-key",
            "routing_key_but_no_dlx_defined"
        )
    );
    assert_eq!(
        refusal(&[
            ("x-dead-letter-exchange", s("dlx")),
            ("x-dead-letter-routing-key", AMQPValue::Boolean(true)),
        ]),
        invalid("x-dead-letter-routing-key", "{unacceptable_type,bool}")
    );
    let args = parse(&[
        ("x-dead-letter-exchange", s("")),
        ("x-dead-letter-routing-key", s("k")),
    ]);
    assert_eq!(args.dead_letter_exchange.as_deref(), Some(""));
    assert_eq!(args.dead_letter_routing_key.as_deref(), Some("k"));
}

#[test]
fn x_single_active_consumer_must_be_a_boolean() {
    assert_eq!(
        refusal(&[("x-single-active-consumer", s("true"))]),
        invalid("x-single-active-consumer", "{unacceptable_type,longstr}")
    );
    assert!(
        parse(&[("x-single-active-consumer", AMQPValue::Boolean(true))]).single_active_consumer
    );
    assert!(!parse(&[]).single_active_consumer);
}

#[test]
fn x_queue_mode_and_version_take_rabbitmqs_values() {
    assert_eq!(
        refusal(&[("x-queue-mode", s("eager"))]),
        invalid("x-queue-mode", "\"unsupported queue mode 'eager'\"")
    );
    assert_eq!(
        refusal(&[("x-queue-mode", AMQPValue::LongInt(1))]),
        invalid("x-queue-mode", "{unacceptable_type,signedint}")
    );
    assert_eq!(
        refusal(&[("x-queue-version", AMQPValue::LongInt(3))]),
        invalid("x-queue-version", "\"unsupported queue version '3'\"")
    );
    assert_eq!(
        refusal(&[("x-queue-version", AMQPValue::LongInt(-2))]),
        invalid("x-queue-version", "{value_negative,-2}")
    );
    let args = parse(&[
        ("x-queue-mode", s("lazy")),
        ("x-queue-version", AMQPValue::LongInt(2)),
    ]);
    assert_eq!(args.queue_mode, QueueMode::Lazy);
    assert_eq!(args.queue_version, Some(2));
}

#[test]
fn texts_rabbitmq_formats_print_as_erlang_strings() {
    assert_eq!(
        refusal(&[("x-queue-mode", s("a\"b\\c\n"))]),
        invalid(
            "x-queue-mode",
            "\"unsupported queue mode 'a\\\"b\\\\c\\n'\""
        )
    );
    // Outside latin1, Erlang's ~p prints the code points.
    assert_eq!(
        refusal(&[("x-queue-mode", s("\u{15d}"))]),
        invalid(
            "x-queue-mode",
            "[117,110,115,117,112,112,111,114,116,101,100,32,113,117,101,117,101,32,109,111,100,101,32,39,349,39]"
        )
    );
}

#[test]
fn x_queue_type_must_be_a_known_type_string() {
    assert_eq!(
        refusal(&[("x-queue-type", s("fifo"))]),
        invalid("x-queue-type", "\"unsupported queue type 'fifo'\"")
    );
    assert_eq!(
        refusal(&[("x-queue-type", AMQPValue::LongInt(1))]),
        invalid("x-queue-type", "{unacceptable_type,signedint}")
    );
    assert_eq!(
        parse(&[("x-queue-type", s("undefined"))]).queue_type,
        QueueType::Classic
    );
    assert_eq!(
        parse(&[("x-queue-type", s("classic"))]).queue_type,
        QueueType::Classic
    );
}

#[test]
fn the_queue_type_is_checked_before_other_arguments() {
    assert_eq!(
        refusal(&[("x-max-length", s("x")), ("x-queue-type", s("fifo"))]),
        invalid("x-queue-type", "\"unsupported queue type 'fifo'\"")
    );
}

#[test]
fn arguments_are_checked_in_rabbitmqs_order_not_the_tables() {
    // declare_args/0 checks x-expires before x-max-length, though the table sorts it after.
    assert_eq!(
        refusal(&[
            ("x-max-length", AMQPValue::LongInt(-1)),
            ("x-expires", AMQPValue::LongInt(0)),
        ]),
        invalid("x-expires", "{value_zero,0}")
    );
}

#[test]
fn another_types_argument_is_refused_naming_the_type() {
    for key in [
        "x-delivery-limit",
        "x-dead-letter-strategy",
        "x-max-in-memory-length",
        "x-queue-leader-locator",
        "x-max-age",
    ] {
        assert_eq!(
            refusal(&[(key, AMQPValue::LongInt(5))]),
            format!("PRECONDITION_FAILED - invalid arg '{key}' for queue 'q' in vhost '/' of queue type rabbit_classic_queue")
        );
    }
    for key in ["x-max-priority", "x-queue-mode", "x-queue-master-locator"] {
        assert_eq!(
            refusal(&[(key, s("x")), ("x-queue-type", s("quorum"))]),
            format!("PRECONDITION_FAILED - invalid arg '{key}' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue")
        );
    }
}

#[test]
fn arguments_no_queue_type_takes_are_ignored() {
    let args = parse(&[
        ("x-custom", s("anything")),
        ("x-stream-filter-size-bytes", s("not checked")),
        ("x-consumer-timeout", s("not an integer")),
    ]);
    assert_eq!(args, QueueArguments::default());
    assert_eq!(
        parse(&[("x-consumer-timeout", AMQPValue::LongInt(60_000))]).consumer_timeout,
        Some(60_000)
    );
}

#[test]
fn a_quorum_queue_must_be_durable_and_neither_exclusive_nor_auto_delete() {
    let quorum = [("x-queue-type", s("quorum"))];
    let text = |property: &str| {
        format!("PRECONDITION_FAILED - invalid property '{property}' for queue 'q' in vhost '/'")
    };
    assert_eq!(
        refusal_with(&quorum, (true, false, true)),
        text("auto-delete")
    );
    assert_eq!(
        refusal_with(&quorum, (true, true, false)),
        text("exclusive-owner")
    );
    assert_eq!(
        refusal_with(&quorum, (false, false, false)),
        text("non-durable")
    );
    // RabbitMQ checks auto-delete, then exclusive, then durable.
    assert_eq!(
        refusal_with(&quorum, (false, true, true)),
        text("auto-delete")
    );
    assert_eq!(
        refusal_with(&quorum, (false, true, false)),
        text("exclusive-owner")
    );
    // Arguments are checked before the properties.
    assert_eq!(
        refusal_with(
            &[quorum[0].clone(), ("x-max-length", AMQPValue::LongInt(-1))],
            (false, false, false)
        ),
        invalid("x-max-length", "{value_negative,-1}")
    );
    assert_eq!(parse(&quorum).queue_type, QueueType::Quorum);
}

#[test]
fn quorum_arguments_are_checked_and_read() {
    let quorum = ("x-queue-type", s("quorum"));
    assert_eq!(
        refusal(&[
            quorum.clone(),
            ("x-dead-letter-strategy", s("exactly-once"))
        ]),
        invalid("x-dead-letter-strategy", "invalid_dlx_strategy")
    );
    assert_eq!(
        refusal(&[
            quorum.clone(),
            ("x-quorum-initial-group-size", AMQPValue::LongInt(0))
        ]),
        invalid("x-quorum-initial-group-size", "{value_zero,0}")
    );
    assert_eq!(
        refusal(&[quorum.clone(), ("x-queue-leader-locator", s("nearest"))]),
        invalid("x-queue-leader-locator", "invalid_queue_locator_arg")
    );
    assert_eq!(
        refusal(&[quorum.clone(), ("x-max-in-memory-bytes", s("1"))]),
        invalid("x-max-in-memory-bytes", "\"expected integer, got longstr\"")
    );
    let args = parse(&[
        quorum.clone(),
        ("x-delivery-limit", AMQPValue::LongInt(5)),
        ("x-dead-letter-exchange", s("dlx")),
        ("x-dead-letter-strategy", s("at-least-once")),
        ("x-overflow", s("reject-publish")),
        ("x-max-in-memory-length", AMQPValue::LongInt(10)),
        ("x-max-in-memory-bytes", AMQPValue::LongInt(1000)),
        ("x-quorum-initial-group-size", AMQPValue::LongInt(3)),
        ("x-queue-leader-locator", s("balanced")),
        ("x-single-active-consumer", AMQPValue::Boolean(true)),
    ]);
    assert_eq!(args.delivery_limit, Some(5));
    assert_eq!(
        args.dead_letter_strategy,
        Some(DeadLetterStrategy::AtLeastOnce)
    );
    assert_eq!(args.overflow, Some(Overflow::RejectPublish));
    assert_eq!(args.max_in_memory_length, Some(10));
    assert_eq!(args.max_in_memory_bytes, Some(1000));
    assert_eq!(args.quorum_initial_group_size, Some(3));
    assert_eq!(args.queue_leader_locator.as_deref(), Some("balanced"));
    assert!(args.single_active_consumer);
}

#[test]
fn a_quorum_queue_applies_reject_publish_dlx_as_drop_head() {
    let args = parse(&[
        ("x-queue-type", s("quorum")),
        ("x-overflow", s("reject-publish-dlx")),
    ]);
    assert_eq!(args.overflow, Some(Overflow::DropHead));
}

#[test]
fn x_delivery_limit_of_a_quorum_queue_is_not_checked_and_a_bad_one_ignored() {
    let args = parse(&[
        ("x-queue-type", s("quorum")),
        ("x-delivery-limit", s("five")),
    ]);
    assert_eq!(args.delivery_limit, None);
}

#[test]
fn a_stream_queue_is_checked_like_rabbitmq_then_refused() {
    let stream = ("x-queue-type", s("stream"));
    assert_eq!(
        refusal(std::slice::from_ref(&stream)),
        "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'q' in vhost '/': Warren does not support stream queues yet"
    );
    assert_eq!(
        refusal(&[stream.clone(), ("x-message-ttl", AMQPValue::LongInt(1))]),
        "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/' of queue type rabbit_stream_queue"
    );
    assert_eq!(
        refusal(&[stream.clone(), ("x-max-age", s("7X"))]),
        invalid("x-max-age", "invalid_max_age")
    );
    assert_eq!(
        refusal(&[
            stream.clone(),
            ("x-initial-cluster-size", AMQPValue::LongInt(0))
        ]),
        invalid("x-initial-cluster-size", "{value_zero,0}")
    );
    assert_eq!(
        refusal_with(&[stream], (false, false, false)),
        "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"
    );
}

#[test]
fn x_max_age_takes_a_positive_number_and_one_unit() {
    for age in ["7D", "1Y", "10M", "24h", "30m", "1s", "007s"] {
        assert_eq!(
            checks::Check::MaxAge.run(&s(age), &FieldTable::default()),
            Ok(()),
            "{age}"
        );
    }
    for age in ["0s", "7", "D", "", "7Dh", "7d", "-1s"] {
        assert_eq!(
            checks::Check::MaxAge.run(&s(age), &FieldTable::default()),
            Err(Refusal::Atom("invalid_max_age")),
            "{age}"
        );
    }
}

#[test]
fn a_server_named_queue_must_be_classic() {
    let refused = |kind: &str| {
        QueueArguments::check_server_named(&table(&[("x-queue-type", s(kind))]))
            .expect_err("refused")
            .text
    };
    assert_eq!(
        refused("quorum"),
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
    );
    assert_eq!(
        refused("stream"),
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue"
    );
    assert!(QueueArguments::check_server_named(&table(&[("x-queue-type", s("classic"))])).is_ok());
    assert!(QueueArguments::check_server_named(&FieldTable::default()).is_ok());
}

#[test]
fn a_fully_argued_classic_queue_reads_every_value() {
    let args = parse(&[
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ("x-expires", AMQPValue::LongUInt(1_800_000)),
        ("x-max-length", AMQPValue::LongLongInt(1000)),
        ("x-max-length-bytes", AMQPValue::LongInt(1 << 20)),
        ("x-overflow", s("reject-publish-dlx")),
        ("x-dead-letter-exchange", s("dlx")),
        ("x-dead-letter-routing-key", s("dead")),
        ("x-max-priority", AMQPValue::ShortShortUInt(10)),
        ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ("x-queue-type", s("classic")),
        ("x-queue-mode", s("default")),
        ("x-queue-version", AMQPValue::ShortShortInt(1)),
        ("x-queue-master-locator", s("client-local")),
        ("x-consumer-timeout", AMQPValue::LongInt(5000)),
    ]);
    assert_eq!(
        args,
        QueueArguments {
            message_ttl: Some(60_000),
            expires: Some(1_800_000),
            max_length: Some(1000),
            max_length_bytes: Some(1 << 20),
            overflow: Some(Overflow::RejectPublishDlx),
            dead_letter_exchange: Some("dlx".into()),
            dead_letter_routing_key: Some("dead".into()),
            dead_letter_strategy: None,
            max_priority: Some(10),
            single_active_consumer: true,
            queue_type: QueueType::Classic,
            delivery_limit: None,
            delivery_limit_disabled: false,
            consumer_timeout: Some(5000),
            max_in_memory_length: None,
            max_in_memory_bytes: None,
            queue_mode: QueueMode::Default,
            queue_version: Some(1),
            queue_master_locator: Some("client-local".into()),
            queue_leader_locator: None,
            quorum_initial_group_size: None,
            deduplication: false,
        }
    );
}

#[test]
fn deduplication_is_on_for_any_value_but_false_as_the_plugin_reads_it() {
    let read = |value: Option<AMQPValue>| {
        let pairs: Vec<(&str, AMQPValue)> = value
            .into_iter()
            .map(|v| ("x-message-deduplication", v))
            .collect();
        QueueArguments::parse(&table(&pairs), "q", "/", true, false, false)
            .map(|a| a.deduplication)
            .ok()
    };
    assert_eq!(read(None), Some(false));
    assert_eq!(read(Some(AMQPValue::Boolean(false))), Some(false));
    assert_eq!(read(Some(AMQPValue::Boolean(true))), Some(true));
    assert_eq!(read(Some(s("yes"))), Some(true));
}

#[test]
fn the_text_names_the_queue_and_vhost() {
    let error = QueueArguments::parse(
        &table(&[("x-expires", AMQPValue::LongInt(0))]),
        "orders",
        "shop",
        false,
        false,
        false,
    )
    .expect_err("refused");
    assert_eq!(
        error.text,
        "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'orders' in vhost 'shop': {value_zero,0}"
    );
}
