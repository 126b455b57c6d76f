"""AMQP over TLS with pika. interop-tests/run starts Warren with a TLS listener and sets AMQPS_URL and AMQPS_CA_FILE;
without them (a broker given with --broker-url, say) these tests are skipped."""

import os
import ssl
import unittest

import pika

from harness import BrokerTestCase, drain

URL = os.environ.get("AMQPS_URL")
CA_FILE = os.environ.get("AMQPS_CA_FILE")


@unittest.skipUnless(URL and CA_FILE, "AMQPS_URL and AMQPS_CA_FILE are not set")
class Tls(BrokerTestCase):
    def tls_parameters(self):
        params = pika.URLParameters(URL)
        context = ssl.create_default_context(cafile=CA_FILE)
        params.ssl_options = pika.SSLOptions(context, params.host)
        params.connection_attempts = 1
        params.socket_timeout = 10
        return params

    def test_publish_and_get_over_tls(self):
        conn = pika.BlockingConnection(self.tls_parameters())
        try:
            ch = conn.channel()
            queue = ch.queue_declare("", exclusive=True).method.queue
            ch.confirm_delivery()
            ch.basic_publish("", queue, b"over tls")
            self.assertEqual(drain(ch, queue), [b"over tls"])
        finally:
            conn.close()

    def test_a_client_that_does_not_trust_the_certificate_is_refused(self):
        params = self.tls_parameters()
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(), params.host)
        # pika lets the certificate error through as it is, or wraps it, depending on where the handshake fails.
        with self.assertRaises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            pika.BlockingConnection(params)
