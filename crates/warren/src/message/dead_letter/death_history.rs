//! A message's dead-letter history, the `x-death` header: one record per (queue, reason), most recent first. Read
//! back from the header, updated by each death, written out again, and asked whether a dead-lettering closes a cycle.
//! Follows RabbitMQ 3.13.7 with the `message_containers_deaths_v2` feature flag on (stable, so on in every cluster
//! made by 3.13.3 or later): `mc:record_death/4`, `mc:is_death_cycle/2` (`is_cycle_v2`) and, in `mc_amqpl`,
//! `headers_to_deaths`, `recover_deaths` and `death_table`.

use warren_protocol::types::FieldArray;
use warren_protocol::{AMQPValue, FieldTable, LongString};

/// One record of the history: every time the message died in `queue` for `reason`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct DeathRecord {
    /// The queue it died in.
    pub(super) queue: LongString,
    /// `rejected`, `expired`, `maxlen` or `delivery_limit` (a record read back keeps whatever it said).
    pub(super) reason: LongString,
    /// How many times; written as a signed 64-bit `long` (type `l`), as RabbitMQ writes it.
    pub(super) count: i64,
    /// When it first died there for this reason, in seconds (an AMQP timestamp, type `T`). A later death with the
    /// same queue and reason does not move it: RabbitMQ keeps a `last_time` too but never writes it in `x-death`.
    pub(super) time: i64,
    /// The exchange it had been published to before that first death.
    pub(super) exchange: LongString,
    /// The routing keys it had been published with, CC keys included and BCC keys left out.
    pub(super) routing_keys: Vec<LongString>,
    /// Its `expiration` property at that first death, as RabbitMQ parsed it (`integer_to_binary`).
    pub(super) original_expiration: Option<LongString>,
}

impl DeathRecord {
    /// Reads one `x-death` entry as `recover_deaths` does: `exchange`, `queue`, `routing-keys`, `reason`, `count`
    /// and an integer `time` must all be there, or the entry is dropped. Where RabbitMQ would crash on a value of
    /// the wrong type (a count that is a string, say) the entry is dropped too.
    fn from_table(table: &FieldTable) -> Option<DeathRecord> {
        let field = |key: &str| table.inner().get(key);
        let routing_keys = match field("routing-keys")? {
            AMQPValue::FieldArray(keys) => keys.as_slice().iter().filter_map(binary).collect(),
            _ => return None,
        };
        let original_expiration = field("original-expiration")
            .and_then(binary)
            .and_then(|raw| normalise_expiration(raw.as_bytes()));
        Some(DeathRecord {
            queue: binary(field("queue")?)?,
            reason: binary(field("reason")?)?,
            count: integer(field("count")?)?,
            time: integer(field("time")?)?,
            exchange: binary(field("exchange")?)?,
            routing_keys,
            original_expiration,
        })
    }

    /// The entry as `death_table` writes it (the table's keys come out sorted when it is encoded).
    fn to_table(&self) -> FieldTable {
        let mut table = FieldTable::default();
        table.insert("count".into(), AMQPValue::LongLongInt(self.count));
        table.insert("reason".into(), AMQPValue::LongString(self.reason.clone()));
        table.insert("queue".into(), AMQPValue::LongString(self.queue.clone()));
        // Erlang writes `<<V:64>>`: a negative time read back from a client's header keeps its bits.
        table.insert("time".into(), AMQPValue::Timestamp(self.time as u64));
        table.insert(
            "exchange".into(),
            AMQPValue::LongString(self.exchange.clone()),
        );
        let keys = self
            .routing_keys
            .iter()
            .cloned()
            .map(AMQPValue::LongString)
            .collect::<Vec<_>>();
        table.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(keys)),
        );
        if let Some(expiration) = &self.original_expiration {
            table.insert(
                "original-expiration".into(),
                AMQPValue::LongString(expiration.clone()),
            );
        }
        table
    }

    /// Whether this record and `other` are for the same queue and reason (RabbitMQ's death key).
    fn same_key(&self, other: &DeathRecord) -> bool {
        self.queue == other.queue && self.reason == other.reason
    }
}

/// The records of one message, most recent first.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct DeathHistory {
    /// Most recent first.
    pub(super) records: Vec<DeathRecord>,
    /// Whether the message already had a history (an `x-death` array, even one whose entries were all dropped). A
    /// message without one gets the `x-first-death-*` headers at this death.
    pub(super) existed: bool,
}

impl DeathHistory {
    /// Reads the `x-death` header's value (`headers_to_deaths`). A header that is not an array counts as no
    /// history: the death about to be recorded is then the first, and replaces it.
    pub(super) fn from_header(x_death: Option<&AMQPValue>) -> DeathHistory {
        match x_death {
            Some(AMQPValue::FieldArray(entries)) => DeathHistory {
                records: entries
                    .as_slice()
                    .iter()
                    .filter_map(|entry| match entry {
                        AMQPValue::FieldTable(table) => DeathRecord::from_table(table),
                        _ => None,
                    })
                    .collect(),
                existed: true,
            },
            _ => DeathHistory::default(),
        }
    }

    /// Records a death (`mc:record_death/4`): the record for the same queue and reason, if any, counts one more and
    /// moves to the front, keeping its time, exchange, routing keys and original expiration; otherwise `new` (with
    /// a count of 1) goes in front. The other records keep their order.
    pub(super) fn record(&mut self, new: DeathRecord) {
        let record = match self.records.iter().position(|r| r.same_key(&new)) {
            Some(at) => {
                let mut earlier = self.records.remove(at);
                // Erlang's integers do not overflow; its 64-bit encoding then truncates, as wrapping does.
                earlier.count = earlier.count.wrapping_add(1);
                earlier
            }
            None => new,
        };
        self.records.insert(0, record);
    }

    /// The `x-death` header's value.
    pub(super) fn to_header(&self) -> AMQPValue {
        let tables = self
            .records
            .iter()
            .map(|r| AMQPValue::FieldTable(r.to_table()))
            .collect::<Vec<_>>();
        AMQPValue::FieldArray(FieldArray::from(tables))
    }

    /// Whether dead-lettering into `target_queue` closes a cycle RabbitMQ drops (`is_cycle_v2`): the target is
    /// among the queues the message died in, and neither its most recent death there nor any death since was a
    /// rejection. A cycle a client took part in by rejecting is left alone.
    pub(super) fn is_cycle(&self, target_queue: &str) -> bool {
        let target = target_queue.as_bytes();
        match self
            .records
            .iter()
            .position(|r| r.queue.as_bytes() == target)
        {
            None => false,
            Some(at) => self.records[..=at]
                .iter()
                .all(|r| r.reason.as_bytes() != b"rejected"),
        }
    }

    /// The queues it died in, most recent first (`mc:death_queue_names/1`), for the log line of a dropped cycle.
    pub(super) fn queue_names(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| String::from_utf8_lossy(r.queue.as_bytes()).into_owned())
            .collect()
    }
}

/// What RabbitMQ writes as `original-expiration` for an `expiration` property: the integer it parsed
/// (`rabbit_basic:parse_expiration`, then `integer_to_binary`), so "060000" becomes "60000". None for a value that
/// is not an integer; RabbitMQ refuses those at publish.
pub(super) fn normalise_expiration(raw: &[u8]) -> Option<LongString> {
    let text = std::str::from_utf8(raw).ok()?;
    let value = text.parse::<i64>().ok()?;
    Some(LongString::from(value.to_string()))
}

/// A binary field value: an AMQP long string or byte array, both Erlang binaries in RabbitMQ.
fn binary(value: &AMQPValue) -> Option<LongString> {
    match value {
        AMQPValue::LongString(s) => Some(s.clone()),
        AMQPValue::ByteArray(b) => Some(LongString::from(b.as_slice().to_vec())),
        _ => None,
    }
}

/// An integer field value of any width (Erlang's integers have none).
fn integer(value: &AMQPValue) -> Option<i64> {
    Some(match *value {
        AMQPValue::ShortShortInt(v) => i64::from(v),
        AMQPValue::ShortShortUInt(v) => i64::from(v),
        AMQPValue::ShortInt(v) => i64::from(v),
        AMQPValue::ShortUInt(v) => i64::from(v),
        AMQPValue::LongInt(v) => i64::from(v),
        AMQPValue::LongUInt(v) => i64::from(v),
        AMQPValue::LongLongInt(v) => v,
        AMQPValue::Timestamp(v) => v as i64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::ShortString;

    fn record(queue: &str, reason: &str, time: i64) -> DeathRecord {
        DeathRecord {
            queue: queue.into(),
            reason: reason.into(),
            count: 1,
            time,
            exchange: "x".into(),
            routing_keys: vec!["k".into()],
            original_expiration: None,
        }
    }

    fn history(deaths: &[(&str, &str)]) -> DeathHistory {
        let mut history = DeathHistory::default();
        for (queue, reason) in deaths {
            history.record(record(queue, reason, 0));
        }
        history
    }

    #[test]
    fn the_same_queue_and_reason_counts_and_moves_to_the_front() {
        let mut h = DeathHistory::default();
        h.record(record("a", "expired", 1));
        h.record(record("b", "expired", 2));
        h.record(record("c", "maxlen", 3));
        h.record(record("a", "expired", 4));
        let order: Vec<_> = h
            .records
            .iter()
            .map(|r| (r.queue.to_string(), r.count, r.time))
            .collect();
        assert_eq!(
            order,
            [("a".into(), 2, 1), ("c".into(), 1, 3), ("b".into(), 1, 2)]
        );
        h.record(record("a", "rejected", 5));
        assert_eq!(h.records.len(), 4);
        assert_eq!(h.records[0].reason.to_string(), "rejected");
    }

    #[test]
    fn a_cycle_is_a_target_queue_in_the_history_with_no_rejection_since() {
        // q1 -expired-> q2 -expired-> back to q1: dropped.
        assert!(history(&[("q1", "expired"), ("q2", "expired")]).is_cycle("q1"));
        // A queue it never died in is not a cycle.
        assert!(!history(&[("q1", "expired"), ("q2", "expired")]).is_cycle("q3"));
        // A rejection since its last death in the target breaks the cycle.
        assert!(!history(&[("q1", "expired"), ("q2", "rejected")]).is_cycle("q1"));
        // So does a rejection that was its death in the target.
        assert!(!history(&[("q1", "rejected"), ("q2", "expired")]).is_cycle("q1"));
        // A rejection before its most recent death in the target does not.
        assert!(history(&[("q0", "rejected"), ("q1", "maxlen"), ("q2", "expired")]).is_cycle("q1"));
        // The most recent death in the target is the one that counts: q1 rejected, then q1 expired later.
        assert!(history(&[("q1", "rejected"), ("q1", "expired")]).is_cycle("q1"));
        assert!(!DeathHistory::default().is_cycle("q1"));
    }

    #[test]
    fn entries_missing_a_field_or_of_the_wrong_type_are_dropped_on_reading() {
        let good = record("q", "expired", 7).to_table();
        let mut no_time = good.inner().clone();
        no_time.remove(&ShortString::from("time"));
        let mut string_count = good.inner().clone();
        string_count.insert("count".into(), AMQPValue::LongString("1".into()));
        let mut int_time = good.inner().clone();
        int_time.insert("time".into(), AMQPValue::LongInt(9));
        let entries = vec![
            AMQPValue::FieldTable(FieldTable::from(no_time)),
            AMQPValue::LongString("junk".into()),
            AMQPValue::FieldTable(FieldTable::from(string_count)),
            AMQPValue::FieldTable(FieldTable::from(int_time)),
            AMQPValue::FieldTable(good.clone()),
        ];
        let h = DeathHistory::from_header(Some(&AMQPValue::FieldArray(entries.into())));
        assert!(h.existed);
        assert_eq!(h.records.iter().map(|r| r.time).collect::<Vec<_>>(), [9, 7]);
        assert_eq!(h.records[1].to_table(), good);
    }

    #[test]
    fn an_x_death_that_is_not_an_array_is_no_history() {
        let text = AMQPValue::LongString("dead".into());
        assert_eq!(
            DeathHistory::from_header(Some(&text)),
            DeathHistory::default()
        );
        assert_eq!(DeathHistory::from_header(None), DeathHistory::default());
        let empty = AMQPValue::FieldArray(FieldArray::default());
        assert!(DeathHistory::from_header(Some(&empty)).existed);
    }

    #[test]
    fn expirations_are_written_as_the_integer_rabbitmq_parsed() {
        assert_eq!(normalise_expiration(b"60000"), Some("60000".into()));
        assert_eq!(normalise_expiration(b"060000"), Some("60000".into()));
        assert_eq!(normalise_expiration(b"+5"), Some("5".into()));
        assert_eq!(normalise_expiration(b"soon"), None);
    }
}
