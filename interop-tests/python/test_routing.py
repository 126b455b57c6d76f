"""Routing beyond the tutorials: the headers exchange (x-match all/any) and exchange-to-exchange bindings."""

import pika

from harness import BrokerTestCase, drain


class Routing(BrokerTestCase):
    def test_headers_exchange_all_and_any(self):
        exchange = self.exchange("headers", "headers")
        match_all = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(match_all, exchange, arguments={"x-match": "all", "format": "pdf", "type": "report"})
        match_any = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(match_any, exchange, arguments={"x-match": "any", "format": "pdf", "type": "report"})

        self.ch.confirm_delivery()
        for name, headers in (
            ("both", {"format": "pdf", "type": "report"}),
            ("both+extra", {"format": "pdf", "type": "report", "lang": "en"}),
            ("format", {"format": "pdf"}),
            ("type-wrong-format", {"format": "zip", "type": "report"}),
            ("none", {"lang": "en"}),
            ("no-headers", None),
        ):
            self.ch.basic_publish(
                exchange, "ignored", name.encode(), properties=pika.BasicProperties(headers=headers)
            )

        self.assertEqual(drain(self.ch, match_all), [b"both", b"both+extra"])
        self.assertEqual(drain(self.ch, match_any), [b"both", b"both+extra", b"format", b"type-wrong-format"])

    def test_exchange_to_exchange_binding(self):
        upstream = self.exchange("e2e.up", "topic")
        downstream = self.exchange("e2e.down", "fanout")
        self.ch.exchange_bind(destination=downstream, source=upstream, routing_key="orders.*")
        queue = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(queue, downstream)

        self.ch.confirm_delivery()
        self.ch.basic_publish(upstream, "orders.created", b"yes")
        self.ch.basic_publish(upstream, "payments.created", b"no")
        self.assertEqual(drain(self.ch, queue), [b"yes"])

        self.ch.exchange_unbind(destination=downstream, source=upstream, routing_key="orders.*")
        self.ch.basic_publish(upstream, "orders.created", b"after unbind")
        self.assertEqual(drain(self.ch, queue), [])

    def test_consistent_hash_exchange(self):
        """x-consistent-hash (RabbitMQ's rabbitmq_consistent_hash_exchange plugin): binding keys are weights, each
        message reaches one queue, the same routing key always the same queue."""
        exchange = self.exchange("chx", "x-consistent-hash")
        light = self.ch.queue_declare("", exclusive=True).method.queue
        heavy = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(light, exchange, routing_key="1")
        self.ch.queue_bind(heavy, exchange, routing_key="3")

        self.ch.confirm_delivery()
        for i in range(2000):
            self.ch.basic_publish(exchange, "key-%d" % i, b"m")
        for _ in range(20):
            self.ch.basic_publish(exchange, "always-the-same", b"same")
        light_bodies, heavy_bodies = drain(self.ch, light), drain(self.ch, heavy)
        self.assertEqual(len(light_bodies) + len(heavy_bodies), 2020)
        self.assertTrue(350 < len(light_bodies) < 700, len(light_bodies))
        self.assertIn(20, (light_bodies.count(b"same"), heavy_bodies.count(b"same")))

    def test_cc_and_bcc_headers_add_routing_keys(self):
        """Sender-selected distribution: CC and BCC add routing keys; BCC is not delivered; one copy per queue."""
        exchange = self.exchange("ssd", "direct")
        queues = {}
        for key in ("main", "copy", "blind"):
            queues[key] = self.ch.queue_declare("", exclusive=True).method.queue
            self.ch.queue_bind(queues[key], exchange, routing_key=key)

        self.ch.confirm_delivery()
        headers = {"CC": ["copy", "main"], "BCC": ["blind"]}
        self.ch.basic_publish(exchange, "main", b"m", properties=pika.BasicProperties(headers=headers))
        for key, queue in queues.items():
            method, properties, body = self.ch.basic_get(queue, auto_ack=True)
            self.assertEqual(body, b"m", key)
            self.assertEqual(properties.headers.get("CC"), ["copy", "main"])
            self.assertNotIn("BCC", properties.headers)
            self.assertEqual(self.ch.basic_get(queue, auto_ack=True), (None, None, None), key)
