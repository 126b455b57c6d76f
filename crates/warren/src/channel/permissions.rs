//! The permission checks of channel methods, as RabbitMQ's `rabbit_channel` makes them (`check_configure_permitted`,
//! `check_write_permitted`, `check_read_permitted`, and the topic checks on topic exchanges), against the broker's
//! access table for the connection's user and vhost.

use super::ChannelContext;
use crate::auth::users::Access;
use crate::exchange::ExchangeKind;
use warren_protocol::error::AmqpError;
use warren_protocol::{AMQPValue, FieldTable};

impl ChannelContext<'_> {
    /// 403 unless the user may `access` the `kind` (`queue` or `exchange`) named `name` in this vhost.
    pub(super) fn check(&self, kind: &str, name: &str, access: Access) -> Result<(), AmqpError> {
        self.broker
            .access
            .check(&self.conn.user, &self.vhost.name, kind, name, access)
    }

    /// 403 unless `routing_key` is granted `access` by the user's topic permission on `exchange`, when that
    /// exchange exists and is a topic exchange (RabbitMQ checks topic permissions on topic exchanges only).
    pub(super) fn check_topic(
        &self,
        exchange: &str,
        routing_key: &str,
        access: Access,
    ) -> Result<(), AmqpError> {
        match self.vhost.exchange(exchange) {
            Some(x) if x.kind == ExchangeKind::Topic => self.broker.access.check_topic(
                &self.conn.user,
                &self.vhost.name,
                exchange,
                routing_key,
                access,
            ),
            _ => Ok(()),
        }
    }

    /// The checks of a binding (RabbitMQ's `binding_action`): write on the destination, read on the source
    /// exchange, read on the binding key if the source is a topic exchange. The default exchange at either end
    /// is refused by the binding itself, after the destination's check, as in RabbitMQ.
    pub(super) fn check_binding(
        &self,
        source: &str,
        destination_kind: &str,
        destination: &str,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        self.check(destination_kind, destination, Access::Write)?;
        if source.is_empty() || (destination_kind == "exchange" && destination.is_empty()) {
            return Ok(());
        }
        self.check("exchange", source, Access::Read)?;
        self.check_topic(source, routing_key, Access::Read)
    }
}

/// The exchange named by a declare argument (`alternate-exchange`, `x-dead-letter-exchange`), when it is a
/// string, as RabbitMQ's `r_arg` reads it; other types are refused by the declare's own checks.
pub(super) fn exchange_argument<'a>(arguments: &'a FieldTable, key: &str) -> Option<&'a str> {
    match arguments.inner().get(key) {
        Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
        _ => None,
    }
}
