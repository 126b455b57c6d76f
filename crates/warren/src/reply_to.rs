//! Direct reply-to, as RabbitMQ: a channel consumes the pseudo-queue `amq.rabbitmq.reply-to` (no-ack only), a
//! request it publishes with `reply_to = amq.rabbitmq.reply-to` carries instead a name
//! `amq.rabbitmq.reply-to.<token>` unique to that consumer, and a reply published to the default exchange with
//! that name as routing key goes straight to the consumer's channel, through no queue. A reply to a consumer that
//! is gone is dropped. The node's [`ReplyConsumers`] maps tokens to the channels; a channel's registration leaves
//! it when the consumer is cancelled or the channel ends.
//!
//! RabbitMQ's token encodes the channel's Erlang pid; Warren's is 24 random bytes (base64url), as unguessable.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use dashmap::DashMap;
use rand::RngCore;
use tokio::sync::Notify;

use crate::message::Message;
use warren_protocol::content::{decode_properties, encode_properties};
use warren_protocol::error::AmqpError;

/// The pseudo-queue a requester consumes, and the `reply_to` value it publishes requests with.
pub(crate) const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";
/// What every consumer's reply name starts with.
pub(crate) const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The channel end of direct replies (implemented by the channel's delivery state).
pub(crate) trait ReplySink: Send + Sync {
    /// Sends `message` to consumer `consumer_tag` with basic.deliver (a fresh delivery tag, nothing to ack); false
    /// if the channel is closed.
    fn deliver_reply(&self, consumer_tag: &str, message: &Message) -> bool;

    /// True while the connection has more bytes waiting for its socket than its budget.
    fn over_budget(&self) -> bool;

    /// Notifies `waiter` once the connection's queued bytes are back under budget, or it closes.
    fn wake_when_drained(&self, waiter: Arc<Notify>);
}

/// A registered reply consumer.
#[derive(Clone)]
pub(crate) struct ReplyConsumer {
    /// Its consumer tag, named in basic.deliver.
    pub(crate) tag: Arc<str>,
    /// Its channel.
    pub(crate) sink: Arc<dyn ReplySink>,
}

/// The node's reply consumers by token.
#[derive(Default)]
pub(crate) struct ReplyConsumers {
    by_token: DashMap<Arc<str>, ReplyConsumer>,
}

impl ReplyConsumers {
    /// Registers consumer `tag` on `sink` under a new token; it stays until the registration drops.
    pub(crate) fn register(
        self: &Arc<Self>,
        tag: Arc<str>,
        sink: Arc<dyn ReplySink>,
    ) -> ReplyRegistration {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token: Arc<str> =
            Arc::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        self.by_token.insert(
            token.clone(),
            ReplyConsumer {
                tag: tag.clone(),
                sink,
            },
        );
        ReplyRegistration {
            registry: self.clone(),
            token,
            tag,
        }
    }

    /// The consumer a reply name (`amq.rabbitmq.reply-to.<token>`) stands for, if it is still there.
    pub(crate) fn lookup(&self, name: &str) -> Option<ReplyConsumer> {
        let token = name.strip_prefix(PREFIX)?;
        self.by_token.get(token).map(|c| c.value().clone())
    }
}

/// A channel's reply consumer, registered until dropped.
pub(crate) struct ReplyRegistration {
    registry: Arc<ReplyConsumers>,
    token: Arc<str>,
    /// The consumer tag.
    pub(crate) tag: Arc<str>,
}

impl ReplyRegistration {
    /// The name requests carry in `reply_to` and replies are published to.
    pub(crate) fn reply_name(&self) -> String {
        format!("{PREFIX}{}", self.token)
    }
}

impl Drop for ReplyRegistration {
    fn drop(&mut self) {
        self.registry.by_token.remove(&self.token);
    }
}

/// Whether `properties_raw` carry `reply_to = amq.rabbitmq.reply-to`, read in place (one flag test when there
/// is no reply_to, the common case).
pub(crate) fn may_name_pseudo_queue(properties_raw: &[u8]) -> bool {
    warren_protocol::content::reply_to(properties_raw) == Some(PSEUDO_QUEUE.as_bytes())
}

/// The properties with `reply_to` set to `reply_name` if it is `amq.rabbitmq.reply-to`; None if it is not.
pub(crate) fn rewrite_reply_to(
    properties_raw: &[u8],
    reply_name: Option<&str>,
) -> Result<Option<Bytes>, AmqpError> {
    let properties = decode_properties(properties_raw)?;
    if properties.reply_to().as_ref().map(|r| r.as_str()) != Some(PSEUDO_QUEUE) {
        return Ok(None);
    }
    let Some(reply_name) = reply_name else {
        return Err(AmqpError::precondition(
            "fast reply consumer does not exist",
        ));
    };
    encode_properties(&properties.with_reply_to(reply_name.into())).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::basic::AMQPProperties;

    struct NullSink;
    impl ReplySink for NullSink {
        fn deliver_reply(&self, _: &str, _: &Message) -> bool {
            true
        }
        fn over_budget(&self) -> bool {
            false
        }
        fn wake_when_drained(&self, _: Arc<Notify>) {}
    }

    #[test]
    fn a_registration_is_found_by_its_name_until_dropped() {
        let registry = Arc::new(ReplyConsumers::default());
        let a = registry.register("a".into(), Arc::new(NullSink));
        let b = registry.register("b".into(), Arc::new(NullSink));
        assert_ne!(a.reply_name(), b.reply_name());
        assert!(a.reply_name().starts_with(PREFIX));
        assert_eq!(&*registry.lookup(&a.reply_name()).unwrap().tag, "a");
        let name = a.reply_name();
        drop(a);
        assert!(registry.lookup(&name).is_none());
        assert!(registry.lookup(PSEUDO_QUEUE).is_none());
        assert!(registry.lookup(&format!("{PREFIX}nope")).is_none());
    }

    #[test]
    fn reply_to_is_rewritten_only_when_it_names_the_pseudo_queue() {
        let raw = |reply_to: &str| {
            encode_properties(&AMQPProperties::default().with_reply_to(reply_to.into())).unwrap()
        };
        let request = raw(PSEUDO_QUEUE);
        assert!(may_name_pseudo_queue(&request));
        let rewritten = rewrite_reply_to(&request, Some("amq.rabbitmq.reply-to.T"))
            .unwrap()
            .unwrap();
        assert_eq!(
            decode_properties(&rewritten)
                .unwrap()
                .reply_to()
                .as_ref()
                .unwrap()
                .as_str(),
            "amq.rabbitmq.reply-to.T"
        );
        assert!(!may_name_pseudo_queue(&raw("my-queue")));
        // The same bytes in another property are not a reply_to.
        let other =
            encode_properties(&AMQPProperties::default().with_message_id(PSEUDO_QUEUE.into()))
                .unwrap();
        assert!(!may_name_pseudo_queue(&other));
        assert_eq!(rewrite_reply_to(&raw("my-queue"), None).unwrap(), None);
        let error = rewrite_reply_to(&request, None).unwrap_err();
        assert_eq!(
            error.short_text(),
            "PRECONDITION_FAILED - fast reply consumer does not exist"
        );
    }
}
