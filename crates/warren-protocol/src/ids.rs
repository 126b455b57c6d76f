//! The class and method ids of every AMQP 0-9-1 method (with RabbitMQ's extensions), by name. Code that reads or
//! writes method frames by hand names the method it means instead of writing `(60, 40)`, and a `match` on a
//! [`MethodId`] reads like the spec's method list.

use bytes::{BufMut, BytesMut};

/// A method's (class id, method id), as the first four bytes of a method frame's payload carry them.
pub type MethodId = (u16, u16);

/// The connection class: the handshake, tuning and closing a connection.
pub const CLASS_CONNECTION: u16 = 10;
/// The channel class: opening, flow control and closing a channel.
pub const CLASS_CHANNEL: u16 = 20;
/// The access class: tickets, obsolete since 0-9-1 but still answered.
pub const CLASS_ACCESS: u16 = 30;
/// The exchange class.
pub const CLASS_EXCHANGE: u16 = 40;
/// The queue class.
pub const CLASS_QUEUE: u16 = 50;
/// The basic class: publishing, consuming and acknowledging messages; also the class of every content header.
pub const CLASS_BASIC: u16 = 60;
/// The confirm class: publisher confirms (a RabbitMQ extension).
pub const CLASS_CONFIRM: u16 = 85;
/// The tx class: transactions.
pub const CLASS_TX: u16 = 90;

/// connection.start
pub const CONNECTION_START: MethodId = (CLASS_CONNECTION, 10);
/// connection.start-ok
pub const CONNECTION_START_OK: MethodId = (CLASS_CONNECTION, 11);
/// connection.secure
pub const CONNECTION_SECURE: MethodId = (CLASS_CONNECTION, 20);
/// connection.secure-ok
pub const CONNECTION_SECURE_OK: MethodId = (CLASS_CONNECTION, 21);
/// connection.tune
pub const CONNECTION_TUNE: MethodId = (CLASS_CONNECTION, 30);
/// connection.tune-ok
pub const CONNECTION_TUNE_OK: MethodId = (CLASS_CONNECTION, 31);
/// connection.open
pub const CONNECTION_OPEN: MethodId = (CLASS_CONNECTION, 40);
/// connection.open-ok
pub const CONNECTION_OPEN_OK: MethodId = (CLASS_CONNECTION, 41);
/// connection.close
pub const CONNECTION_CLOSE: MethodId = (CLASS_CONNECTION, 50);
/// connection.close-ok
pub const CONNECTION_CLOSE_OK: MethodId = (CLASS_CONNECTION, 51);
/// connection.blocked (RabbitMQ extension)
pub const CONNECTION_BLOCKED: MethodId = (CLASS_CONNECTION, 60);
/// connection.unblocked (RabbitMQ extension)
pub const CONNECTION_UNBLOCKED: MethodId = (CLASS_CONNECTION, 61);
/// connection.update-secret (RabbitMQ extension)
pub const CONNECTION_UPDATE_SECRET: MethodId = (CLASS_CONNECTION, 70);
/// connection.update-secret-ok (RabbitMQ extension)
pub const CONNECTION_UPDATE_SECRET_OK: MethodId = (CLASS_CONNECTION, 71);

/// channel.open
pub const CHANNEL_OPEN: MethodId = (CLASS_CHANNEL, 10);
/// channel.open-ok
pub const CHANNEL_OPEN_OK: MethodId = (CLASS_CHANNEL, 11);
/// channel.flow
pub const CHANNEL_FLOW: MethodId = (CLASS_CHANNEL, 20);
/// channel.flow-ok
pub const CHANNEL_FLOW_OK: MethodId = (CLASS_CHANNEL, 21);
/// channel.close
pub const CHANNEL_CLOSE: MethodId = (CLASS_CHANNEL, 40);
/// channel.close-ok
pub const CHANNEL_CLOSE_OK: MethodId = (CLASS_CHANNEL, 41);

/// access.request
pub const ACCESS_REQUEST: MethodId = (CLASS_ACCESS, 10);
/// access.request-ok
pub const ACCESS_REQUEST_OK: MethodId = (CLASS_ACCESS, 11);

/// exchange.declare
pub const EXCHANGE_DECLARE: MethodId = (CLASS_EXCHANGE, 10);
/// exchange.declare-ok
pub const EXCHANGE_DECLARE_OK: MethodId = (CLASS_EXCHANGE, 11);
/// exchange.delete
pub const EXCHANGE_DELETE: MethodId = (CLASS_EXCHANGE, 20);
/// exchange.delete-ok
pub const EXCHANGE_DELETE_OK: MethodId = (CLASS_EXCHANGE, 21);
/// exchange.bind (RabbitMQ extension: exchange-to-exchange bindings)
pub const EXCHANGE_BIND: MethodId = (CLASS_EXCHANGE, 30);
/// exchange.bind-ok
pub const EXCHANGE_BIND_OK: MethodId = (CLASS_EXCHANGE, 31);
/// exchange.unbind
pub const EXCHANGE_UNBIND: MethodId = (CLASS_EXCHANGE, 40);
/// exchange.unbind-ok: 51, not 41, as RabbitMQ numbers it.
pub const EXCHANGE_UNBIND_OK: MethodId = (CLASS_EXCHANGE, 51);

/// queue.declare
pub const QUEUE_DECLARE: MethodId = (CLASS_QUEUE, 10);
/// queue.declare-ok
pub const QUEUE_DECLARE_OK: MethodId = (CLASS_QUEUE, 11);
/// queue.bind
pub const QUEUE_BIND: MethodId = (CLASS_QUEUE, 20);
/// queue.bind-ok
pub const QUEUE_BIND_OK: MethodId = (CLASS_QUEUE, 21);
/// queue.purge
pub const QUEUE_PURGE: MethodId = (CLASS_QUEUE, 30);
/// queue.purge-ok
pub const QUEUE_PURGE_OK: MethodId = (CLASS_QUEUE, 31);
/// queue.delete
pub const QUEUE_DELETE: MethodId = (CLASS_QUEUE, 40);
/// queue.delete-ok
pub const QUEUE_DELETE_OK: MethodId = (CLASS_QUEUE, 41);
/// queue.unbind
pub const QUEUE_UNBIND: MethodId = (CLASS_QUEUE, 50);
/// queue.unbind-ok
pub const QUEUE_UNBIND_OK: MethodId = (CLASS_QUEUE, 51);

/// basic.qos
pub const BASIC_QOS: MethodId = (CLASS_BASIC, 10);
/// basic.qos-ok
pub const BASIC_QOS_OK: MethodId = (CLASS_BASIC, 11);
/// basic.consume
pub const BASIC_CONSUME: MethodId = (CLASS_BASIC, 20);
/// basic.consume-ok
pub const BASIC_CONSUME_OK: MethodId = (CLASS_BASIC, 21);
/// basic.cancel (also sent by the broker to a consumer with the consumer_cancel_notify capability)
pub const BASIC_CANCEL: MethodId = (CLASS_BASIC, 30);
/// basic.cancel-ok
pub const BASIC_CANCEL_OK: MethodId = (CLASS_BASIC, 31);
/// basic.publish
pub const BASIC_PUBLISH: MethodId = (CLASS_BASIC, 40);
/// basic.return
pub const BASIC_RETURN: MethodId = (CLASS_BASIC, 50);
/// basic.deliver
pub const BASIC_DELIVER: MethodId = (CLASS_BASIC, 60);
/// basic.get
pub const BASIC_GET: MethodId = (CLASS_BASIC, 70);
/// basic.get-ok
pub const BASIC_GET_OK: MethodId = (CLASS_BASIC, 71);
/// basic.get-empty
pub const BASIC_GET_EMPTY: MethodId = (CLASS_BASIC, 72);
/// basic.ack (from a consumer, or a publisher confirm from the broker)
pub const BASIC_ACK: MethodId = (CLASS_BASIC, 80);
/// basic.reject
pub const BASIC_REJECT: MethodId = (CLASS_BASIC, 90);
/// basic.recover-async (deprecated)
pub const BASIC_RECOVER_ASYNC: MethodId = (CLASS_BASIC, 100);
/// basic.recover
pub const BASIC_RECOVER: MethodId = (CLASS_BASIC, 110);
/// basic.recover-ok
pub const BASIC_RECOVER_OK: MethodId = (CLASS_BASIC, 111);
/// basic.nack (RabbitMQ extension; from a consumer, or a negative publisher confirm)
pub const BASIC_NACK: MethodId = (CLASS_BASIC, 120);

/// confirm.select
pub const CONFIRM_SELECT: MethodId = (CLASS_CONFIRM, 10);
/// confirm.select-ok
pub const CONFIRM_SELECT_OK: MethodId = (CLASS_CONFIRM, 11);

/// tx.select
pub const TX_SELECT: MethodId = (CLASS_TX, 10);
/// tx.select-ok
pub const TX_SELECT_OK: MethodId = (CLASS_TX, 11);
/// tx.commit
pub const TX_COMMIT: MethodId = (CLASS_TX, 20);
/// tx.commit-ok
pub const TX_COMMIT_OK: MethodId = (CLASS_TX, 21);
/// tx.rollback
pub const TX_ROLLBACK: MethodId = (CLASS_TX, 30);
/// tx.rollback-ok
pub const TX_ROLLBACK_OK: MethodId = (CLASS_TX, 31);

/// Every method above: one the decoder does not find here is 540 NOT_IMPLEMENTED rather than a frame error.
pub const ALL_METHODS: &[MethodId] = &[
    CONNECTION_START,
    CONNECTION_START_OK,
    CONNECTION_SECURE,
    CONNECTION_SECURE_OK,
    CONNECTION_TUNE,
    CONNECTION_TUNE_OK,
    CONNECTION_OPEN,
    CONNECTION_OPEN_OK,
    CONNECTION_CLOSE,
    CONNECTION_CLOSE_OK,
    CONNECTION_BLOCKED,
    CONNECTION_UNBLOCKED,
    CONNECTION_UPDATE_SECRET,
    CONNECTION_UPDATE_SECRET_OK,
    CHANNEL_OPEN,
    CHANNEL_OPEN_OK,
    CHANNEL_FLOW,
    CHANNEL_FLOW_OK,
    CHANNEL_CLOSE,
    CHANNEL_CLOSE_OK,
    ACCESS_REQUEST,
    ACCESS_REQUEST_OK,
    EXCHANGE_DECLARE,
    EXCHANGE_DECLARE_OK,
    EXCHANGE_DELETE,
    EXCHANGE_DELETE_OK,
    EXCHANGE_BIND,
    EXCHANGE_BIND_OK,
    EXCHANGE_UNBIND,
    EXCHANGE_UNBIND_OK,
    QUEUE_DECLARE,
    QUEUE_DECLARE_OK,
    QUEUE_BIND,
    QUEUE_BIND_OK,
    QUEUE_PURGE,
    QUEUE_PURGE_OK,
    QUEUE_DELETE,
    QUEUE_DELETE_OK,
    QUEUE_UNBIND,
    QUEUE_UNBIND_OK,
    BASIC_QOS,
    BASIC_QOS_OK,
    BASIC_CONSUME,
    BASIC_CONSUME_OK,
    BASIC_CANCEL,
    BASIC_CANCEL_OK,
    BASIC_PUBLISH,
    BASIC_RETURN,
    BASIC_DELIVER,
    BASIC_GET,
    BASIC_GET_OK,
    BASIC_GET_EMPTY,
    BASIC_ACK,
    BASIC_REJECT,
    BASIC_RECOVER_ASYNC,
    BASIC_RECOVER,
    BASIC_RECOVER_OK,
    BASIC_NACK,
    CONFIRM_SELECT,
    CONFIRM_SELECT_OK,
    TX_SELECT,
    TX_SELECT_OK,
    TX_COMMIT,
    TX_COMMIT_OK,
    TX_ROLLBACK,
    TX_ROLLBACK_OK,
];

/// The four bytes a method frame's payload starts with for `id` (both ids big-endian).
pub const fn wire_bytes(id: MethodId) -> [u8; 4] {
    let class = id.0.to_be_bytes();
    let method = id.1.to_be_bytes();
    [class[0], class[1], method[0], method[1]]
}

/// Appends `id` as a method payload starts with it; for the frames encoded by hand on hot paths.
pub(crate) fn put_method_id(out: &mut BytesMut, (class_id, method_id): MethodId) {
    out.put_u16(class_id);
    out.put_u16(method_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{basic, exchange, AMQPClass};

    #[test]
    fn ids_agree_with_amq_protocol() {
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish::default()));
        assert_eq!(
            (publish.get_amqp_class_id(), publish.get_amqp_method_id()),
            BASIC_PUBLISH
        );
        let unbind_ok = AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}));
        assert_eq!(
            (
                unbind_ok.get_amqp_class_id(),
                unbind_ok.get_amqp_method_id()
            ),
            EXCHANGE_UNBIND_OK
        );
        assert_eq!(wire_bytes(BASIC_PUBLISH), [0, 60, 0, 40]);
    }

    #[test]
    fn every_method_is_listed_once() {
        for (i, id) in ALL_METHODS.iter().enumerate() {
            assert!(!ALL_METHODS[i + 1..].contains(id), "{id:?} listed twice");
        }
        assert_eq!(ALL_METHODS.len(), 66);
    }
}
