"""Connection-level behaviour: heartbeat negotiation and liveness, a 16 MiB message split over many body frames, and
basic properties and header tables of every type pika can encode."""

import datetime
import decimal
import hashlib
import os

import pika

from harness import BrokerTestCase, drain


class Heartbeats(BrokerTestCase):
    def test_heartbeat_negotiated_and_connection_survives_idle_time(self):
        proposed = []

        def choose(_connection, server_value):
            proposed.append(server_value)
            return 2

        conn = self.connect(heartbeat=choose)
        self.assertEqual(proposed, [60], "RabbitMQ proposes a 60 s heartbeat in connection.tune")
        self.assertEqual(conn._impl.params.heartbeat, 2)

        received_before = conn._impl.bytes_received
        conn.sleep(5)  # processes I/O: pika sends heartbeats every second and expects the broker's
        self.assertTrue(conn.is_open, "connection closed during 5 s of heartbeats")
        heartbeat_bytes = conn._impl.bytes_received - received_before
        # A heartbeat frame is 8 bytes; the broker sends one every timeout/2 = 1 s, so 5 s must show at least two.
        self.assertGreaterEqual(heartbeat_bytes, 16, "broker sent %d bytes while idle" % heartbeat_bytes)

        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"alive")
        self.assertEqual(drain(ch, queue), [b"alive"])


class LargeMessages(BrokerTestCase):
    def test_16_mib_message_round_trip(self):
        queue = self.queue("large")
        body = os.urandom(1024) * (16 * 1024)  # 16 MiB, 128+ body frames at frame_max 131072
        self.assertEqual(len(body), 16 * 1024 * 1024)
        self.ch.confirm_delivery()
        self.ch.basic_publish("", queue, body, properties=pika.BasicProperties(message_id="big"))

        received = None
        for method, properties, got in self.ch.consume(queue, inactivity_timeout=30):
            self.assertIsNotNone(method, "16 MiB message not delivered within 30 s")
            self.ch.basic_ack(method.delivery_tag)
            received = (properties.message_id, got)
            break
        self.ch.cancel()
        self.assertEqual(received[0], "big")
        self.assertEqual(len(received[1]), len(body))
        self.assertEqual(hashlib.sha256(received[1]).hexdigest(), hashlib.sha256(body).hexdigest())


class Properties(BrokerTestCase):
    def test_properties_and_headers_round_trip(self):
        queue = self.queue("props")
        headers = {
            "string": "plain",
            "unicode": "h\u00e9llo \u2713",
            "int": 42,
            "negative": -7,
            "long": 2**40,
            "true": True,
            "false": False,
            "void": None,
            "bytes": b"\x00\xffraw",
            "decimal": decimal.Decimal("3.14"),
            "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "array": [1, "two", [3], {"four": 4}],
            "table": {"nested": {"deeper": "yes"}, "n": 1},
            "empty-table": {},
            "empty-array": [],
        }
        user = self.conn._impl.params.credentials.username
        sent = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers,
            delivery_mode=2,
            priority=5,
            correlation_id="corr-1",
            reply_to="reply.here",
            expiration="60000",
            message_id="msg-1",
            timestamp=1700000000,
            type="order.created",
            user_id=user,  # RabbitMQ refuses a user_id other than the authenticated user
            app_id="interop",
        )
        self.ch.confirm_delivery()
        self.ch.basic_publish("", queue, b'{"k": 1}', properties=sent)
        self.ch.basic_publish("", queue, b"")  # no properties at all, empty body

        method, got, body = self.ch.basic_get(queue, auto_ack=True)
        self.assertEqual(body, b'{"k": 1}')
        for name in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
                     "expiration", "message_id", "timestamp", "type", "user_id", "app_id"):
            self.assertEqual(getattr(got, name), getattr(sent, name), name)
        # pika 1.2 decodes a timestamp field as a naive UTC datetime, pika 1.4 as an aware one.
        got.headers["timestamp"] = got.headers["timestamp"].replace(tzinfo=None)
        for key, value in headers.items():
            self.assertIn(key, got.headers)
            self.assertEqual(got.headers[key], value, "header %r" % key)
            # bool before int: True == 1, so the type is what tells a boolean field from an integer one.
            self.assertIsInstance(got.headers[key], bool if isinstance(value, bool) else type(value), key)
        self.assertEqual(set(got.headers), set(headers), "the broker added or dropped headers")

        method, got, body = self.ch.basic_get(queue, auto_ack=True)
        self.assertEqual(body, b"")
        for name in ("content_type", "headers", "delivery_mode", "message_id", "timestamp"):
            self.assertIsNone(getattr(got, name), name)
