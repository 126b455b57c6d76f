"""AMQP transactions (tx.select / commit / rollback) covering both publishes and acks."""

from harness import BrokerTestCase, pump


class Transactions(BrokerTestCase):
    def test_tx_commit_makes_publishes_and_acks_take_effect(self):
        queue = self.queue("tx.commit")
        self.ch.tx_select()
        self.ch.basic_publish("", queue, b"a")
        self.ch.basic_publish("", queue, b"b")
        pump(self.conn, 0.3)
        self.assertEqual(self.depth(queue), 0, "uncommitted publishes must not be visible")
        self.ch.tx_commit()
        self.wait_depth(queue, 2)

        method_a, _, body_a = self.ch.basic_get(queue)
        method_b, _, body_b = self.ch.basic_get(queue)
        self.assertEqual((body_a, body_b), (b"a", b"b"))
        self.ch.basic_ack(method_a.delivery_tag)
        self.ch.basic_ack(method_b.delivery_tag)
        self.ch.tx_commit()
        # The acks were committed: closing the channel requeues nothing.
        self.ch.close()
        pump(self.conn, 0.3)
        self.assertEqual(self.depth(queue), 0)

    def test_tx_rollback_discards_publishes_and_acks(self):
        queue = self.queue("tx.rollback")
        self.ch.tx_select()
        self.ch.basic_publish("", queue, b"discarded")
        self.ch.tx_rollback()
        self.ch.basic_publish("", queue, b"kept")
        self.ch.tx_commit()
        self.wait_depth(queue, 1)
        pump(self.conn, 0.2)
        self.assertEqual(self.depth(queue), 1, "the rolled-back publish must never arrive")

        method, _, body = self.ch.basic_get(queue)
        self.assertEqual(body, b"kept")
        self.ch.basic_ack(method.delivery_tag)
        self.ch.tx_rollback()
        # The ack was rolled back, so the message is still unacked here and comes back when the channel closes.
        self.ch.close()
        self.wait_depth(queue, 1)
        ch = self.conn.channel()
        method, _, body = ch.basic_get(queue, auto_ack=True)
        self.assertEqual(body, b"kept")
        self.assertTrue(method.redelivered)
