//! Routed messages on their way to queue inboxes, gathered per queue while a connection's reader works through
//! what one socket read brought, and sent as one command per queue. Handing a command to another thread costs a
//! few contended atomic operations whatever it carries; one per message was the largest single cost of the
//! publish path (about 13% of the broker's CPU at full rate).
//!
//! Order is kept: a queue's messages stay in one run, in the order they were routed, and the reader sends every
//! run before it handles anything else that reaches a queue (any method but basic.publish), before it waits on
//! the socket, and before the connection's cleanup.

use std::sync::Arc;

use super::publish::Backlog;
use crate::queue::{Enqueue, QueueCommand, QueueHandle, MAX_RUN};

/// A connection's routed messages not yet sent, as one run per queue in routing order.
#[derive(Default)]
pub(crate) struct PublishRuns {
    runs: Vec<(Arc<QueueHandle>, Vec<Enqueue>)>,
}

impl PublishRuns {
    /// Adds a message to its queue's run. A run that reaches [`MAX_RUN`] is sent at once; what that send left
    /// to wait for (a full inbox, a held queue) comes back for the caller to wait on. None, the rule, costs nothing.
    pub(crate) fn push(&mut self, queue: &Arc<QueueHandle>, item: Enqueue) -> Option<Backlog> {
        let index = match self.runs.iter().position(|(q, _)| Arc::ptr_eq(q, queue)) {
            Some(index) => index,
            None => {
                self.runs.push((queue.clone(), Vec::with_capacity(8)));
                self.runs.len() - 1
            }
        };
        let run = &mut self.runs[index].1;
        run.push(item);
        if run.len() < MAX_RUN {
            return None;
        }
        let (queue, run) = self.runs.swap_remove(index);
        let mut backlog = Backlog::default();
        backlog.send_or_hold(queue, QueueCommand::Publish(run));
        (!backlog.is_empty()).then_some(backlog)
    }

    /// True when no run waits to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Sends every run; those whose queue's inbox is full come back in the backlog.
    pub(crate) fn flush(&mut self) -> Backlog {
        let mut backlog = Backlog::default();
        for (queue, run) in self.runs.drain(..) {
            backlog.send_or_hold(queue, QueueCommand::Publish(run));
        }
        backlog
    }
}
