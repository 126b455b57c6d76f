// Queue semantics as Java client applications rely on them: message TTL, length limits (drop-head, reject-publish
// and reject-publish-dlx with publisher confirms), dead-lettering with x-death (a retry loop, nack multiple), message
// and consumer priorities, single active consumer failover, and the quorum queue delivery limit. Each test passes
// against RabbitMQ 3.10 as well.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.GetResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

public class QueueSemanticsTest extends BrokerTest {
    /** basic.get (manual ack) until a message comes. */
    private GetResponse getOne(Channel channel, String queue) throws Exception {
        GetResponse[] got = {null};
        waitFor(5_000, () -> "a message in " + queue, () -> (got[0] = channel.basicGet(queue, false)) != null);
        return got[0];
    }

    /** The x-death entries of a message as "queue reason count" strings, most recent first. */
    private static List<String> deaths(AMQP.BasicProperties properties) {
        List<String> out = new ArrayList<>();
        Map<String, Object> headers = properties.getHeaders();
        if (headers == null || !headers.containsKey("x-death")) {
            return out;
        }
        for (Object entry : (List<?>) headers.get("x-death")) {
            Map<?, ?> death = (Map<?, ?>) entry;
            assertTrue(death.get("count") instanceof Long, "x-death count is a long: " + death.get("count"));
            out.add(death.get("queue") + " " + death.get("reason") + " " + death.get("count"));
        }
        return out;
    }

    /** A header's value as text (the client hands strings over as LongString). */
    private static String header(AMQP.BasicProperties properties, String name) {
        Object value = properties.getHeaders() == null ? null : properties.getHeaders().get(name);
        return value == null ? null : value.toString();
    }

    private static AMQP.BasicProperties priority(int priority) {
        return new AMQP.BasicProperties.Builder().priority(priority).build();
    }

    public void test_message_ttl_drops_what_nobody_took_in_time() throws Exception {
        // A second: long enough that the depth check right after the publish does not race the TTL on a busy machine.
        String queue = queue("ttl", false, false, Map.of("x-message-ttl", 1000));
        publishConfirmed(queue, "short-lived");
        assertEquals("depth right after the publish", 1, depth(queue));
        waitDepth(queue, 0);
        assertEquals("what is left", List.of(), drain(ch, queue));
    }

    public void test_max_length_drops_the_oldest() throws Exception {
        String queue = queue("maxlen", false, false, Map.of("x-max-length", 2));
        publishConfirmed(queue, "1", "2", "3", "4");
        assertEquals("depth", 2, depth(queue));
        assertEquals("what the queue kept", List.of("3", "4"), drain(ch, queue));
    }

    public void test_reject_publish_nacks_what_does_not_fit() throws Exception {
        String queue = queue("full", false, false, Map.of("x-max-length", 1, "x-overflow", "reject-publish"));
        ch.confirmSelect();
        ch.basicPublish("", queue, null, bytes("fits"));
        assertTrue(ch.waitForConfirms(5_000), "the first publish fits and is acked");
        ch.basicPublish("", queue, null, bytes("refused"));
        assertEquals("waitForConfirms after an overflowing publish (false: nacked)", false, ch.waitForConfirms(5_000));
        assertEquals("what the queue kept", List.of("fits"), drain(ch, queue));
        ch.basicPublish("", queue, null, bytes("fits again"));
        assertTrue(ch.waitForConfirms(5_000), "acked once there is room again");
        assertEquals("what the queue kept", List.of("fits again"), drain(ch, queue));
    }

    public void test_reject_publish_dlx_nacks_and_dead_letters_what_does_not_fit() throws Exception {
        String dead = queue("full.dead");
        String queue = queue("full.dlx", false, false, Map.of("x-max-length", 1, "x-overflow", "reject-publish-dlx",
                "x-dead-letter-exchange", "", "x-dead-letter-routing-key", dead));
        ch.confirmSelect();
        ch.basicPublish("", queue, null, bytes("fits"));
        assertTrue(ch.waitForConfirms(5_000), "the first publish fits and is acked");
        ch.basicPublish("", queue, null, bytes("refused"));
        assertEquals("waitForConfirms after an overflowing publish (false: nacked)", false, ch.waitForConfirms(5_000));
        GetResponse refused = getOne(ch, dead);
        assertEquals("dead-lettered body", "refused", text(refused.getBody()));
        assertEquals("x-death", List.of(queue + " maxlen 1"), deaths(refused.getProps()));
        ch.basicAck(refused.getEnvelope().getDeliveryTag(), false);
        assertEquals("what the queue kept", List.of("fits"), drain(ch, queue));
    }

    public void test_a_retry_loop_counts_its_rounds_in_x_death() throws Exception {
        String work = unique("work");
        String retry = unique("retry");
        deleteLater(work, null);
        deleteLater(retry, null);
        ch.queueDeclare(work, false, false, false,
                Map.of("x-dead-letter-exchange", "", "x-dead-letter-routing-key", retry));
        ch.queueDeclare(retry, false, false, false,
                Map.of("x-message-ttl", 50, "x-dead-letter-exchange", "", "x-dead-letter-routing-key", work));
        ch.basicPublish("", work, new AMQP.BasicProperties.Builder().headers(Map.of("attempt", "first")).build(),
                bytes("flaky"));
        for (int attempt = 1; attempt <= 3; attempt++) {
            GetResponse response = getOne(ch, work);
            AMQP.BasicProperties properties = response.getProps();
            assertEquals("body", "flaky", text(response.getBody()));
            assertEquals("the publisher's headers survive dead-lettering", "first", header(properties, "attempt"));
            if (attempt == 1) {
                assertEquals("x-death of the first delivery", List.of(), deaths(properties));
            } else {
                int n = attempt - 1;
                // The most recent death first; each (queue, reason) pair has one entry whose count goes up.
                assertEquals("x-death of attempt " + attempt,
                        List.of(retry + " expired " + n, work + " rejected " + n), deaths(properties));
                assertEquals("x-first-death-reason", "rejected", header(properties, "x-first-death-reason"));
                assertEquals("x-first-death-queue", work, header(properties, "x-first-death-queue"));
            }
            ch.basicReject(response.getEnvelope().getDeliveryTag(), false);
        }
    }

    public void test_nack_multiple_without_requeue_dead_letters_each_message() throws Exception {
        String dead = queue("nacked.dead");
        String queue = queue("nacked", false, false, Map.of("x-dead-letter-exchange", "",
                "x-dead-letter-routing-key", dead));
        publishConfirmed(queue, "a", "b", "c");
        long last = 0;
        for (int i = 0; i < 3; i++) {
            last = getOne(ch, queue).getEnvelope().getDeliveryTag();
        }
        ch.basicNack(last, true, false);
        waitDepth(dead, 3);
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            GetResponse response = getOne(ch, dead);
            bodies.add(text(response.getBody()));
            assertEquals("x-death", List.of(queue + " rejected 1"), deaths(response.getProps()));
        }
        assertEquals("dead-lettered bodies", List.of("a", "b", "c"), bodies.stream().sorted().toList());
        assertEquals("the source queue", 0, depth(queue));
    }

    public void test_priorities_deliver_the_highest_first_and_cap_at_the_maximum() throws Exception {
        String queue = queue("prio", false, false, Map.of("x-max-priority", 10));
        ch.confirmSelect();
        ch.basicPublish("", queue, null, bytes("none"));
        ch.basicPublish("", queue, priority(1), bytes("low"));
        ch.basicPublish("", queue, priority(10), bytes("max"));
        // Above the maximum counts as the maximum: behind "max", which came first.
        ch.basicPublish("", queue, priority(200), bytes("above max"));
        ch.basicPublish("", queue, priority(5), bytes("mid"));
        ch.waitForConfirmsOrDie(5_000);
        assertEquals("basic.get order", List.of("max", "above max", "mid", "low", "none"), drain(ch, queue));
    }

    public void test_consumer_priorities_prefer_the_higher_consumer_while_it_has_credit() throws Exception {
        String queue = queue("cprio");
        Channel high = conn.createChannel();
        Channel low = conn.createChannel();
        high.basicQos(2);
        Collector lowCollector = new Collector(low);
        Collector highCollector = new Collector(high);
        low.basicConsume(queue, true, Map.of("x-priority", 1), lowCollector);
        high.basicConsume(queue, false, Map.of("x-priority", 10), highCollector);
        // The higher consumer takes what its prefetch allows (it never acks); the rest goes to the lower one.
        publishConfirmed(queue, "m0", "m1", "m2", "m3", "m4");
        List<String> gotHigh = new ArrayList<>();
        List<String> gotLow = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            gotHigh.add(highCollector.next(5_000, "the higher consumer's share").text());
        }
        for (int i = 0; i < 3; i++) {
            gotLow.add(lowCollector.next(5_000, "the lower consumer's share").text());
        }
        assertEquals("the higher consumer's deliveries", List.of("m0", "m1"), gotHigh);
        assertEquals("the lower consumer's deliveries", List.of("m2", "m3", "m4"), gotLow);
        highCollector.assertNoDelivery(100, "the higher consumer has no credit left");
    }

    public void test_single_active_consumer_fails_over_when_the_active_channel_closes() throws Exception {
        String queue = queue("sac", false, false, Map.of("x-single-active-consumer", true));
        Channel first = conn.createChannel();
        Channel second = conn.createChannel();
        first.basicQos(1);
        Collector firstCollector = new Collector(first);
        Collector secondCollector = new Collector(second);
        first.basicConsume(queue, false, firstCollector);
        second.basicConsume(queue, true, secondCollector);
        publishConfirmed(queue, "m0", "m1", "m2");
        Collector.Received held = firstCollector.next(5_000, "the active consumer's first delivery");
        assertEquals("the active consumer's delivery", "m0", held.text());
        firstCollector.assertNoDelivery(200, "prefetch 1 and no ack");
        secondCollector.assertNoDelivery(200, "the second consumer waits while the first is active");

        // Closing the active consumer's channel requeues its unacked message; the second consumer takes over and
        // gets that message (redelivered) before the rest.
        first.close();
        List<String> got = new ArrayList<>();
        List<Boolean> redelivered = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Collector.Received received = secondCollector.next(5_000, "the new active consumer's share");
            got.add(received.text());
            redelivered.add(received.redelivered());
        }
        assertEquals("the new active consumer's deliveries", List.of("m0", "m1", "m2"), got);
        assertEquals("redelivered flags", List.of(true, false, false), redelivered);
    }

    public void test_quorum_delivery_limit_dead_letters_after_the_redeliveries() throws Exception {
        String dead = queue("dead");
        String queue = queue("quorum", true, false, Map.of("x-queue-type", "quorum", "x-delivery-limit", 1,
                "x-dead-letter-exchange", "", "x-dead-letter-routing-key", dead));
        publishConfirmed(queue, "poison");

        Channel consumer = conn.createChannel();
        consumer.basicQos(1);
        Collector collector = new Collector(consumer);
        consumer.basicConsume(queue, false, collector);
        Collector.Received first = collector.next(5_000, "the first delivery");
        assertEquals("redelivered on the first delivery", false, first.redelivered());
        // RabbitMQ 3.10 sends x-delivery-count 0 on the first delivery; 3.13 (which Warren follows) leaves the header
        // out until the message comes back.
        Map<String, Object> firstHeaders = first.properties().getHeaders();
        Object count = firstHeaders == null ? null : firstHeaders.get("x-delivery-count");
        assertTrue(count == null || count.equals(0L), "x-delivery-count " + count + " on the first delivery");
        consumer.basicNack(first.tag(), false, true);
        Collector.Received second = collector.next(5_000, "the redelivery");
        assertEquals("body", "poison", second.text());
        assertEquals("redelivered on the second delivery", true, second.redelivered());
        assertEquals("x-delivery-count", 1L, second.properties().getHeaders().get("x-delivery-count"));
        // Returned a second time, more often than the limit allows: dead-lettered instead of redelivered.
        consumer.basicNack(second.tag(), false, true);

        GetResponse dlx = getOne(ch, dead);
        assertEquals("dead-lettered body", "poison", text(dlx.getBody()));
        assertEquals("x-death", List.of(queue + " delivery_limit 1"), deaths(dlx.getProps()));
        assertEquals("x-first-death-reason", "delivery_limit", header(dlx.getProps(), "x-first-death-reason"));
        ch.basicAck(dlx.getEnvelope().getDeliveryTag(), false);
        collector.assertNoDelivery(200, "the message left the quorum queue");
        assertEquals("the quorum queue", 0, depth(queue));
    }
}
