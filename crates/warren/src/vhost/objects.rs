//! Declaring, binding and deleting exchanges and queues, with RabbitMQ's checks and reply texts.

use std::sync::Arc;

use rand::Rng;
use tokio::sync::oneshot;

use super::equivalence;
use super::Vhost;
use crate::exchange::Exchange;
use crate::exchange::{Binding, Destination, ExchangeKind};
use crate::queue::arguments::QueueArguments;
use crate::queue::{spawn_queue, QueueCommand, QueueHandle, QueueSpec};
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::FieldTable;

/// exchange.declare's fields.
pub(crate) struct ExchangeDeclare<'a> {
    /// The exchange's name.
    pub(crate) name: &'a str,
    /// Its type, as the client wrote it.
    pub(crate) kind: &'a str,
    /// Only check that it exists.
    pub(crate) passive: bool,
    /// Store it.
    pub(crate) durable: bool,
    /// Delete it when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Refuse client publishes to it.
    pub(crate) internal: bool,
    /// Its arguments.
    pub(crate) arguments: FieldTable,
}

/// queue.declare's fields, with the declaring connection.
pub(crate) struct QueueDeclare<'a> {
    /// Empty: the server names the queue.
    pub(crate) name: &'a str,
    /// Only check that it exists.
    pub(crate) passive: bool,
    /// Store it.
    pub(crate) durable: bool,
    /// Owned by the declaring connection and deleted with it.
    pub(crate) exclusive: bool,
    /// Delete it when its last consumer goes.
    pub(crate) auto_delete: bool,
    /// Its `x-` arguments.
    pub(crate) arguments: FieldTable,
    /// The declaring connection (owner of an exclusive queue; 405 for others).
    pub(crate) connection_id: u64,
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

fn reserved(kind: &str, name: &str) -> AmqpError {
    AmqpError::access_refused(format!(
        "{kind} name '{name}' contains reserved prefix 'amq.*'"
    ))
}

/// A server-generated queue name, as RabbitMQ makes them: `amq.gen-` and 22 URL-safe base64 characters.
fn generated_queue_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("amq.gen-{tail}")
}

impl Vhost {
    /// exchange.declare: creates (and stores, if durable) or checks an exchange; 406 on an inequivalent
    /// redeclare. Holds the topology lock; may commit, see [`Vhost::may_persist_declare`].
    pub(crate) fn declare_exchange(&self, d: &ExchangeDeclare<'_>) -> Result<(), AmqpError> {
        if d.name.is_empty() {
            return Err(default_exchange_refused());
        }
        if d.passive {
            return self
                .exchange(d.name)
                .map(|_| ())
                .ok_or_else(|| AmqpError::not_found("exchange", d.name, &self.name));
        }
        let kind = ExchangeKind::parse(d.kind).ok_or_else(|| {
            AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("unknown exchange type '{}'", d.kind),
            )
        })?;
        let _topology = self.lock_topology();
        let existing = match self.exchange(d.name) {
            Some(x) => x,
            None => {
                if d.name.starts_with("amq.") {
                    return Err(reserved("exchange", d.name));
                }
                let x = Exchange::new(
                    d.name,
                    kind,
                    d.durable,
                    d.auto_delete,
                    d.internal,
                    d.arguments.clone(),
                );
                self.persist_exchange(&x)?;
                self.apply_exchange_policy(&x);
                self.exchanges.insert(x.name.clone(), Arc::new(x));
                return Ok(());
            }
        };
        let (name, vhost) = (d.name, &*self.name);
        if existing.kind != kind {
            return Err(AmqpError::precondition(format!(
                "inequivalent arg 'type' for exchange '{name}' in vhost '{vhost}': received '{}' but current is '{}'",
                kind.as_str(),
                existing.kind.as_str()
            )));
        }
        equivalence::flag(
            "exchange",
            name,
            vhost,
            "durable",
            d.durable,
            existing.durable,
        )?;
        equivalence::flag(
            "exchange",
            name,
            vhost,
            "auto_delete",
            d.auto_delete,
            existing.auto_delete,
        )?;
        equivalence::flag(
            "exchange",
            name,
            vhost,
            "internal",
            d.internal,
            existing.internal,
        )?;
        equivalence::exchange_arguments(name, vhost, &d.arguments, &existing.arguments)
    }

    /// exchange.delete: removes the exchange and its bindings; `amq.` exchanges are refused.
    pub(crate) fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' is not allowed",
                self.name
            )));
        }
        let _topology = self.lock_topology();
        let Some(x) = self.exchange(name) else {
            // Deleting a missing exchange succeeds, as in RabbitMQ.
            return Ok(());
        };
        // "In use" means bound as a source only, as in RabbitMQ: bindings to this exchange from others do not
        // count (they are removed with it).
        if if_unused && !x.bindings.load().is_empty() {
            return Err(AmqpError::precondition(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        self.exchanges.remove(name);
        self.unpersist_exchange(&x);
        for binding in x.bindings.load().bindings() {
            let durable = self.destination_durable(&binding.destination);
            self.unpersist_binding(&x, binding, durable);
        }
        self.remove_bindings_to(&Destination::Exchange(x.name.clone()), x.durable);
        Ok(())
    }

    /// exchange.bind: binds exchange `destination` to `source` with `key`.
    pub(crate) fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        args: FieldTable,
    ) -> Result<(), AmqpError> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let _topology = self.lock_topology();
        let dest = self
            .exchange(destination)
            .ok_or_else(|| AmqpError::not_found("exchange", destination, &self.name))?;
        let src = self
            .exchange(source)
            .ok_or_else(|| AmqpError::not_found("exchange", source, &self.name))?;
        self.add_binding(&src, Destination::Exchange(dest.name.clone()), key, args)
    }

    /// exchange.unbind: removes that binding, if present. As in RabbitMQ (`rabbit_db_binding:delete/2`), a
    /// missing source or destination exchange, or a binding that does not exist, is not an error: cleanup code
    /// unbinds without knowing what is left.
    pub(crate) fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        args: FieldTable,
    ) -> Result<(), AmqpError> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let _topology = self.lock_topology();
        let (Some(dest), Some(src)) = (self.exchange(destination), self.exchange(source)) else {
            return Ok(());
        };
        self.remove_binding(
            &src,
            Destination::Exchange(dest.name.clone()),
            key,
            args,
            || Ok(()),
        )
    }

    /// queue.declare: creates (and spawns, and stores if durable) or checks a queue; returns it.
    pub(crate) fn declare_queue(
        &self,
        d: &QueueDeclare<'_>,
    ) -> Result<Arc<QueueHandle>, AmqpError> {
        if d.passive {
            // A passive declare with no name is answered like RabbitMQ: no such queue.
            return self.queue_for(d.name, d.connection_id);
        }
        let name = if d.name.is_empty() {
            QueueArguments::check_server_named(&d.arguments)?;
            generated_queue_name()
        } else {
            if d.name.starts_with("amq.") {
                return Err(reserved("queue", d.name));
            }
            d.name.to_owned()
        };
        let _topology = self.lock_topology();
        if let Some(existing) = self.queue(&name) {
            if existing.is_exclusive_to_other(d.connection_id)
                || existing.spec.exclusive_owner.is_some() != d.exclusive
            {
                return Err(self.locked(&name));
            }
            let spec = &existing.spec;
            let vhost = &*self.name;
            equivalence::flag("queue", &name, vhost, "durable", d.durable, spec.durable)?;
            equivalence::flag(
                "queue",
                &name,
                vhost,
                "auto_delete",
                d.auto_delete,
                spec.auto_delete,
            )?;
            equivalence::queue_arguments(&name, vhost, &d.arguments, &spec.arguments)?;
            return Ok(existing);
        }
        // Checked only for a new queue, as RabbitMQ does: a redeclare is compared with the queue's arguments.
        let args = QueueArguments::parse(
            &d.arguments,
            &name,
            &self.name,
            d.durable,
            d.exclusive,
            d.auto_delete,
        )?;
        let mut spec = QueueSpec {
            name: Arc::from(name.as_str()),
            vhost: self.name.clone(),
            durable: d.durable,
            exclusive_owner: d.exclusive.then_some(d.connection_id),
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
            args,
            store_id: None,
        };
        let storage = self.persist_queue(&mut spec)?;
        let settings = self.queue_settings(&spec.name, &spec.args);
        let handle = spawn_queue(
            spec,
            settings,
            self.as_owner(),
            storage,
            self.queue_memory(),
            self.flow_limits,
            Vec::new(),
        );
        self.queues.insert(handle.spec.name.clone(), handle.clone());
        Ok(handle)
    }

    /// The queue queue.delete names, or None if there is none (a missing queue deletes as 0, as in RabbitMQ);
    /// another connection's exclusive queue is refused with 405.
    pub(crate) fn queue_to_delete(
        &self,
        name: &str,
        connection_id: u64,
    ) -> Result<Option<Arc<QueueHandle>>, AmqpError> {
        match self.queue_for(name, connection_id) {
            Ok(q) => Ok(Some(q)),
            Err(e) if e.code == ReplyCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a queue; returns how many ready messages it held. A missing queue deletes as 0, as in RabbitMQ.
    pub(crate) async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection_id: u64,
    ) -> Result<u32, AmqpError> {
        let Some(queue) = self.queue_to_delete(name, connection_id)? else {
            return Ok(0);
        };
        let (reply, answer) = oneshot::channel();
        let sent = queue
            .send(QueueCommand::Delete {
                if_unused,
                if_empty,
                requester: None,
                reply,
            })
            .await;
        let count = if sent {
            answer
                .await
                .map_or(Ok(0), |deleted| deleted.map(|d| d.messages))?
        } else {
            0
        };
        match self.me.upgrade() {
            Some(me) if self.may_persist_removal(queue.spec.store_id.is_some()) => {
                // Removing a stored queue commits the definitions store: off the async workers.
                me.change_topology(move |vhost| {
                    vhost.forget_queue(&queue);
                    Ok(())
                })
                .await?;
            }
            _ => self.forget_queue(&queue),
        }
        Ok(count)
    }

    /// Removes a queue from the vhost and every binding to it (after deletion, or auto-delete by its actor).
    pub(crate) fn forget_queue(&self, queue: &Arc<QueueHandle>) {
        let _topology = self.lock_topology();
        let removed = self
            .queues
            .remove_if(queue.name(), |_, q| Arc::ptr_eq(q, queue))
            .is_some();
        if removed {
            let durable = queue.spec.store_id.is_some();
            self.remove_bindings_to(&Destination::Queue(queue.spec.name.clone()), durable);
            self.unpersist_queue(&queue.spec);
        }
    }

    /// queue.bind: binds queue `queue` to exchange `exchange` with `key`.
    pub(crate) fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        args: FieldTable,
        connection_id: u64,
    ) -> Result<(), AmqpError> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let q = self.queue_for(queue, connection_id)?;
        let _topology = self.lock_topology();
        let x = self
            .exchange(exchange)
            .ok_or_else(|| AmqpError::not_found("exchange", exchange, &self.name))?;
        self.add_binding(&x, Destination::Queue(q.spec.name.clone()), key, args)
    }

    /// queue.unbind: removes that binding, if present. As in RabbitMQ (`rabbit_db_binding:delete/2`), a missing
    /// queue or exchange, or a binding that does not exist, is not an error; only the removal of a binding that
    /// exists checks that the queue is not another connection's exclusive queue (405).
    pub(crate) fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        args: FieldTable,
        connection_id: u64,
    ) -> Result<(), AmqpError> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let _topology = self.lock_topology();
        let (Some(q), Some(x)) = (self.queue(queue), self.exchange(exchange)) else {
            return Ok(());
        };
        self.remove_binding(
            &x,
            Destination::Queue(q.spec.name.clone()),
            key,
            args,
            || match q.is_exclusive_to_other(connection_id) {
                true => Err(self.locked(queue)),
                false => Ok(()),
            },
        )
    }

    fn add_binding(
        &self,
        x: &Exchange,
        destination: Destination,
        key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let binding = Binding {
            destination,
            routing_key: Arc::from(key),
            arguments,
        };
        if let Some(table) = x.bindings.load().with_binding(binding.clone()) {
            // Stored first: a binding the client was told about must survive a restart.
            self.persist_binding(x, &binding)?;
            x.bindings.store(Arc::new(table));
        }
        Ok(())
    }

    /// Removes a binding if it exists, once `may_remove` (asked only then) agrees.
    fn remove_binding(
        &self,
        x: &Arc<Exchange>,
        destination: Destination,
        key: &str,
        arguments: FieldTable,
        may_remove: impl FnOnce() -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let binding = Binding {
            destination,
            routing_key: Arc::from(key),
            arguments,
        };
        if let Some(table) = x.bindings.load().without_binding(&binding) {
            may_remove()?;
            let durable = self.destination_durable(&binding.destination);
            self.unpersist_binding(x, &binding, durable);
            x.bindings.store(Arc::new(table));
            self.auto_delete_if_unbound(x);
        }
        Ok(())
    }

    /// Drops every binding to `destination` (stored ones too when `durable`), and auto-delete exchanges left
    /// without bindings (cascading).
    fn remove_bindings_to(&self, destination: &Destination, durable: bool) {
        let exchanges: Vec<Arc<Exchange>> =
            self.exchanges.iter().map(|x| x.value().clone()).collect();
        for x in exchanges {
            let old = x.bindings.load_full();
            if let Some(table) = old.without_destination(destination) {
                for binding in old
                    .bindings()
                    .iter()
                    .filter(|b| b.destination == *destination)
                {
                    self.unpersist_binding(&x, binding, durable);
                }
                x.bindings.store(Arc::new(table));
                self.auto_delete_if_unbound(&x);
            }
        }
    }

    fn auto_delete_if_unbound(&self, x: &Arc<Exchange>) {
        if !x.auto_delete || !x.bindings.load().is_empty() {
            return;
        }
        if self
            .exchanges
            .remove_if(&x.name, |_, v| Arc::ptr_eq(v, x))
            .is_some()
        {
            self.unpersist_exchange(x);
            self.remove_bindings_to(&Destination::Exchange(x.name.clone()), x.durable);
        }
    }
}
