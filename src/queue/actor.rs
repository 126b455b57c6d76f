//! The queue actor: drains its inbox in batches, applies each command to the queue state, then delivers what it
//! can. It never waits on a connection: when a consumer's outbound queue or channel credit is spent it parks that
//! consumer and is woken through `QueueHandle::wake`.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::consumer::Consumer;
use super::state::QueueState;
use super::{QueueCommand, QueueHandle, QueueSpec, QueueStats};
use crate::channel::outlet::{ChannelOutlet, DeliverOutcome};
use crate::error::AmqpError;
use crate::protocol::{basic, put_method, AMQPClass};
use crate::vhost::Vhost;

/// Inbox capacity in commands; a full inbox makes publishers' readers wait.
const INBOX_CAPACITY: usize = 8192;
const BATCH: usize = 256;

/// Creates a queue and starts its actor.
pub fn spawn_queue(spec: QueueSpec, vhost: Weak<Vhost>) -> Arc<QueueHandle> {
    let (inbox, receiver) = mpsc::channel(INBOX_CAPACITY);
    let handle = Arc::new(QueueHandle {
        spec,
        inbox,
        wake: Arc::new(tokio::sync::Notify::new()),
    });
    let actor = QueueActor {
        handle: Arc::downgrade(&handle),
        vhost,
        state: QueueState::default(),
    };
    tokio::spawn(actor.run(receiver, handle.clone()));
    handle
}

struct QueueActor {
    handle: Weak<QueueHandle>,
    vhost: Weak<Vhost>,
    state: QueueState,
}

enum Flow {
    Continue,
    Stop,
}

impl QueueActor {
    async fn run(mut self, mut inbox: mpsc::Receiver<QueueCommand>, handle: Arc<QueueHandle>) {
        let wake = handle.wake.clone();
        // The actor keeps only a weak reference so that a dropped handle ends it.
        drop(handle);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = inbox.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    let mut stop = false;
                    for command in batch.drain(..) {
                        if let Flow::Stop = self.apply(command) {
                            stop = true;
                            break;
                        }
                    }
                    if stop {
                        break;
                    }
                }
                _ = wake.notified() => {}
            }
            let Some(handle) = self.handle.upgrade() else {
                break;
            };
            self.dispatch(&handle);
            if self.should_auto_delete() {
                if let Some(vhost) = self.vhost.upgrade() {
                    vhost.forget_queue(&handle);
                }
                self.cancel_all_consumers();
                break;
            }
        }
    }

    fn apply(&mut self, command: QueueCommand) -> Flow {
        match command {
            QueueCommand::Publish { message, confirm } => {
                self.state.enqueue(message);
                // Enqueued in memory: this queue's share of the confirm is released here.
                drop(confirm);
            }
            QueueCommand::Consume {
                consumer,
                send_ok,
                reply,
            } => {
                let result = self.add_consumer(consumer, send_ok);
                let _ = reply.send(result);
            }
            QueueCommand::Cancel {
                outlet,
                consumer_tag,
                send_ok,
                reply,
            } => {
                self.state.remove_consumer(&outlet, &consumer_tag);
                if send_ok {
                    write_method(
                        &outlet,
                        basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: consumer_tag.as_ref().into(),
                        }),
                    );
                }
                let _ = reply.send(());
            }
            QueueCommand::Get { outlet, no_ack } => self.get(&outlet, no_ack),
            QueueCommand::Settle { deliveries, action } => {
                self.state.settle(&deliveries, action);
            }
            QueueCommand::ChannelClosed { outlet } => {
                self.state.remove_channel(&outlet);
            }
            QueueCommand::Stats { reply } => {
                let _ = reply.send(QueueStats {
                    messages: self.state.message_count(),
                    consumers: self.state.consumers.len() as u32,
                });
            }
            QueueCommand::Purge { reply } => {
                let _ = reply.send(self.state.purge());
            }
            QueueCommand::Delete {
                if_unused,
                if_empty,
                reply,
            } => {
                let name = self.name();
                if if_unused && !self.state.consumers.is_empty() {
                    let _ = reply.send(Err(AmqpError::precondition(format!(
                        "queue '{}' in vhost '{}' in use",
                        name.0, name.1
                    ))));
                    return Flow::Continue;
                }
                if if_empty && self.state.message_count() > 0 {
                    let _ = reply.send(Err(AmqpError::precondition(format!(
                        "queue '{}' in vhost '{}' not empty",
                        name.0, name.1
                    ))));
                    return Flow::Continue;
                }
                let count = self.state.message_count();
                self.cancel_all_consumers();
                let _ = reply.send(Ok(count));
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn name(&self) -> (String, String) {
        match self.handle.upgrade() {
            Some(h) => (h.spec.name.to_string(), h.spec.vhost.to_string()),
            None => (String::new(), String::new()),
        }
    }

    fn add_consumer(&mut self, consumer: Consumer, send_ok: bool) -> Result<(), AmqpError> {
        if self.state.has_exclusive_consumer()
            || (consumer.exclusive && !self.state.consumers.is_empty())
        {
            let (queue, vhost) = self.name();
            return Err(AmqpError::access_refused(format!(
                "queue '{queue}' in vhost '{vhost}' in exclusive use"
            )));
        }
        if send_ok {
            write_method(
                &consumer.outlet,
                basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: consumer.tag.as_ref().into(),
                }),
            );
        }
        self.state.add_consumer(consumer);
        Ok(())
    }

    fn get(&mut self, outlet: &Arc<ChannelOutlet>, no_ack: bool) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        match self.state.ready.pop_front() {
            None => write_method(outlet, basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            Some(msg) => {
                let remaining = self.state.message_count();
                if outlet.deliver_get(&handle, no_ack, &msg, remaining) {
                    if !no_ack {
                        self.state.record_unacked(msg, None);
                    }
                } else {
                    self.state.unpop(msg);
                }
            }
        }
    }

    /// Hands ready messages to consumers with credit, round robin.
    fn dispatch(&mut self, handle: &Arc<QueueHandle>) {
        let mut closed = false;
        while !self.state.ready.is_empty() && !self.state.consumers.is_empty() {
            let n = self.state.consumers.len();
            let mut delivered = false;
            for i in 0..n {
                let idx = (self.state.next_consumer + i) % n;
                let consumer = &self.state.consumers[idx];
                if !consumer.has_credit() {
                    continue;
                }
                let outbound = &consumer.outlet.conn.outbound;
                if outbound.over_budget() {
                    outbound.wake_when_drained(handle.wake.clone());
                    continue;
                }
                let Some(msg) = self.state.ready.pop_front() else {
                    break;
                };
                let consumer = &mut self.state.consumers[idx];
                match consumer.outlet.deliver(
                    handle,
                    consumer.id,
                    &consumer.tag,
                    consumer.no_ack,
                    &msg,
                    &handle.wake,
                ) {
                    DeliverOutcome::Delivered => {
                        let (id, no_ack) = (consumer.id, consumer.no_ack);
                        if !no_ack {
                            consumer.in_flight += 1;
                            self.state.record_unacked(msg, Some(id));
                        }
                        self.state.next_consumer = (idx + 1) % n;
                        delivered = true;
                        break;
                    }
                    DeliverOutcome::NoChannelCredit => self.state.unpop(msg),
                    DeliverOutcome::Closed => {
                        self.state.unpop(msg);
                        closed = true;
                    }
                }
            }
            if !delivered {
                break;
            }
        }
        if closed {
            self.state.consumers.retain(|c| !c.outlet.is_closed());
        }
    }

    fn should_auto_delete(&self) -> bool {
        let Some(handle) = self.handle.upgrade() else {
            return false;
        };
        handle.spec.auto_delete && self.state.had_consumers && self.state.consumers.is_empty()
    }

    /// The queue is going away: consumers that asked for it get basic.cancel.
    fn cancel_all_consumers(&mut self) {
        for consumer in self.state.consumers.drain(..) {
            consumer.outlet.remove_consumer(&consumer.tag);
            if consumer.cancel_notify() {
                write_method(
                    &consumer.outlet,
                    basic::AMQPMethod::Cancel(basic::Cancel {
                        consumer_tag: consumer.tag.as_ref().into(),
                        nowait: true,
                    }),
                );
            }
        }
    }
}

fn write_method(outlet: &ChannelOutlet, method: basic::AMQPMethod) {
    let channel = outlet.channel;
    outlet
        .conn
        .outbound
        .write(|out| put_method(out, channel, AMQPClass::Basic(method)));
}
