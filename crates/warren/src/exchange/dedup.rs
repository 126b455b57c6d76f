//! The `x-message-deduplication` exchange of rabbitmq-message-deduplication: its arguments, checked at declare as
//! the plugin checks them (`RabbitMQMessageDeduplication.Exchange.validate/1`, refusals word for word, including
//! the runs of spaces its line-continued Elixir strings put in them), and its cache of the deduplication keys seen.
//! Routing is the vhost's: a message whose key the cache holds routes nowhere (its alternate exchange applies, as
//! for any route RabbitMQ finds empty); any other routes as fanout. Pure: no I/O.

use std::sync::Mutex;

use warren_protocol::error::AmqpError;
use warren_protocol::field_type::integer;
use warren_protocol::{AMQPValue, FieldTable};
use warren_store::dedup_table::{DedupInsert, DedupTable};

/// The plugin's refusal of a missing or bad `x-cache-size` of any type but a string.
const SIZE_REFUSED: &str =
    "Missing or invalid argument,           'x-cache-size' must be an integer greater than 0";
/// Its refusal of an `x-cache-size` string that does not parse as an integer.
const SIZE_TEXT_REFUSED: &str =
    "Missing or invalid argument,                       'x-cache-size' must be an integer greater than 0";
/// Its refusal of a bad `x-cache-ttl` of any type but a string.
const TTL_REFUSED: &str =
    "Invalid argument,              'x-cache-ttl' must be an integer greater than 0";
/// Its refusal of an `x-cache-ttl` string that does not parse as an integer.
const TTL_TEXT_REFUSED: &str =
    "Invalid argument,                       'x-cache-ttl' must be an integer greater than 0";
/// Its refusal of an `x-cache-persistence` other than "disk" or "memory".
const PERSISTENCE_REFUSED: &str =
    "Invalid argument,              'x-cache-persistence' must be either 'disk' or 'memory'";

/// `x-cache-persistence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CachePersistence {
    /// `disk`, or absent: on a durable exchange, the keys are kept in the message store (Warren's default; the
    /// plugin's is `memory`).
    Disk,
    /// `memory`: the keys are never stored; a restart forgets them.
    Memory,
}

/// A deduplicating exchange's arguments, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DedupSettings {
    /// `x-cache-size`: the most keys remembered; the oldest goes when a new one needs room.
    pub(crate) capacity: u32,
    /// `x-cache-ttl`: how long a key is remembered, in milliseconds; None: until evicted.
    pub(crate) ttl: Option<u64>,
    /// `x-cache-persistence`.
    pub(crate) persistence: CachePersistence,
}

impl DedupSettings {
    /// Checks `arguments` as the plugin does at declare (size, then TTL, then persistence); Err is its 406.
    pub(crate) fn parse(arguments: &FieldTable) -> Result<DedupSettings, AmqpError> {
        let table = arguments.inner();
        let capacity = match table.get("x-cache-size") {
            Some(value) => positive(value, SIZE_REFUSED, SIZE_TEXT_REFUSED)?,
            None => return Err(AmqpError::precondition(SIZE_REFUSED)),
        };
        let ttl = match table.get("x-cache-ttl") {
            Some(value) => Some(positive(value, TTL_REFUSED, TTL_TEXT_REFUSED)?),
            None => None,
        };
        let persistence = match table.get("x-cache-persistence").map(text) {
            None => CachePersistence::Disk,
            Some(Some("disk")) => CachePersistence::Disk,
            Some(Some("memory")) => CachePersistence::Memory,
            Some(_) => return Err(AmqpError::precondition(PERSISTENCE_REFUSED)),
        };
        Ok(DedupSettings {
            // A cache of more than 2^32 keys would not fit in memory anyway.
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
            ttl,
            persistence,
        })
    }
}

/// A long string's text (the plugin matches `:longstr` only); None for any other type.
fn text(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        _ => None,
    }
}

/// An integer above 0: any integer type, or a long string holding one. The plugin takes a string that merely
/// starts with an integer, of any sign (`Integer.parse/2`), and then fails or misbehaves on it; Warren refuses
/// such a string with the same text.
fn positive(value: &AMQPValue, refused: &str, text_refused: &str) -> Result<u64, AmqpError> {
    let n: Option<i64> = match value {
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        AMQPValue::LongString(_) => {
            let parsed = text(value).and_then(|t| t.parse::<i64>().ok());
            return parsed
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| AmqpError::precondition(text_refused));
        }
        other => integer(other),
    };
    n.and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| AmqpError::precondition(refused))
}

/// What the cache made of a message's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Seen within its TTL: the message is not routed.
    Duplicate,
    /// First seen (or its TTL had passed): now remembered until `expires_at` (ms since the epoch; None: until
    /// evicted).
    New {
        /// When the key is forgotten.
        expires_at: Option<u64>,
    },
}

/// The keys one deduplicating exchange has seen.
#[derive(Debug)]
pub(crate) struct DedupCache {
    /// Its arguments.
    pub(crate) settings: DedupSettings,
    /// Its message-store id when its keys are stored (durable, `x-cache-persistence` not `memory`).
    pub(crate) store_id: Option<u64>,
    /// A short lock per message with a key: one hash lookup and insert.
    keys: Mutex<DedupTable>,
}

impl DedupCache {
    /// An empty cache.
    pub(crate) fn new(settings: DedupSettings, store_id: Option<u64>) -> DedupCache {
        DedupCache {
            settings,
            store_id,
            keys: Mutex::new(DedupTable::new(settings.capacity as usize)),
        }
    }

    /// Checks `key` at `now` and remembers it if new: for the message's own `x-cache-ttl` when it has one, else
    /// the exchange's.
    pub(crate) fn check(&self, key: &[u8], message_ttl: Option<i64>, now: u64) -> Seen {
        let expires_at = match message_ttl {
            Some(ttl) => Some(now.saturating_add_signed(ttl)),
            None => self.settings.ttl.map(|ttl| now.saturating_add(ttl)),
        };
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.insert(key, expires_at, now) {
            DedupInsert::Present => Seen::Duplicate,
            DedupInsert::Inserted => Seen::New { expires_at },
        }
    }

    /// Keys remembered now (an expired key counts until a lookup or an eviction drops it).
    pub(crate) fn entries(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Puts back a key recovered from the store (oldest first), unless it expired meanwhile.
    pub(crate) fn restore(&self, key: &[u8], expires_at: Option<u64>, now: u64) {
        if expires_at.is_none_or(|at| at > now) {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.put(key, expires_at, ());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::error::ReplyCode;
    use warren_protocol::LongString;

    fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut table = FieldTable::default();
        for (k, v) in pairs {
            table.insert((*k).into(), v.clone());
        }
        table
    }

    fn refusal(pairs: &[(&str, AMQPValue)]) -> Option<String> {
        DedupSettings::parse(&args(pairs)).err().map(|e| {
            assert_eq!(e.code, ReplyCode::PreconditionFailed);
            e.text
        })
    }

    fn s(text: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(text))
    }

    #[test]
    fn the_plugins_argument_types_are_accepted() {
        for size in [
            AMQPValue::ShortInt(10),
            AMQPValue::LongLongInt(10),
            AMQPValue::LongUInt(10),
            s("10"),
        ] {
            let settings = DedupSettings::parse(&args(&[
                ("x-cache-size", size),
                ("x-cache-ttl", s("1000")),
                ("x-cache-persistence", s("memory")),
            ]));
            assert_eq!(
                settings.ok(),
                Some(DedupSettings {
                    capacity: 10,
                    ttl: Some(1000),
                    persistence: CachePersistence::Memory
                })
            );
        }
        let plain = DedupSettings::parse(&args(&[("x-cache-size", AMQPValue::LongInt(1))]));
        assert_eq!(
            plain.map(|s| (s.ttl, s.persistence)).ok(),
            Some((None, CachePersistence::Disk))
        );
    }

    #[test]
    fn bad_arguments_get_the_plugins_refusals_in_its_order() {
        let size = "PRECONDITION_FAILED - Missing or invalid argument,           'x-cache-size' must be an integer greater than 0";
        assert_eq!(refusal(&[]).as_deref(), Some(size));
        assert_eq!(
            refusal(&[("x-cache-size", AMQPValue::LongInt(0))]).as_deref(),
            Some(size)
        );
        assert_eq!(
            refusal(&[("x-cache-size", AMQPValue::Double(5.0))]).as_deref(),
            Some(size)
        );
        assert_eq!(
            refusal(&[("x-cache-size", s("foo")), ("x-cache-ttl", s("bar"))]).as_deref(),
            Some("PRECONDITION_FAILED - Missing or invalid argument,                       'x-cache-size' must be an integer greater than 0")
        );
        assert_eq!(
            refusal(&[("x-cache-size", AMQPValue::LongInt(5)), ("x-cache-ttl", AMQPValue::LongInt(-1))]).as_deref(),
            Some("PRECONDITION_FAILED - Invalid argument,              'x-cache-ttl' must be an integer greater than 0")
        );
        assert_eq!(
            refusal(&[("x-cache-size", AMQPValue::LongInt(5)), ("x-cache-persistence", s("tape"))]).as_deref(),
            Some("PRECONDITION_FAILED - Invalid argument,              'x-cache-persistence' must be either 'disk' or 'memory'")
        );
    }

    #[test]
    fn a_key_is_a_duplicate_within_its_ttl_and_the_message_ttl_overrides() {
        let settings = DedupSettings {
            capacity: 10,
            ttl: Some(1_000),
            persistence: CachePersistence::Memory,
        };
        let cache = DedupCache::new(settings, None);
        assert_eq!(
            cache.check(b"a", None, 0),
            Seen::New {
                expires_at: Some(1_000)
            }
        );
        assert_eq!(cache.check(b"a", None, 999), Seen::Duplicate);
        assert_eq!(
            cache.check(b"a", None, 1_000),
            Seen::New {
                expires_at: Some(2_000)
            }
        );
        assert_eq!(
            cache.check(b"b", Some(100), 0),
            Seen::New {
                expires_at: Some(100)
            }
        );
        assert_eq!(
            cache.check(b"b", None, 100),
            Seen::New {
                expires_at: Some(1_100)
            }
        );
        // A TTL of 0 or less remembers the key for no time at all.
        assert_eq!(
            cache.check(b"c", Some(0), 5),
            Seen::New {
                expires_at: Some(5)
            }
        );
        assert_eq!(
            cache.check(b"c", Some(0), 5),
            Seen::New {
                expires_at: Some(5)
            }
        );
    }

    #[test]
    fn the_cache_keeps_at_most_its_size_evicting_the_oldest() {
        let settings = DedupSettings {
            capacity: 2,
            ttl: None,
            persistence: CachePersistence::Memory,
        };
        let cache = DedupCache::new(settings, None);
        for key in [b"a", b"b", b"c"] {
            assert_eq!(cache.check(key, None, 0), Seen::New { expires_at: None });
        }
        assert_eq!(cache.check(b"c", None, 0), Seen::Duplicate);
        assert_eq!(
            cache.check(b"a", None, 0),
            Seen::New { expires_at: None },
            "evicted"
        );
        cache.restore(b"z", Some(10), 20);
        assert_eq!(
            cache.check(b"z", None, 20),
            Seen::New { expires_at: None },
            "restored expired"
        );
    }
}
