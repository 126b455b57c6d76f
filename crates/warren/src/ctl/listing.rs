//! The list commands' columns (and `shovel_status`'s): rabbitmqctl 3.10's info keys for each, its default columns,
//! and where each key is found in the management API's JSON for that object. Most keys are the API's own field
//! names; the rest are mapped here (a binding's `source_name` is the API's `source`). An info key rabbitmqctl knows
//! but the API does not carry (Erlang pids, disk reads) prints empty, as a value the node did not report.

use serde_json::Value;

use super::error::CtlError;
use super::output::Rows;

/// One list command's columns.
#[derive(Debug)]
pub(crate) struct Listing {
    /// rabbitmqctl's command name, for messages.
    pub(crate) command: &'static str,
    /// Every info key rabbitmqctl 3.10 accepts for it.
    pub(crate) info_keys: &'static [&'static str],
    /// The columns shown when none are given.
    pub(crate) defaults: &'static [&'static str],
    /// The value of one info key in one API object.
    pub(crate) value: fn(&str, &Value) -> Value,
}

/// `list_queues`.
pub(crate) const QUEUES: Listing = Listing {
    command: "list_queues",
    info_keys: &[
        "name",
        "durable",
        "auto_delete",
        "arguments",
        "policy",
        "pid",
        "owner_pid",
        "exclusive",
        "exclusive_consumer_pid",
        "exclusive_consumer_tag",
        "messages_ready",
        "messages_unacknowledged",
        "messages",
        "messages_ready_ram",
        "messages_unacknowledged_ram",
        "messages_ram",
        "messages_persistent",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "message_bytes_ram",
        "message_bytes_persistent",
        "head_message_timestamp",
        "disk_reads",
        "disk_writes",
        "consumers",
        "consumer_utilisation",
        "consumer_capacity",
        "memory",
        "slave_pids",
        "synchronised_slave_pids",
        "state",
        "type",
        "leader",
        "members",
        "online",
    ],
    defaults: &["name", "messages"],
    value: field,
};

/// `list_exchanges`.
pub(crate) const EXCHANGES: Listing = Listing {
    command: "list_exchanges",
    info_keys: &[
        "name",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
        "policy",
    ],
    defaults: &["name", "type"],
    value: field,
};

/// The info keys of `bindings`, all shown by default.
const BINDING_KEYS: [&str; 6] = [
    "source_name",
    "source_kind",
    "destination_name",
    "destination_kind",
    "routing_key",
    "arguments",
];

/// `list_bindings`.
pub(crate) const BINDINGS: Listing = Listing {
    command: "list_bindings",
    info_keys: &BINDING_KEYS,
    defaults: &BINDING_KEYS,
    value: binding_field,
};

/// `list_connections`.
pub(crate) const CONNECTIONS: Listing = Listing {
    command: "list_connections",
    info_keys: &[
        "pid",
        "name",
        "port",
        "host",
        "peer_port",
        "peer_host",
        "ssl",
        "ssl_protocol",
        "ssl_key_exchange",
        "ssl_cipher",
        "ssl_hash",
        "peer_cert_subject",
        "peer_cert_issuer",
        "peer_cert_validity",
        "state",
        "channels",
        "protocol",
        "auth_mechanism",
        "user",
        "vhost",
        "timeout",
        "frame_max",
        "channel_max",
        "client_properties",
        "recv_oct",
        "recv_cnt",
        "send_oct",
        "send_cnt",
        "send_pend",
        "connected_at",
    ],
    defaults: &["user", "peer_host", "peer_port", "state"],
    value: connection_field,
};

/// `list_channels`.
pub(crate) const CHANNELS: Listing = Listing {
    command: "list_channels",
    info_keys: &[
        "pid",
        "connection",
        "name",
        "number",
        "user",
        "vhost",
        "transactional",
        "confirm",
        "consumer_count",
        "messages_unacknowledged",
        "messages_uncommitted",
        "acks_uncommitted",
        "messages_unconfirmed",
        "prefetch_count",
        "global_prefetch_count",
    ],
    defaults: &["pid", "user", "consumer_count", "messages_unacknowledged"],
    value: channel_field,
};

/// `list_consumers`.
pub(crate) const CONSUMERS: Listing = Listing {
    command: "list_consumers",
    info_keys: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "activity_status",
        "arguments",
    ],
    defaults: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ],
    value: consumer_field,
};

/// `list_vhosts`.
pub(crate) const VHOSTS: Listing = Listing {
    command: "list_vhosts",
    info_keys: &[
        "name",
        "description",
        "tags",
        "default_queue_type",
        "tracing",
        "cluster_state",
    ],
    defaults: &["name"],
    value: field,
};

/// The info keys of `users`, all shown by default.
const USER_KEYS: [&str; 2] = ["user", "tags"];

/// `list_users` (no columns to choose, as rabbitmqctl).
pub(crate) const USERS: Listing = Listing {
    command: "list_users",
    info_keys: &USER_KEYS,
    defaults: &USER_KEYS,
    value: user_field,
};

/// The info keys of `permissions`, all shown by default.
const PERMISSION_KEYS: [&str; 4] = ["user", "configure", "write", "read"];

/// `list_permissions` (no columns to choose, as rabbitmqctl).
pub(crate) const PERMISSIONS: Listing = Listing {
    command: "list_permissions",
    info_keys: &PERMISSION_KEYS,
    defaults: &PERMISSION_KEYS,
    value: field,
};

/// The info keys of `policies`, all shown by default.
const POLICY_KEYS: [&str; 6] = [
    "vhost",
    "name",
    "pattern",
    "apply-to",
    "definition",
    "priority",
];

/// `list_policies` (no columns to choose, as rabbitmqctl).
pub(crate) const POLICIES: Listing = Listing {
    command: "list_policies",
    info_keys: &POLICY_KEYS,
    defaults: &POLICY_KEYS,
    value: field,
};

/// The info keys of `parameters`, all shown by default.
const PARAMETER_KEYS: [&str; 3] = ["component", "name", "value"];

/// `list_parameters` (no columns to choose, as rabbitmqctl).
pub(crate) const PARAMETERS: Listing = Listing {
    command: "list_parameters",
    info_keys: &PARAMETER_KEYS,
    defaults: &PARAMETER_KEYS,
    value: parameter_field,
};

/// The columns of `shovel_status`. rabbitmqctl 3.10 prints each shovel as a map, so in the map's (alphabetical)
/// key order, with only the keys that shovel has and the header of the first one; here every shovel has every
/// column (empty where it has no value), and Warren's `messages_moved` and `last_error` come last.
const SHOVEL_KEYS: [&str; 18] = [
    "destination",
    "destination_exchange",
    "destination_exchange_key",
    "destination_protocol",
    "destination_queue",
    "last_changed",
    "name",
    "source",
    "source_exchange",
    "source_exchange_key",
    "source_protocol",
    "source_queue",
    "state",
    "termination_reason",
    "type",
    "vhost",
    "messages_moved",
    "last_error",
];

/// `shovel_status` (no columns to choose, as rabbitmqctl).
pub(crate) const SHOVELS: Listing = Listing {
    command: "shovel_status",
    info_keys: &SHOVEL_KEYS,
    defaults: &SHOVEL_KEYS,
    value: shovel_field,
};

/// The columns of `federation_status`: rabbitmqctl 3.10's keys in its (alphabetical) order, without
/// `local_connection` and `consumer_tag` (the Erlang process and tag of RabbitMQ's link, which Warren's API does not
/// show), and with Warren's `messages_moved` and `last_error` last.
const FEDERATION_LINK_KEYS: [&str; 14] = [
    "error",
    "exchange",
    "id",
    "last_changed",
    "queue",
    "status",
    "type",
    "upstream",
    "upstream_exchange",
    "upstream_queue",
    "uri",
    "vhost",
    "messages_moved",
    "last_error",
];

/// `federation_status` (no columns to choose, as rabbitmqctl).
pub(crate) const FEDERATION_LINKS: Listing = Listing {
    command: "federation_status",
    info_keys: &FEDERATION_LINK_KEYS,
    defaults: &FEDERATION_LINK_KEYS,
    value: federation_link_field,
};

impl Listing {
    /// The columns to show: `asked`, or the defaults when none; an unknown key is a usage error (exit 64), worded
    /// as rabbitmqctl words it.
    pub(crate) fn columns(&self, asked: &[String]) -> Result<Vec<String>, CtlError> {
        if asked.is_empty() {
            return Ok(self.defaults.iter().map(|key| (*key).to_owned()).collect());
        }
        // rabbitmqctl also accepts columns separated by commas ("name,messages").
        let asked: Vec<String> = asked
            .iter()
            .flat_map(|column| column.split(','))
            .filter(|column| !column.is_empty())
            .map(str::to_owned)
            .collect();
        let unknown: Vec<&str> = asked
            .iter()
            .map(String::as_str)
            .filter(|column| !self.info_keys.contains(column))
            .collect();
        if unknown.is_empty() {
            return Ok(asked);
        }
        let mut known = self.info_keys.to_vec();
        known.sort_unstable();
        Err(CtlError::Usage(format!(
            "Info key(s) {} are not supported\n{}: <column> must be one of {}",
            unknown.join(","),
            self.command,
            known.join(", ")
        )))
    }

    /// The rows for `columns` of the API objects in `items` (a JSON array, or a paged `{"items": [...]}`).
    pub(crate) fn rows(&self, columns: Vec<String>, items: &Value) -> Rows {
        let items = items
            .get("items")
            .unwrap_or(items)
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rows = items
            .iter()
            .map(|item| {
                columns
                    .iter()
                    .map(|column| (self.value)(column, item))
                    .collect()
            })
            .collect();
        Rows { columns, rows }
    }
}

/// The API field of the same name as the info key.
fn field(key: &str, item: &Value) -> Value {
    item.get(key).cloned().unwrap_or(Value::Null)
}

/// `name` inside the API object `parent` of `item` (`channel_details`, `connection_details`, `queue`).
fn nested_name(item: &Value, parent: &str) -> Value {
    item.get(parent)
        .and_then(|details| details.get("name"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// A binding's keys: the API names the source `source` and the destination kind `destination_type`.
fn binding_field(key: &str, item: &Value) -> Value {
    match key {
        "source_name" => field("source", item),
        "source_kind" => Value::String("exchange".to_owned()),
        "destination_name" => field("destination", item),
        "destination_kind" => field("destination_type", item),
        other => field(other, item),
    }
}

/// A connection's keys: the API has no Erlang pid; its name identifies the connection instead.
fn connection_field(key: &str, item: &Value) -> Value {
    match key {
        "pid" => field("name", item),
        other => field(other, item),
    }
}

/// A channel's keys: `pid` is the channel's name (the API has no pids), `connection` its connection's name.
fn channel_field(key: &str, item: &Value) -> Value {
    match key {
        "pid" => field("name", item),
        "connection" => nested_name(item, "connection_details"),
        other => field(other, item),
    }
}

/// A consumer's keys: the queue and the channel are nested objects in the API.
fn consumer_field(key: &str, item: &Value) -> Value {
    match key {
        "queue_name" => nested_name(item, "queue"),
        "channel_pid" => nested_name(item, "channel_details"),
        other => field(other, item),
    }
}

/// A user's keys: `user` is the API's `name`; tags are a list (RabbitMQ 3.9+) or a comma-separated string (older).
fn user_field(key: &str, item: &Value) -> Value {
    match key {
        "user" => field("name", item),
        "tags" => match item.get("tags") {
            Some(Value::String(tags)) => Value::Array(
                tags.split(',')
                    .filter(|tag| !tag.is_empty())
                    .map(|tag| Value::String(tag.to_owned()))
                    .collect(),
            ),
            Some(tags) => tags.clone(),
            None => Value::Array(Vec::new()),
        },
        other => field(other, item),
    }
}

/// A runtime parameter's keys: rabbitmqctl shows the value as the JSON text it was set to (a string, in its JSON
/// output too), not as a property list.
fn parameter_field(key: &str, item: &Value) -> Value {
    match (key, item.get(key)) {
        ("value", Some(value)) => Value::String(value.to_string()),
        (other, _) => field(other, item),
    }
}

/// A shovel status's keys, from the API's (rabbitmq_shovel_management's) names: `src_uri` is `source`, `src_queue`
/// `source_queue`, `timestamp` `last_changed`, `reason` `termination_reason`. The source, destination and
/// termination reason are empty strings when the shovel has none, as rabbitmqctl's.
fn shovel_field(key: &str, item: &Value) -> Value {
    let or_empty = |api: &str| match item.get(api) {
        Some(Value::Null) | None => Value::String(String::new()),
        Some(value) => value.clone(),
    };
    match key {
        "source" => or_empty("src_uri"),
        "destination" => or_empty("dest_uri"),
        "termination_reason" => or_empty("reason"),
        "last_changed" => field("timestamp", item),
        "source_protocol" => field("src_protocol", item),
        "source_queue" => field("src_queue", item),
        "source_exchange" => field("src_exchange", item),
        "source_exchange_key" => field("src_exchange_key", item),
        "destination_protocol" => field("dest_protocol", item),
        "destination_queue" => field("dest_queue", item),
        "destination_exchange" => field("dest_exchange", item),
        "destination_exchange_key" => field("dest_exchange_key", item),
        other => field(other, item),
    }
}

/// A federation link's keys, from the API's (rabbitmq_federation_management's) names: `timestamp` is
/// `last_changed`. An exchange link has an empty `queue` and `upstream_queue`, a queue link an empty `exchange` and
/// `upstream_exchange`, and a link that has not failed an empty `error`, as rabbitmqctl shows them.
fn federation_link_field(key: &str, item: &Value) -> Value {
    match key {
        "last_changed" => field("timestamp", item),
        "error" | "exchange" | "queue" | "upstream_exchange" | "upstream_queue" => {
            match item.get(key) {
                Some(Value::Null) | None => Value::String(String::new()),
                Some(value) => value.clone(),
            }
        }
        other => field(other, item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_columns_give_rabbitmqctls_defaults() {
        assert_eq!(
            QUEUES.columns(&[]).expect("defaults"),
            vec!["name", "messages"]
        );
        assert_eq!(
            CONNECTIONS.columns(&[]).expect("defaults"),
            vec!["user", "peer_host", "peer_port", "state"]
        );
    }

    #[test]
    fn an_unknown_info_key_is_a_usage_error_worded_as_rabbitmqctl() {
        let error = QUEUES
            .columns(&["name".into(), "foo".into()])
            .expect_err("foo refused");
        assert_eq!(error.exit_code(), 64);
        assert!(
            error
                .to_string()
                .starts_with("Info key(s) foo are not supported"),
            "{error}"
        );
    }

    #[test]
    fn columns_may_be_comma_separated() {
        assert_eq!(
            QUEUES
                .columns(&["name,messages_ready".into(), "consumers".into()])
                .expect("known keys"),
            vec!["name", "messages_ready", "consumers"]
        );
    }

    #[test]
    fn queue_rows_take_the_api_fields_and_leave_unknown_ones_empty() {
        let api = json!([
            {"name": "q1", "messages": 3, "durable": true, "arguments": {"x-max-length": 100}},
            {"name": "q2", "durable": false, "arguments": {}}
        ]);
        let columns = QUEUES
            .columns(&["name".into(), "messages".into(), "pid".into()])
            .expect("known keys");
        let rows = QUEUES.rows(columns, &api);
        assert_eq!(
            rows.rows,
            vec![
                vec![json!("q1"), json!(3), Value::Null],
                vec![json!("q2"), Value::Null, Value::Null],
            ]
        );
    }

    #[test]
    fn bindings_consumers_and_users_are_mapped_from_the_api_shapes() {
        let binding = json!({"source": "", "destination": "q1", "destination_type": "queue",
                             "routing_key": "q1", "arguments": {}});
        let rows = BINDINGS.rows(BINDINGS.columns(&[]).expect("defaults"), &json!([binding]));
        assert_eq!(
            rows.rows[0],
            vec![
                json!(""),
                json!("exchange"),
                json!("q1"),
                json!("queue"),
                json!("q1"),
                json!({})
            ]
        );
        let consumer = json!({"queue": {"name": "q2", "vhost": "v1"},
                              "channel_details": {"name": "127.0.0.1:1 -> 127.0.0.1:5672 (1)"},
                              "consumer_tag": "ctag1", "ack_required": true});
        let rows = CONSUMERS.rows(
            vec![
                "queue_name".into(),
                "channel_pid".into(),
                "consumer_tag".into(),
            ],
            &json!([consumer]),
        );
        assert_eq!(
            rows.rows[0],
            vec![
                json!("q2"),
                json!("127.0.0.1:1 -> 127.0.0.1:5672 (1)"),
                json!("ctag1")
            ]
        );
        let users = json!([{"name": "a", "tags": ["administrator"]}, {"name": "b", "tags": "x,y"}]);
        let rows = USERS.rows(USERS.columns(&[]).expect("defaults"), &users);
        assert_eq!(rows.rows[0], vec![json!("a"), json!(["administrator"])]);
        assert_eq!(rows.rows[1], vec![json!("b"), json!(["x", "y"])]);
    }

    #[test]
    fn parameter_values_show_as_their_json_text() {
        let api = json!([{"vhost": "/", "component": "shovel", "name": "s1",
                          "value": {"src-queue": "a", "dest-queue": "b"}}]);
        let rows = PARAMETERS.rows(PARAMETERS.columns(&[]).expect("defaults"), &api);
        assert_eq!(
            rows.rows[0],
            vec![
                json!("shovel"),
                json!("s1"),
                json!(r#"{"dest-queue":"b","src-queue":"a"}"#)
            ]
        );
    }

    #[test]
    fn shovel_statuses_take_rabbitmqctls_names_for_the_api_fields() {
        let running = json!({"node": "warren@h", "timestamp": "2024-02-29 12:34:56", "name": "s1", "vhost": "/",
                             "type": "dynamic", "state": "running", "src_uri": "amqp://h:5672",
                             "src_protocol": "amqp091", "dest_uri": "amqp://d:5672", "dest_protocol": "amqp091",
                             "src_queue": "a", "dest_exchange": "x", "dest_exchange_key": "k",
                             "messages_moved": 7, "last_error": null});
        let terminated = json!({"timestamp": "2024-02-29 12:35:00", "name": "s2", "vhost": "/", "type": "dynamic",
                                "state": "terminated", "reason": "connection refused", "messages_moved": 0,
                                "last_error": "connection refused"});
        let rows = SHOVELS.rows(
            SHOVELS.columns(&[]).expect("defaults"),
            &json!([running, terminated]),
        );
        let by_key = |row: usize, key: &str| {
            let at = SHOVEL_KEYS
                .iter()
                .position(|k| *k == key)
                .expect("a column");
            rows.rows[row][at].clone()
        };
        assert_eq!(by_key(0, "source"), json!("amqp://h:5672"));
        assert_eq!(by_key(0, "source_protocol"), json!("amqp091"));
        assert_eq!(by_key(0, "source_queue"), json!("a"));
        assert_eq!(by_key(0, "destination_exchange"), json!("x"));
        assert_eq!(by_key(0, "destination_exchange_key"), json!("k"));
        assert_eq!(by_key(0, "destination_queue"), Value::Null);
        assert_eq!(by_key(0, "last_changed"), json!("2024-02-29 12:34:56"));
        assert_eq!(by_key(0, "termination_reason"), json!(""));
        assert_eq!(by_key(0, "messages_moved"), json!(7));
        assert_eq!(by_key(1, "state"), json!("terminated"));
        assert_eq!(by_key(1, "termination_reason"), json!("connection refused"));
        assert_eq!(by_key(1, "source"), json!(""));
        assert_eq!(by_key(1, "last_error"), json!("connection refused"));
    }

    #[test]
    fn federation_links_show_rabbitmqctls_keys_with_empty_cells_for_the_other_kind() {
        let exchange = json!({"node": "warren@h", "vhost": "/", "id": "a1b2c3d4", "type": "exchange",
                              "exchange": "fed.x", "upstream_exchange": "fed.x", "upstream": "site-a",
                              "uri": "amqp://h:5672", "status": "running", "timestamp": "2024-02-29 12:34:56",
                              "messages_moved": 5, "last_error": null});
        let queue = json!({"vhost": "/", "id": "e5f6a7b8", "type": "queue", "queue": "jobs",
                           "upstream_queue": "jobs", "status": "error", "error": "connection refused",
                           "messages_moved": 0, "last_error": "connection refused"});
        let rows = FEDERATION_LINKS.rows(
            FEDERATION_LINKS.columns(&[]).expect("defaults"),
            &json!([exchange, queue]),
        );
        let by_key = |row: usize, key: &str| {
            let at = FEDERATION_LINK_KEYS
                .iter()
                .position(|k| *k == key)
                .expect("a column");
            rows.rows[row][at].clone()
        };
        assert_eq!(by_key(0, "exchange"), json!("fed.x"));
        assert_eq!(by_key(0, "queue"), json!(""));
        assert_eq!(by_key(0, "upstream_queue"), json!(""));
        assert_eq!(by_key(0, "error"), json!(""));
        assert_eq!(by_key(0, "last_changed"), json!("2024-02-29 12:34:56"));
        assert_eq!(by_key(0, "messages_moved"), json!(5));
        assert_eq!(by_key(1, "exchange"), json!(""));
        assert_eq!(by_key(1, "upstream_queue"), json!("jobs"));
        assert_eq!(by_key(1, "error"), json!("connection refused"));
        assert_eq!(by_key(1, "status"), json!("error"));
    }

    #[test]
    fn paged_answers_are_read_from_items() {
        let rows = VHOSTS.rows(
            vec!["name".into()],
            &json!({"items": [{"name": "/"}], "page": 1}),
        );
        assert_eq!(rows.rows, vec![vec![json!("/")]]);
    }
}
