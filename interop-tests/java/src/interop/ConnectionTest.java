// Connection-level behaviour: heartbeat negotiation and liveness, a 16 MiB message split over many body frames, and
// basic properties and header tables of every field type the Java client encodes.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.LongString;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.net.InetAddress;
import java.net.Socket;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.SocketFactory;

public class ConnectionTest extends BrokerTest {
    /** Sockets that count the bytes read from the broker (heartbeat frames included). */
    static final class CountingSocketFactory extends SocketFactory {
        final AtomicLong read = new AtomicLong();

        @Override
        public Socket createSocket() {
            return new Socket() {
                @Override
                public InputStream getInputStream() throws IOException {
                    return new FilterInputStream(super.getInputStream()) {
                        @Override
                        public int read() throws IOException {
                            int b = super.read();
                            if (b >= 0) {
                                read.incrementAndGet();
                            }
                            return b;
                        }

                        @Override
                        public int read(byte[] buffer, int offset, int length) throws IOException {
                            int n = super.read(buffer, offset, length);
                            if (n > 0) {
                                read.addAndGet(n);
                            }
                            return n;
                        }
                    };
                }
            };
        }

        @Override
        public Socket createSocket(String host, int port) {
            throw new UnsupportedOperationException("the client calls createSocket() and connects itself");
        }

        @Override
        public Socket createSocket(String host, int port, InetAddress localHost, int localPort) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Socket createSocket(InetAddress host, int port) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort) {
            throw new UnsupportedOperationException();
        }
    }

    public void test_heartbeat_negotiated_and_connection_survives_idle_time() throws Exception {
        // Requesting 0 means "whatever the server proposes": RabbitMQ proposes 60 s in connection.tune.
        ConnectionFactory serverChoice = factory();
        serverChoice.setRequestedHeartbeat(0);
        try (Connection defaulted = serverChoice.newConnection()) {
            assertEquals("the heartbeat the server proposed", 60, defaulted.getHeartbeat());
        }

        // Requesting 2 s negotiates the lower of the two.
        ConnectionFactory factory = factory();
        factory.setRequestedHeartbeat(2);
        CountingSocketFactory sockets = new CountingSocketFactory();
        factory.setSocketFactory(sockets);
        Connection connection = connect(factory);
        assertEquals("negotiated heartbeat", 2, connection.getHeartbeat());
        long before = sockets.read.get();
        Thread.sleep(5_000); // the client sends a heartbeat every second and gives up after two missed intervals
        assertTrue(connection.isOpen(), "connection closed during 5 s of heartbeats: " + connection.getCloseReason());
        long heartbeatBytes = sockets.read.get() - before;
        // A heartbeat frame is 8 bytes; the broker sends one every timeout/2 = 1 s, so 5 s must show at least two.
        assertTrue(heartbeatBytes >= 16, "broker sent " + heartbeatBytes + " bytes while idle");

        Channel channel = connection.createChannel();
        channel.confirmSelect();
        String queue = serverNamedQueue(channel);
        channel.basicPublish("", queue, null, bytes("alive"));
        channel.waitForConfirmsOrDie(5_000);
        assertEquals("after idling", List.of("alive"), drain(channel, queue));
    }

    public void test_message_of_16_mib_round_trip() throws Exception {
        String queue = queue("large");
        byte[] block = new byte[1024];
        ThreadLocalRandom.current().nextBytes(block);
        byte[] body = new byte[16 * 1024 * 1024]; // 16 MiB: 128+ body frames at frame_max 131072
        for (int offset = 0; offset < body.length; offset += block.length) {
            System.arraycopy(block, 0, body, offset, block.length);
        }
        Channel publisher = conn.createChannel();
        publisher.confirmSelect();
        publisher.basicPublish("", queue, new AMQP.BasicProperties.Builder().messageId("big").build(), body);
        publisher.waitForConfirmsOrDie(30_000);

        Collector collector = new Collector(ch);
        ch.basicConsume(queue, false, collector);
        Collector.Received received = collector.next(30_000, "the 16 MiB message");
        ch.basicAck(received.tag(), false);
        assertEquals("message id", "big", received.properties().getMessageId());
        assertEquals("length", body.length, received.body().length);
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        assertTrue(Arrays.equals(sha.digest(body), MessageDigest.getInstance("SHA-256").digest(received.body())),
                "the body came back different");
        waitDepth(queue, 0);
    }

    /** The client decodes every string in a table as a LongString; compare them as Strings. */
    private static Object normalise(Object value) {
        if (value instanceof LongString longString) {
            return longString.toString();
        }
        if (value instanceof List<?> list) {
            List<Object> copy = new ArrayList<>();
            list.forEach(item -> copy.add(normalise(item)));
            return copy;
        }
        if (value instanceof Map<?, ?> map) {
            Map<Object, Object> copy = new HashMap<>();
            map.forEach((key, item) -> copy.put(key, normalise(item)));
            return copy;
        }
        return value;
    }

    public void test_properties_and_headers_round_trip() throws Exception {
        String queue = queue("props");
        Map<String, Object> headers = new LinkedHashMap<>();
        headers.put("string", "plain");
        headers.put("unicode", "h\u00e9llo \u2713");
        headers.put("byte", (byte) -7);
        headers.put("short", (short) -1000);
        headers.put("int", 42);
        headers.put("long", 1L << 40);
        headers.put("float", 1.5f);
        headers.put("double", 3.25d);
        headers.put("true", true);
        headers.put("false", false);
        headers.put("void", null);
        headers.put("bytes", new byte[] {0, (byte) 0xff, 'r', 'a', 'w'});
        headers.put("decimal", new BigDecimal("3.14"));
        headers.put("timestamp", new Date(1_704_164_645_000L));
        headers.put("array", List.of(1, "two", List.of(3), Map.of("four", 4)));
        headers.put("table", Map.of("nested", Map.of("deeper", "yes"), "n", 1));
        headers.put("empty-table", Map.of());
        headers.put("empty-array", List.of());
        String user = factory().getUsername(); // RabbitMQ refuses a user_id other than the authenticated user
        AMQP.BasicProperties sent = new AMQP.BasicProperties.Builder()
                .contentType("application/json")
                .contentEncoding("utf-8")
                .headers(headers)
                .deliveryMode(2)
                .priority(5)
                .correlationId("corr-1")
                .replyTo("reply.here")
                .expiration("60000")
                .messageId("msg-1")
                .timestamp(new Date(1_700_000_000_000L))
                .type("order.created")
                .userId(user)
                .appId("interop")
                .build();
        Channel publisher = conn.createChannel();
        publisher.confirmSelect();
        publisher.basicPublish("", queue, sent, bytes("{\"k\": 1}"));
        publisher.basicPublish("", queue, null, new byte[0]); // no properties, empty body
        publisher.waitForConfirmsOrDie(5_000);

        GetResponse response = ch.basicGet(queue, true);
        assertEquals("body", "{\"k\": 1}", text(response.getBody()));
        AMQP.BasicProperties got = response.getProps();
        assertEquals("properties",
                Arrays.asList(sent.getContentType(), sent.getContentEncoding(), sent.getDeliveryMode(),
                        sent.getPriority(), sent.getCorrelationId(), sent.getReplyTo(), sent.getExpiration(),
                        sent.getMessageId(), sent.getTimestamp(), sent.getType(), sent.getUserId(), sent.getAppId()),
                Arrays.asList(got.getContentType(), got.getContentEncoding(), got.getDeliveryMode(),
                        got.getPriority(), got.getCorrelationId(), got.getReplyTo(), got.getExpiration(),
                        got.getMessageId(), got.getTimestamp(), got.getType(), got.getUserId(), got.getAppId()));
        Map<String, Object> gotHeaders = got.getHeaders();
        for (Map.Entry<String, Object> header : headers.entrySet()) {
            assertTrue(gotHeaders.containsKey(header.getKey()), "header " + header.getKey() + " dropped");
            assertEquals("header " + header.getKey(), header.getValue(), normalise(gotHeaders.get(header.getKey())));
        }
        assertEquals("header names", headers.keySet(), gotHeaders.keySet());

        response = ch.basicGet(queue, true);
        assertEquals("empty body", 0, response.getBody().length);
        AMQP.BasicProperties none = response.getProps();
        assertEquals("no properties", Arrays.asList(null, null, null, null, null),
                Arrays.asList(none.getContentType(), none.getHeaders(), none.getDeliveryMode(), none.getMessageId(),
                        none.getTimestamp()));
    }
}
