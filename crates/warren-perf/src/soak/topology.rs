//! The setup calls the soak tasks make on a connection before they drive it: declare and delete a queue, set a
//! prefetch, start a consumer. Each waits for its reply; a refusal comes back as [`PerfError::Refused`].

use super::super::client::{unexpected, Connection};
use super::super::PerfError;
use warren_protocol::{basic, queue, AMQPClass, FieldTable, ShortString};

fn short(name: &str) -> Result<ShortString, PerfError> {
    ShortString::try_new(name)
        .map_err(|_| PerfError::InvalidOptions(format!("name `{name}` is longer than 255 bytes")))
}

/// Declares queue `name` on `channel` (not exclusive, not auto-delete).
pub(crate) async fn declare_queue(
    conn: &mut Connection,
    channel: u16,
    name: &str,
    durable: bool,
) -> Result<(), PerfError> {
    let reply = conn
        .call(
            channel,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: short(name)?,
                passive: false,
                durable,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await?;
    match reply {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) => Ok(()),
        other => Err(unexpected("queue.declare-ok", &other)),
    }
}

/// Deletes queue `name` on `channel`, whatever it holds.
pub(crate) async fn delete_queue(
    conn: &mut Connection,
    channel: u16,
    name: &str,
) -> Result<(), PerfError> {
    let reply = conn
        .call(
            channel,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: short(name)?,
                if_unused: false,
                if_empty: false,
                nowait: false,
            })),
        )
        .await?;
    match reply {
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)) => Ok(()),
        other => Err(unexpected("queue.delete-ok", &other)),
    }
}

/// Sets the channel's prefetch (0: none) and consumes from `queue` with manual acks.
pub(crate) async fn consume(
    conn: &mut Connection,
    channel: u16,
    queue: &str,
    prefetch: u16,
    tag: &str,
) -> Result<(), PerfError> {
    if prefetch > 0 {
        let reply = conn
            .call(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: prefetch,
                    global: false,
                })),
            )
            .await?;
        if !matches!(reply, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))) {
            return Err(unexpected("basic.qos-ok", &reply));
        }
    }
    let reply = conn
        .call(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: short(queue)?,
                consumer_tag: short(tag)?,
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await?;
    match reply {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => Ok(()),
        other => Err(unexpected("basic.consume-ok", &other)),
    }
}
