"""Consumer cancel notification: deleting a queue cancels its consumers with a server-sent basic.cancel, which pika
turns into the end of a consume generator (BlockingConnection) or an on_cancel callback (SelectConnection)."""

import time

import pika

from harness import BrokerTestCase, parameters, unique


class ConsumerCancelledByServer(BrokerTestCase):
    def test_consume_generator_ends_when_queue_is_deleted(self):
        queue = self.queue("cancel.blocking")
        self.ch.basic_publish("", queue, b"before delete")
        deleter = self.connect().channel()

        seen = []
        deleted_at = None
        for method, _, body in self.ch.consume(queue, auto_ack=True, inactivity_timeout=0.2):
            if method is not None:
                seen.append(body)
            elif deleted_at is None:
                deleter.queue_delete(queue)
                deleted_at = time.monotonic()
            elif time.monotonic() - deleted_at > 5:
                self.fail("consume generator still running 5 s after the queue was deleted")
        # The loop ended by itself: pika saw basic.cancel.
        self.assertEqual(seen, [b"before delete"])
        self.assertIsNotNone(deleted_at)
        self.assertTrue(self.ch.is_open, "a server-side cancel must leave the channel open")
        spare = self.ch.queue_declare("", exclusive=True).method.queue
        self.assertEqual(self.ch.basic_get(spare), (None, None, None), "the channel still works")

    def test_on_cancel_callback_with_select_connection(self):
        queue = unique("cancel.select")
        self.delete_later(queue=queue)
        outcome = {"cancelled": [], "consumer_tag": None}

        def on_open(connection):
            connection.channel(on_open_callback=on_channel)

        def on_channel(channel):
            outcome["channel"] = channel
            channel.add_on_cancel_callback(lambda frame: on_cancel(channel, frame))
            channel.queue_declare(queue, callback=lambda _frame: consume(channel))

        def consume(channel):
            outcome["consumer_tag"] = channel.basic_consume(
                queue, lambda *args: None, auto_ack=True, callback=lambda _frame: delete_queue(channel.connection)
            )

        def delete_queue(connection):
            # A second channel of the same connection deletes the queue under the consumer.
            connection.channel(on_open_callback=lambda ch: ch.queue_delete(queue, callback=on_deleted))

        def on_deleted(frame):
            outcome["deleted"] = True

        def on_cancel(channel, frame):
            outcome["cancelled"].append(frame.method.consumer_tag)
            # Give a stray delivery or a duplicate cancel a moment to show up, then finish.
            channel.connection.ioloop.call_later(0.3, channel.connection.close)

        def on_open_error(connection, error):
            outcome["error"] = repr(error)
            connection.ioloop.stop()

        def on_closed(connection, reason):
            outcome["channel_open_at_close"] = outcome["channel"].is_open if "channel" in outcome else None
            connection.ioloop.stop()

        connection = pika.SelectConnection(
            parameters(), on_open_callback=on_open, on_open_error_callback=on_open_error, on_close_callback=on_closed
        )
        connection.ioloop.call_later(15, lambda: connection.is_open and connection.close())
        connection.ioloop.start()

        self.assertNotIn("error", outcome)
        self.assertTrue(outcome.get("deleted"), "queue.delete-ok never arrived")
        self.assertIsNotNone(outcome["consumer_tag"])
        self.assertEqual(outcome["cancelled"], [outcome["consumer_tag"]], "exactly one basic.cancel for our consumer")
