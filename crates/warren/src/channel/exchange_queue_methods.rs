//! The exchange and queue classes: declare, bind, unbind, purge, delete.

use std::sync::Arc;

use super::effect::{ChannelEffects, Continuation, Effect, QueueRequest};
use super::permissions::exchange_argument;
use super::{Channel, ChannelContext};
use crate::auth::users::Access;
use crate::exchange::consistent_hash::binding_weight;
use crate::exchange::{validate_headers_arguments, Destination, ExchangeKind};
use crate::vhost::{generated_queue_name, ExchangeDeclare, QueueDeclare, Vhost};
use warren_protocol::error::AmqpError;
use warren_protocol::ids::{self, MethodId};
use warren_protocol::{exchange, queue, AMQPClass, FieldTable, ShortString};

/// Headers bindings must carry a valid x-match, and a consistent-hash binding's key must be a weight (406
/// otherwise, as in RabbitMQ and its plugin).
fn check_binding_arguments(
    vhost: &Vhost,
    exchange: &str,
    routing_key: &str,
    args: &FieldTable,
) -> Result<(), AmqpError> {
    match vhost.exchange(exchange).map(|x| x.routing_kind) {
        Some(ExchangeKind::Headers) => {
            validate_headers_arguments(args).map_err(|e| AmqpError::precondition(e.to_string()))
        }
        Some(ExchangeKind::ConsistentHash) => binding_weight(routing_key)
            .map(|_| ())
            .map_err(AmqpError::precondition),
        _ => Ok(()),
    }
}

/// `name` without its CR and LF characters, as RabbitMQ's `rabbit_channel:strip_cr_lf/1` reads the exchange and
/// queue names of exchange.declare, exchange.delete, queue.declare, queue.delete and of the four bind and unbind
/// methods (not those of queue.purge, basic.consume, basic.get or basic.publish, nor routing keys).
fn strip_cr_lf(name: ShortString) -> ShortString {
    if name.as_str().contains(['\r', '\n']) {
        ShortString::from(name.as_str().replace(['\r', '\n'], ""))
    } else {
        name
    }
}

/// [`strip_cr_lf`] for a queue name after the empty name was expanded (RabbitMQ expands, then strips).
fn strip_cr_lf_queue(name: Arc<str>) -> Arc<str> {
    if name.contains(['\r', '\n']) {
        Arc::from(name.replace(['\r', '\n'], ""))
    } else {
        name
    }
}

/// The routing key of queue.bind and queue.unbind as RabbitMQ reads it (`expand_routing_key_shortcut`): with both
/// the queue name and the key empty, the key is the name of the queue the empty name stands for.
fn default_routing_key(queue: &ShortString, key: ShortString, queue_name: &str) -> ShortString {
    if queue.as_str().is_empty() && key.as_str().is_empty() {
        ShortString::from(queue_name)
    } else {
        key
    }
}

impl Channel {
    /// Applies a topology change: at once when it cannot write to the definitions store, else as an
    /// [`Effect::Topology`] for the driver to run on the blocking pool (a redb commit is an fsync, which must not
    /// stall the reader's worker thread). `reply` is sent once the change is made.
    #[allow(clippy::too_many_arguments)]
    fn change_topology(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: MethodId,
        may_persist: bool,
        change: impl FnOnce(&Vhost) -> Result<(), AmqpError> + Send + 'static,
        reply: Option<AMQPClass>,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let then = Continuation::Reply(reply);
        if may_persist {
            effects.push(Effect::Topology {
                change: Box::new(move |vhost: &Vhost| change(vhost).map(|()| None)),
                method,
                then,
            });
            return Ok(());
        }
        change(ctx.vhost)?;
        self.resume(ctx, then, effects)
    }

    pub(super) fn handle_exchange(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: exchange::AMQPMethod,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        let vhost = ctx.vhost;
        // Who performs the change, for its event (moved into the change, which may run on the blocking pool).
        let user = ctx.conn.user.clone();
        match method {
            exchange::AMQPMethod::Declare(mut d) => {
                d.exchange = strip_cr_lf(d.exchange);
                let name = d.exchange.as_str();
                // Passive needs no permission; the default exchange is refused by the declare itself.
                if !d.passive && !name.is_empty() {
                    ctx.check("exchange", name, Access::Configure)?;
                    let alternate = exchange_argument(&d.arguments, "alternate-exchange");
                    if let (None, Some(alternate)) = (vhost.exchange(name), alternate) {
                        ctx.check("exchange", name, Access::Read)?;
                        ctx.check("exchange", alternate, Access::Write)?;
                    }
                }
                let nowait = d.nowait;
                let may_persist = !d.passive && vhost.may_persist_declare(d.durable, false);
                let reply = (!nowait).then_some(AMQPClass::Exchange(
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                ));
                self.change_topology(
                    ctx,
                    ids::EXCHANGE_DECLARE,
                    may_persist,
                    move |vhost| {
                        vhost.declare_exchange(&ExchangeDeclare {
                            name: d.exchange.as_str(),
                            kind: d.kind.as_str(),
                            passive: d.passive,
                            durable: d.durable,
                            auto_delete: d.auto_delete,
                            internal: d.internal,
                            arguments: d.arguments,
                            user: &user,
                        })
                    },
                    reply,
                    effects,
                )?;
            }
            exchange::AMQPMethod::Delete(mut d) => {
                d.exchange = strip_cr_lf(d.exchange);
                let name = d.exchange.as_str();
                // The default and amq.* exchanges are refused by the delete itself, before any permission.
                if !name.is_empty() && !name.starts_with("amq.") {
                    ctx.check("exchange", name, Access::Configure)?;
                }
                let nowait = d.nowait;
                let stored = vhost
                    .exchange(d.exchange.as_str())
                    .is_some_and(|x| x.durable);
                let may_persist = vhost.may_persist_removal(stored);
                let reply = (!nowait).then_some(AMQPClass::Exchange(
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                ));
                self.change_topology(
                    ctx,
                    ids::EXCHANGE_DELETE,
                    may_persist,
                    move |vhost| vhost.delete_exchange(d.exchange.as_str(), d.if_unused, &user),
                    reply,
                    effects,
                )?;
            }
            exchange::AMQPMethod::Bind(mut b) => {
                b.source = strip_cr_lf(b.source);
                b.destination = strip_cr_lf(b.destination);
                ctx.check_binding(
                    b.source.as_str(),
                    "exchange",
                    b.destination.as_str(),
                    b.routing_key.as_str(),
                )?;
                check_binding_arguments(
                    vhost,
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    &b.arguments,
                )?;
                let nowait = b.nowait;
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                let may_persist = vhost.may_persist_binding(b.source.as_str(), &destination);
                let reply = (!nowait).then_some(AMQPClass::Exchange(exchange::AMQPMethod::BindOk(
                    exchange::BindOk {},
                )));
                self.change_topology(
                    ctx,
                    ids::EXCHANGE_BIND,
                    may_persist,
                    move |vhost| {
                        vhost.bind_exchange(
                            b.destination.as_str(),
                            b.source.as_str(),
                            b.routing_key.as_str(),
                            b.arguments,
                            &user,
                        )
                    },
                    reply,
                    effects,
                )?;
            }
            exchange::AMQPMethod::Unbind(mut b) => {
                b.source = strip_cr_lf(b.source);
                b.destination = strip_cr_lf(b.destination);
                ctx.check_binding(
                    b.source.as_str(),
                    "exchange",
                    b.destination.as_str(),
                    b.routing_key.as_str(),
                )?;
                let nowait = b.nowait;
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                let stored = vhost.may_persist_binding(b.source.as_str(), &destination);
                let may_persist = vhost.may_persist_removal(stored);
                let reply = (!nowait).then_some(AMQPClass::Exchange(
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                ));
                self.change_topology(
                    ctx,
                    ids::EXCHANGE_UNBIND,
                    may_persist,
                    move |vhost| {
                        vhost.unbind_exchange(
                            b.destination.as_str(),
                            b.source.as_str(),
                            b.routing_key.as_str(),
                            b.arguments,
                            &user,
                        )
                    },
                    reply,
                    effects,
                )?;
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
        let conn_id = ctx.conn.id;
        // Who performs the change, for its event (moved into the change, which may run on the blocking pool).
        let user = ctx.conn.user.clone();
        match method {
            queue::AMQPMethod::Declare(d) => {
                // Not expanded to the last declared queue, even passive: RabbitMQ answers a passive declare of
                // "" with 404 "no queue ''" (`expand_shortcuts` leaves queue.declare alone).
                let mut name = strip_cr_lf(d.queue).to_string();
                if let Some(answer) = self.declare_reply_queue(ctx, &name) {
                    let declare_ok = answer?;
                    self.last_queue = Some(Arc::from(name.as_str()));
                    if !d.nowait {
                        effects.reply(self.id, declare_ok);
                    }
                    return Ok(());
                }
                // Named here rather than by the vhost, so that the configure check sees the amq.gen- name.
                let server_named = !d.passive && name.is_empty();
                if server_named {
                    name = generated_queue_name();
                }
                // Passive needs no permission; a reserved amq.* name is refused by the declare itself.
                if !d.passive && (server_named || !name.starts_with("amq.")) {
                    ctx.check("queue", &name, Access::Configure)?;
                    let dlx = exchange_argument(&d.arguments, "x-dead-letter-exchange");
                    if let (None, Some(dlx)) = (vhost.queue(&name), dlx) {
                        ctx.check("queue", &name, Access::Read)?;
                        ctx.check("exchange", dlx, Access::Write)?;
                    }
                }
                let may_persist = !d.passive && vhost.may_persist_declare(d.durable, d.exclusive);
                let (passive, durable, exclusive, auto_delete) =
                    (d.passive, d.durable, d.exclusive, d.auto_delete);
                let arguments = d.arguments;
                let declare = move |vhost: &Vhost| {
                    vhost
                        .declare_queue(&QueueDeclare {
                            name: &name,
                            server_named,
                            passive,
                            durable,
                            exclusive,
                            auto_delete,
                            arguments,
                            connection_id: conn_id,
                            user: &user,
                        })
                        .map(Some)
                };
                let then = Continuation::QueueDeclared {
                    exclusive,
                    nowait: d.nowait,
                };
                if may_persist {
                    effects.push(Effect::Topology {
                        change: Box::new(declare),
                        method: ids::QUEUE_DECLARE,
                        then,
                    });
                } else if let Some(handle) = declare(vhost)? {
                    self.queue_declared(ctx, then, handle, effects)?;
                }
            }
            queue::AMQPMethod::Bind(mut b) => {
                let name = self.queue_name(b.queue.as_str())?;
                let key = default_routing_key(&b.queue, b.routing_key, &name);
                let name = strip_cr_lf_queue(name);
                b.exchange = strip_cr_lf(b.exchange);
                ctx.check_binding(b.exchange.as_str(), "queue", &name, key.as_str())?;
                check_binding_arguments(vhost, b.exchange.as_str(), key.as_str(), &b.arguments)?;
                let nowait = b.nowait;
                let destination = Destination::Queue(name.clone());
                let may_persist = vhost.may_persist_binding(b.exchange.as_str(), &destination);
                let reply = (!nowait).then_some(AMQPClass::Queue(queue::AMQPMethod::BindOk(
                    queue::BindOk {},
                )));
                self.change_topology(
                    ctx,
                    ids::QUEUE_BIND,
                    may_persist,
                    move |vhost| {
                        vhost.bind_queue(
                            &name,
                            b.exchange.as_str(),
                            key.as_str(),
                            b.arguments,
                            conn_id,
                            &user,
                        )
                    },
                    reply,
                    effects,
                )?;
            }
            queue::AMQPMethod::Unbind(mut b) => {
                let name = self.queue_name(b.queue.as_str())?;
                let key = default_routing_key(&b.queue, b.routing_key, &name);
                let name = strip_cr_lf_queue(name);
                b.exchange = strip_cr_lf(b.exchange);
                ctx.check_binding(b.exchange.as_str(), "queue", &name, key.as_str())?;
                let destination = Destination::Queue(name.clone());
                let stored = vhost.may_persist_binding(b.exchange.as_str(), &destination);
                let may_persist = vhost.may_persist_removal(stored);
                let reply = AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {}));
                self.change_topology(
                    ctx,
                    ids::QUEUE_UNBIND,
                    may_persist,
                    move |vhost| {
                        vhost.unbind_queue(
                            &name,
                            b.exchange.as_str(),
                            key.as_str(),
                            b.arguments,
                            conn_id,
                            &user,
                        )
                    },
                    Some(reply),
                    effects,
                )?;
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                ctx.check("queue", &name, Access::Read)?;
                let queue = vhost.queue_for(&name, conn_id)?;
                // Asked even with nowait: a later method must find the queue purged.
                effects.push(Effect::Ask {
                    queue,
                    request: QueueRequest::Purge,
                    then: Continuation::PurgeOk { nowait: p.nowait },
                });
            }
            queue::AMQPMethod::Delete(d) => {
                let name = strip_cr_lf_queue(self.queue_name(d.queue.as_str())?);
                ctx.check("queue", &name, Access::Configure)?;
                match vhost.queue_to_delete(&name, conn_id)? {
                    Some(queue) => effects.push(Effect::Ask {
                        queue: queue.clone(),
                        request: QueueRequest::Delete {
                            if_unused: d.if_unused,
                            if_empty: d.if_empty,
                            sink: self.deliveries.clone(),
                        },
                        then: Continuation::DeleteOk {
                            queue,
                            nowait: d.nowait,
                        },
                    }),
                    None => self.deleted_queue(ctx, &name, 0, d.nowait, Vec::new(), effects),
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
