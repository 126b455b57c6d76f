//! An exchange as a vhost holds it: its declared properties and an atomically swapped snapshot of its bindings,
//! so a publish reads the bindings without taking a lock a declare might hold.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{BindingTable, ExchangeKind};
use warren_protocol::{AMQPValue, FieldTable};

pub struct Exchange {
    pub name: Arc<str>,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The `alternate-exchange` argument: where messages this exchange cannot route go.
    pub alternate: Option<Arc<str>>,
    pub bindings: ArcSwap<BindingTable>,
}

impl Exchange {
    pub fn new(
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
        Exchange {
            name: Arc::from(name),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            bindings: ArcSwap::from_pointee(BindingTable::empty(kind)),
        }
    }
}
