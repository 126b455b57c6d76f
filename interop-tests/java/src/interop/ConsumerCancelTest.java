// Consumer cancel notification: deleting a queue cancels its consumers with a server-sent basic.cancel, which the Java
// client delivers to Consumer.handleCancel (not handleCancelOk). The channel stays open.
package interop;

import com.rabbitmq.client.Channel;

public class ConsumerCancelTest extends BrokerTest {
    public void test_handle_cancel_when_queue_is_deleted() throws Exception {
        String queue = queue("cancel");
        ch.basicPublish("", queue, null, bytes("before delete"));
        Collector collector = new Collector(ch);
        String tag = ch.basicConsume(queue, true, collector);
        assertEquals("first delivery", "before delete", collector.next(5_000, "the first delivery").text());

        // Another connection deletes the queue under the consumer.
        Channel deleter = connect().createChannel();
        deleter.queueDelete(queue);
        assertEquals("consumer event", "cancel " + tag, collector.nextEvent(5_000, "handleCancel"));
        assertEquals("a second event", null, collector.events.poll(300, java.util.concurrent.TimeUnit.MILLISECONDS));
        collector.assertNoDelivery(0, "the consumer was cancelled");

        assertTrue(ch.isOpen(), "a server-side cancel must leave the channel open");
        String spare = serverNamedQueue(ch);
        assertEquals("the channel still works", null, ch.basicGet(spare, true));
    }

    public void test_client_cancel_gets_handle_cancel_ok() throws Exception {
        String queue = queue("cancel.client");
        Collector collector = new Collector(ch);
        String tag = ch.basicConsume(queue, true, "my-consumer", collector);
        assertEquals("the client-chosen consumer tag", "my-consumer", tag);
        ch.basicCancel(tag);
        assertEquals("consumer event", "cancel-ok " + tag, collector.nextEvent(5_000, "handleCancelOk"));
        ch.queueDelete(queue);
        assertEquals("no server cancel after the client cancelled", null,
                collector.events.poll(200, java.util.concurrent.TimeUnit.MILLISECONDS));
    }
}
