// The Java client's automatic connection recovery (with topology recovery) against a real broker. The suite cannot
// restart the broker, so the connection runs through a loopback proxy that the test cuts: the client sees a network
// failure, the broker a dropped client (its exclusive queues go, its unacked deliveries are requeued).
package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.Recoverable;
import com.rabbitmq.client.RecoveryListener;
import com.rabbitmq.client.impl.recovery.AutorecoveringConnection;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

public class RecoveryTest extends BrokerTest {
    /** A loopback TCP proxy whose connections a test can cut all at once. */
    static final class CuttableProxy implements AutoCloseable {
        private final ServerSocket server;
        private final String targetHost;
        private final int targetPort;
        private final List<Socket> sockets = new ArrayList<>();
        final AtomicInteger accepted = new AtomicInteger();

        CuttableProxy(String targetHost, int targetPort) throws IOException {
            this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            this.targetHost = targetHost;
            this.targetPort = targetPort;
            daemon("proxy-accept", this::acceptLoop);
        }

        int port() {
            return server.getLocalPort();
        }

        private void acceptLoop() {
            while (!server.isClosed()) {
                try {
                    Socket client = server.accept();
                    accepted.incrementAndGet();
                    Socket upstream = new Socket(targetHost, targetPort);
                    synchronized (sockets) {
                        sockets.add(client);
                        sockets.add(upstream);
                    }
                    daemon("proxy-up", () -> pump(client, upstream));
                    daemon("proxy-down", () -> pump(upstream, client));
                } catch (IOException e) {
                    return; // the proxy was closed
                }
            }
        }

        private static void pump(Socket from, Socket to) {
            byte[] buffer = new byte[64 * 1024];
            try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                for (int n; (n = in.read(buffer)) >= 0; ) {
                    out.write(buffer, 0, n);
                }
            } catch (IOException e) {
                // cut, or the other side went away
            } finally {
                closeQuietly(from);
                closeQuietly(to);
            }
        }

        /** Closes every proxied socket pair; returns how many client connections were cut. */
        int cutAll() {
            synchronized (sockets) {
                int pairs = sockets.size() / 2;
                sockets.forEach(CuttableProxy::closeQuietly);
                sockets.clear();
                return pairs;
            }
        }

        @Override
        public void close() {
            closeQuietly(server);
            cutAll();
        }

        private static void closeQuietly(AutoCloseable closeable) {
            try {
                closeable.close();
            } catch (Exception ignored) {
                // already closed
            }
        }

        private static void daemon(String name, Runnable body) {
            Thread thread = new Thread(body, name);
            thread.setDaemon(true);
            thread.start();
        }
    }

    public void test_automatic_recovery_restores_topology_and_consumers() throws Exception {
        URI target = new URI(amqpUrl());
        CuttableProxy proxy = closeLater(new CuttableProxy(target.getHost(), target.getPort() < 0 ? 5672 : target.getPort()));
        String workQueue = queue("recovery.work", true, false, null); // outlives any one connection
        String exchange = exchange("recovery.events", "fanout");

        ConnectionFactory factory = factory();
        factory.setHost("127.0.0.1");
        factory.setPort(proxy.port());
        factory.setAutomaticRecoveryEnabled(true);
        factory.setTopologyRecoveryEnabled(true);
        factory.setNetworkRecoveryInterval(200);
        Connection connection = connect(factory);
        assertTrue(connection instanceof AutorecoveringConnection, "not a recovering connection: " + connection);
        CountDownLatch recoveryStarted = new CountDownLatch(1);
        CountDownLatch recovered = new CountDownLatch(1);
        ((Recoverable) connection).addRecoveryListener(new RecoveryListener() {
            @Override
            public void handleRecovery(Recoverable recoverable) {
                recovered.countDown();
            }

            @Override
            public void handleRecoveryStarted(Recoverable recoverable) {
                recoveryStarted.countDown();
            }
        });
        Map<String, String> renamed = new ConcurrentHashMap<>();
        ((AutorecoveringConnection) connection).addQueueRecoveryListener(renamed::put);

        // Topology the client records and replays: a server-named exclusive queue bound to a fanout exchange with a
        // consumer, and a manual-ack consumer with prefetch 1 on a durable queue.
        Channel channel = connection.createChannel();
        channel.basicQos(1);
        String events = serverNamedQueue(channel);
        channel.queueBind(events, exchange, "");
        Collector eventsConsumer = new Collector(channel);
        channel.basicConsume(events, true, eventsConsumer);
        Collector work = new Collector(channel);
        channel.basicConsume(workQueue, false, work);

        ch.basicPublish("", workQueue, null, bytes("held when the network fails"));
        Collector.Received first = work.next(5_000, "the first delivery");
        assertEquals("redelivered", false, first.redelivered());

        assertEquals("proxied connections cut", 1, proxy.cutAll());
        assertTrue(recoveryStarted.await(10, TimeUnit.SECONDS), "recovery did not start within 10 s");
        assertTrue(recovered.await(15, TimeUnit.SECONDS), "recovery did not finish within 15 s");
        assertEquals("connections through the proxy", 2, proxy.accepted.get());
        assertTrue(connection.isOpen() && channel.isOpen(), "the connection and channel are open again");

        // The broker requeued the unacked delivery when the old connection dropped; the recovered consumer (the same
        // Consumer object, re-registered by the client) gets it again.
        Collector.Received again = work.next(10_000, "the requeued message on the recovered consumer");
        assertEquals("body", "held when the network fails", again.text());
        assertTrue(again.redelivered(), "redelivered after the connection that held it was lost");
        channel.basicAck(again.tag(), false);
        waitDepth(workQueue, 0);

        // The server-named queue was declared again under a new name, with its binding and consumer.
        String newName = renamed.get(events);
        assertTrue(newName != null && newName.startsWith("amq.gen-") && !newName.equals(events),
                "server-named queue " + events + " recovered as " + newName);
        waitGone(events);
        ch.basicPublish(exchange, "", null, bytes("after recovery"));
        assertEquals("through the recovered binding", "after recovery",
                eventsConsumer.next(5_000, "a message through the recovered binding").text());
    }
}
