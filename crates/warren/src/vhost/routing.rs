//! Routing a published message through an exchange, exchange-to-exchange bindings and alternate exchanges, to
//! the set of queues it goes to (each once; cycles are cut).

use std::sync::Arc;

use super::Vhost;
use crate::exchange::Exchange;
use crate::exchange::{Destination, ExchangeKind};
use crate::message::Message;
use crate::queue::QueueHandle;
use warren_protocol::error::AmqpError;
use warren_protocol::FieldTable;

/// The message's headers, decoded at most once and only if a headers exchange is on the route.
struct LazyHeaders<'a> {
    message: &'a Message,
    decoded: Option<Option<FieldTable>>,
}

impl LazyHeaders<'_> {
    fn get(&mut self) -> Option<&FieldTable> {
        let message = self.message;
        self.decoded
            .get_or_insert_with(|| message.headers())
            .as_ref()
    }
}

impl Vhost {
    /// Appends the queues `message` routes to from `exchange`. Returns whether the route depends only on the
    /// exchange and routing key (no headers exchange on the way), so that it holds for the next message with the
    /// same ones until the topology changes. Errors: 404 for a missing exchange, 403 for an internal one.
    pub(crate) fn route(
        &self,
        exchange: &str,
        message: &Message,
        out: &mut Vec<Arc<QueueHandle>>,
    ) -> Result<bool, AmqpError> {
        if exchange.is_empty() {
            if let Some(q) = self.queue(&message.routing_key) {
                out.push(q);
            }
            return Ok(true);
        }
        let x = self
            .exchange(exchange)
            .ok_or_else(|| AmqpError::not_found("exchange", exchange, &self.name))?;
        if x.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.name
            )));
        }
        Ok(self.route_from(&x, message, out))
    }

    /// Appends the queues `message` routes to from exchange `x`, internal or not (a dead-letter exchange may be
    /// internal). Returns whether the route depends only on the exchange and routing key.
    pub(crate) fn route_from(
        &self,
        x: &Exchange,
        message: &Message,
        out: &mut Vec<Arc<QueueHandle>>,
    ) -> bool {
        let mut visited: Vec<Arc<str>> = Vec::new();
        let mut queues: Vec<Arc<str>> = Vec::new();
        let mut headers = LazyHeaders {
            message,
            decoded: None,
        };
        self.route_exchange(x, message, &mut headers, &mut visited, &mut queues);
        for name in queues {
            if let Some(q) = self.queue(&name) {
                out.push(q);
            }
        }
        headers.decoded.is_none()
    }

    fn route_exchange(
        &self,
        x: &Exchange,
        message: &Message,
        headers: &mut LazyHeaders<'_>,
        visited: &mut Vec<Arc<str>>,
        queues: &mut Vec<Arc<str>>,
    ) {
        visited.push(x.name.clone());
        let before = queues.len();
        let mut destinations = Vec::new();
        let header_table = if x.kind == ExchangeKind::Headers {
            headers.get().cloned()
        } else {
            None
        };
        x.bindings.load().route(
            &message.routing_key,
            header_table.as_ref(),
            &mut destinations,
        );
        for destination in destinations {
            match destination {
                Destination::Queue(name) => {
                    if !queues.contains(&name) {
                        queues.push(name);
                    }
                }
                Destination::Exchange(name) => {
                    if visited.contains(&name) {
                        continue;
                    }
                    if let Some(next) = self.exchange(&name) {
                        self.route_exchange(&next, message, headers, visited, queues);
                    }
                }
            }
        }
        if queues.len() == before {
            if let Some(alternate) = x.alternate() {
                if !visited.contains(&alternate) {
                    if let Some(ae) = self.exchange(&alternate) {
                        self.route_exchange(&ae, message, headers, visited, queues);
                    }
                }
            }
        }
    }
}
