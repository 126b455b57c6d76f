//! The copy RabbitMQ 3.13 makes of a message it dead-letters: its properties (the `x-death` history, the
//! `x-first-death-*` and `x-last-death-*` headers, no `expiration`, no `BCC` header) and the routing keys it is
//! published to the dead-letter exchange with; and the cycle check that drops it. Pure: the queue decides when a
//! message dies, routes the copy and delivers it.
//!
//! Sources, RabbitMQ 3.13.7: `rabbit_dead_letter:publish/5` and `detect_cycles/3`; `mc:record_death/4`; in
//! `mc_amqpl`, `init/2` (BCC stripped at publish), `essential_properties/2` (the `ttl` and `bcc` annotations) and
//! `protocol_state/2` (how the recorded death becomes headers); `rabbit_basic:header_routes/1` (CC and BCC keys).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use warren_protocol::basic::AMQPProperties;
use warren_protocol::content::{decode_properties, encode_properties};
use warren_protocol::error::AmqpError;
use warren_protocol::{AMQPValue, FieldTable, LongString, ShortString};

use death_history::{normalise_expiration, DeathHistory, DeathRecord};

/// Why a message was dead-lettered; RabbitMQ's `rabbit_dead_letter:reason()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeathReason {
    /// basic.reject or basic.nack with requeue=false.
    Rejected,
    /// Its per-message or per-queue TTL ran out.
    Expired,
    /// The queue's max-length or max-length-bytes pushed it out (overflow drop-head).
    Maxlen,
    /// It was returned to a quorum queue more often than the delivery limit allows.
    DeliveryLimit,
}

impl DeathReason {
    /// The name `x-death` and the `x-*-death-reason` headers carry.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// The routing keys RabbitMQ keeps with a message beside its properties (the `rk` and `bcc` annotations of its
/// message container). The headers cannot tell them: BCC is stripped at publish, and a dead-lettered copy keeps
/// its CC header though it was published with other keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RoutingKeys {
    /// Every key the message was last published with; the first is the one basic.deliver carries.
    pub(crate) keys: Vec<String>,
    /// The keys its publisher's BCC header added: routed to, never recorded in `x-death`. A dead-lettered copy
    /// keeps its original's.
    pub(crate) bcc: Vec<String>,
}

impl RoutingKeys {
    /// The keys of a message as its publisher sent it (`mc_amqpl:message/4`): the routing key, then the CC header's
    /// keys, then the BCC header's (`rabbit_basic:header_routes/1`; only the long-string elements of an array).
    pub(crate) fn published(routing_key: &str, headers: Option<&FieldTable>) -> RoutingKeys {
        let cc = header_keys(headers, "CC");
        let bcc = header_keys(headers, "BCC");
        let mut keys = Vec::with_capacity(1 + cc.len() + bcc.len());
        keys.push(routing_key.to_owned());
        keys.extend(cc);
        keys.extend(bcc.iter().cloned());
        RoutingKeys { keys, bcc }
    }

    /// The keys `x-death` records: all of them less the BCC keys, each BCC key taking out its first occurrence
    /// (Erlang's `RKeys -- BccKeys`).
    fn recorded(&self) -> Vec<LongString> {
        let mut keys = self.keys.clone();
        for bcc in &self.bcc {
            if let Some(at) = keys.iter().position(|k| k == bcc) {
                keys.remove(at);
            }
        }
        keys.into_iter().map(LongString::from).collect()
    }
}

/// One dead-lettering: where and why the message died, and how it had been published.
#[derive(Clone, Debug)]
pub(crate) struct Death<'a> {
    /// Why it died.
    pub(crate) reason: DeathReason,
    /// The queue it died in.
    pub(crate) queue: &'a str,
    /// The exchange it was last published to (for an earlier copy, that dead-letter exchange).
    pub(crate) exchange: &'a str,
    /// The routing key it was last published with (the one basic.deliver carries).
    pub(crate) routing_key: &'a str,
    /// The keys of a copy this module made ([`DeadLettered::routing_keys`]), if the queue kept them. None for a
    /// message as its publisher sent it: its keys are then `routing_key` and its CC and BCC headers. A copy
    /// without them is treated the same way, which loses the BCC keys it was routed with and adds its CC keys where
    /// a dead-letter routing key replaced them.
    pub(crate) earlier_keys: Option<&'a RoutingKeys>,
    /// When it died; `x-death`'s `time` is this in whole seconds.
    pub(crate) time: SystemTime,
}

/// The copy to publish to the dead-letter exchange.
#[derive(Clone, Debug)]
pub(crate) struct DeadLettered {
    /// Its property flags and list.
    pub(crate) properties_raw: Bytes,
    /// The keys to route it with; the queue keeps them with the copy for its next death ([`Death::earlier_keys`]).
    pub(crate) routing_keys: RoutingKeys,
    /// Why it died this time; a rejection is never a cycle.
    reason: DeathReason,
    /// Its history, this death included.
    history: DeathHistory,
}

impl DeadLettered {
    /// The routing key basic.deliver carries for the copy: the first it is routed with.
    pub(crate) fn routing_key(&self) -> &str {
        self.routing_keys.keys.first().map_or("", String::as_str)
    }

    /// Whether delivering the copy to `target_queue` closes a dead-letter cycle, which RabbitMQ drops for that
    /// queue (`rabbit_dead_letter:detect_cycles/3`): never when this death is a rejection; otherwise when the copy
    /// already died in the target and no death since, that one included, was a rejection. Ask it for each queue
    /// the dead-letter exchange routed to; the copy still goes to the others.
    pub(crate) fn is_cycle(&self, target_queue: &str) -> bool {
        self.reason != DeathReason::Rejected && self.history.is_cycle(target_queue)
    }

    /// The queues it died in, most recent first, for the warning RabbitMQ logs when it drops a cycle: "Message
    /// dropped because the following list of queues (ordered by death recency) contains a dead letter cycle
    /// without reason 'rejected'", listing the target queue and then these.
    pub(crate) fn death_queues(&self) -> Vec<String> {
        self.history.queue_names()
    }
}

/// Makes the dead-lettered copy of a message whose properties are `properties_raw`. `dlx_routing_key` is the
/// queue's `x-dead-letter-routing-key`: with one the copy is routed with that key alone, without one with every key
/// the message was published with (CC and BCC keys included). Fails only when the properties do not decode.
///
/// The copy's headers: `BCC` removed (RabbitMQ strips it at publish; `CC` stays, even beside a dead-letter routing
/// key, as of 3.13); `x-death` updated ([`DeathHistory::record`]); `x-first-death-reason`, `-queue` and `-exchange`
/// set if the message had no `x-death` array; `x-last-death-reason`, `-queue` and `-exchange` set. The
/// `expiration` property is removed, its value kept in the new record's `original-expiration`. Every other property
/// is kept; the header table comes out sorted by key, as RabbitMQ sorts it (`lists:usort` in `protocol_state`).
pub(crate) fn dead_letter(
    properties_raw: &[u8],
    death: &Death<'_>,
    dlx_routing_key: Option<&str>,
) -> Result<DeadLettered, AmqpError> {
    let properties = decode_properties(properties_raw)?;
    let mut headers = properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    let published;
    let keys = match death.earlier_keys {
        Some(keys) => keys,
        None => {
            published = RoutingKeys::published(death.routing_key, properties.headers().as_ref());
            &published
        }
    };
    headers.remove("BCC");

    let mut history = DeathHistory::from_header(headers.get("x-death"));
    let first = !history.existed;
    history.record(DeathRecord {
        queue: death.queue.into(),
        reason: death.reason.as_str().into(),
        count: 1,
        time: seconds(death.time),
        exchange: death.exchange.into(),
        routing_keys: keys.recorded(),
        original_expiration: properties.expiration().as_ref().map(|e| {
            normalise_expiration(e.as_str().as_bytes()).unwrap_or_else(|| e.as_str().into())
        }),
    });

    let mut set = |key: &str, value: AMQPValue| {
        headers.insert(ShortString::from(key), value);
    };
    set("x-death", history.to_header());
    let text = |s: &str| AMQPValue::LongString(s.into());
    if first {
        set("x-first-death-reason", text(death.reason.as_str()));
        set("x-first-death-queue", text(death.queue));
        set("x-first-death-exchange", text(death.exchange));
    }
    set("x-last-death-reason", text(death.reason.as_str()));
    set("x-last-death-queue", text(death.queue));
    set("x-last-death-exchange", text(death.exchange));

    let copy = copy_without_expiration(&properties, FieldTable::from(headers));
    let routing_keys = match dlx_routing_key {
        Some(key) => RoutingKeys {
            keys: vec![key.to_owned()],
            bcc: keys.bcc.clone(),
        },
        None => keys.clone(),
    };
    Ok(DeadLettered {
        properties_raw: encode_properties(&copy)?,
        routing_keys,
        reason: death.reason,
        history,
    })
}

/// The long-string elements of an array header (`CC` or `BCC`); nothing for a header of another type, which
/// RabbitMQ refuses at publish (`unacceptable_type_in_header`).
fn header_keys(headers: Option<&FieldTable>, name: &str) -> Vec<String> {
    match headers.and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::FieldArray(values)) => values
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whole seconds since the epoch (RabbitMQ takes milliseconds and writes them `div 1000`); 0 before it.
fn seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `properties` with `headers` in place of its own and no expiration; amq-protocol can set a property but not
/// clear one, so the others are copied one by one.
fn copy_without_expiration(properties: &AMQPProperties, headers: FieldTable) -> AMQPProperties {
    let p = properties;
    let mut copy = AMQPProperties::default().with_headers(headers);
    if let Some(v) = p.content_type() {
        copy = copy.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        copy = copy.with_content_encoding(v.clone());
    }
    if let Some(v) = *p.delivery_mode() {
        copy = copy.with_delivery_mode(v);
    }
    if let Some(v) = *p.priority() {
        copy = copy.with_priority(v);
    }
    if let Some(v) = p.correlation_id() {
        copy = copy.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        copy = copy.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        copy = copy.with_message_id(v.clone());
    }
    if let Some(v) = *p.timestamp() {
        copy = copy.with_timestamp(v);
    }
    if let Some(v) = p.kind() {
        copy = copy.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        copy = copy.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        copy = copy.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        copy = copy.with_cluster_id(v.clone());
    }
    copy
}

mod death_history;
#[cfg(test)]
mod tests;
