//! Classic queues used across the cluster. As in RabbitMQ, a classic queue lives on the node that declared it, its
//! *home*; its declaration and bindings go through the definitions group, so every node knows it and routes to it.
//! The other nodes serve it with a proxy ([`proxy`]) that forwards what their clients do to the home node over the
//! inter-node listener ([`home`], the calls in [`wire`]). While the home node is down the queue is unusable
//! elsewhere: RabbitMQ's 404 "home node ... is down or inaccessible".

pub(crate) mod home;
pub(crate) mod proxy;
pub(crate) mod wire;

use std::time::Duration;

use super::codec::Codec;
use super::network::{Network, PostError};
use warren_protocol::error::{AmqpError, ReplyCode};
use wire::{RemoteAnswer, RemoteRequest};

/// The inter-node path of the calls.
pub(crate) const PATH: &str = "/classic";

/// Where a proxy sends its queue's calls.
pub(crate) struct RemoteLink {
    /// The node's inter-node client.
    pub(crate) network: Network,
    /// The home node's name.
    pub(crate) home: String,
    /// Its inter-node address.
    pub(crate) addr: String,
    /// The queue's vhost.
    pub(crate) vhost: String,
    /// The queue.
    pub(crate) queue: String,
}

impl RemoteLink {
    /// Sends `request` to the home node; its answer, or RabbitMQ's error for a queue whose home node is down.
    pub(crate) async fn call(
        &self,
        request: &RemoteRequest,
        timeout: Duration,
    ) -> Result<RemoteAnswer, AmqpError> {
        let answer: Result<RemoteAnswer, PostError> = self
            .network
            .post_coded(&self.addr, PATH, request, Some(timeout), Codec::Binary)
            .await;
        answer.map_err(|error| {
            tracing::debug!(home = %self.home, queue = %self.queue, %error, "call to a classic queue's home node failed");
            self.home_down()
        })
    }

    /// RabbitMQ's 404 for a durable queue whose home node is down.
    pub(crate) fn home_down(&self) -> AmqpError {
        home_down(&self.home, &self.queue, &self.vhost)
    }

    /// The answer when the home node has no such queue any more.
    pub(crate) fn no_queue(&self) -> AmqpError {
        AmqpError::not_found("queue", &self.queue, &self.vhost)
    }
}

/// RabbitMQ's 404 for durable queue `queue` of `vhost` whose home node `home` is down.
pub(crate) fn home_down(home: &str, queue: &str, vhost: &str) -> AmqpError {
    AmqpError::new(
        ReplyCode::NotFound,
        format!(
            "home node '{home}' of durable queue '{queue}' in vhost '{vhost}' is down or inaccessible"
        ),
    )
}
