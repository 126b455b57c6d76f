use serde_json::json;

use super::*;
use crate::queue::arguments::Overflow;

fn input(pattern: &str, apply_to: &str, priority: i64, definition: Value) -> PolicyInput {
    PolicyInput {
        pattern: pattern.into(),
        apply_to: Some(apply_to.into()),
        priority: Some(json!(priority)),
        definition,
    }
}

fn policy(kind: PolicyKind, name: &str, input: PolicyInput) -> Arc<Policy> {
    Arc::new(Policy::parse(kind, "/", name, &input).unwrap())
}

fn refusal(input: PolicyInput) -> String {
    Policy::parse(PolicyKind::Policy, "/", "p", &input)
        .unwrap_err()
        .to_string()
}

#[test]
fn the_highest_priority_matching_policy_applies() {
    let set = PolicySet::default()
        .with(policy(
            PolicyKind::Policy,
            "low",
            input(".*", "all", 0, json!({"max-length": 1})),
        ))
        .with(policy(
            PolicyKind::Policy,
            "high",
            input("^work", "queues", 5, json!({"max-length": 2})),
        ))
        .with(policy(
            PolicyKind::Policy,
            "other",
            input("^other", "queues", 9, json!({"max-length": 3})),
        ));
    let matched = set.for_queue("work.1", QueueType::Classic);
    assert_eq!(matched.policy.unwrap().name.as_ref(), "high");
    let matched = set.for_queue("x.work", QueueType::Classic);
    assert_eq!(matched.policy.unwrap().name.as_ref(), "low");
    // Set again with a lower priority: replaced, not added.
    let set = set.with(policy(
        PolicyKind::Policy,
        "high",
        input("^work", "queues", -1, json!({"max-length": 2})),
    ));
    assert_eq!(set.list(PolicyKind::Policy).len(), 3);
    assert_eq!(
        set.for_queue("work.1", QueueType::Classic)
            .policy
            .unwrap()
            .name
            .as_ref(),
        "low"
    );
    let set = set.without(PolicyKind::Policy, "low");
    assert_eq!(
        set.for_queue("work.1", QueueType::Classic)
            .policy
            .unwrap()
            .name
            .as_ref(),
        "high"
    );
}

#[test]
fn apply_to_picks_queues_by_type_or_exchanges() {
    let set = PolicySet::default()
        .with(policy(
            PolicyKind::Policy,
            "q",
            input(".", "quorum_queues", 0, json!({"max-length": 1})),
        ))
        .with(policy(
            PolicyKind::Policy,
            "x",
            input(".", "exchanges", 0, json!({"alternate-exchange": "ae"})),
        ));
    assert!(set.for_queue("a", QueueType::Classic).policy.is_none());
    assert_eq!(
        set.for_queue("a", QueueType::Quorum)
            .policy
            .unwrap()
            .name
            .as_ref(),
        "q"
    );
    let x = set.for_exchange("a");
    assert_eq!(x.alternate_exchange().as_deref(), Some("ae"));
}

#[test]
fn patterns_are_searched_with_pcre_lookarounds() {
    let set = PolicySet::default().with(policy(
        PolicyKind::Policy,
        "not-amq",
        input("^(?!amq\\.).*", "all", 0, json!({"message-ttl": 5})),
    ));
    assert!(set
        .for_queue("amq.gen-1", QueueType::Classic)
        .policy
        .is_none());
    assert!(set.for_queue("orders", QueueType::Classic).policy.is_some());
    let set = PolicySet::default().with(policy(
        PolicyKind::Policy,
        "mid",
        input("der", "all", 0, json!({"message-ttl": 5})),
    ));
    assert!(set.for_queue("orders", QueueType::Classic).policy.is_some());
}

#[test]
fn operator_policy_limits_win_when_lower_and_its_overflow_always() {
    let set = PolicySet::default()
        .with(policy(
            PolicyKind::Policy,
            "p",
            input(".", "all", 0, json!({"max-length": 100, "message-ttl": 10, "overflow": "reject-publish", "dead-letter-exchange": "dlx"})),
        ))
        .with(policy(
            PolicyKind::Operator,
            "op",
            input(".", "queues", 0, json!({"max-length": 50, "message-ttl": 1000, "overflow": "drop-head"})),
        ));
    let overrides = set.for_queue("q", QueueType::Classic).queue_overrides();
    assert_eq!(overrides.max_length, Some(50));
    assert_eq!(overrides.message_ttl, Some(10));
    assert_eq!(overrides.overflow, Some(Overflow::DropHead));
    assert_eq!(overrides.dead_letter_exchange.as_deref(), Some("dlx"));
}

#[test]
fn a_policy_is_checked_as_rabbitmq_checks_it() {
    assert_eq!(
        refusal(input(".", "everything", 0, json!({"max-length": 1}))),
        "apply-to 'everything' unrecognised; should be one of: 'queues', 'classic_queues',  'quorum_queues', 'streams', 'exchanges', or 'all'"
    );
    assert!(refusal(input("(", "all", 0, json!({"max-length": 1})))
        .starts_with("pattern should be regular expression but is invalid"));
    let mut bad_priority = input(".", "all", 0, json!({"max-length": 1}));
    bad_priority.priority = Some(json!("high"));
    assert_eq!(
        refusal(bad_priority),
        "priority should be a number, actually was <<\"high\">>"
    );
    assert_eq!(
        refusal(input(".", "all", 0, json!({"message-ttl": "1s"}))),
        "<<\"1s\">> is not a valid message TTL"
    );
}

#[test]
fn a_policy_lists_as_it_was_set() {
    let p = policy(
        PolicyKind::Policy,
        "ttl",
        input("^q$", "queues", 3, json!({"message-ttl": 5})),
    );
    let info = serde_json::to_value(p.info()).unwrap();
    assert_eq!(
        info,
        json!({"vhost": "/", "name": "ttl", "pattern": "^q$", "apply-to": "queues", "definition": {"message-ttl": 5}, "priority": 3})
    );
}
