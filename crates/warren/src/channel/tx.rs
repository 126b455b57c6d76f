//! The tx class: publishes and acks held until commit, discarded (acks restored) on rollback.

use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::{tx, AMQPClass};

use super::delivery_state::Unacked;
use super::effect::{ChannelEffects, Continuation, Effect, HeldPublishes};
use super::{send_settlements, Channel, ChannelContext, Transaction};
use crate::queue::SettleAction;

impl Channel {
    pub(super) fn handle_tx(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        method: tx::AMQPMethod,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        match method {
            tx::AMQPMethod::Select(_) => {
                if self.confirms.is_some() {
                    return Err(AmqpError::precondition(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                if self.tx.is_none() {
                    self.tx = Some(Transaction::default());
                    self.deliveries.set_transactional();
                }
                effects.reply(
                    self.id,
                    AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                );
                Ok(())
            }
            tx::AMQPMethod::Commit(_) => {
                let Some(held) = self.tx.as_mut().map(std::mem::take) else {
                    return Err(AmqpError::precondition("channel is not transactional"));
                };
                for ack in held.acks {
                    let settled: Vec<Unacked> = ack.deliveries.into_values().collect();
                    let acked = matches!(ack.action, SettleAction::Ack);
                    self.deliveries.release_held(&settled, acked);
                    send_settlements(effects, settled, ack.action);
                }
                self.commit_publishes(ctx, held.publishes.into_iter(), effects)
            }
            tx::AMQPMethod::Rollback(_) => {
                let Some(held) = self.tx.as_mut() else {
                    return Err(AmqpError::precondition("channel is not transactional"));
                };
                for ack in std::mem::take(held).acks {
                    self.deliveries.restore_unacked(ack.deliveries);
                }
                effects.reply(
                    self.id,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
                Ok(())
            }
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!(
                    "unexpected method {}.{}",
                    90,
                    AMQPClass::Tx(other).get_amqp_method_id()
                ),
            )),
        }
    }

    /// Routes a committed transaction's publishes in order, then replies commit-ok once every one is handed to its
    /// queues. A publish that has to wait for room stops the routing there and resumes it after the wait: routing
    /// on would let a later run overtake the held one in its queue.
    pub(super) fn commit_publishes(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        mut rest: HeldPublishes,
        effects: &mut ChannelEffects,
    ) -> Result<(), AmqpError> {
        while let Some((message, mandatory)) = rest.next() {
            let backlog = self.route(ctx, message, mandatory, effects)?;
            if !backlog.is_empty() {
                effects.push(Effect::Drain(backlog));
                effects.push(Effect::Resume(Continuation::Commit(rest)));
                return Ok(());
            }
        }
        let backlog = ctx.publish_runs.flush();
        if !backlog.is_empty() {
            effects.push(Effect::Drain(backlog));
        }
        effects.reply(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        );
        Ok(())
    }
}
