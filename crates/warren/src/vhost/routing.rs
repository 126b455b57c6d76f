//! Routing a published message through an exchange, exchange-to-exchange bindings and alternate exchanges, to
//! the set of queues it goes to (each once; cycles are cut).

use std::sync::Arc;

use super::dedup::KeyRecord;
use super::Vhost;
use crate::delayed::{delay_of, DelayRequest};
use crate::exchange::consistent_hash::{header_key, HashOn, HashProperty};
use crate::exchange::Exchange;
use crate::exchange::{Destination, ExchangeKind};
use crate::message::{sender_selected, Message};
use crate::queue::QueueHandle;
use warren_protocol::error::AmqpError;
use warren_protocol::FieldTable;

/// What routing hands to something other than queues: the delayed exchanges that hold the message (the caller hands
/// it to them), and the deduplication keys durable exchanges took for it (the caller stores them before the message).
#[derive(Default)]
pub(crate) struct RouteExtras {
    /// The delayed exchanges on the way that hold the message instead of routing it (its `x-delay`).
    pub(crate) delays: Vec<DelayRequest>,
    /// The keys to store for durable deduplicating exchanges on the way.
    pub(crate) keys: Vec<KeyRecord>,
}

impl RouteExtras {
    /// Whether routing handed nothing elsewhere.
    pub(crate) fn is_empty(&self) -> bool {
        self.delays.is_empty() && self.keys.is_empty()
    }
}

/// The message's headers, decoded at most once and only if a headers exchange (or a consistent-hash exchange
/// hashing on a header, or a deduplicating exchange) is on the route.
pub(super) struct LazyHeaders<'a> {
    pub(super) message: &'a Message,
    decoded: Option<Option<FieldTable>>,
    /// Set when something besides the headers made the route depend on the message (a hashed property, a
    /// delayed exchange on the way).
    depends_on_message: bool,
    /// The delayed exchanges on the way that hold the message instead of routing it (its `x-delay`).
    delays: Vec<DelayRequest>,
    /// The keys durable deduplicating exchanges on the way took.
    pub(super) keys: Vec<KeyRecord>,
}

impl LazyHeaders<'_> {
    pub(super) fn get(&mut self) -> Option<&FieldTable> {
        let message = self.message;
        self.decoded
            .get_or_insert_with(|| message.headers())
            .as_ref()
    }
}

/// What a consistent-hash exchange hashing on `property` hashes: the property's text (the timestamp in decimal),
/// or "undefined" when the message lacks it (so all such messages go to one destination, as in the plugin).
fn property_key(message: &Message, property: HashProperty) -> String {
    let Ok(properties) = message.properties() else {
        return "undefined".to_owned();
    };
    let value = match property {
        HashProperty::MessageId => properties.message_id().as_ref().map(|s| s.to_string()),
        HashProperty::CorrelationId => properties.correlation_id().as_ref().map(|s| s.to_string()),
        HashProperty::Timestamp => properties.timestamp().map(|t| t.to_string()),
    };
    value.unwrap_or_else(|| "undefined".to_owned())
}

impl Vhost {
    /// Appends the queues `message` routes to from `exchange`, and to `extras` the delayed exchanges that hold it
    /// instead (the caller hands it to them) and the keys deduplicating exchanges took. Returns whether the route depends only on the exchange and routing
    /// key (no headers or delayed exchange on the way), so that it holds for the next message with the same ones
    /// until the topology changes. Errors: 404 for a missing exchange, 403 for an internal one.
    pub(crate) fn route(
        &self,
        exchange: &str,
        message: &Message,
        out: &mut Vec<Arc<QueueHandle>>,
        extras: &mut RouteExtras,
    ) -> Result<bool, AmqpError> {
        // Read after the exchange checks, as RabbitMQ builds the message after them.
        let extra_keys = || {
            if message.may_select_keys() {
                sender_selected::extra_keys(message.headers().as_ref())
            } else {
                Ok(Vec::new())
            }
        };
        if exchange.is_empty() {
            let extra = extra_keys()?;
            let keys =
                std::iter::once(&*message.routing_key).chain(extra.iter().map(String::as_str));
            for key in keys {
                if let Some(q) = self.queue(key) {
                    if !out.iter().any(|o| Arc::ptr_eq(o, &q)) {
                        out.push(q);
                    }
                }
            }
            return Ok(extra.is_empty());
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
        let extra = extra_keys()?;
        Ok(self.route_keys(&x, message, &extra, out, extras))
    }

    /// Routes `message` from `exchange` as a publish without confirm or mandatory flag (the management API's
    /// publish): stored first for the durable queues it reaches, like a dead-lettered copy. Returns whether it
    /// reached a queue or a delayed exchange. Errors as [`Vhost::route`]: 404 missing, 403 internal exchange.
    pub(crate) fn publish_unconfirmed(
        &self,
        exchange: &str,
        message: Message,
    ) -> Result<bool, AmqpError> {
        let mut queues = Vec::new();
        let mut extras = RouteExtras::default();
        self.route(exchange, &message, &mut queues, &mut extras)?;
        let delayed = !extras.delays.is_empty();
        self.delay_without_confirm(&message, extras.delays);
        self.remember_keys(extras.keys, None);
        let routed = !queues.is_empty() || delayed;
        let message = match message.without_bcc()? {
            Some(stripped) => stripped,
            None => message,
        };
        self.send_at_most_once(message, &queues);
        Ok(routed)
    }

    /// Appends the queues `message` routes to from exchange `x`, internal or not (a dead-letter exchange may be
    /// internal); delayed exchanges on the way take their copy at once. Returns whether the route depends only on
    /// the exchange and routing key.
    pub(crate) fn route_from(
        &self,
        x: &Exchange,
        message: &Message,
        out: &mut Vec<Arc<QueueHandle>>,
    ) -> bool {
        let mut extras = RouteExtras::default();
        let by_key_only = self.route_keys(x, message, &[], out, &mut extras);
        self.delay_without_confirm(message, extras.delays);
        self.remember_keys(extras.keys, None);
        by_key_only
    }

    /// [`Vhost::route_from`] with `extra` routing keys after the message's own (its `CC` and `BCC`): every
    /// exchange on the way routes each key, and the message reaches each queue once.
    fn route_keys(
        &self,
        x: &Exchange,
        message: &Message,
        extra: &[String],
        out: &mut Vec<Arc<QueueHandle>>,
        extras: &mut RouteExtras,
    ) -> bool {
        let mut keys: Vec<&str> = Vec::with_capacity(1 + extra.len());
        keys.push(&message.routing_key);
        keys.extend(extra.iter().map(String::as_str));
        let mut visited: Vec<Arc<str>> = Vec::new();
        let mut queues: Vec<Arc<str>> = Vec::new();
        let mut headers = LazyHeaders {
            message,
            decoded: None,
            depends_on_message: false,
            delays: Vec::new(),
            keys: Vec::new(),
        };
        self.route_exchange(x, &keys, message, &mut headers, &mut visited, &mut queues);
        extras.delays.append(&mut headers.delays);
        extras.keys.append(&mut headers.keys);
        for name in queues {
            if let Some(q) = self.queue(&name) {
                out.push(q);
            }
        }
        headers.decoded.is_none() && !headers.depends_on_message && extra.is_empty()
    }

    fn route_exchange(
        &self,
        x: &Exchange,
        keys: &[&str],
        message: &Message,
        headers: &mut LazyHeaders<'_>,
        visited: &mut Vec<Arc<str>>,
        queues: &mut Vec<Arc<str>>,
    ) {
        visited.push(x.name.clone());
        let before = (queues.len(), headers.delays.len());
        if x.kind == ExchangeKind::Delayed {
            // Whether it waits depends on the message's x-delay: such a route is never remembered.
            headers.depends_on_message = true;
            if let Some(delay_ms) = delay_of(headers.get()) {
                if let Some(exchange) = self.delayed_exchange(&x.name) {
                    headers.delays.push(DelayRequest { exchange, delay_ms });
                    return;
                }
            }
        }
        // A message a deduplicating exchange has seen routes nowhere from it; its alternate exchange still applies.
        let duplicate = x.kind == ExchangeKind::Dedup && {
            headers.depends_on_message = true;
            self.is_duplicate(x, headers)
        };
        // A federation upstream exchange lets through only what has not crossed enough links or its downstream.
        let duplicate = duplicate
            || (x.kind == ExchangeKind::FederationUpstream && {
                headers.depends_on_message = true;
                !crate::federation::loops::should_forward(&x.arguments, headers.get())
            });
        let mut destinations = Vec::new();
        let header_table = if x.routing_kind == ExchangeKind::Headers {
            headers.get().cloned()
        } else {
            None
        };
        let hash_key = match &x.hash_on {
            HashOn::RoutingKey => None,
            HashOn::Header(name) => Some(
                String::from_utf8_lossy(&header_key(
                    headers.get().and_then(|h| h.inner().get(name.as_str())),
                ))
                .into_owned(),
            ),
            HashOn::Property(property) => {
                // The route depends on the message, not only on its routing key: not cached.
                headers.depends_on_message = true;
                Some(property_key(message, *property))
            }
        };
        let bindings = x.bindings.load();
        match (&hash_key, x.routing_kind) {
            _ if duplicate => {}
            // What a consistent-hash exchange hashes (the plugin takes the first routing key only), and a headers
            // exchange ignores the keys: one lookup each.
            (Some(hash_key), _) => bindings.route(hash_key, None, &mut destinations),
            (None, ExchangeKind::ConsistentHash | ExchangeKind::Headers | ExchangeKind::Fanout) => {
                bindings.route(keys[0], header_table.as_ref(), &mut destinations)
            }
            (None, _) => {
                for key in keys {
                    bindings.route(key, None, &mut destinations);
                }
            }
        }
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
                        self.route_exchange(&next, keys, message, headers, visited, queues);
                    }
                }
            }
        }
        // A message a delayed exchange further along holds is routed, for the alternate exchange.
        if (queues.len(), headers.delays.len()) == before {
            if let Some(alternate) = x.alternate() {
                if !visited.contains(&alternate) {
                    if let Some(ae) = self.exchange(&alternate) {
                        self.route_exchange(&ae, keys, message, headers, visited, queues);
                    }
                }
            }
        }
    }
}
