// A consumer that records what the broker sends it (deliveries, cancel notifications) for a test to wait on.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.ShutdownSignalException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

final class Collector extends DefaultConsumer {
    record Received(String consumerTag, Envelope envelope, AMQP.BasicProperties properties, byte[] body) {
        String text() {
            return new String(body, StandardCharsets.UTF_8);
        }

        long tag() {
            return envelope.getDeliveryTag();
        }

        boolean redelivered() {
            return envelope.isRedeliver();
        }
    }

    final BlockingQueue<Received> deliveries = new LinkedBlockingQueue<>();
    /** "cancel TAG" for a server-sent basic.cancel, "cancel-ok TAG" for the reply to the client's own cancel. */
    final BlockingQueue<String> events = new LinkedBlockingQueue<>();

    Collector(Channel channel) {
        super(channel);
    }

    @Override
    public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties, byte[] body) {
        deliveries.add(new Received(consumerTag, envelope, properties, body));
    }

    @Override
    public void handleCancel(String consumerTag) {
        events.add("cancel " + consumerTag);
    }

    @Override
    public void handleCancelOk(String consumerTag) {
        events.add("cancel-ok " + consumerTag);
    }

    @Override
    public void handleShutdownSignal(String consumerTag, ShutdownSignalException signal) {
        events.add("shutdown " + consumerTag);
    }

    /** The next delivery within `millis`, or a failure naming what was awaited. */
    Received next(long millis, String what) throws InterruptedException {
        Received received = deliveries.poll(millis, TimeUnit.MILLISECONDS);
        if (received == null) {
            throw new AssertionError("no delivery within " + millis + " ms: " + what);
        }
        return received;
    }

    void assertNoDelivery(long millis, String why) throws InterruptedException {
        Received received = deliveries.poll(millis, TimeUnit.MILLISECONDS);
        if (received != null) {
            throw new AssertionError("unexpected delivery '" + received.text() + "': " + why);
        }
    }

    String nextEvent(long millis, String what) throws InterruptedException {
        String event = events.poll(millis, TimeUnit.MILLISECONDS);
        if (event == null) {
            throw new AssertionError("nothing within " + millis + " ms: " + what);
        }
        return event;
    }
}
