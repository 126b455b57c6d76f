//! Checking the topology sections of a definitions file (exchanges, queues, bindings) as `rabbit_definitions`
//! declares them: an existing queue or exchange is kept as it is, `amq.*` names and the default exchange are
//! skipped, a binding whose source or destination is missing fails the import.
//!
//! Transient (non-durable, or exclusive) queues and exchanges are left out with a note: Warren's definitions store
//! holds durable objects only, and an offline import is followed by a start (RabbitMQ would declare them, and lose
//! them at its next restart). Bindings to them are left out with them.

use serde_json::{Map, Value};

use super::arguments::table_from_json;
use super::validate::Checker;
use crate::exchange::consistent_hash::binding_weight;
use crate::exchange::dedup::DedupSettings;
use crate::exchange::delayed_type::delayed_type;
use crate::exchange::{validate_headers_arguments, ExchangeKind};
use crate::meta::{BindingDef, ExchangeDef, QueueDef};
use crate::queue::arguments::QueueArguments;
use crate::vhost::PREDECLARED;
use warren_protocol::FieldTable;

/// The `arguments` of `entry` as a field table.
fn arguments(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) -> Option<FieldTable> {
    let map = c.object(path, e, "arguments")?;
    match table_from_json(&map) {
        Ok(table) => Some(table),
        Err((key, why)) => {
            c.error(&format!("{path}.arguments.{key}"), why);
            None
        }
    }
}

/// `exchanges[i]`: `rabbit_definitions:add_exchange/2`.
pub(super) fn exchange(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let (Some(vhost), Some(name)) = (c.vhost_of(path, e), c.string(path, e, "name")) else {
        return;
    };
    if name.is_empty() {
        return c.note(path, "the default exchange is not imported");
    }
    if name.starts_with("amq.") {
        return c.note(
            path,
            format!("exchange '{name}' skipped: names starting with 'amq.' are reserved"),
        );
    }
    let Some(kind) = c.string(path, e, "type") else {
        return;
    };
    let Some(parsed) = ExchangeKind::parse(&kind) else {
        return c.error(
            &format!("{path}.type"),
            format!(
                "unknown exchange type '{kind}'; Warren has direct, fanout, topic, headers, x-consistent-hash, \
                 x-delayed-message, x-message-deduplication and x-federation-upstream"
            ),
        );
    };
    let (Some(durable), Some(auto_delete), Some(internal)) = (
        c.flag(path, e, "durable", true),
        c.flag(path, e, "auto_delete", false),
        c.flag(path, e, "internal", false),
    ) else {
        return;
    };
    let Some(arguments) = arguments(c, path, e) else {
        return;
    };
    if parsed == ExchangeKind::Delayed {
        if let Err(error) = delayed_type(&arguments) {
            return c.error(
                &format!("{path}.arguments.x-delayed-type"),
                error.to_string(),
            );
        }
    }
    if parsed == ExchangeKind::Dedup {
        if let Err(error) = DedupSettings::parse(&arguments) {
            return c.error(&format!("{path}.arguments"), error.to_string());
        }
    }
    let key = (vhost.clone(), name.clone());
    if c.exchanges.contains_key(&key) {
        return c.note(
            path,
            format!("exchange '{name}' in vhost '{vhost}' exists; kept as it is"),
        );
    }
    if !durable {
        c.transient_exchanges.insert(key);
        return c.note(
            path,
            format!("transient exchange '{name}' in vhost '{vhost}' not imported"),
        );
    }
    c.exchanges.insert(key, kind.clone());
    c.plan.batch.exchanges.push(ExchangeDef {
        vhost,
        name,
        kind,
        auto_delete,
        internal,
        arguments,
    });
}

/// `queues[i]`: `rabbit_definitions:add_queue/2`; the arguments are checked as a queue.declare's.
pub(super) fn queue(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let (Some(vhost), Some(name)) = (c.vhost_of(path, e), c.string(path, e, "name")) else {
        return;
    };
    if name.is_empty() || name.len() > 255 {
        return c.error(&format!("{path}.name"), "a queue name has 1 to 255 bytes");
    }
    if name.starts_with("amq.") {
        return c.note(
            path,
            format!("queue '{name}' skipped: names starting with 'amq.' are reserved"),
        );
    }
    let (Some(durable), Some(auto_delete), Some(exclusive)) = (
        c.flag(path, e, "durable", true),
        c.flag(path, e, "auto_delete", false),
        c.flag(path, e, "exclusive", false),
    ) else {
        return;
    };
    let Some(arguments) = arguments(c, path, e) else {
        return;
    };
    if let Err(refusal) =
        QueueArguments::parse(&arguments, &name, &vhost, durable, exclusive, auto_delete)
    {
        return c.error(&format!("{path}.arguments"), refusal.text);
    }
    let key = (vhost.clone(), name.clone());
    if c.queues.contains(&key) {
        return c.note(
            path,
            format!("queue '{name}' in vhost '{vhost}' exists; kept as it is"),
        );
    }
    if !durable || exclusive {
        c.transient_queues.insert(key);
        return c.note(
            path,
            format!("transient queue '{name}' in vhost '{vhost}' not imported"),
        );
    }
    c.queues.insert(key);
    c.plan.batch.queues.push(QueueDef {
        vhost,
        name,
        id: 0,
        auto_delete,
        arguments,
    });
}

/// `bindings[i]`: `rabbit_binding:add/2`, which fails when the source or the destination does not exist.
pub(super) fn binding(c: &mut Checker<'_>, path: &str, e: &Map<String, Value>) {
    let Some(vhost) = c.vhost_of(path, e) else {
        return;
    };
    let (Some(source), Some(destination), Some(kind), Some(routing_key)) = (
        c.string(path, e, "source"),
        c.string(path, e, "destination"),
        c.string(path, e, "destination_type"),
        c.string(path, e, "routing_key"),
    ) else {
        return;
    };
    let Some(arguments) = arguments(c, path, e) else {
        return;
    };
    let destination_is_queue = match kind.as_str() {
        "queue" => true,
        "exchange" => false,
        other => {
            return c.error(
                &format!("{path}.destination_type"),
                format!("'{other}' is neither 'queue' nor 'exchange'"),
            )
        }
    };
    if source.is_empty() {
        return c.error(
            &format!("{path}.source"),
            "operation not permitted on the default exchange",
        );
    }
    let transient = c
        .transient_exchanges
        .contains(&(vhost.clone(), source.clone()))
        || if destination_is_queue {
            c.transient_queues
                .contains(&(vhost.clone(), destination.clone()))
        } else {
            c.transient_exchanges
                .contains(&(vhost.clone(), destination.clone()))
        };
    if transient {
        return c.note(
            path,
            format!("binding of '{source}' to '{destination}' not imported: one end is transient"),
        );
    }
    let Some(source_kind) = exchange_kind(c, &vhost, &source) else {
        return c.error(
            &format!("{path}.source"),
            format!("no exchange '{source}' in vhost '{vhost}'"),
        );
    };
    let exists = if destination_is_queue {
        c.queues.contains(&(vhost.clone(), destination.clone()))
    } else {
        exchange_kind(c, &vhost, &destination).is_some()
    };
    if !exists {
        return c.error(
            &format!("{path}.destination"),
            format!("no {kind} '{destination}' in vhost '{vhost}'"),
        );
    }
    // As a bind checks them (`channel::exchange_queue_methods`).
    let refused = match source_kind {
        ExchangeKind::Headers => validate_headers_arguments(&arguments)
            .err()
            .map(|e| ("arguments", e.to_string())),
        ExchangeKind::ConsistentHash => binding_weight(&routing_key)
            .err()
            .map(|e| ("routing_key", e)),
        _ => None,
    };
    if let Some((key, message)) = refused {
        return c.error(&format!("{path}.{key}"), message);
    }
    c.plan.batch.bindings.push(BindingDef {
        vhost,
        source,
        destination,
        destination_is_queue,
        routing_key,
        arguments,
    });
}

/// The type of exchange `name` of `vhost`: stored, accepted from the file, or predeclared.
fn exchange_kind(c: &Checker<'_>, vhost: &str, name: &str) -> Option<ExchangeKind> {
    if let Some(kind) = c.exchanges.get(&(vhost.to_owned(), name.to_owned())) {
        return ExchangeKind::parse(kind);
    }
    PREDECLARED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, _)| *kind)
}
