//! The `x-consistent-hash` exchange type, as RabbitMQ's rabbitmq_consistent_hash_exchange plugin declares and binds
//! it: a binding's routing key is its weight (1 to 10,000), and each message goes to one destination, chosen by a
//! hash of its routing key, of the header named by the `hash-header` argument, or of the property named by
//! `hash-property` (`message_id`, `correlation_id` or `timestamp`). A destination bound twice keeps its first
//! weight, as in the plugin.
//!
//! The choice is weighted rendezvous hashing: every destination scores the message by a hash of (message key,
//! destination) scaled by its weight, and the highest score wins. Shares follow the weights, and adding or removing
//! a binding moves only the keys that binding gains or loses (the plugin's bucket renumbering on removal moves
//! others too). Which destination a given key lands on differs from the plugin's; see docs/compatibility.md.

use std::hash::Hasher;

use rustc_hash::FxHasher;
use warren_protocol::{AMQPValue, FieldTable};

/// The largest binding weight the plugin accepts.
pub(crate) const MAX_WEIGHT: u32 = 10_000;

/// What a message is hashed on, read from the exchange's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HashOn {
    /// The routing key (no `hash-header` or `hash-property` argument).
    RoutingKey,
    /// A header of the message; a message without it hashes as one value.
    Header(String),
    /// A property of the message.
    Property(HashProperty),
}

/// The properties `hash-property` may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashProperty {
    /// `message_id`.
    MessageId,
    /// `correlation_id`.
    CorrelationId,
    /// `timestamp`.
    Timestamp,
}

fn text_argument(args: &FieldTable, key: &str) -> Option<String> {
    match args.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

impl HashOn {
    /// Reads `hash-header` and `hash-property`; the error is the plugin's 406 text.
    pub(crate) fn from_arguments(args: &FieldTable) -> Result<HashOn, String> {
        match (
            text_argument(args, "hash-header"),
            text_argument(args, "hash-property"),
        ) {
            (None, None) => Ok(HashOn::RoutingKey),
            (Some(header), None) => Ok(HashOn::Header(header)),
            (None, Some(property)) => match property.as_str() {
                "message_id" => Ok(HashOn::Property(HashProperty::MessageId)),
                "correlation_id" => Ok(HashOn::Property(HashProperty::CorrelationId)),
                "timestamp" => Ok(HashOn::Property(HashProperty::Timestamp)),
                other => Err(format!("Unsupported property: {other}")),
            },
            (Some(_), Some(_)) => {
                Err("hash-header and hash-property are mutually exclusive".to_owned())
            }
        }
    }
}

/// A binding key as a weight; the error is the plugin's 406 text.
pub(crate) fn binding_weight(key: &str) -> Result<u32, String> {
    let weight: i64 = key
        .parse()
        .map_err(|_| format!("The binding key must be an integer: <<\"{key}\">>"))?;
    if weight < 1 {
        return Err("The binding key must be greater than 0".to_owned());
    }
    if weight > i64::from(MAX_WEIGHT) {
        return Err(format!("The binding key must not exceed {MAX_WEIGHT}"));
    }
    Ok(weight as u32)
}

/// The bytes a header value is hashed as: strings as they are, numbers in decimal, anything else by its form.
pub(crate) fn header_key(value: Option<&AMQPValue>) -> Vec<u8> {
    match value {
        None => b"undefined".to_vec(),
        Some(AMQPValue::LongString(s)) => s.as_bytes().to_vec(),
        Some(AMQPValue::ShortString(s)) => s.as_str().as_bytes().to_vec(),
        Some(AMQPValue::LongLongInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::LongInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::LongUInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::ShortInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::ShortUInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::ShortShortInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::ShortShortUInt(n)) => n.to_string().into_bytes(),
        Some(AMQPValue::Timestamp(n)) => n.to_string().into_bytes(),
        Some(other) => format!("{other:?}").into_bytes(),
    }
}

/// The destinations of one exchange with their weights, in first-binding order.
#[derive(Debug)]
pub(crate) struct HashRing {
    /// (destination position, its hash seed, its weight).
    members: Vec<(usize, u64, f64)>,
}

/// A stable 64-bit hash of `bytes` (FxHash, then a SplitMix64 finaliser for avalanche).
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(bytes);
    mix(hasher.finish())
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl HashRing {
    /// The ring of `members`: (destination position, destination name, binding key) in binding order. A binding
    /// whose key is not a valid weight (refused when bound; possible only from an old store) is left out, as is a
    /// second binding of a destination.
    pub(crate) fn build<'a>(members: impl Iterator<Item = (usize, String, &'a str)>) -> HashRing {
        let mut ring: Vec<(usize, u64, f64)> = Vec::new();
        for (position, name, key) in members {
            if ring.iter().any(|&(p, _, _)| p == position) {
                continue;
            }
            if let Ok(weight) = binding_weight(key) {
                ring.push((position, hash_bytes(name.as_bytes()), f64::from(weight)));
            }
        }
        HashRing { members: ring }
    }

    /// The destination position `key` goes to; None when nothing is bound.
    pub(crate) fn pick(&self, key: &[u8]) -> Option<usize> {
        let key_hash = hash_bytes(key);
        let mut best: Option<(usize, f64)> = None;
        for &(position, seed, weight) in &self.members {
            // A uniform draw in (0, 1) from 53 bits, then the weighted score w / -ln(u): the highest wins, so each
            // destination's share is its weight over the total.
            let draw = mix(key_hash ^ seed);
            let u = ((draw >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = weight / -u.ln();
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((position, score));
            }
        }
        best.map(|(position, _)| position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(members: &[(&str, &str)]) -> HashRing {
        HashRing::build(
            members
                .iter()
                .enumerate()
                .map(|(i, (name, key))| (i, (*name).to_owned(), *key)),
        )
    }

    fn shares(ring: &HashRing, n: usize, keys: usize) -> Vec<f64> {
        let mut counts = vec![0usize; n];
        for k in 0..keys {
            counts[ring.pick(format!("key-{k}").as_bytes()).unwrap()] += 1;
        }
        counts.iter().map(|&c| c as f64 / keys as f64).collect()
    }

    #[test]
    fn shares_follow_the_weights_within_a_percent_over_100k_keys() {
        let ring = ring(&[("q1", "1"), ("q2", "2"), ("q3", "3"), ("q4", "4")]);
        let got = shares(&ring, 4, 100_000);
        for (i, share) in got.iter().enumerate() {
            let want = (i + 1) as f64 / 10.0;
            assert!((share - want).abs() < 0.01, "q{}: {share} vs {want}", i + 1);
        }
    }

    #[test]
    fn adding_or_removing_a_binding_moves_only_its_share() {
        let before = ring(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let after_add = ring(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        let name = |r: &HashRing, names: &[&str], k: usize| {
            names[r.pick(format!("k{k}").as_bytes()).unwrap()].to_owned()
        };
        let mut moved = 0;
        for k in 0..20_000 {
            let old = name(&before, &["a", "b", "c"], k);
            let new = name(&after_add, &["a", "b", "c", "d"], k);
            if old != new {
                assert_eq!(new, "d", "a key moved between old destinations");
                moved += 1;
            }
        }
        // About a quarter of the keys move, all to the new destination.
        assert!((4_000..6_000).contains(&moved), "{moved}");
        // Removing b (the middle one) moves exactly b's keys.
        let after_remove = ring(&[("a", "1"), ("c", "1")]);
        for k in 0..20_000 {
            let old = name(&before, &["a", "b", "c"], k);
            let new = name(&after_remove, &["a", "c"], k);
            if old != "b" {
                assert_eq!(old, new);
            }
        }
    }

    #[test]
    fn a_destination_keeps_its_first_weight_and_bad_weights_are_refused() {
        let r = HashRing::build(
            [(0, "a".to_owned(), "1"), (0, "a".to_owned(), "100")]
                .into_iter()
                .chain([(1, "b".to_owned(), "1")]),
        );
        let got = shares(&r, 2, 20_000);
        assert!((got[0] - 0.5).abs() < 0.02, "{got:?}");
        assert_eq!(binding_weight("10000"), Ok(10_000));
        assert_eq!(
            binding_weight("0"),
            Err("The binding key must be greater than 0".to_owned())
        );
        assert_eq!(
            binding_weight("10001"),
            Err("The binding key must not exceed 10000".to_owned())
        );
        assert_eq!(
            binding_weight("abc"),
            Err("The binding key must be an integer: <<\"abc\">>".to_owned())
        );
        assert_eq!(ring(&[]).pick(b"x"), None);
    }

    #[test]
    fn hash_arguments_are_checked_as_the_plugin_does() {
        let args = |pairs: &[(&str, &str)]| {
            let mut t = FieldTable::default();
            for (k, v) in pairs {
                t.insert((*k).into(), AMQPValue::LongString((*v).into()));
            }
            t
        };
        assert_eq!(HashOn::from_arguments(&args(&[])), Ok(HashOn::RoutingKey));
        assert_eq!(
            HashOn::from_arguments(&args(&[("hash-header", "h")])),
            Ok(HashOn::Header("h".into()))
        );
        assert_eq!(
            HashOn::from_arguments(&args(&[("hash-property", "message_id")])),
            Ok(HashOn::Property(HashProperty::MessageId))
        );
        assert_eq!(
            HashOn::from_arguments(&args(&[("hash-property", "app_id")])),
            Err("Unsupported property: app_id".to_owned())
        );
        assert_eq!(
            HashOn::from_arguments(&args(&[
                ("hash-header", "h"),
                ("hash-property", "timestamp")
            ])),
            Err("hash-header and hash-property are mutually exclusive".to_owned())
        );
    }
}
