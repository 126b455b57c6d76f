"""Direct reply-to (amq.rabbitmq.reply-to): an RPC round trip with pika across two connections, and what a
mandatory reply and a reply to a requester that is gone do."""

import pika

from harness import BrokerTestCase

PSEUDO = "amq.rabbitmq.reply-to"


class DirectReplyTo(BrokerTestCase):
    def _request(self):
        """Consumes the pseudo-queue on self.ch, sends one request to a fresh queue; returns (queue, replies)."""
        requests = self.queue("rpc")
        replies = []
        self.ch.basic_consume(PSEUDO, lambda ch, m, p, b: replies.append((m, p, b)), auto_ack=True)
        self.ch.basic_publish("", requests, b"ping", pika.BasicProperties(reply_to=PSEUDO, correlation_id="c1"))
        return requests, replies

    def _take_request(self, ch, requests):
        method, properties, body = None, None, None
        for _ in range(50):
            method, properties, body = ch.basic_get(requests, auto_ack=True)
            if method:
                break
            self.conn.process_data_events(time_limit=0.05)
        self.assertIsNotNone(method, "the request arrived")
        return properties

    def test_rpc_round_trip(self):
        requests, replies = self._request()
        responder = self.connect().channel()
        responder.confirm_delivery()
        properties = self._take_request(responder, requests)
        self.assertTrue(properties.reply_to.startswith(PSEUDO + "."), properties.reply_to)
        responder.basic_publish("", properties.reply_to, b"pong", pika.BasicProperties(correlation_id="c1"))
        for _ in range(50):
            if replies:
                break
            self.conn.process_data_events(time_limit=0.05)
        self.assertEqual(len(replies), 1)
        method, reply_properties, body = replies[0]
        self.assertEqual((body, method.routing_key, method.exchange), (b"pong", properties.reply_to, ""))
        self.assertEqual(reply_properties.correlation_id, "c1")

    def test_a_mandatory_reply_is_returned_though_delivered(self):
        """RabbitMQ routes a reply to no queue, so a mandatory reply comes back as unroutable even when the requester
        gets it."""
        requests, replies = self._request()
        responder_conn = self.connect()
        responder = responder_conn.channel()
        returned = []
        responder.add_on_return_callback(lambda ch, m, p, b: returned.append(m.reply_code))
        properties = self._take_request(responder, requests)
        responder.basic_publish("", properties.reply_to, b"pong", mandatory=True)
        for _ in range(50):
            if replies and returned:
                break
            self.conn.process_data_events(time_limit=0.05)
            responder_conn.process_data_events(time_limit=0.05)
        self.assertEqual(len(replies), 1)
        self.assertEqual(returned, [312])
