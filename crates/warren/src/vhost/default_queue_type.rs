//! A vhost's default queue type (RabbitMQ's vhost metadata `default_queue_type`): the type a queue declared
//! without `x-queue-type` gets, as RabbitMQ's `rabbit_amqqueue:augment_declare_args` injects it. Only into a
//! declare the type accepts (a quorum queue must be durable, neither exclusive nor auto-delete); any other gets
//! `classic`, RabbitMQ's fallback.

use std::borrow::Cow;

use super::Vhost;
use crate::queue::arguments::QueueType;
use warren_protocol::{AMQPValue, FieldTable};

/// The types a vhost may default to, by their names; `undefined` (RabbitMQ's "none set") reads as None.
pub(crate) fn parse_default_queue_type(text: &str) -> Result<Option<QueueType>, String> {
    match text {
        "undefined" => Ok(None),
        "classic" => Ok(Some(QueueType::Classic)),
        "quorum" => Ok(Some(QueueType::Quorum)),
        "stream" => Err("default queue type 'stream': Warren has no stream queues".to_owned()),
        other => Err(format!(
            "default queue type '{other}' is not a queue type (classic, quorum)"
        )),
    }
}

/// The name RabbitMQ shows for `queue_type` (`undefined` for none).
pub(crate) fn default_queue_type_name(queue_type: Option<QueueType>) -> &'static str {
    match queue_type {
        None => "undefined",
        Some(QueueType::Classic) => "classic",
        Some(QueueType::Quorum) => "quorum",
        Some(QueueType::Stream) => "stream",
    }
}

impl Vhost {
    /// Sets (or clears) the vhost's default queue type; it applies to the next queue.declare.
    pub(crate) fn set_default_queue_type(&self, queue_type: Option<QueueType>) {
        *self
            .default_queue_type
            .write()
            .unwrap_or_else(|e| e.into_inner()) = queue_type;
    }

    /// The vhost's default queue type, if one is set.
    pub(crate) fn default_queue_type(&self) -> Option<QueueType> {
        *self
            .default_queue_type
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A declare's arguments with the `x-queue-type` the vhost's default gives it: unchanged when it names a
    /// type or the vhost has no default.
    pub(crate) fn with_default_queue_type<'a>(
        &self,
        arguments: &'a FieldTable,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> Cow<'a, FieldTable> {
        let Some(default) = self.default_queue_type() else {
            return Cow::Borrowed(arguments);
        };
        if arguments.inner().contains_key("x-queue-type") {
            return Cow::Borrowed(arguments);
        }
        let compatible = match default {
            QueueType::Quorum | QueueType::Stream => durable && !exclusive && !auto_delete,
            QueueType::Classic => true,
        };
        let injected = match compatible {
            true => default,
            false => QueueType::Classic,
        };
        let mut arguments = arguments.clone();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(default_queue_type_name(Some(injected)).into()),
        );
        Cow::Owned(arguments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for name in ["undefined", "classic", "quorum"] {
            let parsed = parse_default_queue_type(name).expect(name);
            assert_eq!(default_queue_type_name(parsed), name);
        }
        assert!(parse_default_queue_type("stream").is_err());
        assert!(parse_default_queue_type("lazy").is_err());
    }
}
