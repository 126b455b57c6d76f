"""Queue semantics as pika applications rely on them: message TTL, length limits, dead-lettering with x-death (a retry
loop), priorities and single active consumer. Each test passes against RabbitMQ 3.10 as well."""

import time

import pika

from harness import BrokerTestCase, drain, unique


class QueueSemantics(BrokerTestCase):
    def get(self, queue, timeout=5.0):
        """basic_get (manual ack) until a message comes; returns (method, properties, body)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, properties, body = self.ch.basic_get(queue, auto_ack=False)
            if method is not None:
                return method, properties, body
            time.sleep(0.01)
        self.fail("no message in %s within %.0f s" % (queue, timeout))

    @staticmethod
    def deaths(properties):
        return [
            (d["queue"], d["reason"], d["count"])
            for d in (properties.headers or {}).get("x-death", [])
        ]

    def test_message_ttl_drops_what_nobody_took_in_time(self):
        queue = self.queue("ttl", arguments={"x-message-ttl": 200})
        self.ch.basic_publish("", queue, b"short-lived")
        self.assertEqual(self.depth(queue), 1)
        self.wait_depth(queue, 0)
        self.assertEqual(drain(self.ch, queue), [])

    def test_per_message_expiration_expires_behind_a_message_that_does_not(self):
        queue = self.queue("expiration")
        self.ch.basic_publish("", queue, b"stays")
        self.ch.basic_publish("", queue, b"goes", pika.BasicProperties(expiration="100"))
        time.sleep(0.3)
        # RabbitMQ expires only from the head: it still counts the expired message until it reaches the head, but
        # never delivers it. Warren also drops it from the count on time.
        self.assertEqual(drain(self.ch, queue), [b"stays"])
        self.wait_depth(queue, 0)

    def test_max_length_drops_the_oldest(self):
        queue = self.queue("maxlen", arguments={"x-max-length": 2})
        self.ch.confirm_delivery()
        for body in (b"1", b"2", b"3", b"4"):
            self.ch.basic_publish("", queue, body)
        self.assertEqual(drain(self.ch, queue), [b"3", b"4"])

    def test_reject_publish_nacks_what_does_not_fit(self):
        queue = self.queue("full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        self.ch.confirm_delivery()
        self.ch.basic_publish("", queue, b"fits")
        with self.assertRaises(pika.exceptions.NackError):
            self.ch.basic_publish("", queue, b"refused")
        self.assertEqual(drain(self.ch, queue), [b"fits"])

    def test_a_retry_loop_counts_its_rounds_in_x_death(self):
        work = unique("work")
        retry = unique("retry")
        self.delete_later(queue=work)
        self.delete_later(queue=retry)
        self.ch.queue_declare(
            work, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry}
        )
        self.ch.queue_declare(
            retry,
            arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work},
        )
        self.ch.basic_publish("", work, b"flaky")
        for attempt in (1, 2, 3):
            method, properties, body = self.get(work)
            self.assertEqual(body, b"flaky")
            if attempt == 1:
                self.assertEqual(self.deaths(properties), [])
            else:
                n = attempt - 1
                self.assertEqual(self.deaths(properties), [(retry, "expired", n), (work, "rejected", n)])
                self.assertEqual(properties.headers["x-first-death-reason"], "rejected")
                self.assertEqual(properties.headers["x-first-death-queue"], work)
            self.ch.basic_reject(method.delivery_tag, requeue=False)

    def test_priorities_deliver_the_highest_first(self):
        queue = self.queue("prio", arguments={"x-max-priority": 10})
        self.ch.confirm_delivery()
        for body, priority in ((b"none", None), (b"low", 1), (b"top", 9), (b"mid", 5)):
            self.ch.basic_publish("", queue, body, pika.BasicProperties(priority=priority))
        self.assertEqual(drain(self.ch, queue), [b"top", b"mid", b"low", b"none"])

    def test_single_active_consumer_delivers_to_one_consumer_only(self):
        queue = self.queue("sac", arguments={"x-single-active-consumer": True})
        received = {"first": [], "second": []}
        first = self.conn.channel()
        second = self.conn.channel()
        first.basic_consume(queue, lambda ch, m, p, b: received["first"].append(b), auto_ack=True)
        second.basic_consume(queue, lambda ch, m, p, b: received["second"].append(b), auto_ack=True)
        for i in range(6):
            self.ch.basic_publish("", queue, b"m%d" % i)
        self.wait_for(lambda: len(received["first"]) == 6, what="six deliveries to the first consumer")
        self.assertEqual(received["second"], [])
