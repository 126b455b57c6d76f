// AMQP transactions (tx.select / commit / rollback) covering both publishes and acks.
package interop;

import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.MessageProperties;

public class TxTest extends BrokerTest {
    public void test_tx_commit_makes_publishes_and_acks_take_effect() throws Exception {
        String queue = queue("tx.commit");
        ch.txSelect();
        ch.basicPublish("", queue, null, bytes("a"));
        ch.basicPublish("", queue, MessageProperties.PERSISTENT_BASIC, bytes("b"));
        Thread.sleep(300);
        assertEquals("uncommitted publishes must not be visible", 0, depth(queue));
        ch.txCommit();
        waitDepth(queue, 2);

        GetResponse a = ch.basicGet(queue, false);
        GetResponse b = ch.basicGet(queue, false);
        assertEquals("bodies", java.util.List.of("a", "b"), java.util.List.of(text(a.getBody()), text(b.getBody())));
        ch.basicAck(a.getEnvelope().getDeliveryTag(), false);
        ch.basicAck(b.getEnvelope().getDeliveryTag(), false);
        ch.txCommit();
        // The acks were committed: closing the channel requeues nothing.
        ch.close();
        Thread.sleep(300);
        assertEquals("depth after committed acks", 0, depth(queue));
    }

    public void test_tx_rollback_discards_publishes_and_acks() throws Exception {
        String queue = queue("tx.rollback");
        ch.txSelect();
        ch.basicPublish("", queue, null, bytes("discarded"));
        ch.txRollback();
        ch.basicPublish("", queue, null, bytes("kept"));
        ch.txCommit();
        waitDepth(queue, 1);
        Thread.sleep(200);
        assertEquals("the rolled-back publish must never arrive", 1, depth(queue));

        GetResponse kept = ch.basicGet(queue, false);
        assertEquals("body", "kept", text(kept.getBody()));
        ch.basicAck(kept.getEnvelope().getDeliveryTag(), false);
        ch.txRollback();
        // The ack was rolled back, so the message is still unacked here and comes back when the channel closes.
        ch.close();
        waitDepth(queue, 1);
        GetResponse again = conn.createChannel().basicGet(queue, true);
        assertEquals("body", "kept", text(again.getBody()));
        assertTrue(again.getEnvelope().isRedeliver(), "redelivered after the rolled-back ack");
    }
}
