//! The events as RabbitMQ 3.10.8 with rabbitmq_event_exchange sent them (recorded with pika): names, types, values.

use super::*;
use warren_protocol::content::decode_properties;

fn header<'a>(event: &'a Event, name: &str) -> &'a AMQPValue {
    event
        .headers
        .inner()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no header {name}: {:?}", event.key, event.headers))
}

fn names(event: &Event) -> Vec<&str> {
    event.headers.inner().keys().map(|k| k.as_str()).collect()
}

#[test]
fn the_message_is_persistent_timestamped_in_seconds_with_timestamp_in_ms() {
    let event = Event::queue_deleted("/", "q", "guest");
    let raw = event.properties(1_796_217_394_461).unwrap();
    let properties = decode_properties(&raw).unwrap();
    assert_eq!(properties.delivery_mode(), &Some(2));
    assert_eq!(properties.timestamp(), &Some(1_796_217_394));
    assert_eq!(properties.content_type(), &None);
    let headers = properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("timestamp_in_ms"),
        Some(&AMQPValue::LongLongInt(1_796_217_394_461))
    );
    assert_eq!(headers.inner().get("name"), Some(&text("q")));
}

#[test]
fn queue_events_carry_resource_flags_owner_and_arguments_as_erlang_terms() {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(60000));
    let created = Event::queue_created("/", "q", false, true, None, &args, "guest");
    assert_eq!(created.key, "queue.created");
    assert_eq!(
        names(&created),
        [
            "arguments",
            "auto_delete",
            "durable",
            "exclusive",
            "name",
            "owner_pid",
            "user_who_performed_action",
            "vhost"
        ]
    );
    assert_eq!(
        header(&created, "arguments"),
        &AMQPValue::FieldArray(vec![text("{<<\"x-message-ttl\">>,signedint,60000}")].into())
    );
    assert_eq!(header(&created, "auto_delete"), &AMQPValue::Boolean(true));
    assert_eq!(header(&created, "exclusive"), &AMQPValue::Boolean(false));
    assert_eq!(header(&created, "owner_pid"), &text(""));
    let pid = connection_pid("warren@h", 7);
    let exclusive = Event::queue_created("/", "q", false, false, Some(&pid), &args, "guest");
    assert_eq!(header(&exclusive, "owner_pid"), &text("<warren@h.7.0.0>"));
    assert_eq!(header(&exclusive, "exclusive"), &AMQPValue::Boolean(true));
    let deleted = Event::queue_deleted("/", "q", INTERNAL_USER);
    assert_eq!(
        names(&deleted),
        ["name", "user_who_performed_action", "vhost"]
    );
    assert_eq!(
        header(&deleted, "user_who_performed_action"),
        &text("rmq-internal")
    );
}

#[test]
fn exchange_and_binding_events_have_the_plugins_headers() {
    let mut args = FieldTable::default();
    args.insert("alternate-exchange".into(), text("amq.fanout"));
    let created =
        Event::exchange_created("/", "x", "direct", false, false, false, &args, None, "u");
    assert_eq!(
        names(&created),
        [
            "arguments",
            "auto_delete",
            "durable",
            "internal",
            "name",
            "policy",
            "type",
            "user_who_performed_action",
            "vhost"
        ]
    );
    assert_eq!(
        header(&created, "arguments"),
        &AMQPValue::FieldArray(
            vec![text(
                "{<<\"alternate-exchange\">>,longstr,<<\"amq.fanout\">>}"
            )]
            .into()
        )
    );
    assert_eq!(
        Event::exchange_deleted("/", "x", "u").key,
        "exchange.deleted"
    );
    let bound = Event::binding(true, "/", "x", "q", true, "rk", &FieldTable::default(), "u");
    assert_eq!(bound.key, "binding.created");
    assert_eq!(
        names(&bound),
        [
            "arguments",
            "destination_kind",
            "destination_name",
            "routing_key",
            "source_kind",
            "source_name",
            "user_who_performed_action",
            "vhost"
        ]
    );
    assert_eq!(
        header(&bound, "arguments"),
        &AMQPValue::FieldArray(vec![].into())
    );
    let unbound = Event::binding(false, "/", "x", "y", false, "", &FieldTable::default(), "u");
    assert_eq!(unbound.key, "binding.deleted");
    assert_eq!(header(&unbound, "destination_kind"), &text("exchange"));
}

#[test]
fn connection_events_name_addresses_as_erlang_tuples_and_numbers_as_longs() {
    let mut client = FieldTable::default();
    client.insert("product".into(), text("pika"));
    let c = ConnectionCreated {
        node: "warren@h",
        pid: "<warren@h.2.0.0>",
        name: "127.0.0.1:50008 -> 127.0.0.1:5672",
        peer: "127.0.0.1:50008".parse().unwrap(),
        local: Some("127.0.0.1:5672".parse().unwrap()),
        ssl: false,
        user: "guest",
        vhost: "/",
        auth_mechanism: "PLAIN",
        client_properties: &client,
        heartbeat: 60,
        frame_max: 131072,
        channel_max: 2047,
        connected_at_ms: 5,
    };
    let created = Event::connection_created(&c);
    assert_eq!(created.key, "connection.created");
    // The 26 of RabbitMQ 3.10.8, timestamp_in_ms aside.
    assert_eq!(created.headers.inner().len(), 26);
    assert_eq!(header(&created, "peer_host"), &text("{127,0,0,1}"));
    assert_eq!(header(&created, "port"), &AMQPValue::LongLongInt(5672));
    assert_eq!(header(&created, "timeout"), &AMQPValue::LongLongInt(60));
    assert_eq!(header(&created, "protocol"), &text("{0,9,1}"));
    assert_eq!(header(&created, "ssl"), &AMQPValue::Boolean(false));
    assert_eq!(
        header(&created, "client_properties"),
        &AMQPValue::FieldArray(vec![text("{<<\"product\">>,longstr,<<\"pika\">>}")].into())
    );
    let closed = Event::connection_closed("<warren@h.2.0.0>", c.name, "warren@h", &client);
    assert_eq!(names(&closed), ["client_properties", "name", "node", "pid"]);
    assert_eq!(
        ip_tuple("::ffff:127.0.0.1".parse().unwrap()),
        "{0,0,0,0,0,65535,32512,1}"
    );
}

#[test]
fn a_refused_login_carries_its_reason_as_an_erlang_string() {
    let attempt = AuthAttempt {
        user: "guest",
        connection_name: "a -> b",
        peer: "127.0.0.1:1".parse().unwrap(),
        local: Some("127.0.0.1:5672".parse().unwrap()),
        auth_mechanism: "PLAIN",
        ssl: false,
    };
    let success = Event::authentication(&attempt, None);
    assert_eq!(success.key, "user.authentication.success");
    assert_eq!(
        names(&success),
        [
            "auth_mechanism",
            "connection_name",
            "connection_type",
            "host",
            "name",
            "peer_host",
            "peer_port",
            "protocol",
            "ssl"
        ]
    );
    let failure = Event::authentication(&attempt, Some("no"));
    assert_eq!(failure.key, "user.authentication.failure");
    assert_eq!(
        header(&failure, "error"),
        &AMQPValue::FieldArray(
            vec![AMQPValue::LongLongInt(110), AMQPValue::LongLongInt(111)].into()
        )
    );
}

#[test]
fn channel_and_consumer_events_name_their_pids() {
    let pid = channel_pid("warren@h", 2, 1, 9);
    assert_eq!(pid, "<warren@h.2.1.9>");
    let created = Event::channel_created(&pid, "<warren@h.2.0.0>", "a -> b", 1, "guest", "/");
    assert_eq!(
        names(&created),
        [
            "connection",
            "name",
            "number",
            "pid",
            "user",
            "user_who_performed_action",
            "vhost"
        ]
    );
    assert_eq!(header(&created, "name"), &text("a -> b (1)"));
    assert_eq!(header(&created, "number"), &AMQPValue::LongLongInt(1));
    assert_eq!(
        names(&Event::channel_closed(&pid, "guest")),
        ["pid", "user_who_performed_action"]
    );
    let consumer = Event::consumer_created(
        "/",
        "q",
        "ctag",
        &pid,
        false,
        true,
        10,
        &FieldTable::default(),
        "g",
    );
    assert_eq!(
        names(&consumer),
        [
            "ack_required",
            "arguments",
            "channel",
            "consumer_tag",
            "exclusive",
            "prefetch_count",
            "queue",
            "user_who_performed_action",
            "vhost"
        ]
    );
    assert_eq!(
        header(&consumer, "prefetch_count"),
        &AMQPValue::LongLongInt(10)
    );
    let deleted = Event::consumer_deleted("/", "q", "ctag", &pid, "g");
    assert_eq!(
        names(&deleted),
        [
            "channel",
            "consumer_tag",
            "queue",
            "user_who_performed_action",
            "vhost"
        ]
    );
}

#[test]
fn policy_events_carry_the_definition_as_a_table() {
    let definition = serde_json::json!({"message-ttl": 1000, "dead-letter-exchange": "dlx"});
    let set = Event::policy_set(
        "/",
        "ttlp",
        "^probe",
        "queues",
        3,
        definition.as_object().unwrap(),
        "rmq-cli",
    );
    assert_eq!(set.key, "policy.set");
    assert_eq!(header(&set, "priority"), &AMQPValue::LongLongInt(3));
    assert_eq!(header(&set, "apply-to"), &text("queues"));
    let AMQPValue::FieldTable(table) = header(&set, "definition") else {
        panic!("definition is a table");
    };
    assert_eq!(
        table.inner().get("message-ttl"),
        Some(&AMQPValue::LongLongInt(1000))
    );
    assert_eq!(
        Event::policy_cleared(false, "/", "ttlp", "rmq-cli").key,
        "policy.cleared"
    );
    assert_eq!(
        Event::policy_cleared(true, "/", "ttlp", "rmq-cli").key,
        "operator.policy.cleared"
    );
}

#[test]
fn vhost_user_and_permission_events() {
    let vhost = Event::vhost_created("pv", "warren@h", false, "rmq-cli");
    let AMQPValue::FieldTable(state) = header(&vhost, "cluster_state") else {
        panic!("cluster_state is a table");
    };
    assert_eq!(state.inner().get("warren@h"), Some(&text("running")));
    assert_eq!(header(&vhost, "tracing"), &AMQPValue::Boolean(false));
    let tags = Event::user_tags_set("pu", &["administrator".to_owned()], "rmq-cli");
    assert_eq!(
        header(&tags, "tags"),
        &AMQPValue::FieldArray(vec![text("administrator")].into())
    );
    let limits = Event::vhost_limits(Some(&[("max-connections".to_owned(), 10)]), "rmq-cli");
    assert_eq!(limits.key, "vhost.limits.set");
    assert_eq!(
        header(&limits, "max-connections"),
        &AMQPValue::LongLongInt(10)
    );
    assert_eq!(
        Event::vhost_limits(None, "rmq-cli").key,
        "vhost.limits.cleared"
    );
    let permission = Event::permission_created("pu", "pv", ".*", ".*", "", "rmq-cli");
    assert_eq!(
        names(&permission),
        [
            "configure",
            "read",
            "user",
            "user_who_performed_action",
            "vhost",
            "write"
        ]
    );
    assert_eq!(
        Event::permission_deleted("topic.permission.deleted", "pu", "pv", "rmq-cli").key,
        "topic.permission.deleted"
    );
}

#[test]
fn nested_tables_arrays_and_binaries_print_as_erlang_does() {
    let mut inner = FieldTable::default();
    inner.insert("b".into(), AMQPValue::Boolean(true));
    let mut args = FieldTable::default();
    args.insert("t".into(), AMQPValue::FieldTable(inner));
    args.insert(
        "a".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongLongInt(1), text("q\"")].into()),
    );
    args.insert("raw".into(), text("\u{e9}"));
    let AMQPValue::FieldArray(items) = table_as_terms(&args) else {
        panic!("an array");
    };
    let printed: Vec<&AMQPValue> = items.as_slice().iter().collect();
    assert_eq!(
        printed,
        [
            &text("{<<\"a\">>,array,[{long,1},{longstr,<<\"q\\\"\">>}]}"),
            &text("{<<\"raw\">>,longstr,<<195,169>>}"),
            &text("{<<\"t\">>,table,[{<<\"b\">>,bool,true}]}"),
        ]
    );
}
