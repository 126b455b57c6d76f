"""kombu (Celery's messaging layer, on py-amqp): SimpleQueue, a producer and consumer through a topic exchange with
ack, requeue and reject, publishing with confirms, and a queue with a message TTL dead-lettering what expires."""

import socket
import time
import unittest

import kombu
from kombu import Exchange, Queue

from harness import TimeLimit, Topology, amqp_url, unique, wait_until


class KombuTestCase(TimeLimit, Topology, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.conn = kombu.Connection(amqp_url(), connect_timeout=10)
        self.conn.connect()
        self.addCleanup(self.conn.release)

    def drain_until(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            try:
                self.conn.drain_events(timeout=0.05)
            except socket.timeout:
                pass
        return True


class KombuMessaging(KombuTestCase):
    def test_simple_queue_round_trip(self):
        name = self.delete_later(queue=unique("simple"))
        queue = self.conn.SimpleQueue(name, serializer="json")
        try:
            for i in range(10):
                queue.put({"n": i, "text": "h\u00e9llo"})
            # put() does not wait for the broker (no confirms): poll until all ten are in.
            self.assertEqual(wait_until(lambda: queue.qsize() == 10 and 10, timeout=5) or queue.qsize(), 10)
            got = []
            for _ in range(10):
                message = queue.get(block=True, timeout=5)
                got.append(message.payload)
                message.ack()
            self.assertEqual(got, [{"n": i, "text": "h\u00e9llo"} for i in range(10)])
            with self.assertRaises(queue.Empty):
                queue.get(block=True, timeout=0.3)
        finally:
            queue.close()

    def test_topic_exchange_with_ack_requeue_and_reject(self):
        exchange = Exchange(self.delete_later(exchange=unique("kombu.topic")), type="topic", durable=False)
        queue = Queue(self.delete_later(queue=unique("kombu.orders")), exchange, routing_key="orders.*",
                      durable=False)
        with self.conn.Producer() as producer:
            for key, body in (("orders.created", "c"), ("orders.paid", "p"), ("payments.done", "x"),
                              ("orders.shipped", "s")):
                producer.publish({"body": body}, exchange=exchange, routing_key=key, declare=[queue],
                                 serializer="json", headers={"key": key})

        seen = []

        def on_message(body, message):
            seen.append((body["body"], message.delivery_info["redelivered"], message.headers["key"]))
            if body["body"] == "c" and not message.delivery_info["redelivered"]:
                message.requeue()  # basic.reject requeue=true: comes back redelivered
            elif body["body"] == "s":
                message.reject()  # dropped
            else:
                message.ack()

        with self.conn.Consumer(queue, callbacks=[on_message], prefetch_count=10):
            self.assertTrue(self.drain_until(lambda: len(seen) >= 4), "saw %r" % seen)
            self.drain_until(lambda: False, timeout=0.3)
        self.assertEqual(sorted(seen), sorted([("c", False, "orders.created"), ("p", False, "orders.paid"),
                                               ("s", False, "orders.shipped"), ("c", True, "orders.created")]))
        self.assertEqual(queue(self.conn.default_channel).queue_declare(passive=True).message_count, 0)

    def test_publish_with_confirms(self):
        conn = kombu.Connection(amqp_url(), connect_timeout=10, transport_options={"confirm_publish": True})
        self.addCleanup(conn.release)
        queue = Queue(self.delete_later(queue=unique("kombu.confirm")), durable=True)
        with conn.Producer() as producer:
            for i in range(30):
                producer.publish({"i": i}, routing_key=queue.name, declare=[queue], delivery_mode=2,
                                 serializer="json")
        simple = self.conn.SimpleQueue(queue)
        try:
            self.assertEqual(simple.qsize(), 30)
            first = simple.get(timeout=5)
            self.assertEqual((first.payload, first.properties.get("delivery_mode")), ({"i": 0}, 2))
            first.ack()
        finally:
            simple.close()

    def test_a_queue_with_message_ttl_dead_letters_expired_messages(self):
        # The retry-queue pattern: messages wait out a TTL, then the dead-letter exchange routes them on.
        dead = Queue(self.delete_later(queue=unique("kombu.dead")), durable=False)
        waiting = Queue(
            self.delete_later(queue=unique("kombu.waiting")),
            durable=False,
            queue_arguments={
                "x-message-ttl": 100,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead.name,
            },
        )
        with self.conn.Producer() as producer:
            producer.publish({"job": 7}, routing_key=waiting.name, declare=[dead, waiting], serializer="json")
        simple = self.conn.SimpleQueue(dead)
        try:
            message = simple.get(block=True, timeout=5)
            self.assertEqual(message.payload, {"job": 7})
            death = message.headers["x-death"][0]
            self.assertEqual((death["queue"], death["reason"], death["count"]), (waiting.name, "expired", 1))
            self.assertEqual(message.headers["x-first-death-reason"], "expired")
            message.ack()
        finally:
            simple.close()
        self.assertEqual(waiting(self.conn.default_channel).queue_declare(passive=True).message_count, 0)
