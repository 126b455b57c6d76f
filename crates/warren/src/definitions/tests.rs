//! Checking definitions files: what is accepted, what is skipped as RabbitMQ skips it, and every refusal with its
//! JSON path.

use serde_json::{json, Value};

use super::export::export;
use super::validate::{check, EntryError, ImportPlan};
use crate::meta::{Definitions, ImportBatch, QueueDef, VhostDef};
use warren_protocol::types::AMQPValue;
use warren_protocol::FieldTable;

/// The RabbitMQ 3.10.8 export committed as the integration tests' fixture.
const RABBITMQ_3_10: &str = include_str!("../../tests/fixtures/rabbitmq-3.10-definitions.json");

fn plan(file: Value) -> ImportPlan {
    check(&file, &Definitions::default()).expect("accepted")
}

fn errors(file: Value) -> Vec<String> {
    check(&file, &Definitions::default())
        .map(|_| ())
        .expect_err("refused")
        .iter()
        .map(EntryError::to_string)
        .collect()
}

fn app() -> Value {
    json!([{"name": "app"}])
}

#[test]
fn the_rabbitmq_3_10_export_is_accepted_whole() {
    let file: Value = serde_json::from_str(RABBITMQ_3_10).unwrap();
    let plan = plan(file);
    let b = &plan.batch;
    assert_eq!(b.users.len(), 3);
    assert_eq!(b.queues.len(), 7);
    assert_eq!(b.bindings.len(), 6);
    assert_eq!(b.policies.iter().filter(|p| p.operator).count(), 1);
    let app = b.vhosts.iter().find(|v| v.name == "app").unwrap();
    assert_eq!(
        app.limits,
        json!({"max-connections": 100, "max-queues": 50})
            .as_object()
            .cloned()
            .unwrap()
    );
    let bob = b.users.iter().find(|u| u.name == "bob").unwrap();
    assert_eq!(bob.tags, vec!["monitoring", "custom-tag"]);
    assert_eq!(bob.limits["max-channels"], json!(20));
    let work = b.queues.iter().find(|q| q.name == "work").unwrap();
    assert_eq!(
        work.arguments.inner().get("x-max-length"),
        Some(&AMQPValue::LongLongInt(500))
    );
    // The default exchange's bindings are never exported; amq.direct's is imported.
    assert!(b
        .bindings
        .iter()
        .any(|x| x.source == "amq.direct" && x.destination == "default.q"));
}

#[test]
fn refusals_carry_their_json_paths_and_all_are_reported() {
    let errs = errors(json!({
        "vhosts": app(),
        "queues": [
            {"name": "ok", "vhost": "app", "durable": true, "auto_delete": false, "arguments": {}},
            {"name": "s", "vhost": "app", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "stream"}},
            {"name": "m", "vhost": "app", "durable": true, "auto_delete": false, "arguments": {"x-max-length": "ten"}},
            {"name": "n", "vhost": "nowhere", "durable": true, "auto_delete": false, "arguments": {}}
        ],
        "exchanges": [{"name": "d", "vhost": "app", "type": "x-delayed-message", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}],
        "parameters": [{"vhost": "app", "component": "mqtt-retained", "name": "s1", "value": {"uri": "amqp://"}}],
        "global_parameters": [{"name": "something", "value": 1}],
        "bindings": [{"source": "missing", "vhost": "app", "destination": "ok", "destination_type": "queue", "routing_key": "", "arguments": {}}],
        "surprise": []
    }));
    let has = |prefix: &str| errs.iter().any(|e| e.starts_with(prefix));
    for path in [
        "surprise: unknown section",
        "queues[1].arguments: ",
        "queues[2].arguments: ",
        "queues[3].vhost: vhost 'nowhere' does not exist",
        "exchanges[0].arguments.x-delayed-type: ",
        "parameters[0].component: Warren has no 'mqtt-retained' component",
        "global_parameters[0].name: unknown global parameter",
        "bindings[0].source: no exchange 'missing' in vhost 'app'",
    ] {
        assert!(has(path), "{path} missing from {errs:#?}");
    }
    assert!(errs.iter().any(|e| e.contains("stream")), "{errs:#?}");
    assert_eq!(errs.len(), 8, "{errs:#?}");
}

#[test]
fn users_need_valid_hashes_and_limits() {
    let errs = errors(json!({"users": [
        {"name": "a", "password_hash": "short", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
        {"name": "b", "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_bcrypt", "tags": []},
        {"name": "c", "password": "p", "password_hash": "x", "tags": []},
        {"name": "d", "password": "p", "tags": [], "limits": {"max-queues": 1}},
        {"name": "e", "password": "p"}
    ]}));
    assert!(
        errs[0].starts_with("users[0]: password_hash of user 'a' is not a"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("users[1]: unsupported hashing algorithm"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("users[2]: both password and password_hash"),
        "{errs:#?}"
    );
    assert_eq!(
        errs[3],
        r#"users[3].limits: Unrecognised terms [{<<"max-queues">>,1}] in user-limits"#
    );
    assert!(errs[4].starts_with("users[4].tags: missing"), "{errs:#?}");
}

#[test]
fn a_plain_password_is_hashed_and_tags_may_be_a_comma_list() {
    let plan = plan(
        json!({"users": [{"name": "u", "password": "secret", "tags": "administrator, monitoring"}]}),
    );
    let user = &plan.batch.users[0];
    assert_eq!(user.tags, vec!["administrator", "monitoring"]);
    assert!(crate::auth::password::verify_password(
        user.algorithm().unwrap(),
        &user.password_hash,
        "secret"
    ));
}

#[test]
fn old_exports_without_an_algorithm_mean_md5() {
    let file = json!({"rabbit_version": "3.5.7", "users": [{"name": "u", "password_hash": "", "tags": ""}]});
    assert_eq!(
        plan(file).batch.users[0].hashing_algorithm,
        "rabbit_password_hashing_md5"
    );
}

#[test]
fn existing_and_reserved_objects_are_skipped_with_a_note() {
    let mut stored = Definitions::default();
    stored.vhosts.push(VhostDef {
        name: "app".into(),
        ..VhostDef::default()
    });
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    stored.queues.push(QueueDef {
        vhost: "app".into(),
        name: "q".into(),
        id: 7,
        auto_delete: false,
        arguments: args,
    });
    let file = json!({
        "queues": [
            {"name": "q", "vhost": "app", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 5}},
            {"name": "amq.q", "vhost": "app", "durable": true, "auto_delete": false, "arguments": {}},
            {"name": "t", "vhost": "app", "durable": false, "auto_delete": false, "arguments": {}}
        ],
        "exchanges": [{"name": "amq.direct", "vhost": "app", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": "amq.direct", "vhost": "app", "destination": "t", "destination_type": "queue", "routing_key": "k", "arguments": {}}],
        "global_parameters": [{"name": "cluster_name", "value": "rabbit@old"}, {"name": "internal_cluster_id", "value": "x"}]
    });
    let plan = check(&file, &stored).expect("accepted");
    assert!(
        plan.batch.queues.is_empty()
            && plan.batch.exchanges.is_empty()
            && plan.batch.bindings.is_empty()
    );
    assert_eq!(plan.notes.len(), 7, "{:#?}", plan.notes);
    assert!(
        plan.notes[0].starts_with("global_parameters[0]: cluster_name"),
        "{:#?}",
        plan.notes
    );
    assert!(plan
        .notes
        .iter()
        .any(|n| n.starts_with("queues[0]: queue 'q' in vhost 'app' exists")));
}

#[test]
fn headers_bindings_and_vhost_settings_are_checked() {
    let errs = errors(json!({
        "vhosts": [{"name": "app", "metadata": {"default_queue_type": "stream"}}, {"name": "v2", "tracing": true}, {"name": "/"}],
        "exchanges": [{"name": "h", "vhost": "nowhere", "type": "headers", "arguments": {}}],
        "queues": [{"name": "q", "vhost": "/", "arguments": {"x-custom": null}}],
    }));
    assert!(
        errs[0].starts_with("vhosts[0].metadata.default_queue_type: "),
        "{errs:#?}"
    );
    assert!(errs[1].starts_with("vhosts[1].tracing: "), "{errs:#?}");
    assert!(
        errs[2].starts_with("exchanges[0].vhost: vhost 'nowhere' does not exist"),
        "{errs:#?}"
    );
    assert_eq!(
        errs[3], "queues[0].arguments.x-custom: null is not allowed",
        "{errs:#?}"
    );
    let errs = errors(json!({
        "vhosts": app(),
        "exchanges": [{"name": "h", "vhost": "app", "type": "headers"}],
        "queues": [{"name": "q", "vhost": "app"}],
        "bindings": [{"source": "h", "vhost": "app", "destination": "q", "destination_type": "queue", "routing_key": "", "arguments": {"x-match": "most"}}]
    }));
    assert!(errs[0].starts_with("bindings[0].arguments: "), "{errs:#?}");
}

#[test]
fn operator_policies_in_rabbitmq_3_10s_pair_list_form_are_read() {
    let plan = plan(json!({
        "vhosts": app(),
        "parameters": [{"vhost": "app", "component": "operator_policy", "name": "cap",
            "value": {"pattern": ".*", "apply-to": "queues", "priority": 0, "definition": [["max-length", 10]]}}],
        "policies": [{"vhost": "app", "name": "p", "pattern": "^a", "definition": {"message-ttl": 5}}]
    }));
    let cap = plan.batch.policies.iter().find(|p| p.operator).unwrap();
    assert_eq!(cap.definition, json!({"max-length": 10}));
    assert_eq!(
        plan.batch
            .policies
            .iter()
            .find(|p| !p.operator)
            .unwrap()
            .apply_to,
        "all"
    );
    let errs = errors(json!({
        "vhosts": app(),
        "policies": [{"vhost": "app", "name": "p", "pattern": "^a", "definition": {"message-ttl": "soon"}}]
    }));
    assert!(errs[0].starts_with("policies[0]: "), "{errs:#?}");
}

/// What the store would hold after importing `batch` into an empty one.
fn stored(batch: ImportBatch) -> Definitions {
    Definitions {
        exchanges: batch.exchanges,
        queues: batch.queues,
        bindings: batch.bindings,
        policies: batch.policies,
        vhosts: batch.vhosts,
        users: batch.users,
        permissions: batch.permissions,
        topic_permissions: batch.topic_permissions,
        parameters: batch.parameters,
    }
}

#[test]
fn export_writes_every_section_and_reads_back_the_same() {
    let file: Value = serde_json::from_str(RABBITMQ_3_10).unwrap();
    let exported = serde_json::to_value(export(&stored(plan(file).batch))).unwrap();
    for section in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert!(exported[section].is_array(), "{section}");
    }
    assert_eq!(exported["parameters"].as_array().unwrap().len(), 2);
    assert_eq!(exported["rabbit_version"], json!("3.13.7"));
    let again = export(&stored(plan(exported.clone()).batch));
    assert_eq!(serde_json::to_value(again).unwrap(), exported);
}

#[test]
fn an_import_is_stored_whole_with_fresh_queue_ids_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("warren-defs-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = crate::meta::DefinitionStore::open(&dir.join("definitions.redb")).unwrap();
    let first = store.next_queue_id().unwrap();
    let path = std::path::Path::new("fixture.json");
    let report = super::import_text(&store, path, RABBITMQ_3_10, None).unwrap();
    assert!(
        report.to_string().starts_with("imported 3 users, 2 vhosts"),
        "{report}"
    );
    let loaded = store.load().unwrap();
    let mut ids: Vec<u64> = loaded.queues.iter().map(|q| q.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    assert!(ids[0] > first);
    assert!(store.next_queue_id().unwrap() > ids[6]);
    // Importing again changes nothing (and writes nothing): the queues keep their ids.
    let report = super::import_text(&store, path, RABBITMQ_3_10, None).unwrap();
    assert!(report.stored.iter().all(|(_, n)| *n == 0), "{report}");
    assert_eq!(report.unchanged, 3 + 2 + 4 + 1 + 2 + 6, "{report}");
    let again = store.load().unwrap();
    assert_eq!(again.queues, loaded.queues);
    assert_eq!(again.bindings.len(), loaded.bindings.len());
    // A file with one bad entry stores nothing of its good ones.
    let bad = r#"{"vhosts": [{"name": "new"}], "queues": [{"name": "q", "vhost": "new", "arguments": {"x-queue-type": "stream"}}]}"#;
    let err = super::import_text(&store, path, bad, None).unwrap_err();
    assert!(err.to_string().contains("queues[0].arguments: "), "{err}");
    assert!(!store.load().unwrap().vhosts.iter().any(|v| v.name == "new"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file in the shape RabbitMQ 3.13 and 4.x export (`rabbit_definitions:vhost_definition/1` and friends): vhost
/// limits as an object, metadata with a default queue type, queues with their `type`.
#[test]
fn the_rabbitmq_4_shape_is_accepted() {
    let plan = plan(json!({
        "rabbit_version": "4.1.0",
        "rabbitmq_version": "4.1.0",
        "product_name": "RabbitMQ",
        "product_version": "4.1.0",
        "rabbitmq_definition_format": "cluster",
        "original_cluster_name": "rabbit@host",
        "explanation": "Definitions of cluster 'rabbit@host'",
        "users": [{"name": "u", "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ["management"], "limits": {}}],
        "vhosts": [{"name": "/", "description": "Default virtual host", "tags": [], "default_queue_type": "classic",
                    "limits": {"max-queues": 10}, "metadata": {"description": "Default virtual host", "tags": [], "default_queue_type": "classic"}}],
        "permissions": [{"user": "u", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
        "topic_permissions": [], "parameters": [], "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
        "policies": [],
        "queues": [{"name": "qq", "vhost": "/", "durable": true, "auto_delete": false, "type": "quorum", "arguments": {"x-queue-type": "quorum"}}],
        "exchanges": [], "bindings": []
    }));
    assert_eq!(plan.batch.queues.len(), 1);
    // `vhosts[].limits` is informational: RabbitMQ imports limits from `vhost-limits` parameters only.
    assert!(plan.batch.vhosts[0].limits.is_empty());
    assert_eq!(
        plan.batch.vhosts[0].default_queue_type.as_deref(),
        Some("classic")
    );
}

#[test]
fn a_vhosts_default_queue_type_is_imported_and_undefined_is_none() {
    let plan = plan(json!({
        "vhosts": [{"name": "q", "metadata": {"default_queue_type": "quorum"}},
                   {"name": "u", "metadata": {"default_queue_type": "undefined"}}],
    }));
    let types: Vec<Option<&str>> = plan
        .batch
        .vhosts
        .iter()
        .map(|v| v.default_queue_type.as_deref())
        .collect();
    assert_eq!(types, [Some("quorum"), None]);
}

#[test]
fn skip_if_unchanged_skips_only_the_file_imported_last() {
    let dir = std::env::temp_dir().join(format!("warren-defs-skip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = crate::meta::DefinitionStore::open(&dir.join("definitions.redb")).unwrap();
    let file = dir.join("defs.json");
    let config = crate::config::DefinitionsConfig {
        load_definitions: Some(file.clone()),
        skip_if_unchanged: true,
    };
    std::fs::write(&file, r#"{"vhosts": [{"name": "a"}]}"#).unwrap();
    super::load_at_start(&store, &config).unwrap();
    assert_eq!(store.load().unwrap().vhosts.len(), 1);
    // A changed file is imported again.
    std::fs::write(&file, r#"{"vhosts": [{"name": "a"}, {"name": "b"}]}"#).unwrap();
    super::load_at_start(&store, &config).unwrap();
    assert_eq!(store.load().unwrap().vhosts.len(), 2);
    // Unchanged: skipped even though the store changed since (here: vhost 'b' removed at run time).
    store.remove_vhost("b").unwrap();
    super::load_at_start(&store, &config).unwrap();
    assert_eq!(store.load().unwrap().vhosts.len(), 1);
    // Without skip_if_unchanged the same file is imported again.
    let always = crate::config::DefinitionsConfig {
        skip_if_unchanged: false,
        ..config
    };
    super::load_at_start(&store, &always).unwrap();
    assert_eq!(store.load().unwrap().vhosts.len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn consistent_hash_bindings_need_a_weight_as_their_key() {
    let file = |key: &str| {
        json!({
            "vhosts": app(),
            "exchanges": [{"name": "ch", "vhost": "app", "type": "x-consistent-hash"}],
            "queues": [{"name": "q", "vhost": "app"}],
            "bindings": [{"source": "ch", "vhost": "app", "destination": "q", "destination_type": "queue", "routing_key": key, "arguments": {}}]
        })
    };
    assert_eq!(plan(file("10")).batch.bindings.len(), 1);
    let errs = errors(file("heavy"));
    assert!(
        errs[0].starts_with("bindings[0].routing_key: "),
        "{errs:#?}"
    );
}
