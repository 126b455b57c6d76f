//! An exchange as a vhost holds it: its declared properties and an atomically swapped snapshot of its bindings,
//! so a publish reads the bindings without taking a lock a declare might hold.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{BindingTable, ExchangeKind};
use warren_protocol::{AMQPValue, FieldTable};

pub(crate) struct Exchange {
    pub(crate) name: Arc<str>,
    pub(crate) kind: ExchangeKind,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: FieldTable,
    /// The `alternate-exchange` argument: where messages this exchange cannot route go.
    pub(crate) alternate: Option<Arc<str>>,
    pub(crate) bindings: ArcSwap<BindingTable>,
}

impl Exchange {
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
