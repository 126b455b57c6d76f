// basic.get and the ways a consumer settles a delivery: ack, nack (with and without requeue, multiple) and reject.
package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.GetResponse;
import java.util.ArrayList;
import java.util.List;

public class AcksTest extends BrokerTest {
    private GetResponse get(Channel channel, String queue, boolean autoAck) throws Exception {
        GetResponse response = channel.basicGet(queue, autoAck);
        assertTrue(response != null, "basic.get-empty: expected a message in " + queue);
        return response;
    }

    /** Consumes one message with manual ack, then cancels the consumer (its delivery stays unacked). */
    private Collector.Received nextDelivery(Channel channel, String queue) throws Exception {
        channel.basicQos(1);
        Collector collector = new Collector(channel);
        String tag = channel.basicConsume(queue, false, collector);
        Collector.Received received = collector.next(5_000, "a delivery from " + queue);
        channel.basicCancel(tag);
        assertEquals("after basic.cancel", "cancel-ok " + tag, collector.nextEvent(5_000, "basic.cancel-ok"));
        return received;
    }

    public void test_basic_get() throws Exception {
        String queue = queue("get");
        assertEquals("basic.get-empty on an empty queue", null, ch.basicGet(queue, false));

        publishConfirmed(queue, "a", "b", "c");
        GetResponse response = get(ch, queue, false);
        assertEquals("body", "a", text(response.getBody()));
        assertEquals("basic.get-ok message_count counts what is left", 2, response.getMessageCount());
        assertEquals("delivery tag", 1L, response.getEnvelope().getDeliveryTag());
        assertEquals("redelivered", false, response.getEnvelope().isRedeliver());
        assertEquals("exchange and routing key", List.of("", queue),
                List.of(response.getEnvelope().getExchange(), response.getEnvelope().getRoutingKey()));
        ch.basicAck(response.getEnvelope().getDeliveryTag(), false);

        response = get(ch, queue, true);
        assertEquals("second get", List.of("b", 1, 2L), List.of(text(response.getBody()), response.getMessageCount(),
                response.getEnvelope().getDeliveryTag()));
        response = get(ch, queue, false); // not acked
        assertEquals("third get", List.of("c", 0, 3L), List.of(text(response.getBody()), response.getMessageCount(),
                response.getEnvelope().getDeliveryTag()));
        assertEquals("empty again", null, ch.basicGet(queue, false));

        // Closing the channel returns the unacked message, now marked redelivered.
        ch.close();
        ch = conn.createChannel();
        waitDepth(queue, 1);
        response = get(ch, queue, true);
        assertEquals("body", "c", text(response.getBody()));
        assertTrue(response.getEnvelope().isRedeliver(), "redelivered after its channel closed");
        assertEquals("delivery tags are per channel and start at 1", 1L, response.getEnvelope().getDeliveryTag());
    }

    public void test_nack_with_requeue_redelivers() throws Exception {
        String queue = queue("nack.requeue");
        publishConfirmed(queue, "retry me");
        Channel consumer = conn.createChannel();
        Collector.Received received = nextDelivery(consumer, queue);
        assertEquals("first delivery", List.of("retry me", false), List.of(received.text(), received.redelivered()));
        consumer.basicNack(received.tag(), false, true);

        received = nextDelivery(consumer, queue);
        assertEquals("body", "retry me", received.text());
        assertTrue(received.redelivered(), "a nacked-and-requeued message comes back with redelivered=true");
        consumer.basicAck(received.tag(), false);
        Thread.sleep(200);
        assertEquals("depth", 0, depth(queue));
        assertEquals("empty", null, ch.basicGet(queue, false));
    }

    public void test_nack_without_requeue_discards() throws Exception {
        String queue = queue("nack.drop");
        publishConfirmed(queue, "poison", "fine");
        GetResponse response = get(ch, queue, false);
        assertEquals("body", "poison", text(response.getBody()));
        ch.basicNack(response.getEnvelope().getDeliveryTag(), false, false);
        assertEquals("body", "fine", text(get(ch, queue, true).getBody()));
        assertEquals("a nack without requeue drops the message", null, ch.basicGet(queue, false));
        // Not hidden somewhere either: closing the channel brings nothing back.
        ch.close();
        Thread.sleep(200);
        assertEquals("depth", 0, depth(queue));
    }

    public void test_nack_multiple_requeues_all_up_to_the_tag() throws Exception {
        String queue = queue("nack.multiple");
        publishConfirmed(queue, "1", "2", "3", "4");
        List<Long> tags = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            tags.add(get(ch, queue, false).getEnvelope().getDeliveryTag());
        }
        assertEquals("tags", List.of(1L, 2L, 3L), tags);
        ch.basicNack(tags.get(1), true, true); // settles 1 and 2, leaves 3 unacked
        waitDepth(queue, 3);
        List<String> seen = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            GetResponse response = get(ch, queue, true);
            seen.add(text(response.getBody()) + (response.getEnvelope().isRedeliver() ? " redelivered" : ""));
        }
        seen.sort(null);
        assertEquals("after nack multiple", List.of("1 redelivered", "2 redelivered", "4"), seen);
        ch.basicAck(tags.get(2), false);
        ch.close();
        Thread.sleep(200);
        assertEquals("depth", 0, depth(queue));
    }

    public void test_reject_with_and_without_requeue() throws Exception {
        String queue = queue("reject");
        publishConfirmed(queue, "m");
        Channel consumer = conn.createChannel();
        Collector.Received received = nextDelivery(consumer, queue);
        assertEquals("redelivered", false, received.redelivered());
        consumer.basicReject(received.tag(), true);

        received = nextDelivery(consumer, queue);
        assertEquals("body", "m", received.text());
        assertTrue(received.redelivered(), "redelivered after reject with requeue");
        consumer.basicReject(received.tag(), false);
        Thread.sleep(200);
        assertEquals("depth", 0, depth(queue));
        consumer.close();
        Thread.sleep(200);
        assertEquals("a message rejected without requeue must not come back", 0, depth(queue));
    }
}
