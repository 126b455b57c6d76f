//! Writing the store's definitions as RabbitMQ's definitions JSON (`rabbitmqctl export_definitions`), in a form
//! `rabbitmqctl import_definitions` of RabbitMQ 3.10 and later reads: operator policies as `operator_policy`
//! parameters, vhost limits as `vhost-limits` parameters, predeclared `amq.*` exchanges left out. Unlike RabbitMQ,
//! internal exchanges are written (RabbitMQ leaves them out but keeps the bindings that name them, so its file
//! cannot be imported back).

use serde_json::{Map, Value};

use super::arguments::table_to_json;
use super::model::{
    BindingEntry, DefinitionsFile, ExchangeEntry, ParameterEntry, PolicyEntry, QueueEntry,
    VhostEntry, VhostMetadata, EMULATED_RABBITMQ_VERSION,
};
use crate::meta::Definitions;
use warren_protocol::types::AMQPValue;

/// The definitions file for everything in `stored`, sorted by vhost and name so that exports diff well.
pub(crate) fn export(stored: &Definitions) -> DefinitionsFile {
    let mut users = stored.users.clone();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let mut permissions = stored.permissions.clone();
    permissions.sort_by(|a, b| (&a.vhost, &a.user).cmp(&(&b.vhost, &b.user)));
    let mut topic_permissions = stored.topic_permissions.clone();
    topic_permissions
        .sort_by(|a, b| (&a.vhost, &a.user, &a.exchange).cmp(&(&b.vhost, &b.user, &b.exchange)));
    let mut vhosts: Vec<VhostEntry> = stored
        .vhosts
        .iter()
        .map(|v| VhostEntry {
            name: v.name.clone(),
            limits: v.limits.clone(),
            metadata: VhostMetadata {
                description: String::new(),
                tags: Vec::new(),
                default_queue_type: v.default_queue_type.clone(),
            },
        })
        .collect();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut parameters: Vec<ParameterEntry> = vhosts
        .iter()
        .filter(|v| !v.limits.is_empty())
        .map(|v| ParameterEntry {
            vhost: v.name.clone(),
            component: "vhost-limits".to_owned(),
            name: "limits".to_owned(),
            value: Value::Object(v.limits.clone()),
        })
        .collect();
    let mut policies = Vec::new();
    for p in &stored.policies {
        if p.operator {
            let mut value = Map::new();
            value.insert("pattern".into(), Value::String(p.pattern.clone()));
            value.insert("definition".into(), p.definition.clone());
            value.insert("priority".into(), Value::from(p.priority));
            value.insert("apply-to".into(), Value::String(p.apply_to.clone()));
            parameters.push(ParameterEntry {
                vhost: p.vhost.clone(),
                component: "operator_policy".to_owned(),
                name: p.name.clone(),
                value: Value::Object(value),
            });
        } else {
            policies.push(PolicyEntry {
                vhost: p.vhost.clone(),
                name: p.name.clone(),
                pattern: p.pattern.clone(),
                apply_to: p.apply_to.clone(),
                definition: p.definition.clone(),
                priority: p.priority,
            });
        }
    }
    parameters.extend(stored.parameters.iter().map(|p| ParameterEntry {
        vhost: p.vhost.clone(),
        component: p.component.clone(),
        name: p.name.clone(),
        value: p.value.clone(),
    }));
    parameters
        .sort_by(|a, b| (&a.vhost, &a.component, &a.name).cmp(&(&b.vhost, &b.component, &b.name)));
    policies.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let mut queues: Vec<QueueEntry> = stored
        .queues
        .iter()
        .map(|q| QueueEntry {
            name: q.name.clone(),
            vhost: q.vhost.clone(),
            durable: true,
            auto_delete: q.auto_delete,
            arguments: table_to_json(&q.arguments),
            kind: queue_type(q.arguments.inner().get("x-queue-type")),
        })
        .collect();
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let mut exchanges: Vec<ExchangeEntry> = stored
        .exchanges
        .iter()
        .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."))
        .map(|x| ExchangeEntry {
            name: x.name.clone(),
            vhost: x.vhost.clone(),
            kind: x.kind.clone(),
            durable: true,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: table_to_json(&x.arguments),
        })
        .collect();
    exchanges.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let mut bindings: Vec<BindingEntry> = stored
        .bindings
        .iter()
        .map(|b| BindingEntry {
            source: b.source.clone(),
            vhost: b.vhost.clone(),
            destination: b.destination.clone(),
            destination_type: if b.destination_is_queue {
                "queue"
            } else {
                "exchange"
            }
            .to_owned(),
            routing_key: b.routing_key.clone(),
            arguments: table_to_json(&b.arguments),
        })
        .collect();
    bindings.sort_by(|a, b| {
        (&a.vhost, &a.source, &a.destination, &a.routing_key).cmp(&(
            &b.vhost,
            &b.source,
            &b.destination,
            &b.routing_key,
        ))
    });
    DefinitionsFile {
        rabbit_version: EMULATED_RABBITMQ_VERSION.to_owned(),
        rabbitmq_version: EMULATED_RABBITMQ_VERSION.to_owned(),
        product_name: "Warren".to_owned(),
        product_version: env!("CARGO_PKG_VERSION").to_owned(),
        users,
        vhosts,
        permissions,
        topic_permissions,
        parameters,
        // Warren's cluster name is a setting of its config file, not a runtime parameter: nothing to write.
        global_parameters: Vec::new(),
        policies,
        queues,
        exchanges,
        bindings,
    }
}

/// The `type` RabbitMQ writes for a queue with this `x-queue-type`.
fn queue_type(declared: Option<&AMQPValue>) -> String {
    match declared {
        Some(AMQPValue::LongString(s)) if s.as_bytes() == b"quorum" => "quorum".to_owned(),
        Some(AMQPValue::ShortString(s)) if s.as_str() == "quorum" => "quorum".to_owned(),
        _ => "classic".to_owned(),
    }
}
