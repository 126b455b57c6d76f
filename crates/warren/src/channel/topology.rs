//! The exchange and queue classes: declare, bind, unbind, purge, delete.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Channel, ChannelContext};
use crate::exchange::{validate_headers_arguments, Destination, ExchangeKind};
use crate::queue::QueueCommand;
use crate::vhost::{ExchangeDeclare, QueueDeclare, Vhost};
use warren_protocol::error::AmqpError;
use warren_protocol::{exchange, queue, AMQPClass, FieldTable};

/// Headers bindings must carry a valid x-match (406 otherwise, as in RabbitMQ).
fn check_binding_arguments(
    vhost: &Vhost,
    exchange: &str,
    args: &FieldTable,
) -> Result<(), AmqpError> {
    match vhost.exchange(exchange) {
        Some(x) if x.kind == ExchangeKind::Headers => {
            validate_headers_arguments(args).map_err(|e| AmqpError::precondition(e.to_string()))
        }
        _ => Ok(()),
    }
}

impl Channel {
    pub(super) async fn handle_exchange(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = ctx.vhost;
        match method {
            exchange::AMQPMethod::Declare(d) => {
                let nowait = d.nowait;
                let may_persist = !d.passive && vhost.may_persist_declare(d.durable, false);
                vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.declare_exchange(&ExchangeDeclare {
                            name: d.exchange.as_str(),
                            kind: d.kind.as_str(),
                            passive: d.passive,
                            durable: d.durable,
                            auto_delete: d.auto_delete,
                            internal: d.internal,
                            arguments: d.arguments,
                        })
                    })
                    .await?;
                if !nowait {
                    self.reply(AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                        exchange::DeclareOk {},
                    )));
                }
            }
            exchange::AMQPMethod::Delete(d) => {
                let nowait = d.nowait;
                let stored = vhost
                    .exchange(d.exchange.as_str())
                    .is_some_and(|x| x.durable);
                let may_persist = vhost.may_persist_removal(stored);
                vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.delete_exchange(d.exchange.as_str(), d.if_unused)
                    })
                    .await?;
                if !nowait {
                    self.reply(AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(
                        exchange::DeleteOk {},
                    )));
                }
            }
            exchange::AMQPMethod::Bind(b) => {
                check_binding_arguments(vhost, b.source.as_str(), &b.arguments)?;
                let nowait = b.nowait;
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                let may_persist = vhost.may_persist_binding(b.source.as_str(), &destination);
                vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.bind_exchange(
                            b.destination.as_str(),
                            b.source.as_str(),
                            b.routing_key.as_str(),
                            b.arguments,
                        )
                    })
                    .await?;
                if !nowait {
                    self.reply(AMQPClass::Exchange(exchange::AMQPMethod::BindOk(
                        exchange::BindOk {},
                    )));
                }
            }
            exchange::AMQPMethod::Unbind(b) => {
                let nowait = b.nowait;
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                let stored = vhost.may_persist_binding(b.source.as_str(), &destination);
                let may_persist = vhost.may_persist_removal(stored);
                vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.unbind_exchange(
                            b.destination.as_str(),
                            b.source.as_str(),
                            b.routing_key.as_str(),
                            b.arguments,
                        )
                    })
                    .await?;
                if !nowait {
                    self.reply(AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(
                        exchange::UnbindOk {},
                    )));
                }
            }
            other => {
                let id = AMQPClass::Exchange(other).get_amqp_method_id();
                return Err(AmqpError::new(
                    warren_protocol::error::ReplyCode::CommandInvalid,
                    format!("unexpected method 40.{id} from a client"),
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn handle_queue(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: queue::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = ctx.vhost;
        let conn_id = ctx.conn.id;
        match method {
            queue::AMQPMethod::Declare(d) => {
                let name = if d.passive {
                    self.queue_name(d.queue.as_str())?.to_string()
                } else {
                    d.queue.to_string()
                };
                let may_persist = !d.passive && vhost.may_persist_declare(d.durable, d.exclusive);
                let (passive, durable, exclusive, auto_delete) =
                    (d.passive, d.durable, d.exclusive, d.auto_delete);
                let arguments = d.arguments;
                let handle = vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.declare_queue(&QueueDeclare {
                            name: &name,
                            passive,
                            durable,
                            exclusive,
                            auto_delete,
                            arguments,
                            connection_id: conn_id,
                        })
                    })
                    .await?;
                if d.exclusive && !ctx.exclusive_queues.iter().any(|q| Arc::ptr_eq(q, &handle)) {
                    ctx.exclusive_queues.push(handle.clone());
                }
                self.last_queue = Some(handle.spec.name.clone());
                if !d.nowait {
                    let stats = handle.stats().await.unwrap_or_default();
                    self.reply(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(
                        queue::DeclareOk {
                            queue: handle.name().into(),
                            message_count: stats.messages,
                            consumer_count: stats.consumers,
                        },
                    )));
                }
            }
            queue::AMQPMethod::Bind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                check_binding_arguments(vhost, b.exchange.as_str(), &b.arguments)?;
                let nowait = b.nowait;
                let destination = Destination::Queue(name.clone());
                let may_persist = vhost.may_persist_binding(b.exchange.as_str(), &destination);
                vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.bind_queue(
                            &name,
                            b.exchange.as_str(),
                            b.routing_key.as_str(),
                            b.arguments,
                            conn_id,
                        )
                    })
                    .await?;
                if !nowait {
                    self.reply(AMQPClass::Queue(queue::AMQPMethod::BindOk(
                        queue::BindOk {},
                    )));
                }
            }
            queue::AMQPMethod::Unbind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                let destination = Destination::Queue(name.clone());
                let stored = vhost.may_persist_binding(b.exchange.as_str(), &destination);
                let may_persist = vhost.may_persist_removal(stored);
                vhost
                    .change_topology(may_persist, move |vhost| {
                        vhost.unbind_queue(
                            &name,
                            b.exchange.as_str(),
                            b.routing_key.as_str(),
                            b.arguments,
                            conn_id,
                        )
                    })
                    .await?;
                self.reply(AMQPClass::Queue(queue::AMQPMethod::UnbindOk(
                    queue::UnbindOk {},
                )));
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                let q = vhost.queue_for(&name, conn_id)?;
                let (reply, answer) = oneshot::channel();
                let count = if q.send(QueueCommand::Purge { reply }).await {
                    answer.await.unwrap_or(0)
                } else {
                    0
                };
                if !p.nowait {
                    self.reply(AMQPClass::Queue(queue::AMQPMethod::PurgeOk(
                        queue::PurgeOk {
                            message_count: count,
                        },
                    )));
                }
            }
            queue::AMQPMethod::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                let count = vhost
                    .delete_queue(&name, d.if_unused, d.if_empty, conn_id)
                    .await?;
                ctx.exclusive_queues.retain(|q| *q.spec.name != *name);
                if !d.nowait {
                    self.reply(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(
                        queue::DeleteOk {
                            message_count: count,
                        },
                    )));
                }
            }
            other => {
                let id = AMQPClass::Queue(other).get_amqp_method_id();
                return Err(AmqpError::new(
                    warren_protocol::error::ReplyCode::CommandInvalid,
                    format!("unexpected method 50.{id} from a client"),
                ));
            }
        }
        Ok(())
    }
}
