use serde_json::json;

use super::definition::{AckMode, DeleteAfter, DestinationKind, ShovelDefinition, SourceKind};
use super::endpoint::Endpoint;

fn parse(value: serde_json::Value) -> Result<ShovelDefinition, String> {
    ShovelDefinition::parse(&value)
}

#[test]
fn a_queue_to_queue_shovel_takes_rabbitmqs_defaults() {
    let def = parse(
        json!({"src-uri": "amqp://a:b@127.0.0.2:5673/v", "src-queue": "in",
                           "dest-uri": ["amqp://h1", "amqp://h2"], "dest-queue": "out"}),
    )
    .unwrap();
    assert_eq!(def.ack_mode, AckMode::OnConfirm);
    assert_eq!(def.source.prefetch, 1000);
    assert_eq!(def.source.delete_after, DeleteAfter::Never);
    assert_eq!(def.reconnect_delay.as_secs(), 5);
    assert_eq!(def.destination.uris.len(), 2);
    assert!(!def.destination.add_forward_headers);
    assert_eq!(def.source.uris[0].display(), "amqp://a@127.0.0.2:5673/v");
    assert!(matches!(def.source.kind, SourceKind::Queue { ref name, .. } if name == "in"));
    assert!(
        matches!(def.destination.kind, DestinationKind::Queue { ref name, .. } if name == "out")
    );
}

#[test]
fn legacy_and_current_key_names_are_both_read_the_current_winning() {
    let def = parse(json!({"src-uri": "amqp://h", "src-exchange": "x", "dest-uri": "amqp://h",
                           "prefetch-count": 10, "src-prefetch-count": 20, "delete-after": 5,
                           "add-forward-headers": true, "publish-properties": {"delivery_mode": 2}}))
    .unwrap();
    assert_eq!(def.source.prefetch, 20);
    assert_eq!(def.source.delete_after, DeleteAfter::Count(5));
    assert!(def.destination.add_forward_headers);
    assert_eq!(def.destination.publish_properties["delivery_mode"], 2);
    assert!(matches!(def.source.kind, SourceKind::Exchange { ref key, .. } if key.is_empty()));
    assert!(matches!(
        def.destination.kind,
        DestinationKind::Original { key: None }
    ));
}

#[test]
fn refusals_carry_rabbitmqs_messages() {
    let cases = [
        (json!({"src-uri": "amqp://h", "dest-uri": "amqp://h"}), "Must specify 'src-exchange' or 'src-queue'"),
        (json!({"src-uri": "amqp://h", "src-queue": "q", "src-exchange": "x", "dest-uri": "amqp://h"}),
         "Cannot specify 'src-exchange' and 'src-queue'"),
        (json!({"src-uri": "amqp://h", "src-queue": "q", "dest-uri": "amqp://h", "dest-queue": "q",
                "dest-exchange": "x"}), "Cannot specify 'dest-exchange' and 'dest-queue'"),
        (json!({"src-uri": "amqp://h", "src-queue": "q", "dest-uri": "amqp://h", "ack-mode": "no-ack",
                "src-delete-after": 3}), "Cannot specify 'no-ack' and numerical 'delete-after'"),
        (json!({"src-queue": "q", "dest-uri": "amqp://h"}), "Key \"src-uri\" not found in shovel"),
        (json!({"src-uri": "amqp://h", "src-queue": "q", "dest-uri": "amqp://h", "ack-mode": "sometimes"}),
         "ack-mode should be one of no-ack, on-publish, on-confirm, actually was \"sometimes\""),
        (json!({"src-uri": "amqp://h", "src-queue": "q", "dest-uri": "amqp://h", "src-delete-after": "soon"}),
         "src-delete-after should be number, \"never\" or \"queue-length\", actually was \"soon\""),
        (json!({"src-uri": "amqp://h", "src-queue": "q", "dest-uri": "amqp://h", "colour": "red"}),
         "Unrecognised terms [\"colour\"] in shovel"),
    ];
    for (value, expected) in cases {
        assert_eq!(parse(value.clone()).unwrap_err(), expected, "{value}");
    }
}

#[test]
fn what_warren_cannot_honour_is_refused_not_ignored() {
    let amqp10 = parse(
        json!({"src-protocol": "amqp10", "src-uri": "amqp://h", "src-address": "a",
                              "dest-uri": "amqp://h"}),
    );
    assert!(amqp10.unwrap_err().contains("amqp10 is not supported"));
    assert!(
        Endpoint::parse("amqps://").is_err(),
        "TLS to the local node"
    );
    let verify_none = Endpoint::parse("amqps://h?verify=verify_none").unwrap_err();
    assert!(verify_none.contains("verify=verify_none"), "{verify_none}");
    assert!(Endpoint::parse("amqp://h?cacertfile=/ca.pem").is_err());
    assert!(Endpoint::parse("amqp://h?color=blue")
        .unwrap_err()
        .contains("unknown URI option"));
}

#[test]
fn a_uri_without_a_host_is_the_local_node() {
    for uri in ["amqp://", "amqp:///", "amqp:///app"] {
        assert!(Endpoint::parse(uri).unwrap().is_local(), "{uri}");
    }
    assert!(!Endpoint::parse("amqp://localhost").unwrap().is_local());
}

#[test]
fn uris_read_as_rabbitmq_reads_them() {
    // A numeric host stays numeric; no path is the vhost "/", a lone "/" the vhost "".
    let e = Endpoint::parse(
        "amqps://u:p%40ss@127.0.0.3:5999/%2Fprod?heartbeat=5&cacertfile=/tmp/ca.pem",
    )
    .unwrap();
    assert_eq!(
        e.display(),
        "amqps://u@127.0.0.3:5999/%2Fprod?heartbeat=5&cacertfile=/tmp/ca.pem"
    );
    let bad = parse(
        json!({"src-uri": "amqp://u:secret@h:notaport", "src-queue": "q", "dest-uri": "amqp://h"}),
    );
    let error = bad.unwrap_err();
    assert!(error.contains("not a valid URI"), "{error}");
    assert!(
        !error.contains("secret"),
        "the password is not echoed: {error}"
    );
}
