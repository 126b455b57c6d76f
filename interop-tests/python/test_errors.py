"""Channel and connection errors as pika sees them: reply codes and RabbitMQ's close texts, and that the connection
survives a channel error."""

import pika
import pika.exceptions

from harness import BrokerTestCase, parameters, unique


class ChannelErrors(BrokerTestCase):
    def assert_connection_still_usable(self, conn):
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", queue, b"still fine")
        ch.close()

    def test_exclusive_queue_from_another_connection_is_405(self):
        queue = self.queue("exclusive", exclusive=True)
        other = self.connect()
        locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'" % queue

        ch = other.channel()
        self.assert_channel_closed(405, locked, lambda: ch.queue_declare(queue, exclusive=True))
        ch = other.channel()
        self.assert_channel_closed(405, locked, lambda: ch.queue_declare(queue, passive=True))
        ch = other.channel()
        self.assert_channel_closed(
            405, locked, lambda: ch.basic_consume(queue, lambda *args: None, auto_ack=True)
        )
        ch = other.channel()
        self.assert_channel_closed(405, locked, lambda: ch.basic_get(queue))
        ch = other.channel()
        self.assert_channel_closed(405, locked, lambda: ch.queue_delete(queue))
        self.assert_connection_still_usable(other)

        # The owner is unaffected.
        self.ch.basic_publish("", queue, b"mine")
        self.wait_depth(queue, 1)

    def test_passive_declare_of_missing_queue_is_404(self):
        missing = unique("no-such-queue")
        closed = self.assert_channel_closed(
            404, "NOT_FOUND - no queue '%s' in vhost '/'" % missing, lambda: self.ch.queue_declare(missing, passive=True)
        )
        self.assertEqual(closed.reply_text, "NOT_FOUND - no queue '%s' in vhost '/'" % missing)
        self.assertTrue(self.ch.is_closed)
        self.assertTrue(self.conn.is_open, "a channel error must not close the connection")
        self.assert_connection_still_usable(self.conn)

    def test_passive_declare_of_missing_exchange_is_404(self):
        missing = unique("no-such-exchange")
        self.assert_channel_closed(
            404,
            "NOT_FOUND - no exchange '%s' in vhost '/'" % missing,
            lambda: self.ch.exchange_declare(missing, "direct", passive=True),
        )

    def test_publish_to_missing_exchange_is_404(self):
        missing = unique("no-such-exchange")
        self.ch.confirm_delivery()
        self.assert_channel_closed(
            404, "NOT_FOUND - no exchange '%s' in vhost '/'" % missing, lambda: self.ch.basic_publish(missing, "k", b"x")
        )

    def test_redeclare_with_other_arguments_is_406(self):
        queue = self.queue("args", arguments={"x-message-ttl": 60000})
        # The same arguments again are fine.
        self.ch.queue_declare(queue, arguments={"x-message-ttl": 60000})

        self.assert_channel_closed(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost '/'" % queue,
            lambda: self.ch.queue_declare(queue, arguments={"x-message-ttl": 1000}),
        )
        self.ch = self.conn.channel()
        self.assert_channel_closed(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/'" % queue,
            lambda: self.ch.queue_declare(queue, durable=True, arguments={"x-message-ttl": 60000}),
        )
        self.ch = self.conn.channel()
        exchange = self.exchange("args", "direct")
        self.assert_channel_closed(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/'" % exchange,
            lambda: self.ch.exchange_declare(exchange, "fanout"),
        )
        # The queue kept its original definition.
        self.ch = self.conn.channel()
        self.ch.queue_declare(queue, arguments={"x-message-ttl": 60000})
        self.assert_connection_still_usable(self.conn)

    def test_invalid_queue_arguments_are_406_with_rabbitmqs_text(self):
        cases = [
            ({"x-max-length": "ten"}, '"expected integer, got longstr"'),
            ({"x-message-ttl": -1}, "{value_negative,-1}"),
            ({"x-expires": 0}, "{value_zero,0}"),
            ({"x-max-priority": 300}, "{max_value_exceeded,300}"),
            ({"x-overflow": "drop-tail"}, "invalid_overflow"),
            ({"x-single-active-consumer": "yes"}, "{unacceptable_type,longstr}"),
        ]
        for arguments, term in cases:
            name = unique("bad-args")
            key = next(iter(arguments))
            self.ch = self.conn.channel()
            self.assert_channel_closed(
                406,
                "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/': %s" % (key, name, term),
                lambda: self.ch.queue_declare(name, arguments=arguments),
            )
            self.ch = self.conn.channel()
            self.assert_channel_closed(404, "NOT_FOUND", lambda: self.ch.queue_declare(name, passive=True))
        self.ch = self.conn.channel()
        self.assert_connection_still_usable(self.conn)


class ConnectionErrors(BrokerTestCase):
    def test_wrong_password_is_refused(self):
        params = parameters()
        params.credentials = pika.PlainCredentials(params.credentials.username, "definitely-not-the-password")
        # RabbitMQ advertises authentication_failure_close and closes with 403 ACCESS_REFUSED; pika reports that
        # as ProbableAuthenticationError (or AuthenticationError).
        with self.assertRaises((pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
            pika.BlockingConnection(params).close()

    def test_server_advertises_the_capabilities_pika_uses(self):
        properties = self.conn._impl.server_properties
        capabilities = properties.get("capabilities", {})
        for name in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings",
                     "per_consumer_qos", "authentication_failure_close"):
            self.assertIs(capabilities.get(name), True, "capability %s: %r" % (name, capabilities.get(name)))
        self.assertIn("product", properties)
        self.assertIn("version", properties)
