use serde_json::json;

use super::upstream::{parse_set, with_overrides, LinkAckMode, Upstream};

#[test]
fn an_upstream_takes_rabbitmqs_defaults() {
    let up = Upstream::parse("up", &json!({"uri": "amqp://u:p@10.0.0.1"})).unwrap();
    assert_eq!(up.prefetch, 1000);
    assert_eq!(up.max_hops, 1);
    assert_eq!(up.ack_mode, LinkAckMode::OnConfirm);
    assert_eq!(up.reconnect_delay.as_secs(), 5);
    assert!(!up.trust_user_id);
    assert_eq!(up.exchange, None);
    assert_eq!(up.uris[0].display(), "amqp://u@10.0.0.1");
}

#[test]
fn upstream_refusals_name_the_key() {
    let cases = [
        (json!({}), "Key \"uri\" not found in federation-upstream"),
        (
            json!({"uri": "amqp://h", "max-hops": 0}),
            "max-hops should be at least 1",
        ),
        (
            json!({"uri": "amqp://h", "ack-mode": "later"}),
            "ack-mode should be one of no-ack, on-publish, on-confirm, actually was \"later\"",
        ),
        (
            json!({"uri": "amqp://h", "colour": 1}),
            "Unrecognised terms [\"colour\"] in federation-upstream",
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(
            Upstream::parse("up", &value).unwrap_err(),
            expected,
            "{value}"
        );
    }
    let ha = Upstream::parse("up", &json!({"uri": "amqp://h", "ha-policy": "all"})).unwrap_err();
    assert!(ha.contains("mirroring"), "{ha}");
}

#[test]
fn a_set_member_overrides_its_upstreams_keys() {
    let up = Upstream::parse("up", &json!({"uri": "amqp://h", "max-hops": 1})).unwrap();
    let set =
        parse_set(&json!([{"upstream": "up", "max-hops": 3}, {"upstream": "other"}])).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(with_overrides(&up, &set[0].overrides).unwrap().max_hops, 3);
    assert_eq!(with_overrides(&up, &set[1].overrides).unwrap().max_hops, 1);
    assert!(parse_set(&json!([{"max-hops": 3}])).is_err());
    assert!(parse_set(&json!([{"upstream": "up", "uri": "amqp://elsewhere"}])).is_err());
}
