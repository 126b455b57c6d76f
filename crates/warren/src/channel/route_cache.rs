//! A channel's memory of its last publish: the exchange and routing-key strings, the queues they routed to and the
//! properties bytes. Publishers mostly repeat themselves; reusing these saves two string allocations, a properties
//! copy and the exchange and queue lookups per message. The vhost's topology generation says when a remembered
//! route may be stale: any declare, bind or delete in the vhost changes it. It also remembers the last publish the
//! user's permissions allowed, while the access table's generation is unchanged, so a publisher repeating itself
//! is checked once, not per message.

use std::sync::Arc;

use bytes::Bytes;

use crate::message::Message;
use crate::queue::QueueHandle;
use crate::vhost::RouteExtras;
use crate::vhost::Vhost;
use warren_protocol::error::AmqpError;
use warren_protocol::PublishArgs;

/// The last route a channel computed (exchange, routing key, queues), reused while the vhost's generation
/// is unchanged: a publisher sending to one exchange and key routes once, not per message.
#[derive(Default)]
pub(crate) struct RouteCache {
    exchange: Arc<str>,
    routing_key: Arc<str>,
    /// The vhost generation at which the exchange was known to exist; None before the first route.
    generation: Option<u64>,
    /// Whether `queues` is the route (false when a headers exchange made it depend on the message's headers).
    route_known: bool,
    queues: Vec<Arc<QueueHandle>>,
    properties: Bytes,
    /// The last (exchange, routing key) the permissions allowed, and the access generation they were read at.
    permitted: Option<Permit>,
}

/// A publish decision: exchange and routing key allowed at an access generation.
struct Permit {
    generation: u64,
    exchange: Arc<str>,
    routing_key: Arc<str>,
}

impl RouteCache {
    /// The shared names for a publish to the same exchange and routing key as the last one, while the topology
    /// is unchanged (so the exchange still exists); None otherwise.
    pub(crate) fn names(
        &self,
        vhost: &Vhost,
        publish: &PublishArgs<'_>,
    ) -> Option<(Arc<str>, Arc<str>)> {
        let fresh = self.generation == Some(vhost.generation())
            && *self.exchange == *publish.exchange
            && *self.routing_key == *publish.routing_key;
        fresh.then(|| (self.exchange.clone(), self.routing_key.clone()))
    }

    /// Whether a publish to `exchange` with `routing_key` was allowed at access generation `generation` (no
    /// permission changed since): one integer and two short string comparisons instead of the regex checks.
    pub(crate) fn permitted(&self, generation: u64, exchange: &str, routing_key: &str) -> bool {
        self.permitted.as_ref().is_some_and(|p| {
            p.generation == generation && *p.exchange == *exchange && *p.routing_key == *routing_key
        })
    }

    /// [`RouteCache::permitted`] for the names [`RouteCache::names`] returned: the same `Arc`s as the remembered
    /// decision's when both come from one earlier publish, so two pointer comparisons instead of two string ones.
    pub(crate) fn permitted_names(
        &self,
        generation: u64,
        exchange: &Arc<str>,
        routing_key: &Arc<str>,
    ) -> bool {
        self.permitted.as_ref().is_some_and(|p| {
            p.generation == generation
                && (Arc::ptr_eq(&p.exchange, exchange) || *p.exchange == **exchange)
                && (Arc::ptr_eq(&p.routing_key, routing_key) || *p.routing_key == **routing_key)
        })
    }

    /// Remembers that the permissions read at `generation` allow publishing to `exchange` with `routing_key`.
    pub(crate) fn permit(&mut self, generation: u64, exchange: Arc<str>, routing_key: Arc<str>) {
        self.permitted = Some(Permit {
            generation,
            exchange,
            routing_key,
        });
    }

    /// The properties bytes, shared with the last message's when they are the same.
    pub(crate) fn properties(&mut self, raw: &[u8]) -> Bytes {
        if self.properties != raw {
            self.properties = Bytes::copy_from_slice(raw);
        }
        self.properties.clone()
    }

    /// The queues `message` goes to, and the delayed exchanges that hold it instead (never remembered: whether a
    /// message waits depends on its `x-delay`).
    pub(crate) fn route(
        &mut self,
        vhost: &Vhost,
        message: &Message,
    ) -> Result<(&[Arc<QueueHandle>], RouteExtras), AmqpError> {
        // Read before routing: a change made while routing moves the generation past this value.
        let generation = vhost.generation();
        let same_names = (Arc::ptr_eq(&self.exchange, &message.exchange)
            || *self.exchange == *message.exchange)
            && (Arc::ptr_eq(&self.routing_key, &message.routing_key)
                || *self.routing_key == *message.routing_key);
        if self.route_known
            && self.generation == Some(generation)
            && same_names
            && !message.may_select_keys()
        {
            return Ok((&self.queues, RouteExtras::default()));
        }
        self.queues.clear();
        self.route_known = false;
        let mut extras = RouteExtras::default();
        let by_key_only = vhost.route(&message.exchange, message, &mut self.queues, &mut extras)?;
        self.exchange = message.exchange.clone();
        self.routing_key = message.routing_key.clone();
        self.generation = Some(generation);
        self.route_known = by_key_only && extras.is_empty();
        Ok((&self.queues, extras))
    }
}
