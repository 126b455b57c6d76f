"""basic.get and the ways a consumer settles a delivery: ack, nack (with and without requeue, multiple) and reject."""

from harness import BrokerTestCase, pump


class Acks(BrokerTestCase):
    def publish(self, queue, *bodies):
        """Publishes with confirms, so every body is in the queue when this returns."""
        if not getattr(self, "_confirming", False):
            self.ch.confirm_delivery()
            self._confirming = True
        for body in bodies:
            self.ch.basic_publish("", queue, body)

    def next_delivery(self, channel, queue):
        """Consumes one message with manual ack, then cancels the consumer (its unacked delivery stays unacked)."""
        for method, properties, body in channel.consume(queue, inactivity_timeout=5):
            self.assertIsNotNone(method, "no delivery within 5 s")
            break
        return method, body

    def test_basic_get(self):
        queue = self.queue("get")
        self.assertEqual(self.ch.basic_get(queue), (None, None, None), "basic.get-empty on an empty queue")

        self.publish(queue, b"a", b"b", b"c")
        method, properties, body = self.ch.basic_get(queue)
        self.assertEqual(body, b"a")
        self.assertEqual(method.message_count, 2, "basic.get-ok message_count counts what is left")
        self.assertEqual(method.delivery_tag, 1)
        self.assertFalse(method.redelivered)
        self.assertEqual((method.exchange, method.routing_key), ("", queue))
        self.ch.basic_ack(method.delivery_tag)

        method, _, body = self.ch.basic_get(queue, auto_ack=True)
        self.assertEqual((body, method.message_count, method.delivery_tag), (b"b", 1, 2))

        method, _, body = self.ch.basic_get(queue)  # not acked
        self.assertEqual((body, method.message_count, method.delivery_tag), (b"c", 0, 3))
        self.assertEqual(self.ch.basic_get(queue), (None, None, None))

        # Closing the channel returns the unacked message, now marked redelivered.
        self.ch.close()
        self.ch = self.conn.channel()
        self.wait_depth(queue, 1)
        method, _, body = self.ch.basic_get(queue, auto_ack=True)
        self.assertEqual(body, b"c")
        self.assertTrue(method.redelivered)
        self.assertEqual(method.delivery_tag, 1, "delivery tags are per channel and start at 1")

    def test_nack_with_requeue_redelivers(self):
        queue = self.queue("nack.requeue")
        self.publish(queue, b"retry me")
        consumer = self.conn.channel()
        method, body = self.next_delivery(consumer, queue)
        self.assertEqual((body, method.redelivered), (b"retry me", False))
        consumer.basic_nack(method.delivery_tag, requeue=True)

        method, body = self.next_delivery(consumer, queue)
        self.assertEqual(body, b"retry me")
        self.assertTrue(method.redelivered, "a nacked-and-requeued message comes back with redelivered=True")
        consumer.basic_ack(method.delivery_tag)
        consumer.cancel()
        pump(self.conn, 0.2)
        self.assertEqual(self.depth(queue), 0)
        self.assertEqual(self.ch.basic_get(queue), (None, None, None))

    def test_nack_without_requeue_discards(self):
        queue = self.queue("nack.drop")
        self.publish(queue, b"poison", b"fine")
        method, _, body = self.ch.basic_get(queue)
        self.assertEqual(body, b"poison")
        self.ch.basic_nack(method.delivery_tag, requeue=False)
        method, _, body = self.ch.basic_get(queue, auto_ack=True)
        self.assertEqual(body, b"fine")
        self.assertEqual(self.ch.basic_get(queue), (None, None, None), "a nack without requeue drops the message")
        # Not hidden somewhere either: closing the channel brings nothing back.
        self.ch.close()
        pump(self.conn, 0.2)
        self.assertEqual(self.depth(queue), 0)

    def test_nack_multiple_requeues_all_up_to_the_tag(self):
        queue = self.queue("nack.multiple")
        self.publish(queue, b"1", b"2", b"3", b"4")
        tags = [self.ch.basic_get(queue)[0].delivery_tag for _ in range(3)]
        self.assertEqual(tags, [1, 2, 3])
        self.ch.basic_nack(tags[1], multiple=True, requeue=True)  # settles 1 and 2, leaves 3 unacked
        self.wait_depth(queue, 3)
        bodies = []
        for _ in range(3):
            method, _, body = self.ch.basic_get(queue, auto_ack=True)
            bodies.append((body, method.redelivered))
        self.assertEqual(sorted(bodies), [(b"1", True), (b"2", True), (b"4", False)])
        self.ch.basic_ack(tags[2])
        self.ch.close()
        pump(self.conn, 0.2)
        self.assertEqual(self.depth(queue), 0)

    def test_reject_with_and_without_requeue(self):
        queue = self.queue("reject")
        self.publish(queue, b"m")
        consumer = self.conn.channel()
        method, body = self.next_delivery(consumer, queue)
        self.assertFalse(method.redelivered)
        consumer.basic_reject(method.delivery_tag, requeue=True)

        method, body = self.next_delivery(consumer, queue)
        self.assertEqual(body, b"m")
        self.assertTrue(method.redelivered)
        consumer.basic_reject(method.delivery_tag, requeue=False)
        consumer.cancel()
        pump(self.conn, 0.2)
        self.assertEqual(self.depth(queue), 0)
        consumer.close()
        pump(self.conn, 0.2)
        self.assertEqual(self.depth(queue), 0, "a message rejected without requeue must not come back")

    def test_global_qos_holds_a_no_ack_consumer_while_the_channel_is_at_its_limit(self):
        # RabbitMQ's limiter is asked before every delivery on a channel with a global prefetch, no-ack ones too;
        # only deliveries that must be acked count against it.
        acked, auto = self.queue("acked"), self.queue("auto")
        self.publish(acked, b"a")
        self.publish(auto, b"1", b"2", b"3")
        consumer = self.conn.channel()
        consumer.basic_qos(prefetch_count=1, global_qos=True)
        got = []
        consumer.basic_consume(acked, lambda ch, m, p, b: got.append(("acker", m.delivery_tag)))
        self.wait_for(lambda: got, what="the first delivery")
        consumer.basic_consume(auto, lambda ch, m, p, b: got.append(("noack", m.delivery_tag)), auto_ack=True)
        pump(self.conn, 0.5)
        self.assertEqual(got, [("acker", 1)], "the no-ack consumer waits while one delivery is unacked")
        consumer.basic_ack(1)
        self.wait_for(lambda: len(got) == 4, what="the no-ack consumer's three deliveries")
        self.assertEqual([who for who, _ in got[1:]], ["noack"] * 3)
