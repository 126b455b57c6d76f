"""Message deduplication (the community rabbitmq-message-deduplication plugin, built into Warren): the exchange type
`x-message-deduplication` and the queue argument `x-message-deduplication`, through pika with publisher confirms.
RabbitMQ 3.10 in Debian has no such plugin, so the differential run lists these as Warren-only
(docs/compatibility.md, "Interop differences")."""

import pika

from harness import BrokerTestCase, unique

HEADER = "x-deduplication-header"


def keyed(key):
    return pika.BasicProperties(headers={HEADER: key})


class Dedup(BrokerTestCase):
    def test_exchange_drops_a_key_seen_within_its_ttl_and_still_confirms(self):
        """The exchange routes as fanout; a repeated key routes nowhere, yet the publish is confirmed (acked), so
        a publisher retrying after a lost confirm ends its loop."""
        exchange = unique("dedup-x")
        self.delete_later(exchange=exchange)
        self.ch.exchange_declare(
            exchange, "x-message-deduplication", arguments={"x-cache-size": 100, "x-cache-ttl": 60000}
        )
        queue = self.queue("dedup-xq")
        self.ch.queue_bind(queue, exchange)
        self.ch.confirm_delivery()
        for key in ["a", "b", "a", "c", "b"]:
            self.ch.basic_publish(exchange, "", key.encode(), keyed(key))  # raises if nacked
        self.wait_depth(queue, 3)
        bodies = [self.ch.basic_get(queue, auto_ack=True)[2] for _ in range(3)]
        self.assertEqual(bodies, [b"a", b"b", b"c"])

    def test_queue_drops_a_key_still_in_the_queue_until_it_is_consumed(self):
        queue = self.queue("dedup-q", arguments={"x-message-deduplication": True})
        self.ch.confirm_delivery()
        for key in ["k1", "k1", "k2"]:
            self.ch.basic_publish("", queue, key.encode(), keyed(key))
        self.wait_depth(queue, 2)
        self.assertEqual(self.ch.basic_get(queue, auto_ack=True)[2], b"k1")
        # k1 left the queue: the same key is taken again.
        self.ch.basic_publish("", queue, b"k1 again", keyed("k1"))
        self.wait_depth(queue, 2)

    def test_a_cache_size_that_is_not_a_positive_integer_is_refused(self):
        ch = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.exchange_declare(unique("dedup-bad"), "x-message-deduplication", arguments={"x-cache-size": -1})
        self.assertEqual(refused.exception.reply_code, 406)
