// Direct reply-to (amq.rabbitmq.reply-to) with the Java client's own RPC classes: RpcClient consuming the pseudo-queue
// (no-ack) on one connection, an RpcServer answering from another.
//
// Debian's librabbitmq-client-java is 5.0.0, which predates RpcClientParams (5.1): its RpcClient takes the reply-to
// queue as a constructor argument, and amq.rabbitmq.reply-to is already its default. The test names it explicitly.
package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.RpcClient;
import com.rabbitmq.client.RpcServer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

public class DirectReplyToTest extends BrokerTest {
    private static final String PSEUDO = "amq.rabbitmq.reply-to";

    /** What the server saw of each request: its reply_to and correlation id. */
    private record Request(String replyTo, String correlationId) {}

    public void test_rpc_client_round_trip_across_connections() throws Exception {
        String requests = queue("rpc");

        // The responder: RpcServer consumes the request queue and publishes each reply to the default exchange with
        // the request's reply_to as routing key and its correlation id.
        Channel serverChannel = connect().createChannel();
        List<Request> seen = Collections.synchronizedList(new ArrayList<>());
        RpcServer server = new RpcServer(serverChannel, requests) {
            @Override
            public byte[] handleCall(Delivery request, AMQP.BasicProperties replyProperties) {
                seen.add(new Request(request.getProperties().getReplyTo(), request.getProperties().getCorrelationId()));
                return bytes("pong:" + text(request.getBody()));
            }
        };
        Thread serverLoop = new Thread(() -> {
            try {
                server.mainloop();
            } catch (Exception e) {
                // the connection closes when the test ends, which ends the loop
            }
        }, "rpc-server");
        serverLoop.setDaemon(true);
        serverLoop.start();

        RpcClient client = new RpcClient(ch, "", requests, PSEUDO, 10_000);
        for (int i = 0; i < 3; i++) {
            RpcClient.Response response = client.doCall(null, bytes("ping" + i));
            assertEquals("reply body", "pong:ping" + i, text(response.getBody()));
            assertEquals("requests seen", i + 1, seen.size());
            Request request = seen.get(i);
            assertTrue(request.replyTo().startsWith(PSEUDO + "."),
                    "the broker rewrote reply_to to a reply name, not " + request.replyTo());
            assertEquals("reply correlation id", request.correlationId(), response.getProperties().getCorrelationId());
            assertEquals("reply exchange", "", response.getEnvelope().getExchange());
            assertEquals("reply routing key", request.replyTo(), response.getEnvelope().getRoutingKey());
        }
        client.close();
        server.terminateMainloop();
        assertTrue(ch.isOpen(), "the requester's channel is open");
    }
}
