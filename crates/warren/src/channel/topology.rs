//! The exchange and queue classes: declare, bind, unbind, purge, delete.

use super::effect::{ChannelEffects, Continuation, Effect, QueueRequest};
use super::{Channel, ChannelContext};
use crate::exchange::{validate_headers_arguments, ExchangeKind};
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
    pub(super) fn handle_exchange(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: exchange::AMQPMethod,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let vhost = ctx.vhost;
        let id = self.id;
        match method {
            exchange::AMQPMethod::Declare(d) => {
                vhost.declare_exchange(&ExchangeDeclare {
                    name: d.exchange.as_str(),
                    kind: d.kind.as_str(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                })?;
                if !d.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                            exchange::DeclareOk {},
                        )),
                    );
                }
            }
            exchange::AMQPMethod::Delete(d) => {
                vhost.delete_exchange(d.exchange.as_str(), d.if_unused)?;
                if !d.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                    );
                }
            }
            exchange::AMQPMethod::Bind(b) => {
                check_binding_arguments(vhost, b.source.as_str(), &b.arguments)?;
                vhost.bind_exchange(
                    b.destination.as_str(),
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                if !b.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
                    );
                }
            }
            exchange::AMQPMethod::Unbind(b) => {
                vhost.unbind_exchange(
                    b.destination.as_str(),
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                if !b.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
                    );
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

    pub(super) fn handle_queue(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: queue::AMQPMethod,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let vhost = ctx.vhost;
        let id = self.id;
        let conn_id = ctx.conn.id;
        match method {
            queue::AMQPMethod::Declare(d) => {
                let name = if d.passive {
                    self.queue_name(d.queue.as_str())?.to_string()
                } else {
                    d.queue.to_string()
                };
                let handle = vhost.declare_queue(&QueueDeclare {
                    name: &name,
                    passive: d.passive,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: d.arguments,
                    connection_id: conn_id,
                })?;
                if d.exclusive
                    && !ctx
                        .exclusive_queues
                        .iter()
                        .any(|q| std::sync::Arc::ptr_eq(q, &handle))
                {
                    ctx.exclusive_queues.push(handle.clone());
                }
                self.last_queue = Some(handle.spec.name.clone());
                if !d.nowait {
                    // declare-ok carries the counts, which only the queue knows.
                    let then = Continuation::DeclareOk {
                        queue: handle.spec.name.clone(),
                    };
                    effects.push(Effect::Ask {
                        queue: handle,
                        request: QueueRequest::Stats,
                        then,
                    });
                }
            }
            queue::AMQPMethod::Bind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                check_binding_arguments(vhost, b.exchange.as_str(), &b.arguments)?;
                vhost.bind_queue(
                    &name,
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    conn_id,
                )?;
                if !b.nowait {
                    effects.reply(
                        id,
                        AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                    );
                }
            }
            queue::AMQPMethod::Unbind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                vhost.unbind_queue(
                    &name,
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    conn_id,
                )?;
                effects.reply(
                    id,
                    AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                );
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                let queue = vhost.queue_for(&name, conn_id)?;
                // Asked even with nowait: a later method must find the queue purged.
                effects.push(Effect::Ask {
                    queue,
                    request: QueueRequest::Purge,
                    then: Continuation::PurgeOk { nowait: p.nowait },
                });
            }
            queue::AMQPMethod::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                match vhost.queue_to_delete(&name, conn_id)? {
                    Some(queue) => effects.push(Effect::Ask {
                        queue: queue.clone(),
                        request: QueueRequest::Delete {
                            if_unused: d.if_unused,
                            if_empty: d.if_empty,
                        },
                        then: Continuation::DeleteOk {
                            queue,
                            nowait: d.nowait,
                        },
                    }),
                    None => self.deleted_queue(ctx, &name, 0, d.nowait, effects),
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
