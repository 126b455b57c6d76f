// The six RabbitMQ tutorials (rabbitmq.com/tutorials, Java client), each turned into assertions on what arrives.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.BuiltinExchangeType;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.MessageProperties;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

public class TutorialsTest extends BrokerTest {
    public void test1_hello_world() throws Exception {
        String queue = queue("hello");
        ch.basicPublish("", queue, null, bytes("Hello World!"));

        // As the tutorial does: a DeliverCallback and a CancelCallback.
        BlockingQueue<Delivery> received = new ArrayBlockingQueue<>(10);
        ch.basicConsume(queue, true, (consumerTag, delivery) -> received.add(delivery), consumerTag -> { });
        Delivery delivery = received.poll(10, TimeUnit.SECONDS);
        assertTrue(delivery != null, "no message within 10 s");
        assertEquals("body", "Hello World!", text(delivery.getBody()));
        assertEquals("exchange", "", delivery.getEnvelope().getExchange());
        assertEquals("routing key", queue, delivery.getEnvelope().getRoutingKey());
        assertEquals("redelivered", false, delivery.getEnvelope().isRedeliver());
        assertEquals("delivery tag", 1L, delivery.getEnvelope().getDeliveryTag());
        assertEquals("one message only", null, received.poll(100, TimeUnit.MILLISECONDS));
        assertEquals("depth", 0, depth(queue));
    }

    public void test2_work_queues_fair_dispatch_and_redelivery() throws Exception {
        String queue = queue("task_queue", true, false, null);
        Channel publisher = conn.createChannel();
        publisher.confirmSelect();

        Channel workerA = connect().createChannel();
        workerA.basicQos(1);
        Collector gotA = new Collector(workerA);
        workerA.basicConsume(queue, false, gotA);
        publisher.basicPublish("", queue, MessageProperties.PERSISTENT_TEXT_PLAIN, bytes("task1"));
        assertTrue(publisher.waitForConfirms(5_000), "nacked");
        Collector.Received task1 = gotA.next(5_000, "worker A's task");

        Channel workerB = connect().createChannel();
        workerB.basicQos(1);
        Collector gotB = new Collector(workerB);
        workerB.basicConsume(queue, false, gotB);
        publisher.basicPublish("", queue, MessageProperties.PERSISTENT_TEXT_PLAIN, bytes("task2"));
        publisher.basicPublish("", queue, MessageProperties.PERSISTENT_TEXT_PLAIN, bytes("task3"));
        assertTrue(publisher.waitForConfirms(5_000), "nacked");
        Collector.Received task2 = gotB.next(5_000, "worker B's task");

        // prefetch 1: each worker holds one unacked task, the third waits in the queue.
        assertEquals("worker A's task", "task1", task1.text());
        assertEquals("worker B's task", "task2", task2.text());
        assertEquals("task1 redelivered", false, task1.redelivered());
        assertEquals("delivery mode", 2, task1.properties().getDeliveryMode());
        gotA.assertNoDelivery(300, "worker A holds its prefetch of 1");
        gotB.assertNoDelivery(50, "worker B holds its prefetch of 1");
        waitDepth(queue, 1);

        // Worker A closes its channel without acking: its task goes back to the queue, B is still busy.
        workerA.close();
        waitDepth(queue, 2);
        gotB.assertNoDelivery(200, "worker B has not acked yet");

        // B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
        workerB.basicAck(task2.tag(), false);
        Collector.Received again = gotB.next(5_000, "the requeued task");
        assertEquals("requeued task", "task1", again.text());
        assertTrue(again.redelivered(), "a requeued message must arrive with redelivered=true");
        workerB.basicAck(again.tag(), false);
        Collector.Received task3 = gotB.next(5_000, "task3");
        assertEquals("last task", "task3", task3.text());
        assertEquals("task3 redelivered", false, task3.redelivered());
        workerB.basicAck(task3.tag(), false);
        waitDepth(queue, 0);
        gotB.assertNoDelivery(100, "all three tasks were delivered");
    }

    public void test3_publish_subscribe_fanout() throws Exception {
        String exchange = exchange("logs", "fanout");
        Channel publisher = conn.createChannel();
        publisher.confirmSelect();
        publisher.basicPublish(exchange, "", null, bytes("before anyone listens"));
        assertTrue(publisher.waitForConfirms(5_000), "nacked");

        record Subscriber(Connection conn, String queue, Collector got) { }
        Subscriber[] subscribers = new Subscriber[2];
        for (int i = 0; i < 2; i++) {
            Connection subscriberConn = connect();
            Channel channel = subscriberConn.createChannel();
            String queue = serverNamedQueue(channel);
            channel.queueBind(queue, exchange, "");
            Collector got = new Collector(channel);
            channel.basicConsume(queue, true, got);
            subscribers[i] = new Subscriber(subscriberConn, queue, got);
        }
        assertTrue(!subscribers[0].queue().equals(subscribers[1].queue()), "two server-named queues share a name");

        publisher.basicPublish(exchange, "ignored.key", null, bytes("log-1"));
        publisher.basicPublish(exchange, "", null, bytes("log-2"));
        assertTrue(publisher.waitForConfirms(5_000), "nacked");
        for (Subscriber subscriber : subscribers) {
            Collector.Received first = subscriber.got().next(5_000, "log-1");
            Collector.Received second = subscriber.got().next(5_000, "log-2");
            assertEquals("log lines", List.of("log-1", "log-2"), List.of(first.text(), second.text()));
            assertEquals("exchange", exchange, first.envelope().getExchange());
            assertEquals("routing key", "ignored.key", first.envelope().getRoutingKey());
        }

        // An exclusive queue goes away with its connection.
        subscribers[0].conn().close();
        waitGone(subscribers[0].queue());
    }

    public void test4_routing_direct() throws Exception {
        String exchange = exchange("direct_logs", BuiltinExchangeType.DIRECT.getType());
        String errorsOnly = serverNamedQueue(ch);
        ch.queueBind(errorsOnly, exchange, "error");
        String everything = serverNamedQueue(ch);
        for (String severity : List.of("info", "warning", "error")) {
            ch.queueBind(everything, exchange, severity);
        }

        Channel publisher = conn.createChannel();
        publisher.confirmSelect();
        for (String severity : List.of("info", "warning", "error", "debug")) {
            publisher.basicPublish(exchange, severity, null, bytes(severity));
        }
        publisher.waitForConfirmsOrDie(5_000);
        assertEquals("errors-only queue", List.of("error"), drain(ch, errorsOnly));
        assertEquals("everything queue", List.of("info", "warning", "error"), drain(ch, everything));

        // Unbinding stops the flow for that key only.
        ch.queueUnbind(everything, exchange, "info");
        publisher.basicPublish(exchange, "info", null, bytes("info-2"));
        publisher.basicPublish(exchange, "warning", null, bytes("warning-2"));
        publisher.waitForConfirmsOrDie(5_000);
        assertEquals("after unbinding info", List.of("warning-2"), drain(ch, everything));
    }

    public void test5_topics() throws Exception {
        String exchange = exchange("topic_logs", "topic");
        String q1 = serverNamedQueue(ch);
        ch.queueBind(q1, exchange, "*.orange.*");
        String q2 = serverNamedQueue(ch);
        ch.queueBind(q2, exchange, "*.*.rabbit");
        ch.queueBind(q2, exchange, "lazy.#");
        String all = serverNamedQueue(ch);
        ch.queueBind(all, exchange, "#");

        List<String> keys = List.of(
                "quick.orange.rabbit", // Q1, Q2
                "lazy.orange.elephant", // Q1, Q2
                "quick.orange.fox", // Q1
                "lazy.brown.fox", // Q2
                "lazy.pink.rabbit", // Q2, once although two bindings match
                "quick.brown.fox", // nobody but '#'
                "orange", // nobody but '#'
                "quick.orange.male.rabbit", // nobody but '#'
                "lazy.orange.male.rabbit", // Q2
                "lazy"); // Q2: '#' matches zero words
        Channel publisher = conn.createChannel();
        publisher.confirmSelect();
        for (String key : keys) {
            publisher.basicPublish(exchange, key, null, bytes(key));
        }
        publisher.waitForConfirmsOrDie(5_000);
        assertEquals("Q1", List.of("quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"), drain(ch, q1));
        assertEquals("Q2", List.of("quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox", "lazy.pink.rabbit",
                "lazy.orange.male.rabbit", "lazy"), drain(ch, q2));
        assertEquals("'#' queue", keys, drain(ch, all));
    }

    private static int fib(int n) {
        return n < 2 ? n : fib(n - 1) + fib(n - 2);
    }

    public void test6_rpc_with_exclusive_reply_queue_and_correlation_id() throws Exception {
        String rpcQueue = queue("rpc_queue");

        // The server, as in RPCServer.java: prefetch 1, reply to reply_to with the request's correlation_id, ack.
        Channel server = connect().createChannel();
        server.basicQos(1);
        server.basicConsume(rpcQueue, false, new DefaultConsumer(server) {
            @Override
            public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties,
                    byte[] body) throws IOException {
                AMQP.BasicProperties reply = new AMQP.BasicProperties.Builder()
                        .correlationId(properties.getCorrelationId())
                        .build();
                getChannel().basicPublish("", properties.getReplyTo(), reply,
                        bytes(String.valueOf(fib(Integer.parseInt(text(body))))));
                getChannel().basicAck(envelope.getDeliveryTag(), false);
            }
        });

        // The client, as in RPCClient.java: an exclusive server-named reply queue, one correlation id per call.
        Channel client = connect().createChannel();
        String replyQueue = serverNamedQueue(client);
        Map<String, Integer> responses = new ConcurrentHashMap<>();
        client.basicConsume(replyQueue, true, (consumerTag, delivery) ->
                responses.put(delivery.getProperties().getCorrelationId(), Integer.parseInt(text(delivery.getBody()))),
                consumerTag -> { });

        Map<String, Integer> expected = new HashMap<>();
        for (int n : new int[] {0, 1, 10, 20}) {
            String correlationId = UUID.randomUUID().toString();
            expected.put(correlationId, fib(n));
            AMQP.BasicProperties properties = new AMQP.BasicProperties.Builder()
                    .correlationId(correlationId)
                    .replyTo(replyQueue)
                    .build();
            client.basicPublish("", rpcQueue, properties, bytes(String.valueOf(n)));
        }
        waitFor(10_000, () -> "RPC replies (got " + responses.size() + " of " + expected.size() + ")",
                () -> responses.size() >= expected.size());
        assertEquals("replies by correlation id", expected, new HashMap<>(responses));
    }
}
