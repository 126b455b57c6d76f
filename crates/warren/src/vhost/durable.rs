//! Writing durable topology to the definitions store and restoring it at start. Only durable objects are written,
//! and a binding only when both its ends are durable (RabbitMQ's rule), so transient topology is gone after a
//! restart. Exclusive queues are never written.
//!
//! A write commits a redb transaction (an fsync), under the vhost's std topology lock. Channels therefore run a
//! topology change that may write on tokio's blocking pool ([`Vhost::change_topology`]), judged beforehand by the
//! `may_persist_*` checks, which err on the side of the blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use super::Vhost;
use crate::exchange::Exchange;
use crate::exchange::{Binding, BindingTable, Destination, ExchangeKind};
use crate::meta::{BindingDef, DefinitionStore, Definitions, ExchangeDef, MetaError, QueueDef};
use crate::queue::arguments::QueueArguments;
use crate::queue::{spawn_queue, NodeMemory, QueueMemory, QueueSpec, QueueStorage};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_store::{DedupEntry, IndexEntry, SpillStore, Store};

/// The node's stores, shared by every vhost: the durable ones, and the spill store beside them.
pub(crate) struct DurableStores {
    /// Durable exchanges, queues and bindings (redb).
    pub(crate) definitions: DefinitionStore,
    /// The message store: the WAL and segments persistent messages go to.
    pub(crate) store: Store,
    /// Where every queue puts transient messages past its memory budget; emptied at each start (nothing in it is
    /// durable, but it lives under the data directory with the rest).
    pub(crate) spill: SpillStore,
    /// Body bytes each queue keeps in memory; see [`QueueMemory`].
    pub(crate) queue_memory_budget: u64,
    /// Body bytes all queues together keep in memory.
    pub(crate) node_memory: Arc<NodeMemory>,
}

fn internal(error: MetaError) -> AmqpError {
    tracing::error!(%error, "cannot write durable definitions");
    AmqpError::new(
        ReplyCode::InternalError,
        format!("cannot store definitions: {error}"),
    )
}

impl Vhost {
    /// Runs `change`, which may commit to the definitions store (an fsync), on the blocking pool and returns its
    /// result; inline when this vhost stores nothing. Callers decide beforehand whether a change can write at all
    /// (`may_persist_*`) and run the ones that cannot inline themselves, so transient topology pays no hand-off.
    pub(crate) async fn change_topology<T, F>(self: &Arc<Self>, change: F) -> Result<T, AmqpError>
    where
        T: Send + 'static,
        F: FnOnce(&Vhost) -> Result<T, AmqpError> + Send + 'static,
    {
        if self.stores.is_none() {
            return change(self);
        }
        let vhost = self.clone();
        tokio::task::spawn_blocking(move || change(&vhost))
            .await
            .map_err(|error| {
                AmqpError::new(
                    ReplyCode::InternalError,
                    format!("topology change failed: {error}"),
                )
            })?
    }

    /// Whether a (non-passive) declare may write: only a new durable, non-exclusive object is stored.
    pub(crate) fn may_persist_declare(&self, durable: bool, exclusive: bool) -> bool {
        self.stores.is_some() && durable && !exclusive
    }

    /// Whether binding `destination` to exchange `source` may write: only when both ends are durable.
    pub(crate) fn may_persist_binding(&self, source: &str, destination: &Destination) -> bool {
        self.stores.is_some()
            && self.exchange(source).is_some_and(|x| x.durable)
            && self.destination_durable(destination)
    }

    /// Whether a removal (delete, unbind) may write. `target_durable`: the removed object itself is stored. Any
    /// removal may also auto-delete a durable auto-delete exchange further along, which is stored too.
    pub(crate) fn may_persist_removal(&self, target_durable: bool) -> bool {
        self.stores.is_some()
            && (target_durable || self.exchanges.iter().any(|x| x.durable && x.auto_delete))
    }

    /// Stores a durable exchange; a delayed one gets a message-store id for its delayed messages, a deduplicating
    /// one keeping its keys on disk one for its keys, returned.
    pub(super) fn persist_exchange(&self, x: &Exchange) -> Result<Option<u64>, AmqpError> {
        let Some(p) = &self.stores else {
            return Ok(None);
        };
        if !x.durable {
            return Ok(None);
        }
        let def = ExchangeDef {
            vhost: self.name.to_string(),
            name: x.name.to_string(),
            kind: x.kind.as_str().to_owned(),
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: x.arguments.clone(),
        };
        match x.kind {
            ExchangeKind::Delayed => p.definitions.put_delayed_exchange(&def).map(Some),
            // Its keys are stored under an id of its own, as a delayed exchange's messages are.
            ExchangeKind::Dedup if Self::stores_keys(x) => {
                p.definitions.put_delayed_exchange(&def).map(Some)
            }
            _ => p.definitions.put_exchange(&def).map(|()| None),
        }
        .map_err(internal)
    }

    pub(super) fn unpersist_exchange(&self, x: &Exchange) {
        if let (Some(p), true) = (&self.stores, x.durable) {
            if let Err(error) = p.definitions.remove_exchange(&self.name, &x.name) {
                tracing::error!(%error, "cannot remove exchange '{}' from the definitions", x.name);
            }
        }
    }

    /// A store id for a new durable, non-exclusive queue, recorded with its definition.
    pub(super) fn persist_queue(
        &self,
        spec: &mut QueueSpec,
    ) -> Result<Option<QueueStorage>, AmqpError> {
        let Some(p) = &self.stores else {
            return Ok(None);
        };
        if !spec.durable || spec.exclusive_owner.is_some() {
            return Ok(None);
        }
        let id = p.definitions.next_queue_id().map_err(internal)?;
        p.definitions
            .put_queue(&QueueDef {
                vhost: self.name.to_string(),
                name: spec.name.to_string(),
                id,
                auto_delete: spec.auto_delete,
                arguments: spec.arguments.clone(),
            })
            .map_err(internal)?;
        spec.store_id = Some(id);
        Ok(Some(QueueStorage {
            store: p.store.clone(),
            queue_id: id,
        }))
    }

    /// The memory budget of a new queue, durable or not, and the spill store past it; unbounded without stores.
    pub(super) fn queue_memory(&self) -> QueueMemory {
        match &self.stores {
            Some(p) => QueueMemory::new(
                p.queue_memory_budget,
                Some(p.node_memory.clone()),
                Some(p.spill.clone()),
            ),
            None => QueueMemory::unbounded(),
        }
    }

    /// The queue is gone: its definition and its stored messages go too.
    pub(super) fn unpersist_queue(&self, spec: &QueueSpec) {
        let (Some(p), Some(id)) = (&self.stores, spec.store_id) else {
            return;
        };
        if let Err(error) = p.definitions.remove_queue(&self.name, &spec.name) {
            tracing::error!(%error, "cannot remove queue '{}' from the definitions", spec.name);
        }
        p.store.drop_queue(id);
    }

    /// Whether a binding's destination is stored (a durable exchange, or a queue with a store id).
    pub(super) fn destination_durable(&self, destination: &Destination) -> bool {
        match destination {
            Destination::Queue(q) => self.queue(q).is_some_and(|q| q.spec.store_id.is_some()),
            Destination::Exchange(x) => self.exchange(x).is_some_and(|x| x.durable),
        }
    }

    fn binding_def(&self, source: &Exchange, binding: &Binding) -> BindingDef {
        let (destination, destination_is_queue) = match &binding.destination {
            Destination::Queue(q) => (q.to_string(), true),
            Destination::Exchange(x) => (x.to_string(), false),
        };
        BindingDef {
            vhost: self.name.to_string(),
            source: source.name.to_string(),
            destination,
            destination_is_queue,
            routing_key: binding.routing_key.to_string(),
            arguments: binding.arguments.clone(),
        }
    }

    pub(super) fn persist_binding(
        &self,
        source: &Exchange,
        binding: &Binding,
    ) -> Result<(), AmqpError> {
        let Some(p) = &self.stores else {
            return Ok(());
        };
        if !source.durable || !self.destination_durable(&binding.destination) {
            return Ok(());
        }
        p.definitions
            .put_binding(&self.binding_def(source, binding))
            .map_err(internal)
    }

    /// Removes a stored binding; `destination_durable` says whether it could have been stored.
    pub(super) fn unpersist_binding(
        &self,
        source: &Exchange,
        binding: &Binding,
        destination_durable: bool,
    ) {
        let Some(p) = &self.stores else {
            return;
        };
        if !source.durable || !destination_durable {
            return;
        }
        if let Err(error) = p
            .definitions
            .remove_binding(&self.binding_def(source, binding))
        {
            tracing::error!(%error, "cannot remove a binding from the definitions");
        }
    }

    /// Rebuilds this vhost's durable exchanges, queues (with their recovered messages) and bindings.
    pub(crate) fn restore(
        self: &Arc<Self>,
        definitions: &Definitions,
        recovered: &mut HashMap<u64, Vec<IndexEntry>>,
        recovered_keys: &mut HashMap<u64, Vec<DedupEntry>>,
    ) {
        let Some(p) = &self.stores else {
            return;
        };
        let mine = |vhost: &str| *vhost == *self.name;
        self.restore_policies(&definitions.policies);
        // Delay stores' timers start last: an overdue message is routed at once, and routed before the queues and
        // bindings are back it would be dropped as unroutable.
        let mut delay_stores = Vec::new();
        for def in definitions.exchanges.iter().filter(|d| mine(&d.vhost)) {
            let Some(kind) = ExchangeKind::parse(&def.kind) else {
                tracing::error!(
                    "stored exchange '{}' has unknown type '{}'; skipped",
                    def.name,
                    def.kind
                );
                continue;
            };
            let x = Exchange::new(
                &def.name,
                kind,
                true,
                def.auto_delete,
                def.internal,
                def.arguments.clone(),
            );
            self.apply_exchange_policy(&x);
            let stateful = kind == ExchangeKind::Delayed
                || (kind == ExchangeKind::Dedup && Self::stores_keys(&x));
            let store_id = match stateful {
                true => p
                    .definitions
                    .delayed_store_id(&self.name, &x.name)
                    .unwrap_or_else(|error| {
                        tracing::error!(%error, "exchange '{}': cannot read its store id; what it stored is not served", x.name);
                        None
                    })
                    // Stored without one (imported from a definitions file): it gets its id now, so what it keeps
                    // is stored like what one declared here keeps.
                    .or_else(|| match p.definitions.put_delayed_exchange(def) {
                        Ok(id) => Some(id),
                        Err(error) => {
                            tracing::error!(%error, "exchange '{}': cannot store its store id; what it keeps stays in memory only", x.name);
                            None
                        }
                    }),
                false => None,
            };
            if kind == ExchangeKind::Delayed {
                let messages = store_id
                    .and_then(|id| recovered.remove(&id))
                    .unwrap_or_default();
                delay_stores.push(self.open_delayed(&x, store_id, messages));
            }
            if kind == ExchangeKind::Dedup {
                let keys = store_id
                    .and_then(|id| recovered_keys.remove(&id))
                    .unwrap_or_default();
                self.start_dedup(&x, store_id, keys);
            }
            self.exchanges.insert(x.name.clone(), Arc::new(x));
        }
        for def in definitions.queues.iter().filter(|d| mine(&d.vhost)) {
            let args = QueueArguments::parse(
                &def.arguments,
                &def.name,
                &self.name,
                true,
                false,
                def.auto_delete,
            )
            .unwrap_or_else(|error| {
                // Stored by an older Warren that did not check them: the queue and its messages matter more.
                tracing::warn!(
                    "stored queue '{}' in vhost '{}' has arguments Warren now refuses ({}); serving it with \
                     default arguments",
                    def.name,
                    self.name,
                    error.text
                );
                QueueArguments::default()
            });
            let spec = QueueSpec {
                name: Arc::from(def.name.as_str()),
                vhost: self.name.clone(),
                durable: true,
                exclusive_owner: None,
                auto_delete: def.auto_delete,
                arguments: def.arguments.clone(),
                args,
                store_id: Some(def.id),
            };
            let storage = QueueStorage {
                store: p.store.clone(),
                queue_id: def.id,
            };
            let messages = recovered.remove(&def.id).unwrap_or_default();
            let settings = self.queue_settings(&spec.name, &spec.args);
            let handle = spawn_queue(
                spec,
                settings,
                self.as_owner(),
                Some(storage),
                self.queue_memory(),
                self.flow_limits,
                messages,
            );
            self.queues.insert(handle.spec.name.clone(), handle);
        }
        let mut tables: HashMap<String, Vec<Binding>> = HashMap::new();
        for def in definitions.bindings.iter().filter(|d| mine(&d.vhost)) {
            let destination = if def.destination_is_queue {
                Destination::Queue(Arc::from(def.destination.as_str()))
            } else {
                Destination::Exchange(Arc::from(def.destination.as_str()))
            };
            tables.entry(def.source.clone()).or_default().push(Binding {
                destination,
                routing_key: Arc::from(def.routing_key.as_str()),
                arguments: def.arguments.clone(),
            });
        }
        for (source, bindings) in tables {
            if let Some(x) = self.exchange(&source) {
                x.bindings
                    .store(Arc::new(BindingTable::new(x.routing_kind, bindings)));
            }
        }
        for delayed in delay_stores {
            delayed.start_timer(self.delayed_owner());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::Broker;
    use crate::config::Config;
    use crate::meta::{DefinitionStore, QueueDef};
    use crate::queue::arguments::QueueArguments;
    use warren_protocol::{AMQPValue, FieldTable};

    #[tokio::test]
    async fn a_stored_queue_whose_arguments_are_now_refused_is_served_with_defaults() {
        let dir = std::env::temp_dir().join(format!("warren-durable-args-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut refused = FieldTable::default();
        refused.insert("x-expires".into(), AMQPValue::LongInt(0));
        let mut accepted = FieldTable::default();
        accepted.insert("x-max-length".into(), AMQPValue::LongInt(10));
        {
            let store = DefinitionStore::open(&dir.join("definitions.redb")).unwrap();
            for (name, arguments) in [("old", &refused), ("fine", &accepted)] {
                let id = store.next_queue_id().unwrap();
                store
                    .put_queue(&QueueDef {
                        vhost: "/".into(),
                        name: name.into(),
                        id,
                        auto_delete: false,
                        arguments: arguments.clone(),
                    })
                    .unwrap();
            }
        }
        let broker = Broker::open(Config {
            data_dir: dir.clone(),
            ..Config::default()
        })
        .unwrap();
        let vhost = broker.vhost("/").unwrap();
        let old = vhost.queue("old").expect("still served");
        assert_eq!(old.spec.args, QueueArguments::default());
        // The stored table stays as it was: redeclares are compared with it, as before.
        assert_eq!(old.spec.arguments, refused);
        let fine = vhost.queue("fine").expect("served");
        assert_eq!(fine.spec.args.max_length, Some(10));
        drop((old, fine, vhost, broker));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
