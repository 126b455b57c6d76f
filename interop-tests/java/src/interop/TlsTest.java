// AMQP over TLS with the Java client. interop-tests/run starts Warren with a TLS listener and sets AMQPS_URL and
// AMQPS_CA_FILE (a CA made for the run; the server certificate names 127.0.0.1 and localhost); without them (a broker
// given with --broker-url, say) these tests are skipped.
package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class TlsTest extends BrokerTest {
    /** The environment variable `name`, or a skip when either of the two TLS settings is missing. */
    private static String tlsSetting(String name) {
        for (String required : new String[] {"AMQPS_URL", "AMQPS_CA_FILE"}) {
            String value = System.getenv(required);
            if (value == null || value.isEmpty()) {
                skip("AMQPS_URL and AMQPS_CA_FILE are not set");
            }
        }
        return System.getenv(name);
    }

    private static String tlsUrl() {
        return tlsSetting("AMQPS_URL");
    }

    /** An SSLContext that trusts only the certificates of the PEM file AMQPS_CA_FILE. */
    private static SSLContext trustingTheRunsCa() throws Exception {
        KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());
        trusted.load(null, null);
        CertificateFactory x509 = CertificateFactory.getInstance("X.509");
        try (InputStream pem = Files.newInputStream(Path.of(tlsSetting("AMQPS_CA_FILE")))) {
            int n = 0;
            for (Certificate certificate : x509.generateCertificates(pem)) {
                trusted.setCertificateEntry("ca-" + n++, certificate);
            }
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(trusted);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, trust.getTrustManagers(), null);
        return context;
    }

    /**
     * A factory for AMQPS_URL that trusts `context` and checks that the certificate names the host. Client 5.0 has no
     * enableHostnameVerification() (5.4 added it), so the check is switched on in the socket's SSL parameters, which
     * is what that method does.
     */
    private static ConnectionFactory tlsFactory(SSLContext context) throws Exception {
        ConnectionFactory factory = factory();
        factory.setUri(tlsUrl()); // amqps:// turns on TLS, trusting any certificate: replaced on the next line
        factory.useSslProtocol(context);
        factory.setSocketConfigurator(socket -> {
            socket.setTcpNoDelay(true);
            if (socket instanceof SSLSocket ssl) {
                SSLParameters parameters = ssl.getSSLParameters();
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
                ssl.setSSLParameters(parameters);
            }
        });
        return factory;
    }

    public void test_publish_confirm_and_consume_over_tls() throws Exception {
        Connection tls = connect(tlsFactory(trustingTheRunsCa()));
        Channel channel = tls.createChannel();
        String queue = serverNamedQueue(channel);
        channel.confirmSelect();
        channel.basicPublish("", queue, null, bytes("over tls"));
        channel.waitForConfirmsOrDie(5_000);
        Collector collector = new Collector(channel);
        channel.basicConsume(queue, false, collector);
        Collector.Received received = collector.next(5_000, "the message published over TLS");
        assertEquals("body", "over tls", received.text());
        channel.basicAck(received.tag(), false);
    }

    public void test_a_client_that_does_not_trust_the_certificate_is_refused() throws Exception {
        SSLContext systemRoots = SSLContext.getInstance("TLS");
        systemRoots.init(null, null, null);
        ConnectionFactory factory = tlsFactory(systemRoots);
        try {
            connect(factory);
        } catch (SSLHandshakeException expected) {
            return;
        }
        throw new AssertionError("the connection succeeded without trusting the broker's CA");
    }

    public void test_plain_amqp_to_the_tls_port_fails_without_hanging() throws Exception {
        URI tls = URI.create(tlsUrl());
        ConnectionFactory plain = factory();
        plain.setHost(tls.getHost());
        plain.setPort(tls.getPort() == -1 ? ConnectionFactory.DEFAULT_AMQP_OVER_SSL_PORT : tls.getPort());
        long started = System.nanoTime();
        try {
            connect(plain);
        } catch (Exception expected) {
            long millis = (System.nanoTime() - started) / 1_000_000;
            // factory() bounds the connect and the handshake by 10 s: a refusal must come before that.
            assertTrue(millis < 10_000, "the refusal took " + millis + " ms: " + expected);
            return;
        }
        throw new AssertionError("a plain AMQP connection to the TLS port succeeded");
    }
}
