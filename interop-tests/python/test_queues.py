"""Queue administration as pika exposes it: purge and delete with the counts they return, and the if-empty /
if-unused guards."""

from harness import BrokerTestCase, pump


class QueueAdministration(BrokerTestCase):
    def fill(self, queue, count):
        self.ch.confirm_delivery()
        for i in range(count):
            self.ch.basic_publish("", queue, b"m%d" % i)

    def test_purge_returns_the_ready_count_and_keeps_unacked(self):
        queue = self.queue("purge")
        self.fill(queue, 5)
        method, _, _ = self.ch.basic_get(queue)  # one unacked
        self.assertEqual(self.ch.queue_purge(queue).method.message_count, 4)
        self.assertEqual(self.depth(queue), 0)
        # The unacked delivery was not purged: it comes back when its channel closes.
        self.ch.close()
        self.wait_depth(queue, 1)

    def test_delete_returns_the_count_and_guards_refuse(self):
        queue = self.queue("delete")
        self.fill(queue, 3)
        self.assert_channel_closed(
            406,
            "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % queue,
            lambda: self.ch.queue_delete(queue, if_empty=True),
        )

        consumer = self.connect().channel()
        consumer.basic_consume(queue, lambda *args: None)  # manual ack: takes the 3 messages, acks none
        self.ch = self.conn.channel()
        self.assert_channel_closed(
            406,
            "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % queue,
            lambda: self.ch.queue_delete(queue, if_unused=True),
        )
        consumer.close()
        self.wait_depth(queue, 3)

        self.ch = self.conn.channel()
        self.assertEqual(self.ch.queue_delete(queue).method.message_count, 3)
        self.wait_gone(queue)

    def test_auto_delete_queue_goes_when_its_last_consumer_cancels(self):
        queue = self.queue("auto-delete", auto_delete=True)
        consumer = self.conn.channel()
        tag = consumer.basic_consume(queue, lambda *args: None, auto_ack=True)
        pump(self.conn, 0.1)
        self.assertEqual(self.depth(queue), 0)  # still there while consumed
        consumer.basic_cancel(tag)
        self.wait_gone(queue)
