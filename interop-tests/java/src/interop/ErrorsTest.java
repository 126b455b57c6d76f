// Channel and connection errors as the Java client reports them (ShutdownSignalException with the broker's
// channel.close): reply codes, the failed method, RabbitMQ's close texts, and that the connection survives.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.AuthenticationFailureException;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.ShutdownSignalException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

public class ErrorsTest extends BrokerTest {
    // Class and method ids of the operations whose failure the broker names in channel.close.
    private static final int QUEUE = 50;
    private static final int EXCHANGE = 40;
    private static final int BASIC = 60;

    private void assertConnectionStillUsable(Connection connection) throws Exception {
        assertTrue(connection.isOpen(), "a channel error must not close the connection");
        try (Channel channel = connection.createChannel()) {
            channel.confirmSelect();
            String queue = serverNamedQueue(channel);
            channel.basicPublish("", queue, null, bytes("still fine"));
            channel.waitForConfirmsOrDie(5_000);
        }
    }

    public void test_exclusive_queue_from_another_connection_is_405() throws Exception {
        String queue = queue("exclusive", false, true, null);
        Connection other = connect();
        String locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + queue + "' in vhost '/'";

        Channel c1 = other.createChannel();
        assertChannelClosed(405, locked, QUEUE, 10, () -> c1.queueDeclare(queue, false, true, false, null));
        Channel c2 = other.createChannel();
        assertChannelClosed(405, locked, QUEUE, 10, () -> c2.queueDeclarePassive(queue));
        Channel c3 = other.createChannel();
        assertChannelClosed(405, locked, BASIC, 20, () -> c3.basicConsume(queue, true, new Collector(c3)));
        Channel c4 = other.createChannel();
        assertChannelClosed(405, locked, BASIC, 70, () -> c4.basicGet(queue, true));
        Channel c5 = other.createChannel();
        assertChannelClosed(405, locked, QUEUE, 40, () -> c5.queueDelete(queue));
        assertConnectionStillUsable(other);

        // The owner is unaffected.
        ch.basicPublish("", queue, null, bytes("mine"));
        waitDepth(queue, 1);
    }

    public void test_passive_declare_of_missing_queue_is_404() throws Exception {
        String missing = unique("no-such-queue");
        AMQP.Channel.Close close = assertChannelClosed(404, "NOT_FOUND - no queue '" + missing + "' in vhost '/'",
                QUEUE, 10, () -> ch.queueDeclarePassive(missing));
        assertEquals("reply text", "NOT_FOUND - no queue '" + missing + "' in vhost '/'", close.getReplyText());
        assertTrue(!ch.isOpen(), "the channel is closed");
        ShutdownSignalException reason = ch.getCloseReason();
        assertTrue(reason != null && !reason.isHardError() && !reason.isInitiatedByApplication(),
                "a soft error from the broker: " + reason);
        assertConnectionStillUsable(conn);
    }

    public void test_passive_declare_of_missing_exchange_is_404() throws Exception {
        String missing = unique("no-such-exchange");
        assertChannelClosed(404, "NOT_FOUND - no exchange '" + missing + "' in vhost '/'", EXCHANGE, 10,
                () -> ch.exchangeDeclarePassive(missing));
    }

    public void test_publish_to_missing_exchange_closes_the_channel_with_404() throws Exception {
        String missing = unique("no-such-exchange");
        BlockingQueue<ShutdownSignalException> closed = new ArrayBlockingQueue<>(1);
        ch.addShutdownListener(closed::add);
        ch.basicPublish(missing, "k", null, bytes("x"));
        ShutdownSignalException signal = closed.poll(5, TimeUnit.SECONDS);
        assertTrue(signal != null, "publishing to a missing exchange did not close the channel");
        assertChannelClosed(404, "NOT_FOUND - no exchange '" + missing + "' in vhost '/'", BASIC, 40, () -> {
            throw signal;
        });
        assertConnectionStillUsable(conn);
    }

    public void test_redeclare_with_other_arguments_is_406() throws Exception {
        String queue = queue("args", false, false, Map.of("x-message-ttl", 60000));
        // The same arguments again are fine.
        ch.queueDeclare(queue, false, false, false, Map.of("x-message-ttl", 60000));

        assertChannelClosed(406,
                "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '" + queue + "' in vhost '/'",
                QUEUE, 10, () -> ch.queueDeclare(queue, false, false, false, Map.of("x-message-ttl", 1000)));
        ch = conn.createChannel();
        assertChannelClosed(406,
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" + queue + "' in vhost '/'",
                QUEUE, 10, () -> ch.queueDeclare(queue, true, false, false, Map.of("x-message-ttl", 60000)));
        ch = conn.createChannel();
        String exchange = exchange("args", "direct");
        assertChannelClosed(406,
                "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '" + exchange + "' in vhost '/'",
                EXCHANGE, 10, () -> ch.exchangeDeclare(exchange, "fanout"));
        // The queue kept its original definition.
        ch = conn.createChannel();
        ch.queueDeclare(queue, false, false, false, Map.of("x-message-ttl", 60000));
        assertConnectionStillUsable(conn);
    }

    public void test_wrong_password_is_refused() throws Exception {
        ConnectionFactory factory = factory();
        factory.setPassword("definitely-not-the-password");
        // RabbitMQ advertises authentication_failure_close and closes with 403 ACCESS_REFUSED, which the client
        // turns into AuthenticationFailureException (a broker that just drops the socket gives only
        // PossibleAuthenticationFailureException).
        try (Connection refused = factory.newConnection()) {
            throw new AssertionError("a wrong password was accepted by " + refused.getServerProperties());
        } catch (AuthenticationFailureException expected) {
            assertTrue(expected.getMessage().startsWith("ACCESS_REFUSED"), "message: " + expected.getMessage());
        }
    }

    public void test_server_advertises_capabilities() throws Exception {
        Map<String, Object> properties = conn.getServerProperties();
        @SuppressWarnings("unchecked")
        Map<String, Object> capabilities = (Map<String, Object>) properties.get("capabilities");
        assertTrue(capabilities != null, "no capabilities table in " + properties);
        for (String name : List.of("publisher_confirms", "basic.nack", "consumer_cancel_notify",
                "exchange_exchange_bindings", "per_consumer_qos", "authentication_failure_close")) {
            assertEquals("capability " + name, Boolean.TRUE, capabilities.get(name));
        }
        assertTrue(properties.get("product") != null && properties.get("version") != null, "product and version");
    }
}
