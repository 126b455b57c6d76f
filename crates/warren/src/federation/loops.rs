//! Loop prevention, as RabbitMQ's federation does it: each link prepends an entry to a message's
//! `x-received-from` header naming the upstream it came from (`cluster-name`, `vhost`, ...); a message is not
//! forwarded once it carries `max-hops` entries, or an entry of the broker and vhost it would go to.

use warren_protocol::{AMQPValue, FieldTable};

/// The header links add to.
pub(crate) const RECEIVED_FROM: &str = "x-received-from";

/// Whether a message with `headers` may cross one more link into `downstream` (a cluster name) and
/// `downstream_vhost` (None: any vhost, for peers that do not say).
pub(crate) fn may_cross(
    headers: Option<&FieldTable>,
    max_hops: u64,
    downstream: &str,
    downstream_vhost: Option<&str>,
) -> bool {
    let Some(AMQPValue::FieldArray(trail)) = headers.and_then(|h| h.inner().get(RECEIVED_FROM))
    else {
        return true;
    };
    let entries = trail.as_slice();
    let text = |t: &FieldTable, key: &str| match t.inner().get(key) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let seen = entries.iter().any(|entry| match entry {
        AMQPValue::FieldTable(t) => {
            text(t, "cluster-name").as_deref() == Some(downstream)
                && match (downstream_vhost, text(t, "vhost")) {
                    (Some(want), Some(got)) => want == got,
                    _ => true,
                }
        }
        _ => false,
    });
    (entries.len() as u64) < max_hops && !seen
}

/// The `x-federation-upstream` exchange's test, its limits from its arguments (`x-max-hops`,
/// `x-downstream-name`, `x-downstream-vhost`), as the plugin's exchange type reads them.
pub(crate) fn should_forward(arguments: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let args = arguments.inner();
    let max_hops = match args.get("x-max-hops") {
        Some(AMQPValue::LongLongInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => u64::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortShortUInt(n)) => u64::from(*n),
        Some(AMQPValue::ShortUInt(n)) => u64::from(*n),
        // The plugin requires it; without, one hop as its default.
        _ => 1,
    };
    let name = |key: &str| match args.get(key) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    };
    match name("x-downstream-name") {
        Some(downstream) => may_cross(
            headers,
            max_hops,
            &downstream,
            name("x-downstream-vhost").as_deref(),
        ),
        None => may_cross(headers, max_hops, "\0no downstream named", None),
    }
}

#[cfg(test)]
mod tests {
    use warren_protocol::types::FieldArray;
    use warren_protocol::LongString;

    use super::*;

    fn entry(cluster: &str, vhost: &str) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert(
            "cluster-name".into(),
            AMQPValue::LongString(LongString::from(cluster.as_bytes().to_vec())),
        );
        t.insert(
            "vhost".into(),
            AMQPValue::LongString(LongString::from(vhost.as_bytes().to_vec())),
        );
        AMQPValue::FieldTable(t)
    }

    fn headers(entries: Vec<AMQPValue>) -> FieldTable {
        let mut array = FieldArray::default();
        for e in entries {
            array.push(e);
        }
        let mut h = FieldTable::default();
        h.insert(RECEIVED_FROM.into(), AMQPValue::FieldArray(array));
        h
    }

    #[test]
    fn hops_and_the_downstream_itself_stop_a_message() {
        assert!(may_cross(None, 1, "b", Some("/")));
        let once = headers(vec![entry("a", "/")]);
        assert!(
            !may_cross(Some(&once), 1, "b", Some("/")),
            "max-hops 1 reached"
        );
        assert!(may_cross(Some(&once), 2, "b", Some("/")));
        assert!(
            !may_cross(Some(&once), 5, "a", Some("/")),
            "came from a already"
        );
        assert!(
            may_cross(Some(&once), 5, "a", Some("other")),
            "another vhost of a"
        );
    }

    #[test]
    fn the_upstream_exchange_type_reads_its_arguments() {
        let mut args = FieldTable::default();
        args.insert("x-max-hops".into(), AMQPValue::LongLongInt(2));
        args.insert(
            "x-downstream-name".into(),
            AMQPValue::LongString(LongString::from(b"b".to_vec())),
        );
        let once = headers(vec![entry("a", "/")]);
        assert!(should_forward(&args, Some(&once)));
        let twice = headers(vec![entry("c", "/"), entry("a", "/")]);
        assert!(!should_forward(&args, Some(&twice)));
        let via_b = headers(vec![entry("b", "/")]);
        assert!(!should_forward(&args, Some(&via_b)));
    }
}
