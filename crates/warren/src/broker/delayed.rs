//! The delayed messages of `x-delayed-message` exchanges, for the management API: counted (the plugin's
//! `messages_delayed` exchange stat), listed a page at a time in due order, and cancelled by id (beyond the
//! plugin, which can do neither).

use super::Broker;
use crate::delayed::{DelayedExchange, DelayedMessage};
use std::sync::Arc;

/// Why a delayed-message call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DelayedError {
    /// The vhost named does not exist.
    #[error("no vhost '{0}'")]
    NoSuchVhost(String),
    /// The exchange named does not exist in that vhost.
    #[error("no exchange '{0}'")]
    NoSuchExchange(String),
    /// The exchange exists but is not of type `x-delayed-message`.
    #[error("exchange '{0}' is not of type x-delayed-message")]
    NotDelayed(String),
}

impl Broker {
    fn delayed_exchange(
        &self,
        vhost: &str,
        exchange: &str,
    ) -> Result<Arc<DelayedExchange>, DelayedError> {
        let host = self
            .vhost(vhost)
            .ok_or_else(|| DelayedError::NoSuchVhost(vhost.to_owned()))?;
        if host.exchange(exchange).is_none() {
            return Err(DelayedError::NoSuchExchange(exchange.to_owned()));
        }
        host.delayed_exchange(exchange)
            .ok_or_else(|| DelayedError::NotDelayed(exchange.to_owned()))
    }

    /// How many messages delayed exchange `exchange` of `vhost` holds (`messages_delayed` in the plugin's
    /// exchange info).
    pub fn delayed_message_count(
        &self,
        vhost: &str,
        exchange: &str,
    ) -> Result<usize, DelayedError> {
        Ok(self.delayed_exchange(vhost, exchange)?.count())
    }

    /// Up to `limit` of its delayed messages, from the `offset`-th in due order: id, due time, routing key and
    /// size. May read routing keys of messages recovered at start from disk: call it off the async workers
    /// (`tokio::task::spawn_blocking`).
    pub fn delayed_messages(
        &self,
        vhost: &str,
        exchange: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DelayedMessage>, DelayedError> {
        Ok(self.delayed_exchange(vhost, exchange)?.list(offset, limit))
    }

    /// Cancels delayed message `id`: dropped, never routed (its stored copy too). Ok(false) if it is not waiting
    /// (never was, already routed, or cancelled).
    pub fn cancel_delayed_message(
        &self,
        vhost: &str,
        exchange: &str,
        id: u64,
    ) -> Result<bool, DelayedError> {
        Ok(self.delayed_exchange(vhost, exchange)?.cancel(id))
    }
}
