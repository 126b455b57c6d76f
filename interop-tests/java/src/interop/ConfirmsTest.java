// Publisher confirms through the Java client: waitForConfirms (synchronous) and a ConfirmListener (asynchronous), and
// mandatory publishing: an unroutable mandatory message reaches the ReturnListener before its confirm.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.ConfirmListener;
import com.rabbitmq.client.MessageProperties;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.NavigableSet;
import java.util.concurrent.ConcurrentSkipListSet;

public class ConfirmsTest extends BrokerTest {
    public void test_wait_for_confirms_sync() throws Exception {
        String queue = queue("confirm", true, false, null);
        ch.confirmSelect();
        assertEquals("first publish sequence number", 1L, ch.getNextPublishSeqNo());
        for (int i = 0; i < 50; i++) {
            ch.basicPublish("", queue, MessageProperties.PERSISTENT_BASIC, bytes("persistent-" + i));
        }
        for (int i = 0; i < 50; i++) {
            ch.basicPublish("", queue, null, bytes("transient-" + i));
        }
        assertTrue(ch.waitForConfirms(5_000), "waitForConfirms: some publish was nacked");
        assertEquals("next publish sequence number", 101L, ch.getNextPublishSeqNo());
        ch.basicPublish("", queue, null, bytes("one more"));
        ch.waitForConfirmsOrDie(5_000);
        assertEquals("depth", 101, depth(queue));
        List<String> bodies = drain(ch, queue);
        assertEquals("first bodies", List.of("persistent-0", "persistent-1"), bodies.subList(0, 2));
        assertEquals("last bodies", List.of("transient-49", "one more"), bodies.subList(99, 101));
    }

    public void test_confirm_listener_async() throws Exception {
        String queue = queue("confirm.async", true, false, null);
        ch.confirmSelect();
        NavigableSet<Long> outstanding = new ConcurrentSkipListSet<>();
        List<String> problems = Collections.synchronizedList(new ArrayList<>());
        ch.addConfirmListener(new ConfirmListener() {
            @Override
            public void handleAck(long deliveryTag, boolean multiple) {
                settle("ack", deliveryTag, multiple);
            }

            @Override
            public void handleNack(long deliveryTag, boolean multiple) {
                problems.add("nack " + deliveryTag + (multiple ? " multiple" : ""));
                settle("nack", deliveryTag, multiple);
            }

            private void settle(String kind, long deliveryTag, boolean multiple) {
                if (multiple) {
                    outstanding.headSet(deliveryTag, true).clear();
                } else if (!outstanding.remove(deliveryTag)) {
                    problems.add(kind + " for tag " + deliveryTag + ", which is not outstanding");
                }
            }
        });
        for (int i = 0; i < 200; i++) {
            outstanding.add(ch.getNextPublishSeqNo());
            ch.basicPublish("", queue, MessageProperties.PERSISTENT_BASIC, bytes("m" + i));
        }
        waitFor(10_000, () -> outstanding.size() + " publishes still unconfirmed", outstanding::isEmpty);
        assertEquals("confirm problems", List.of(), problems);
        assertEquals("depth", 200, depth(queue));
    }

    public void test_mandatory_unroutable_is_returned_before_its_ack() throws Exception {
        ch.confirmSelect();
        List<String> events = Collections.synchronizedList(new ArrayList<>());
        List<Object[]> returns = Collections.synchronizedList(new ArrayList<>());
        ch.addReturnListener((replyCode, replyText, exchange, routingKey, properties, body) -> {
            events.add("return");
            returns.add(new Object[] {replyCode, replyText, exchange, routingKey, properties.getMessageId(), text(body)});
        });
        ch.addConfirmListener(new ConfirmListener() {
            @Override
            public void handleAck(long deliveryTag, boolean multiple) {
                events.add("ack " + deliveryTag);
            }

            @Override
            public void handleNack(long deliveryTag, boolean multiple) {
                events.add("nack " + deliveryTag);
            }
        });

        String key = unique("nowhere");
        AMQP.BasicProperties withId = new AMQP.BasicProperties.Builder().messageId("m-1").build();
        ch.basicPublish("amq.direct", key, true, withId, bytes("lost"));
        ch.waitForConfirmsOrDie(5_000);
        // RabbitMQ sends basic.return before the basic.ack of an unroutable mandatory message.
        assertEquals("events", List.of("return", "ack 1"), new ArrayList<>(events));
        assertEquals("the return", List.of(312, "NO_ROUTE", "amq.direct", key, "m-1", "lost"),
                List.of(returns.get(0)));

        // The same through the default exchange to a queue that does not exist.
        events.clear();
        String missing = unique("no-such-queue");
        ch.basicPublish("", missing, true, null, bytes("lost again"));
        ch.waitForConfirmsOrDie(5_000);
        assertEquals("events", List.of("return", "ack 2"), new ArrayList<>(events));
        assertEquals("returned routing key", missing, returns.get(1)[3]);

        // Without mandatory an unroutable message is confirmed and dropped silently; a routable mandatory one is kept.
        events.clear();
        ch.basicPublish("amq.direct", key, false, null, bytes("dropped"));
        String queue = queue("routable");
        ch.basicPublish("", queue, true, null, bytes("kept"));
        ch.waitForConfirmsOrDie(5_000);
        Thread.sleep(100);
        assertTrue(!events.contains("return"), "unexpected basic.return: " + events);
        assertEquals("routable queue", List.of("kept"), drain(ch, queue));
        assertTrue(ch.isOpen(), "the channel stays open");
    }
}
