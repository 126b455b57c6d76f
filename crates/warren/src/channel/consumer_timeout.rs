//! Warren's `cancel-consumer` consumer timeout (policy key `warren-consumer-timeout-action`): instead of closing the
//! channel as RabbitMQ does, the late delivery goes back to its queue and only its consumer is cancelled.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::delivery_state::{DeliveryState, LateDelivery};
use crate::queue::sink::{DeliverySink, QueueReply};
use crate::queue::{QueueCommand, SettleAction};

/// Cancels the consumer of `late` at its queue (so the requeued message cannot go back to it), requeues the
/// delivery, and sends the client basic.cancel when it takes one (`consumer_cancel_notify`). The delivery and the
/// consumer were already taken off the channel by [`DeliveryState::overdue`]; a later ack of the delivery's tag is
/// an unknown tag, as after any requeue.
pub(crate) async fn cancel_late_consumer(deliveries: &Arc<DeliveryState>, late: LateDelivery) {
    let queue = late.unacked.queue.clone();
    tracing::warn!(
        "consumer '{}' on channel {} did not acknowledge a delivery from queue '{}' in time; its delivery is \
         requeued and the consumer cancelled (warren-consumer-timeout-action cancel-consumer)",
        late.consumer_tag,
        deliveries.channel,
        queue.name()
    );
    let (reply, answer) = oneshot::channel();
    let sink: Arc<dyn DeliverySink> = deliveries.clone();
    let cancel = QueueCommand::Cancel {
        sink,
        consumer_tag: late.consumer_tag.clone(),
        send_ok: false,
        reply,
    };
    if queue.send(cancel).await {
        // The queue is gone if this fails: nothing to wait for.
        let _ = answer.await;
    }
    queue.settle(QueueCommand::Settle {
        deliveries: vec![(late.unacked.seq, late.unacked.consumer)],
        action: SettleAction::Requeue,
    });
    if deliveries.wants_cancel_notify() {
        deliveries.reply(QueueReply::Cancel {
            tag: late.consumer_tag,
        });
    }
}
