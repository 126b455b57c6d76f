//! Publishing the events of RabbitMQ's event exchange plugin to `amq.rabbitmq.event` (the messages are built by
//! `crate::event`). One [`EventPublisher`] per broker, shared by every vhost, connection and channel; the
//! exchange lives in one vhost, and events of every vhost go there.
//!
//! Cost: with the feature off, [`EventPublisher::emit`] is one branch on a field that never changes, and the
//! event is not built. On, an event is built only while the exchange has bindings (as the plugin checks
//! `has_any_bindings`). Nothing waits: the event is routed through the exchange's bindings and handed to each
//! queue with `try_send` (a task of its own only for a full inbox), a persistent copy for a durable queue is
//! queued for the store without waiting for its write, like a dead-lettered message. So a topology change or a
//! login never blocks on an event, and an event whose queue is full is late rather than holding the change.
//! No loop: routing and enqueueing an event changes no topology, so it raises no event of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use bytes::Bytes;

use super::Vhost;
use crate::event::{Event, EVENT_EXCHANGE};
use crate::exchange::{Exchange, ExchangeKind};
use crate::message::{now_ms, Message};
use warren_protocol::FieldTable;

/// Where events go: the vhost holding `amq.rabbitmq.event`, or nowhere when the feature is off.
pub(crate) struct EventPublisher {
    /// The feature is on (`[event_exchange] enabled`); fixed for the broker's life, so the check is one
    /// predictable branch.
    on: bool,
    /// The name of the vhost holding the exchange, when on.
    vhost_name: Option<String>,
    /// That vhost, once it exists; weak, since every vhost holds this publisher.
    target: RwLock<Weak<Vhost>>,
    /// Numbers channel "pids": a channel number reused after a close is a new channel.
    channel_serial: AtomicU64,
}

impl EventPublisher {
    /// A publisher into `amq.rabbitmq.event` of `vhost`, or one that publishes nothing (`None`).
    pub(crate) fn new(vhost: Option<&str>) -> Arc<EventPublisher> {
        Arc::new(EventPublisher {
            on: vhost.is_some(),
            vhost_name: vhost.map(str::to_owned),
            target: RwLock::new(Weak::new()),
            channel_serial: AtomicU64::new(1),
        })
    }

    /// Whether events are published at all.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// Publishes the event `build` makes, if the feature is on and the exchange has bindings; `build` runs only
    /// then.
    #[inline]
    pub(crate) fn emit(&self, build: impl FnOnce() -> Event) {
        if self.on {
            self.publish(build);
        }
    }

    /// A fresh serial for a channel's pid.
    pub(crate) fn next_channel_serial(&self) -> u64 {
        self.channel_serial.fetch_add(1, Ordering::Relaxed)
    }

    /// Gives `vhost` the event exchange if it is the configured one (at start, before its durable bindings are
    /// restored, or when it is added at run time), and sends events there from now on.
    pub(crate) fn attach(&self, vhost: &Arc<Vhost>) {
        if self.vhost_name.as_deref() != Some(&*vhost.name) {
            return;
        }
        // As the plugin declares it: topic, durable, not auto-delete, internal.
        let x = Exchange::new(
            EVENT_EXCHANGE,
            ExchangeKind::Topic,
            true,
            false,
            true,
            FieldTable::default(),
        );
        vhost.exchanges.insert(x.name.clone(), Arc::new(x));
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(vhost);
    }

    fn publish(&self, build: impl FnOnce() -> Event) {
        let target = self
            .target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade();
        let Some(vhost) = target else {
            return;
        };
        let Some(exchange) = vhost.exchange(EVENT_EXCHANGE) else {
            return;
        };
        if exchange.bindings.load().is_empty() {
            return;
        }
        let event = build();
        let properties = match event.properties(now_ms()) {
            Ok(properties) => properties,
            Err(error) => {
                tracing::warn!("cannot publish event {}: {}", event.key, error.text);
                return;
            }
        };
        let message = Message::new(
            exchange.name.clone(),
            Arc::from(event.key),
            properties,
            Bytes::new(),
        );
        let mut queues = Vec::new();
        vhost.route_from(&exchange, &message, &mut queues);
        vhost.send_at_most_once(message, &queues);
    }
}

impl Vhost {
    /// The broker's event publisher.
    pub(crate) fn events(&self) -> &EventPublisher {
        &self.events
    }
}
