//! Firehose tracing in a vhost (`rabbit_trace`): the switch, and publishing the trace messages that
//! `message::trace` builds to `amq.rabbitmq.trace`, at most once, as transient messages, never blocking the traced
//! path (a full queue inbox is waited for on a task of its own).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Vhost;
use crate::message::trace::{trace_message, TraceEvent, TraceOrigin, TRACE_EXCHANGE};
use crate::message::Message;
use crate::session::{ConnectionShared, DeliveryTracer};

impl Vhost {
    /// Turns tracing on or off; false if it already was so.
    pub(crate) fn set_tracing(&self, on: bool) -> bool {
        self.tracing.swap(on, Ordering::AcqRel) != on
    }

    /// Whether tracing is on.
    pub(crate) fn is_tracing(&self) -> bool {
        self.tracing.load(Ordering::Relaxed)
    }

    /// The node's name, which trace messages carry.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The switch, for the connections of this vhost.
    pub(crate) fn tracing_switch(&self) -> Arc<AtomicBool> {
        self.tracing.clone()
    }

    /// Publishes the trace of `event` for `message` to the trace exchange, if it still exists.
    pub(crate) fn trace(
        &self,
        message: &Message,
        event: &TraceEvent<'_>,
        origin: &TraceOrigin<'_>,
    ) {
        let (routing_key, properties) = match trace_message(message, event, origin) {
            Ok(Some(trace)) => trace,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(vhost = %self.name, "cannot trace a message: {error}");
                return;
            }
        };
        let Some(exchange) = self.exchange(TRACE_EXCHANGE) else {
            return;
        };
        let trace = Message::new(
            exchange.name.clone(),
            Arc::from(routing_key.as_str()),
            properties,
            message.body.clone(),
        );
        let mut queues = Vec::new();
        self.route_from(&exchange, &trace, &mut queues);
        self.send_at_most_once(trace, &queues);
    }
}

impl DeliveryTracer for Vhost {
    fn trace_delivery(
        &self,
        message: &Message,
        queue: &str,
        redelivered: bool,
        connection: &ConnectionShared,
        channel: u16,
    ) {
        self.trace(
            message,
            &TraceEvent::Deliver { queue, redelivered },
            &TraceOrigin {
                vhost: &self.name,
                connection: &connection.name,
                channel,
                user: &connection.user,
                node: &self.node,
            },
        );
    }
}
