//! A published message as the broker holds it: the raw content header and the body, shared by every queue it was
//! routed to (one copy for a fan-out to ten queues); and the copy dead-lettering makes of one ([`dead_letter`]).

pub(crate) mod dead_letter;
pub(crate) mod dedup;
pub(crate) mod sender_selected;
pub(crate) mod trace;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use warren_protocol::content::{
    decode_properties, delivery_mode, encode_properties, expiration, priority,
};
use warren_protocol::error::AmqpError;
use warren_protocol::{basic::AMQPProperties, AMQPValue, FieldTable};
use warren_store::{MessageMeta, StoredMessage};

/// Node-unique message ids; the message store keys bodies by them.
static NEXT_MESSAGE_ID: AtomicU64 = AtomicU64::new(1);

/// A published message, immutable once assembled and shared by every queue it was routed to.
#[derive(Debug)]
pub(crate) struct Message {
    /// Node-unique id: the message store's key for it.
    pub(crate) id: u64,
    /// The exchange it was published to (basic.deliver carries it).
    pub(crate) exchange: Arc<str>,
    /// The routing key it was published with.
    pub(crate) routing_key: Arc<str>,
    /// Property flags and list exactly as published: consumers receive them byte for byte.
    pub(crate) properties_raw: Bytes,
    /// The body, often a zero-copy slice of the publisher's read buffer.
    pub(crate) body: Bytes,
    /// What the queues read from its properties: persistence, expiration, priority.
    traits: Traits,
}

/// What the broker reads once from a message's properties, packed into one word: with it a message and its
/// reference counts take 128 bytes, two cache lines and one allocator size class. As separate fields (a bool, an
/// `Option<u64>` and an `Option<u8>`) they made it 144, a 160-byte allocation over three cache lines, and every
/// message crosses from the publisher's thread to the queue's and the consumer's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Traits(u64);

impl Traits {
    /// The low 40 bits: the expiration in milliseconds plus one, 0 for none ([`MAX_EXPIRY_MS`] needs 39 bits).
    const EXPIRATION: u64 = (1 << 40) - 1;
    /// Bits 40 to 47: the priority property's value.
    const PRIORITY_SHIFT: u32 = 40;
    /// The priority property is present.
    const HAS_PRIORITY: u64 = 1 << 48;
    /// delivery_mode = 2.
    const PERSISTENT: u64 = 1 << 49;
    /// Its headers may hold `CC` or `BCC` ([`sender_selected::may_carry`]).
    const SENDER_SELECTED: u64 = 1 << 50;

    fn new(persistent: bool, expiration: Option<u64>, priority: Option<u8>) -> Traits {
        let mut word = 0;
        if persistent {
            word |= Traits::PERSISTENT;
        }
        if let Some(p) = priority {
            word |= Traits::HAS_PRIORITY | u64::from(p) << Traits::PRIORITY_SHIFT;
        }
        Traits(word).with_expiration(expiration)
    }

    fn with_expiration(self, expiration: Option<u64>) -> Traits {
        let field = expiration.map_or(0, |ms| ms.min(MAX_EXPIRY_MS) + 1);
        Traits(self.0 & !Traits::EXPIRATION | field)
    }

    fn persistent(self) -> bool {
        self.0 & Traits::PERSISTENT != 0
    }

    fn expiration(self) -> Option<u64> {
        (self.0 & Traits::EXPIRATION).checked_sub(1)
    }

    fn priority(self) -> Option<u8> {
        (self.0 & Traits::HAS_PRIORITY != 0).then_some((self.0 >> Traits::PRIORITY_SHIFT) as u8)
    }
}

impl Message {
    /// A freshly published message with a new id.
    pub(crate) fn new(
        exchange: Arc<str>,
        routing_key: Arc<str>,
        properties_raw: Bytes,
        body: Bytes,
    ) -> Message {
        let mut traits = Traits::new(
            delivery_mode(&properties_raw) == Some(2),
            None,
            priority(&properties_raw),
        );
        if sender_selected::may_carry(&properties_raw) {
            traits.0 |= Traits::SENDER_SELECTED;
        }
        Message {
            id: NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed),
            exchange,
            routing_key,
            properties_raw,
            body,
            traits,
        }
    }

    /// A message read back from the store: it keeps the id it was stored under.
    pub(crate) fn restored(
        id: u64,
        exchange: &str,
        routing_key: &str,
        properties_raw: Bytes,
        body: Bytes,
    ) -> Message {
        Message {
            id,
            exchange: Arc::from(exchange),
            routing_key: Arc::from(routing_key),
            traits: Traits::new(
                delivery_mode(&properties_raw) == Some(2),
                // Checked when it was published.
                expiration(&properties_raw).and_then(|raw| parse_expiration(raw).ok()),
                priority(&properties_raw),
            ),
            properties_raw,
            body,
        }
    }

    /// Its headers may add routing keys (`CC`, `BCC`): its route is not only its exchange's and routing key's.
    pub(crate) fn may_select_keys(&self) -> bool {
        self.traits.0 & Traits::SENDER_SELECTED != 0
    }

    /// The same message without its `BCC` header (same id, body shared), as RabbitMQ strips it once routed;
    /// None when it has none.
    pub(crate) fn without_bcc(&self) -> Result<Option<Message>, AmqpError> {
        if !self.may_select_keys() {
            return Ok(None);
        }
        let Some(properties_raw) = sender_selected::without_bcc(&self.properties_raw)? else {
            return Ok(None);
        };
        Ok(Some(Message {
            id: self.id,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            properties_raw,
            body: self.body.clone(),
            traits: self.traits,
        }))
    }

    /// delivery_mode = 2: kept in the message store when routed to a durable queue.
    pub(crate) fn persistent(&self) -> bool {
        self.traits.persistent()
    }

    /// The expiration property in milliseconds (per-message TTL), checked when it was published.
    pub(crate) fn expiration(&self) -> Option<u64> {
        self.traits.expiration()
    }

    /// Sets the expiration read from the properties when the message was published (at most [`MAX_EXPIRY_MS`]).
    pub(crate) fn set_expiration(&mut self, expiration: Option<u64>) {
        self.traits = self.traits.with_expiration(expiration);
    }

    /// The priority property (RabbitMQ's priority queues).
    pub(crate) fn priority(&self) -> Option<u8> {
        self.traits.priority()
    }

    /// Decodes the properties; called only where routing or policy needs one.
    pub(crate) fn properties(&self) -> Result<AMQPProperties, AmqpError> {
        decode_properties(&self.properties_raw)
    }

    /// The headers table, if the message has one and it decodes.
    pub(crate) fn headers(&self) -> Option<FieldTable> {
        self.properties().ok()?.headers().clone()
    }

    /// Its properties with the `x-delivery-count` header set to `count` (a signed 64-bit integer, as RabbitMQ
    /// sends it): how a quorum queue redelivers a message that came back to it.
    pub(crate) fn with_delivery_count(&self, count: u64) -> Result<Bytes, AmqpError> {
        let properties = self.properties()?;
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(
            "x-delivery-count".into(),
            AMQPValue::LongLongInt(i64::try_from(count).unwrap_or(i64::MAX)),
        );
        encode_properties(&properties.with_headers(headers))
    }

    /// The body's length in bytes.
    pub(crate) fn body_size(&self) -> u64 {
        self.body.len() as u64
    }

    /// The message as the store keeps it, entering the store at `published_at_ms` (milliseconds since the epoch,
    /// [`now_ms`]), with the metadata a restarted queue needs to put it back as it was (see
    /// `QueueState::enqueue_recovered`): the publish time its queue's `x-message-ttl` counts from, its priority,
    /// and its own deadline (`expiration` counted from the same time).
    ///
    /// The deadline is stored, not only the `expiration` property that implies it, because recovery hands back no
    /// properties: learning which recovered messages expire would otherwise mean reading every stored body at
    /// start. It costs 8 bytes, and only for the messages that carry an `expiration`.
    ///
    /// The time is taken when the message is handed to the store, just before its queues take it in; a queue whose
    /// inbox was backed up counted its live TTL from a little later, so after a restart such a message may expire
    /// that much earlier than it would have.
    pub(crate) fn to_stored(&self, published_at_ms: u64) -> StoredMessage {
        StoredMessage {
            msg_id: self.id,
            exchange: self.exchange.to_string(),
            routing_key: self.routing_key.to_string(),
            properties_raw: self.properties_raw.clone(),
            body: self.body.clone(),
            meta: Some(MessageMeta {
                published_at_ms,
                expires_at_ms: self
                    .expiration()
                    .map(|ttl| published_at_ms.saturating_add(ttl)),
                priority: self.priority().unwrap_or(0),
            }),
        }
    }

    /// The message as the spill store keeps it: everything [`Message::restored`] needs to rebuild it (its TTL
    /// deadline and priority level stay with the queue's entry, so no metadata).
    pub(crate) fn to_spilled(&self) -> StoredMessage {
        StoredMessage {
            msg_id: self.id,
            exchange: self.exchange.to_string(),
            routing_key: self.routing_key.to_string(),
            properties_raw: self.properties_raw.clone(),
            body: self.body.clone(),
            meta: None,
        }
    }
}

/// Milliseconds since the epoch. Message TTLs count in wall-clock time, as in RabbitMQ, so that a publish time or
/// a deadline stored before a restart means the same after it.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The longest expiration RabbitMQ accepts, in milliseconds (ten years); also its limit for `x-message-ttl`.
pub(crate) const MAX_EXPIRY_MS: u64 = 315_360_000_000;

/// The expiration property as RabbitMQ reads it (Erlang's `string:to_integer`: an optional sign, then digits, and
/// nothing else), in milliseconds; the error is RabbitMQ's 406 for a publish that carries it.
pub(crate) fn parse_expiration(raw: &[u8]) -> Result<u64, AmqpError> {
    let text = String::from_utf8_lossy(raw);
    let invalid = |reason: String| {
        Err(AmqpError::precondition(format!(
            "invalid expiration '{text}': {reason}"
        )))
    };
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, &text[..]),
    };
    let digits_end = unsigned
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unsigned.len());
    if digits_end == 0 {
        return invalid("no_integer".to_owned());
    }
    let (digits, leftover) = unsigned.split_at(digits_end);
    if !leftover.is_empty() {
        return invalid(format!("{{leftover_string,{leftover:?}}}"));
    }
    let digits = match digits.trim_start_matches('0') {
        "" => "0",
        significant => significant,
    };
    if negative && digits != "0" {
        return invalid(format!("{{value_negative,-{digits}}}"));
    }
    match digits.parse::<u64>() {
        Ok(ms) if ms <= MAX_EXPIRY_MS => Ok(ms),
        _ => invalid(format!("{{value_too_large,{digits}}}")),
    }
}

/// Makes new message ids start above every id the store recovered, so ids stay unique across restarts.
pub(crate) fn continue_ids_above(max_recovered: u64) {
    NEXT_MESSAGE_ID.fetch_max(max_recovered + 1, Ordering::Relaxed);
}

/// When a message expires in its queue (milliseconds since the epoch), or never: an `Option<u64>` in 8 bytes,
/// since the queue keeps one per message (`u64::MAX`, past any deadline a clock gives, stands for never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expiry(u64);

impl Expiry {
    /// Never expires.
    pub(crate) const NEVER: Expiry = Expiry(u64::MAX);

    /// The deadline, if there is one.
    pub(crate) fn get(self) -> Option<u64> {
        (self != Expiry::NEVER).then_some(self.0)
    }
}

impl From<Option<u64>> for Expiry {
    fn from(deadline: Option<u64>) -> Expiry {
        // A deadline of u64::MAX (a saturated sum) is as good as never.
        deadline.map_or(Expiry::NEVER, Expiry)
    }
}

/// A message in a queue: the shared message plus the queue's own position and delivery state.
#[derive(Clone, Debug)]
pub(crate) struct QueuedMessage {
    /// Position in the queue; requeued messages go back to the place this number gives them.
    pub(crate) seq: u64,
    /// The message.
    pub(crate) message: Arc<Message>,
    /// Delivered before (requeued, or recovered after a restart).
    pub(crate) redelivered: bool,
    /// When it expires in this queue; kept when it is requeued.
    pub(crate) expires_at: Expiry,
    /// How often it came back to this queue, counted by a quorum queue (0 elsewhere): delivered with an
    /// `x-delivery-count` header of this value when above 0. The queue's own count, as RabbitMQ's quorum queues
    /// keep it: a header the publisher set is neither read nor kept past the first return.
    pub(crate) returns: u32,
}

impl QueuedMessage {
    /// The properties to deliver it with when they are not the published ones: with the queue's
    /// `x-delivery-count` once it came back. None: deliver `message.properties_raw` (no copy on the usual path;
    /// properties that do not decode go out as they are too).
    pub(crate) fn counted_properties(&self) -> Option<Bytes> {
        if self.returns == 0 {
            return None;
        }
        self.message
            .with_delivery_count(u64::from(self.returns))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_its_reference_counts_fits_two_cache_lines() {
        // 16 bytes of Arc counts: the allocation is 128 bytes, not the next size class.
        assert!(std::mem::size_of::<Message>() + 16 <= 128);
    }

    #[test]
    fn traits_keep_what_they_were_given() {
        for persistent in [false, true] {
            for expiration in [None, Some(0), Some(1), Some(60_000), Some(MAX_EXPIRY_MS)] {
                for priority in [None, Some(0), Some(9), Some(255)] {
                    let t = Traits::new(persistent, expiration, priority);
                    assert_eq!(
                        (t.persistent(), t.expiration(), t.priority()),
                        (persistent, expiration, priority)
                    );
                    let cleared = t.with_expiration(None);
                    assert_eq!(
                        (
                            cleared.persistent(),
                            cleared.expiration(),
                            cleared.priority()
                        ),
                        (persistent, None, priority)
                    );
                }
            }
        }
    }

    fn refusal(raw: &str) -> String {
        let text = parse_expiration(raw.as_bytes()).unwrap_err().text;
        text.strip_prefix("PRECONDITION_FAILED - ")
            .expect("a 406")
            .to_owned()
    }

    #[test]
    fn expirations_are_read_as_rabbitmq_reads_them_and_refused_with_its_texts() {
        assert_eq!(parse_expiration(b"500").unwrap(), 500);
        assert_eq!(parse_expiration(b"+5").unwrap(), 5);
        assert_eq!(parse_expiration(b"007").unwrap(), 7);
        assert_eq!(parse_expiration(b"-0").unwrap(), 0);
        assert_eq!(parse_expiration(b"315360000000").unwrap(), MAX_EXPIRY_MS);
        assert_eq!(refusal("abc"), "invalid expiration 'abc': no_integer");
        assert_eq!(refusal(""), "invalid expiration '': no_integer");
        assert_eq!(refusal(" 5"), "invalid expiration ' 5': no_integer");
        assert_eq!(
            refusal("-1"),
            "invalid expiration '-1': {value_negative,-1}"
        );
        assert_eq!(
            refusal("1.5"),
            "invalid expiration '1.5': {leftover_string,\".5\"}"
        );
        assert_eq!(
            refusal("315360000001"),
            "invalid expiration '315360000001': {value_too_large,315360000001}"
        );
        assert_eq!(
            refusal("99999999999999999999"),
            "invalid expiration '99999999999999999999': {value_too_large,99999999999999999999}"
        );
    }
}
