//! Exchanges: the [`Exchange`] a vhost holds (its declared properties and its bindings, in `definition`), and
//! routing without I/O: the exchange kinds, what a binding points at, and `BindingTable`, the immutable snapshot of
//! one exchange's bindings that a publish routes through without taking a lock.
//!
//! The vhost keeps each exchange's table behind an `Arc` it swaps whole: a bind or unbind builds a new table from
//! the old one (`with_binding`, `without_binding`, `without_destination`) and publishes it; a publisher that loaded
//! the old `Arc` finishes routing on it undisturbed. Tables are rebuilt in O(bindings) on every change, which is
//! cheap next to the declare round trip; loading many bindings at once (recovery, definitions import) goes through
//! a single `BindingTable::new`. See `docs/routing.md`.
//!
//! `route` appends destinations, each once, in the order they were first bound. Following exchange-to-exchange
//! bindings and alternate exchanges (with cycle protection) is the vhost's job: it calls `route` again on the
//! destination exchange's table.

pub(crate) mod consistent_hash;
pub(crate) mod dedup;
mod definition;
pub(crate) mod delayed_type;
mod header_value;
mod headers;
pub(crate) mod stats;
mod topic;

pub(crate) use definition::Exchange;
pub(crate) use headers::validate_headers_arguments;

use consistent_hash::HashRing;
use headers::HeadersMatcher;
use std::collections::HashMap;
use std::sync::Arc;
use topic::TopicTrie;
use warren_protocol::types::FieldTable;

/// The four exchange types of AMQP 0-9-1 as RabbitMQ implements them, and the plugin types Warren builds in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ExchangeKind {
    /// Routes to bindings whose key equals the routing key.
    Direct,
    /// Routes to every binding, ignoring the routing key.
    Fanout,
    /// Routes by `.`-separated word patterns with `*` and `#` wildcards.
    Topic,
    /// Routes by the message's headers table against the binding arguments.
    Headers,
    /// `x-consistent-hash`: routes each message to one destination by a hash, bindings weighted by their keys.
    ConsistentHash,
    /// `x-delayed-message`: holds a message with a positive `x-delay` header until due, then routes it as its
    /// `x-delayed-type` would (the exchange's `routing_kind`, see `delayed_type`).
    Delayed,
    /// `x-message-deduplication`: routes as fanout a message whose `x-deduplication-header` it has not seen within
    /// its cache's TTL, and nowhere one it has (see `dedup`).
    Dedup,
    /// `x-federation-upstream` (the federation plugin's): what a downstream broker's federation link declares on
    /// its upstream; routes as fanout a message that crossed fewer than `x-max-hops` links and never the
    /// downstream's (`x-downstream-name`, `x-downstream-vhost`), and nowhere one that did.
    FederationUpstream,
}

impl ExchangeKind {
    /// "direct" | "fanout" | "topic" | "headers" -> Some(kind); anything else None.
    pub(crate) fn parse(s: &str) -> Option<ExchangeKind> {
        match s {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            "x-consistent-hash" => Some(ExchangeKind::ConsistentHash),
            "x-delayed-message" => Some(ExchangeKind::Delayed),
            "x-message-deduplication" => Some(ExchangeKind::Dedup),
            "x-federation-upstream" => Some(ExchangeKind::FederationUpstream),
            _ => None,
        }
    }

    /// The name used on the wire and in definitions.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::Delayed => "x-delayed-message",
            ExchangeKind::Dedup => "x-message-deduplication",
            ExchangeKind::FederationUpstream => "x-federation-upstream",
        }
    }
}

/// What a binding delivers to: a queue, or another exchange (RabbitMQ's exchange-to-exchange bindings), by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Destination {
    /// A queue in the same vhost.
    Queue(Arc<str>),
    /// An exchange in the same vhost.
    Exchange(Arc<str>),
}

/// One binding of an exchange. Two bindings are the same binding when destination, routing key and arguments are
/// all equal (as in RabbitMQ, the same queue may be bound twice with the same key and different arguments).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Binding {
    /// Where matching messages go.
    pub(crate) destination: Destination,
    /// The binding key (ignored by fanout and headers exchanges, but still part of the binding's identity).
    pub(crate) routing_key: Arc<str>,
    /// The binding arguments (read for matching only by headers exchanges).
    pub(crate) arguments: FieldTable,
}

/// An immutable snapshot of one exchange's bindings, built whole on every change and read without locks.
#[derive(Debug)]
pub(crate) struct BindingTable {
    kind: ExchangeKind,
    /// Distinct bindings, in the order they were made.
    bindings: Vec<Binding>,
    /// Distinct destinations, in the order of their first binding; the index structures refer to these by
    /// position, so routing deduplicates integers rather than names.
    destinations: Vec<Destination>,
    index: RouteIndex,
}

/// The per-kind structure `route` reads, built once per table.
#[derive(Debug)]
enum RouteIndex {
    /// Binding key -> destination positions (ascending, distinct).
    Direct(HashMap<Arc<str>, Vec<usize>>),
    /// Every destination, so nothing beyond `destinations`.
    Fanout,
    /// Binding keys compiled into a word trie whose targets are destination positions.
    Topic(TopicTrie),
    /// Per destination, the matchers of all its bindings; a destination is taken at its first matching binding.
    Headers(Vec<HeadersTarget>),
    /// The weighted destinations one of which each message goes to.
    ConsistentHash(HashRing),
}

/// A headers binding: its destination and compiled matcher.
#[derive(Debug)]
struct HeadersTarget {
    destination: usize,
    matchers: Vec<HeadersMatcher>,
}

impl BindingTable {
    /// A table holding `bindings`; repeated equal bindings are kept once.
    pub(crate) fn new(kind: ExchangeKind, bindings: Vec<Binding>) -> BindingTable {
        BindingTable::build(kind, distinct(bindings))
    }

    /// A table without bindings.
    pub(crate) fn empty(kind: ExchangeKind) -> BindingTable {
        BindingTable::build(kind, Vec::new())
    }

    /// The exchange kind this table routes for.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Every binding, in the order they were made.
    pub(crate) fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Whether the exchange has no bindings (auto-delete exchanges check this after an unbind).
    pub(crate) fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// A new table with `binding` added; returns None if an equal binding (same destination, routing key and
    /// arguments) already exists (binding is idempotent in AMQP).
    pub(crate) fn with_binding(&self, binding: Binding) -> Option<BindingTable> {
        if self.bindings.contains(&binding) {
            return None;
        }
        let mut bindings = Vec::with_capacity(self.bindings.len() + 1);
        bindings.extend_from_slice(&self.bindings);
        bindings.push(binding);
        Some(BindingTable::build(self.kind, bindings))
    }

    /// A new table without the binding equal to `binding`; None if there was none.
    pub(crate) fn without_binding(&self, binding: &Binding) -> Option<BindingTable> {
        let position = self.bindings.iter().position(|b| b == binding)?;
        let mut bindings = self.bindings.clone();
        bindings.remove(position);
        Some(BindingTable::build(self.kind, bindings))
    }

    /// A new table without any binding to `destination` (used when a queue or exchange is deleted); None if there
    /// was none.
    pub(crate) fn without_destination(&self, destination: &Destination) -> Option<BindingTable> {
        if !self.destinations.contains(destination) {
            return None;
        }
        let bindings = self
            .bindings
            .iter()
            .filter(|b| &b.destination != destination)
            .cloned()
            .collect();
        Some(BindingTable::build(self.kind, bindings))
    }

    /// Appends every destination this message routes to (each at most once) to `out`.
    /// `headers` is the message's headers table (None when the message has no headers property); only the headers
    /// kind reads it. A consistent-hash exchange hashes `routing_key`, which the caller sets to what the exchange
    /// hashes on (see [`consistent_hash::HashOn`]).
    ///
    /// Destinations come in the order of their first binding; what `out` already held is left alone.
    pub(crate) fn route(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<Destination>,
    ) {
        match &self.index {
            RouteIndex::Direct(by_key) => {
                if let Some(positions) = by_key.get(routing_key) {
                    self.push_destinations(positions, out);
                }
            }
            RouteIndex::Fanout => out.extend_from_slice(&self.destinations),
            RouteIndex::Topic(trie) => {
                let mut positions = Vec::new();
                trie.matches(routing_key, &mut positions);
                self.push_destinations(&positions, out);
            }
            RouteIndex::Headers(targets) => {
                for target in targets {
                    if target.matchers.iter().any(|m| m.matches(headers)) {
                        out.push(self.destinations[target.destination].clone());
                    }
                }
            }
            RouteIndex::ConsistentHash(ring) => {
                if let Some(position) = ring.pick(routing_key.as_bytes()) {
                    out.push(self.destinations[position].clone());
                }
            }
        }
    }

    fn push_destinations(&self, positions: &[usize], out: &mut Vec<Destination>) {
        out.extend(positions.iter().map(|&p| self.destinations[p].clone()));
    }

    /// Builds the table from bindings that are already distinct.
    fn build(kind: ExchangeKind, bindings: Vec<Binding>) -> BindingTable {
        let mut positions: HashMap<&Destination, usize> = HashMap::new();
        let mut destinations = Vec::new();
        let binding_destinations: Vec<usize> = bindings
            .iter()
            .map(|b| {
                *positions.entry(&b.destination).or_insert_with(|| {
                    destinations.push(b.destination.clone());
                    destinations.len() - 1
                })
            })
            .collect();
        let pairs = || bindings.iter().zip(binding_destinations.iter().copied());
        let index = match kind {
            // A delayed exchange's table is built for its `x-delayed-type` (`Exchange::routing_kind`), never for
            // `Delayed` itself; should one be, it routes as direct, the plugin's most common underlying type.
            ExchangeKind::Direct | ExchangeKind::Delayed => {
                let mut by_key: HashMap<Arc<str>, Vec<usize>> = HashMap::new();
                for (binding, destination) in pairs() {
                    by_key
                        .entry(binding.routing_key.clone())
                        .or_default()
                        .push(destination);
                }
                for destinations in by_key.values_mut() {
                    // Positions were assigned in first-binding order, so sorting keeps that order.
                    destinations.sort_unstable();
                    destinations.dedup();
                }
                RouteIndex::Direct(by_key)
            }
            // A deduplicating exchange's table is built as fanout (`Exchange::routing_kind`); should one be built
            // for `Dedup` itself, it routes as fanout all the same.
            ExchangeKind::Fanout | ExchangeKind::Dedup | ExchangeKind::FederationUpstream => {
                RouteIndex::Fanout
            }
            ExchangeKind::Topic => {
                RouteIndex::Topic(TopicTrie::build(pairs().map(|(b, d)| (&*b.routing_key, d))))
            }
            ExchangeKind::Headers => {
                let mut targets: Vec<HeadersTarget> = (0..destinations.len())
                    .map(|destination| HeadersTarget {
                        destination,
                        matchers: Vec::new(),
                    })
                    .collect();
                for (binding, destination) in pairs() {
                    targets[destination]
                        .matchers
                        .push(HeadersMatcher::new(&binding.arguments));
                }
                RouteIndex::Headers(targets)
            }
            ExchangeKind::ConsistentHash => RouteIndex::ConsistentHash(HashRing::build(
                pairs().map(|(b, d)| (d, destination_key(&b.destination), &*b.routing_key)),
            )),
        };
        BindingTable {
            kind,
            bindings,
            destinations,
            index,
        }
    }
}

/// A destination's identity for hashing: its kind and name.
fn destination_key(destination: &Destination) -> String {
    match destination {
        Destination::Queue(name) => format!("queue:{name}"),
        Destination::Exchange(name) => format!("exchange:{name}"),
    }
}

/// Drops repeated equal bindings, keeping the first. Grouping by destination and key first keeps this linear for
/// a large recovered table (arguments are compared only within a group).
fn distinct(bindings: Vec<Binding>) -> Vec<Binding> {
    let mut seen: HashMap<(Destination, Arc<str>), Vec<usize>> = HashMap::new();
    let mut kept: Vec<Binding> = Vec::with_capacity(bindings.len());
    for binding in bindings {
        let group = seen
            .entry((binding.destination.clone(), binding.routing_key.clone()))
            .or_default();
        if group
            .iter()
            .any(|&i| kept[i].arguments == binding.arguments)
        {
            continue;
        }
        group.push(kept.len());
        kept.push(binding);
    }
    kept
}

#[cfg(test)]
mod tests;
