// Shared pieces of the Java client suite: the broker under test, unique names, a per-test base class that opens a
// connection and channel, closes what it opened and deletes what it declared, assertions and polling helpers.
//
// Every test talks to the broker named by AMQP_URL (interop-tests/run sets it) and declares uniquely named queues and
// exchanges, so the suite can run against a shared RabbitMQ in differential mode. Tests assert what RabbitMQ does.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.Method;
import com.rabbitmq.client.ShutdownSignalException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.function.Supplier;

abstract class BrokerTest {
    static final String DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f";

    static String amqpUrl() {
        String url = System.getenv("AMQP_URL");
        return url == null || url.isEmpty() ? DEFAULT_URL : url;
    }

    /** A factory for the broker under test: bounded timeouts, and no automatic recovery unless a test asks for it. */
    static ConnectionFactory factory() throws Exception {
        ConnectionFactory factory = new ConnectionFactory();
        factory.setUri(amqpUrl());
        factory.setAutomaticRecoveryEnabled(false);
        factory.setConnectionTimeout(10_000);
        factory.setHandshakeTimeout(10_000);
        factory.setChannelRpcTimeout(15_000);
        return factory;
    }

    /** A name no other test or run uses. */
    static String unique(String stem) {
        return "interop.java." + stem + "." + UUID.randomUUID().toString().substring(0, 10);
    }

    static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    static String text(byte[] body) {
        return new String(body, StandardCharsets.UTF_8);
    }

    Connection conn;
    Channel ch;
    private final Deque<AutoCloseable> toClose = new ArrayDeque<>();
    private final List<String> queues = new ArrayList<>();
    private final List<String> exchanges = new ArrayList<>();

    void setUp() throws Exception {
        conn = connect();
        ch = conn.createChannel();
    }

    /** Opens a connection that is closed when the test ends. */
    Connection connect() throws Exception {
        return connect(factory());
    }

    Connection connect(ConnectionFactory factory) throws Exception {
        return closeLater(factory.newConnection());
    }

    <C extends AutoCloseable> C closeLater(C closeable) {
        synchronized (toClose) {
            toClose.push(closeable);
        }
        return closeable;
    }

    /** Declares a uniquely named queue on `ch` and returns its name. */
    String queue(String stem, boolean durable, boolean exclusive, Map<String, Object> arguments) throws Exception {
        String name = unique(stem);
        deleteLater(name, null);
        ch.queueDeclare(name, durable, exclusive, false, arguments);
        return name;
    }

    String queue(String stem) throws Exception {
        return queue(stem, false, false, null);
    }

    String exchange(String stem, String type) throws Exception {
        String name = unique(stem);
        deleteLater(null, name);
        ch.exchangeDeclare(name, type);
        return name;
    }

    /** Declares an exclusive queue with a broker-generated name (amq.gen-...). */
    String serverNamedQueue(Channel channel) throws Exception {
        String name = channel.queueDeclare().getQueue();
        assertTrue(name.startsWith("amq.gen-"), "server-named queue " + name);
        return name;
    }

    void deleteLater(String queue, String exchange) {
        synchronized (toClose) {
            if (queue != null) {
                queues.add(queue);
            }
            if (exchange != null) {
                exchanges.add(exchange);
            }
        }
    }

    /** Publishes bodies to a queue on a confirm channel and waits for the broker's acks. */
    void publishConfirmed(String queue, String... bodies) throws Exception {
        try (Channel publisher = conn.createChannel()) {
            publisher.confirmSelect();
            for (String body : bodies) {
                publisher.basicPublish("", queue, null, bytes(body));
            }
            assertTrue(publisher.waitForConfirms(5_000), "a publish was nacked");
        }
    }

    // --- observing the broker ------------------------------------------------------------------------------------

    /** The queue's ready-message count, read with a passive declare on a throwaway channel. */
    int depth(String queue) throws Exception {
        Channel channel = conn.createChannel();
        try {
            return channel.queueDeclarePassive(queue).getMessageCount();
        } finally {
            if (channel.isOpen()) {
                channel.close();
            }
        }
    }

    void waitDepth(String queue, int expected) throws Exception {
        int[] seen = {-1};
        waitFor(5_000, () -> "queue " + queue + " to hold " + expected + " ready messages (it holds " + seen[0] + ")",
                () -> (seen[0] = depth(queue)) == expected);
    }

    /** Waits until a passive declare of `queue` fails with 404 (an exclusive or auto-delete queue going away). */
    void waitGone(String queue) throws Exception {
        waitFor(5_000, () -> "queue " + queue + " to be deleted", () -> {
            try {
                depth(queue);
                return false;
            } catch (Exception e) {
                int code = replyCode(e);
                if (code == 405) {
                    return false; // still exclusive to a connection the broker is closing
                }
                assertEquals("passive declare of a deleted queue", 404, code);
                return true;
            }
        });
    }

    interface Condition {
        boolean holds() throws Exception;
    }

    static void waitFor(long timeoutMillis, Supplier<String> what, Condition condition) throws Exception {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeoutMillis + " ms waiting for " + what.get());
            }
            Thread.sleep(20);
        }
    }

    /** basic.get with auto-ack until the queue is empty; the bodies in order. */
    static List<String> drain(Channel channel, String queue) throws Exception {
        List<String> bodies = new ArrayList<>();
        for (GetResponse response; (response = channel.basicGet(queue, true)) != null; ) {
            bodies.add(text(response.getBody()));
        }
        return bodies;
    }

    // --- broker errors ----------------------------------------------------------------------------------------------

    /** The reply code of the channel.close or connection.close behind an exception, or 0 if there is none. */
    static int replyCode(Throwable error) {
        Method reason = closeReason(error);
        if (reason instanceof AMQP.Channel.Close close) {
            return close.getReplyCode();
        }
        if (reason instanceof AMQP.Connection.Close close) {
            return close.getReplyCode();
        }
        return 0;
    }

    static Method closeReason(Throwable error) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof ShutdownSignalException signal) {
                return signal.getReason();
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return null;
    }

    interface Action {
        void run() throws Exception;
    }

    /**
     * Runs `action` and checks that the broker closed the channel with `code` and a reply text starting with
     * `textPrefix` (RabbitMQ's close texts; clients log and sometimes match them), naming the failed method.
     */
    static AMQP.Channel.Close assertChannelClosed(int code, String textPrefix, int classId, int methodId, Action action)
            throws Exception {
        try {
            action.run();
        } catch (Exception e) {
            Method reason = closeReason(e);
            if (!(reason instanceof AMQP.Channel.Close close)) {
                throw new AssertionError("expected a channel.close " + code + ", got " + e, e);
            }
            assertEquals("reply code (" + close.getReplyText() + ")", code, close.getReplyCode());
            assertTrue(close.getReplyText().startsWith(textPrefix),
                    "reply text '" + close.getReplyText() + "' does not start with '" + textPrefix + "'");
            assertEquals("class and method of the failed operation", List.of(classId, methodId),
                    List.of(close.getClassId(), close.getMethodId()));
            return close;
        }
        throw new AssertionError("expected the broker to close the channel with " + code + ", but it succeeded");
    }

    // --- assertions -------------------------------------------------------------------------------------------------

    static void assertEquals(String what, Object expected, Object actual) {
        if (!Objects.deepEquals(expected, actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    static void assertTrue(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    /** Thrown by {@link #skip}: the test cannot run here (something it needs, such as a TLS listener, is not set up). */
    static final class Skipped extends RuntimeException {
        Skipped(String reason) {
            super(reason);
        }
    }

    /** Stops the test and counts it as skipped. */
    static void skip(String reason) {
        throw new Skipped(reason);
    }

    // --- cleanup ----------------------------------------------------------------------------------------------------

    void tearDown() {
        List<AutoCloseable> closing;
        List<String> queuesToDelete;
        List<String> exchangesToDelete;
        synchronized (toClose) {
            closing = new ArrayList<>(toClose);
            queuesToDelete = new ArrayList<>(queues);
            exchangesToDelete = new ArrayList<>(exchanges);
        }
        for (AutoCloseable closeable : closing) {
            try {
                closeable.close();
            } catch (Exception ignored) {
                // already closed by the broker, or its socket is gone
            }
        }
        if (queuesToDelete.isEmpty() && exchangesToDelete.isEmpty()) {
            return;
        }
        try (Connection cleaner = factory().newConnection()) {
            for (String queue : queuesToDelete) {
                try (Channel channel = cleaner.createChannel()) {
                    channel.queueDelete(queue);
                } catch (Exception ignored) {
                    // already gone, or exclusive to a connection that is now closed
                }
            }
            for (String exchange : exchangesToDelete) {
                try (Channel channel = cleaner.createChannel()) {
                    channel.exchangeDelete(exchange);
                } catch (Exception ignored) {
                    // already gone
                }
            }
        } catch (Exception ignored) {
            // the broker is unreachable: the next test will say so
        }
    }
}
