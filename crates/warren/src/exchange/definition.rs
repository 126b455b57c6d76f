//! An exchange as a vhost holds it: its declared properties and an atomically swapped snapshot of its bindings,
//! so a publish reads the bindings without taking a lock a declare might hold.

use super::stats::ExchangeStats;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::consistent_hash::HashOn;
use super::delayed_type::delayed_type;
use super::{BindingTable, ExchangeKind};
use warren_protocol::{AMQPValue, FieldTable};

/// A declared exchange.
pub(crate) struct Exchange {
    /// Its name in the vhost.
    pub(crate) name: Arc<str>,
    /// Its declared type.
    pub(crate) kind: ExchangeKind,
    /// How its bindings route: `kind`, except for an `x-delayed-message` exchange, whose `x-delayed-type` it is.
    pub(crate) routing_kind: ExchangeKind,
    /// Survives a restart (stored in the definitions).
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Clients cannot publish to it; only exchange-to-exchange bindings reach it.
    pub(crate) internal: bool,
    /// The declared arguments, compared on redeclare and stored.
    pub(crate) arguments: FieldTable,
    /// The `alternate-exchange` argument: where messages this exchange cannot route go.
    alternate: Option<Arc<str>>,
    /// The `alternate-exchange` of the policy that applies to it, if any; the argument wins over it.
    pub(crate) policy_alternate: ArcSwapOption<Arc<str>>,
    /// The routing table, swapped whole on change so a publish reads it without a lock.
    pub(crate) bindings: ArcSwap<BindingTable>,
    /// What an `x-consistent-hash` exchange hashes on (the routing key for every other kind).
    pub(crate) hash_on: HashOn,
    /// Its `message_stats`, added by connections once per read.
    pub(crate) stats: ExchangeStats,
}

impl Exchange {
    /// Where messages this exchange cannot route go: its `alternate-exchange` argument, else its policy's
    /// (`rabbit_policy:get_arg/3`: the argument wins).
    pub(crate) fn alternate(&self) -> Option<Arc<str>> {
        match &self.alternate {
            Some(name) => Some(name.clone()),
            None => self
                .policy_alternate
                .load_full()
                .map(|name| (*name).clone()),
        }
    }

    /// An exchange with no bindings; `alternate-exchange` (and a consistent-hash exchange's `hash-header` or
    /// `hash-property`, a delayed exchange's `x-delayed-type`, checked by the declare) are read from `arguments`
    /// once here.
    pub(crate) fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Exchange {
        let alternate = match arguments.inner().get("alternate-exchange") {
            Some(AMQPValue::LongString(s)) => {
                Some(Arc::from(String::from_utf8_lossy(s.as_bytes()).as_ref()))
            }
            Some(AMQPValue::ShortString(s)) => Some(Arc::from(s.as_str())),
            _ => None,
        };
        let routing_kind = match kind {
            // Checked by the declare; a stored one that no longer parses routes as direct.
            ExchangeKind::Delayed => delayed_type(&arguments).unwrap_or(ExchangeKind::Direct),
            // The plugin's exchange ignores routing keys: every binding gets the messages it lets through.
            ExchangeKind::Dedup | ExchangeKind::FederationUpstream => ExchangeKind::Fanout,
            other => other,
        };
        let hash_on = match routing_kind {
            ExchangeKind::ConsistentHash => {
                HashOn::from_arguments(&arguments).unwrap_or(HashOn::RoutingKey)
            }
            _ => HashOn::RoutingKey,
        };
        Exchange {
            hash_on,
            name: Arc::from(name),
            kind,
            routing_kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            policy_alternate: ArcSwapOption::empty(),
            bindings: ArcSwap::from_pointee(BindingTable::empty(routing_kind)),
            stats: ExchangeStats::default(),
        }
    }
}
