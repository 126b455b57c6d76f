"""Publisher confirms through pika's BlockingChannel.confirm_delivery: a confirmed publish returns, an unroutable
mandatory publish raises UnroutableError carrying the basic.return."""

import pika
import pika.exceptions

from harness import BrokerTestCase, drain, persistent, unique


class PublisherConfirms(BrokerTestCase):
    def test_confirmed_publish_returns_and_is_enqueued(self):
        queue = self.queue("confirm", durable=True)
        self.ch.confirm_delivery()
        for i in range(50):
            # In confirm mode pika waits for basic.ack and raises on nack or return; returning is the confirm.
            self.ch.basic_publish("", queue, b"persistent-%d" % i, properties=persistent())
        for i in range(50):
            self.ch.basic_publish("", queue, b"transient-%d" % i)
        self.assertEqual(self.depth(queue), 100)
        bodies = drain(self.ch, queue)
        self.assertEqual(bodies[:2], [b"persistent-0", b"persistent-1"])
        self.assertEqual(bodies[-1], b"transient-49")

    def test_mandatory_unroutable_raises_unroutable_error(self):
        self.ch.confirm_delivery()
        key = unique("nowhere")
        with self.assertRaises(pika.exceptions.UnroutableError) as caught:
            self.ch.basic_publish(
                "amq.direct", key, b"lost", properties=pika.BasicProperties(message_id="m-1"), mandatory=True
            )
        returned = caught.exception.messages
        self.assertEqual(len(returned), 1)
        method = returned[0].method
        self.assertEqual((method.reply_code, method.reply_text), (312, "NO_ROUTE"))
        self.assertEqual((method.exchange, method.routing_key), ("amq.direct", key))
        self.assertEqual(returned[0].body, b"lost")
        self.assertEqual(returned[0].properties.message_id, "m-1")

        # The same through the default exchange to a queue that does not exist.
        with self.assertRaises(pika.exceptions.UnroutableError):
            self.ch.basic_publish("", unique("no-such-queue"), b"lost", mandatory=True)

        # The channel stays open; without mandatory an unroutable message is confirmed and dropped silently.
        self.ch.basic_publish("amq.direct", key, b"dropped")
        queue = self.queue("routable")
        self.ch.basic_publish("", queue, b"kept", mandatory=True)
        self.assertEqual(drain(self.ch, queue), [b"kept"])
