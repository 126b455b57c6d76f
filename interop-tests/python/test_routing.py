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
