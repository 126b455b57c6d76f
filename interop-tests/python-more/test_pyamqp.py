"""py-amqp (the `amqp` package, Celery's and kombu's transport): the six tutorials, confirms, mandatory returns,
basic.get, reject, a server-sent cancel, channel errors, transactions, a 16 MiB message and heartbeats. (py-amqp has
no basic.nack; the aio-pika tests cover it.)"""

import hashlib
import os
import socket
import time
import unittest
import uuid

import amqp
import amqp.exceptions

from harness import TimeLimit, Topology, amqp_connect, close_quietly, unique


def pump_until(conns, predicate, timeout=5.0):
    """Drains events on each connection in turn until `predicate()` holds; returns whether it did."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        for conn in conns:
            try:
                conn.drain_events(timeout=0.02)
            except socket.timeout:
                pass
    return True


def pump(conn, seconds):
    pump_until([conn], lambda: False, timeout=seconds)


def drain(ch, queue):
    """basic.get with auto-ack until the queue is empty; returns the bodies in order."""
    bodies = []
    while True:
        msg = ch.basic_get(queue, no_ack=True)
        if msg is None:
            return bodies
        bodies.append(msg.body)


class PyAmqpTestCase(TimeLimit, Topology, unittest.TestCase):
    """One open connection and channel (`self.conn`, `self.ch`), more on request, all closed afterwards."""

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()

    def connect(self, **overrides):
        conn = amqp_connect(**overrides)
        self.addCleanup(close_quietly, conn)
        return conn

    def queue(self, stem, **declare_args):
        name = self.delete_later(queue=unique(stem))
        declare_args.setdefault("auto_delete", False)  # py-amqp's queue_declare defaults to auto_delete=True
        self.ch.queue_declare(name, **declare_args)
        return name

    def exchange(self, stem, exchange_type):
        name = self.delete_later(exchange=unique(stem))
        self.ch.exchange_declare(name, exchange_type, auto_delete=False)
        return name

    def server_named_queue(self, ch):
        return ch.queue_declare("", exclusive=True).queue

    def depth(self, queue):
        ch = self.conn.channel()
        try:
            return ch.queue_declare(queue, passive=True).message_count
        finally:
            if ch.is_open:
                ch.close()

    def wait_depth(self, queue, expected, timeout=5.0):
        deadline = time.monotonic() + timeout
        while (seen := self.depth(queue)) != expected:
            if time.monotonic() > deadline:
                self.fail("queue %s holds %d ready messages, expected %d" % (queue, seen, expected))
            time.sleep(0.02)

    def wait_gone(self, queue, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.depth(queue)
            except amqp.exceptions.NotFound:
                return
            if time.monotonic() > deadline:
                self.fail("queue %s still exists after %.1f s" % (queue, timeout))
            time.sleep(0.05)

    def assert_channel_closed(self, error_class, code, text_prefix, action):
        with self.assertRaises(error_class) as caught:
            action()
        self.assertEqual(caught.exception.reply_code, code, caught.exception.reply_text)
        self.assertTrue(caught.exception.reply_text.startswith(text_prefix),
                        "reply text %r does not start with %r" % (caught.exception.reply_text, text_prefix))
        return caught.exception

    def publish_confirmed(self, ch, exchange, routing_key, *bodies, **properties):
        for body in bodies:
            ch.basic_publish_confirm(amqp.Message(body, **properties), exchange=exchange, routing_key=routing_key)


class PyAmqpTutorials(PyAmqpTestCase):
    def test_tutorial1_hello_world(self):
        queue = self.queue("hello")
        self.ch.basic_publish(amqp.Message(b"Hello World!"), exchange="", routing_key=queue)
        received = []
        self.ch.basic_consume(queue, callback=received.append, no_ack=True)
        self.assertTrue(pump_until([self.conn], lambda: received, timeout=10), "no message within 10 s")
        msg = received[0]
        self.assertEqual(msg.body, b"Hello World!")
        self.assertEqual(msg.delivery_info["exchange"], "")
        self.assertEqual(msg.delivery_info["routing_key"], queue)
        self.assertFalse(msg.delivery_info["redelivered"])
        self.assertEqual(self.depth(queue), 0)

    def test_tutorial2_work_queues_fair_dispatch_and_redelivery(self):
        queue = self.queue("task_queue", durable=True)
        persistent = {"delivery_mode": 2}
        conn_a, conn_b = self.connect(), self.connect()
        worker_a = conn_a.channel()
        worker_a.basic_qos(0, 1, False)
        got_a = []
        worker_a.basic_consume(queue, callback=got_a.append)
        self.publish_confirmed(self.ch, "", queue, b"task1", **persistent)
        self.assertTrue(pump_until([conn_a], lambda: got_a), "worker A got no task")

        worker_b = conn_b.channel()
        worker_b.basic_qos(0, 1, False)
        got_b = []
        worker_b.basic_consume(queue, callback=got_b.append)
        self.publish_confirmed(self.ch, "", queue, b"task2", b"task3", **persistent)
        self.assertTrue(pump_until([conn_b], lambda: got_b), "worker B got no task")

        # prefetch 1: each worker holds one unacked task, the third waits in the queue.
        pump(conn_a, 0.3)
        pump(conn_b, 0.3)
        self.assertEqual([m.body for m in got_a], [b"task1"])
        self.assertEqual([m.body for m in got_b], [b"task2"])
        self.assertFalse(got_a[0].delivery_info["redelivered"])
        self.assertEqual(got_a[0].properties.get("delivery_mode"), 2)
        self.wait_depth(queue, 1)

        # Worker A's channel closes without acking: its task goes back to the queue, B is still busy.
        worker_a.close()
        self.wait_depth(queue, 2)
        pump(conn_b, 0.3)
        self.assertEqual([m.body for m in got_b], [b"task2"])

        # B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
        worker_b.basic_ack(got_b[0].delivery_tag)
        self.assertTrue(pump_until([conn_b], lambda: len(got_b) == 2))
        self.assertEqual(got_b[1].body, b"task1")
        self.assertTrue(got_b[1].delivery_info["redelivered"], "a requeued message must arrive with redelivered=True")
        worker_b.basic_ack(got_b[1].delivery_tag)
        self.assertTrue(pump_until([conn_b], lambda: len(got_b) == 3))
        self.assertEqual(got_b[2].body, b"task3")
        self.assertFalse(got_b[2].delivery_info["redelivered"])
        worker_b.basic_ack(got_b[2].delivery_tag)
        self.wait_depth(queue, 0)

    def test_tutorial3_publish_subscribe_fanout(self):
        exchange = self.exchange("logs", "fanout")
        self.publish_confirmed(self.ch, exchange, "", b"before anyone listens")
        subscribers = []
        for _ in range(2):
            conn = self.connect()
            ch = conn.channel()
            queue = self.server_named_queue(ch)
            self.assertTrue(queue.startswith("amq.gen-"), "server-named queue %r" % queue)
            ch.queue_bind(queue, exchange)
            got = []
            ch.basic_consume(queue, callback=got.append, no_ack=True)
            subscribers.append((conn, queue, got))
        self.assertNotEqual(subscribers[0][1], subscribers[1][1])

        self.publish_confirmed(self.ch, exchange, "ignored.key", b"log-1")
        self.publish_confirmed(self.ch, exchange, "", b"log-2")
        for conn, _, got in subscribers:
            self.assertTrue(pump_until([conn], lambda: len(got) >= 2))
            pump(conn, 0.1)
            self.assertEqual([(m.delivery_info["exchange"], m.body) for m in got],
                             [(exchange, b"log-1"), (exchange, b"log-2")])

        # An exclusive queue goes away with its connection.
        first_conn, first_queue, _ = subscribers[0]
        first_conn.close()
        self.wait_gone(first_queue)

    def test_tutorial4_routing_direct(self):
        exchange = self.exchange("direct_logs", "direct")
        errors_only = self.server_named_queue(self.ch)
        self.ch.queue_bind(errors_only, exchange, routing_key="error")
        everything = self.server_named_queue(self.ch)
        for severity in ("info", "warning", "error"):
            self.ch.queue_bind(everything, exchange, routing_key=severity)
        for severity in ("info", "warning", "error", "debug"):
            self.publish_confirmed(self.ch, exchange, severity, severity.encode())
        self.assertEqual(drain(self.ch, errors_only), [b"error"])
        self.assertEqual(drain(self.ch, everything), [b"info", b"warning", b"error"])

        self.ch.queue_unbind(everything, exchange, routing_key="info")
        self.publish_confirmed(self.ch, exchange, "info", b"info-2")
        self.publish_confirmed(self.ch, exchange, "warning", b"warning-2")
        self.assertEqual(drain(self.ch, everything), [b"warning-2"])

    def test_tutorial5_topics(self):
        exchange = self.exchange("topic_logs", "topic")
        q1 = self.server_named_queue(self.ch)
        self.ch.queue_bind(q1, exchange, routing_key="*.orange.*")
        q2 = self.server_named_queue(self.ch)
        self.ch.queue_bind(q2, exchange, routing_key="*.*.rabbit")
        self.ch.queue_bind(q2, exchange, routing_key="lazy.#")
        keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
                "lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.male.rabbit",
                "lazy.orange.male.rabbit", "lazy"]
        for key in keys:
            self.publish_confirmed(self.ch, exchange, key, key.encode())
        self.assertEqual(drain(self.ch, q1), [b"quick.orange.rabbit", b"lazy.orange.elephant", b"quick.orange.fox"])
        self.assertEqual(drain(self.ch, q2), [b"quick.orange.rabbit", b"lazy.orange.elephant", b"lazy.brown.fox",
                                              b"lazy.pink.rabbit", b"lazy.orange.male.rabbit", b"lazy"])

    def test_tutorial6_rpc_with_exclusive_reply_queue_and_correlation_id(self):
        rpc_queue = self.queue("rpc_queue")

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        server_conn = self.connect()
        server = server_conn.channel()
        server.basic_qos(0, 1, False)

        def on_request(msg):
            reply = amqp.Message(str(fib(int(msg.body))).encode(), correlation_id=msg.properties["correlation_id"])
            server.basic_publish(reply, exchange="", routing_key=msg.properties["reply_to"])
            server.basic_ack(msg.delivery_tag)

        server.basic_consume(rpc_queue, callback=on_request)

        client_conn = self.connect()
        client = client_conn.channel()
        callback_queue = self.server_named_queue(client)
        responses = {}
        client.basic_consume(callback_queue, no_ack=True,
                             callback=lambda m: responses.__setitem__(m.properties["correlation_id"], int(m.body)))
        requests = {}
        for n in (0, 1, 10, 20):
            corr_id = str(uuid.uuid4())
            requests[corr_id] = n
            client.basic_publish(amqp.Message(str(n).encode(), reply_to=callback_queue, correlation_id=corr_id),
                                 exchange="", routing_key=rpc_queue)
        done = pump_until([server_conn, client_conn], lambda: len(responses) >= len(requests), timeout=10)
        self.assertTrue(done, "got %d of %d RPC replies" % (len(responses), len(requests)))
        self.assertEqual(responses, {corr_id: fib(n) for corr_id, n in requests.items()})


class PyAmqpAcks(PyAmqpTestCase):
    def next_delivery(self, ch, queue):
        got = []
        tag = ch.basic_consume(queue, callback=got.append)
        self.assertTrue(pump_until([ch.connection], lambda: got), "no delivery within 5 s")
        ch.basic_cancel(tag)
        return got[0]

    def test_basic_get(self):
        queue = self.queue("get")
        self.assertIsNone(self.ch.basic_get(queue), "basic.get-empty on an empty queue")
        self.publish_confirmed(self.ch, "", queue, b"a", b"b", b"c")
        msg = self.ch.basic_get(queue)
        self.assertEqual(msg.body, b"a")
        self.assertEqual(msg.delivery_info["message_count"], 2, "basic.get-ok message_count counts what is left")
        self.assertEqual(msg.delivery_tag, 1)
        self.assertFalse(msg.delivery_info["redelivered"])
        self.ch.basic_ack(msg.delivery_tag)
        msg = self.ch.basic_get(queue, no_ack=True)
        self.assertEqual((msg.body, msg.delivery_info["message_count"], msg.delivery_tag), (b"b", 1, 2))
        msg = self.ch.basic_get(queue)
        self.assertEqual((msg.body, msg.delivery_info["message_count"], msg.delivery_tag), (b"c", 0, 3))
        self.assertIsNone(self.ch.basic_get(queue))
        self.ch.close()
        self.ch = self.conn.channel()
        self.wait_depth(queue, 1)
        msg = self.ch.basic_get(queue, no_ack=True)
        self.assertEqual(msg.body, b"c")
        self.assertTrue(msg.delivery_info["redelivered"])
        self.assertEqual(msg.delivery_tag, 1, "delivery tags are per channel and start at 1")

    def test_reject_with_and_without_requeue(self):
        queue = self.queue("reject")
        self.publish_confirmed(self.ch, "", queue, b"m")
        consumer = self.conn.channel()
        msg = self.next_delivery(consumer, queue)
        self.assertFalse(msg.delivery_info["redelivered"])
        consumer.basic_reject(msg.delivery_tag, requeue=True)
        msg = self.next_delivery(consumer, queue)
        self.assertEqual(msg.body, b"m")
        self.assertTrue(msg.delivery_info["redelivered"])
        consumer.basic_reject(msg.delivery_tag, requeue=False)
        consumer.close()
        time.sleep(0.2)
        self.assertEqual(self.depth(queue), 0, "a message rejected without requeue must not come back")

    def test_publisher_confirms(self):
        queue = self.queue("confirm", durable=True)
        conn = self.connect(confirm_publish=True)
        ch = conn.channel()
        for i in range(50):
            # With confirm_publish the connection's basic_publish waits for basic.ack and raises on basic.nack.
            ch.basic_publish(amqp.Message(b"persistent-%d" % i, delivery_mode=2), exchange="", routing_key=queue)
        for i in range(50):
            ch.basic_publish(amqp.Message(b"transient-%d" % i), exchange="", routing_key=queue)
        self.assertEqual(self.depth(queue), 100)
        bodies = drain(self.ch, queue)
        self.assertEqual(bodies[:2], [b"persistent-0", b"persistent-1"])
        self.assertEqual(bodies[-1], b"transient-49")

    def test_mandatory_unroutable_is_returned(self):
        returned = []
        self.ch.events["basic_return"].add(lambda exc, exchange, key, msg: returned.append((exc, exchange, key, msg)))
        key = unique("nowhere")
        self.ch.basic_publish_confirm(amqp.Message(b"lost", message_id="m-1"), exchange="amq.direct",
                                      routing_key=key, mandatory=True)
        self.assertEqual(len(returned), 1, "basic.return arrives before the basic.ack that confirms it")
        exc, exchange, routing_key, msg = returned[0]
        self.assertEqual((exc.reply_code, exc.reply_text), (312, "NO_ROUTE"))
        self.assertEqual((exchange, routing_key), ("amq.direct", key))
        self.assertEqual((msg.body, msg.properties.get("message_id")), (b"lost", "m-1"))

        queue = self.queue("routable")
        self.ch.basic_publish_confirm(amqp.Message(b"dropped"), exchange="amq.direct", routing_key=key)
        self.ch.basic_publish_confirm(amqp.Message(b"kept"), exchange="", routing_key=queue, mandatory=True)
        self.assertEqual(len(returned), 1, "only the mandatory unroutable publish comes back")
        self.assertEqual(drain(self.ch, queue), [b"kept"])

    def test_consumer_cancelled_when_queue_is_deleted(self):
        queue = self.queue("cancel")
        cancelled = []
        tag = self.ch.basic_consume(queue, callback=lambda m: None, no_ack=True, on_cancel=cancelled.append)
        self.connect().channel().queue_delete(queue)
        self.assertTrue(pump_until([self.conn], lambda: cancelled), "no basic.cancel within 5 s")
        pump(self.conn, 0.2)
        self.assertEqual(cancelled, [tag])
        self.assertTrue(self.ch.is_open, "a server-side cancel must leave the channel open")
        self.assertIsNone(self.ch.basic_get(self.server_named_queue(self.ch)), "the channel still works")

    def test_queue_deleted_on_its_consumers_channel_answers_before_the_cancel(self):
        # RabbitMQ sends delete-ok before the basic.cancel for the channel's own consumer. py-amqp raises
        # ConsumerCancelled for a cancel without on_cancel, from inside queue_delete if the cancel came first.
        queue = self.queue("self-delete")
        self.ch.basic_consume(queue, callback=lambda m: None, no_ack=True)
        self.ch.queue_delete(queue)
        with self.assertRaises(amqp.exceptions.ConsumerCancelled):
            self.conn.drain_events(timeout=5)


class PyAmqpErrors(PyAmqpTestCase):
    def test_exclusive_queue_from_another_connection_is_405(self):
        queue = self.queue("exclusive", exclusive=True)
        other = self.connect()
        locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'" % queue
        self.assert_channel_closed(amqp.exceptions.ResourceLocked, 405, locked,
                                   lambda: other.channel().queue_declare(queue, exclusive=True))
        self.assert_channel_closed(amqp.exceptions.ResourceLocked, 405, locked,
                                   lambda: other.channel().basic_get(queue))
        self.assert_channel_closed(amqp.exceptions.ResourceLocked, 405, locked,
                                   lambda: other.channel().basic_consume(queue, callback=lambda m: None))
        self.assertTrue(other.connected, "a channel error must not close the connection")
        other.channel().queue_declare("", exclusive=True)

    def test_passive_declare_of_missing_queue_is_404(self):
        missing = unique("no-such-queue")
        self.assert_channel_closed(amqp.exceptions.NotFound, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % missing,
                                   lambda: self.ch.queue_declare(missing, passive=True))
        self.assertTrue(self.conn.connected, "a channel error must not close the connection")
        self.assertEqual(self.conn.channel().queue_declare("", exclusive=True).message_count, 0)

    def test_redeclare_with_other_arguments_is_406(self):
        queue = self.queue("args", arguments={"x-message-ttl": 60000})
        self.ch.queue_declare(queue, auto_delete=False, arguments={"x-message-ttl": 60000})
        self.assert_channel_closed(
            amqp.exceptions.PreconditionFailed, 406,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost '/'" % queue,
            lambda: self.ch.queue_declare(queue, auto_delete=False, arguments={"x-message-ttl": 1000}))
        self.ch = self.conn.channel()
        self.ch.queue_declare(queue, auto_delete=False, arguments={"x-message-ttl": 60000})


class PyAmqpTransactions(PyAmqpTestCase):
    def test_tx_commit_and_rollback(self):
        queue = self.queue("tx")
        self.ch.tx_select()
        self.ch.basic_publish(amqp.Message(b"discarded"), exchange="", routing_key=queue)
        self.ch.tx_rollback()
        self.ch.basic_publish(amqp.Message(b"a"), exchange="", routing_key=queue)
        self.ch.basic_publish(amqp.Message(b"b"), exchange="", routing_key=queue)
        time.sleep(0.2)
        self.assertEqual(self.depth(queue), 0, "uncommitted publishes must not be visible")
        self.ch.tx_commit()
        self.wait_depth(queue, 2)

        msg_a, msg_b = self.ch.basic_get(queue), self.ch.basic_get(queue)
        self.assertEqual((msg_a.body, msg_b.body), (b"a", b"b"))
        self.ch.basic_ack(msg_a.delivery_tag)
        self.ch.tx_commit()
        self.ch.basic_ack(msg_b.delivery_tag)
        self.ch.tx_rollback()
        # a's ack was committed, b's rolled back: closing the channel returns b alone.
        self.ch.close()
        self.wait_depth(queue, 1)
        msg = self.conn.channel().basic_get(queue, no_ack=True)
        self.assertEqual((msg.body, msg.delivery_info["redelivered"]), (b"b", True))


class PyAmqpConnection(PyAmqpTestCase):
    def test_heartbeat_negotiated_and_kept(self):
        conn = self.connect(heartbeat=2)
        self.assertEqual(conn.server_heartbeat, 60, "RabbitMQ proposes 60 s in connection.tune")
        self.assertEqual(conn.heartbeat, 2, "the lower of the two proposals is used")
        received_before = conn.bytes_recv
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                conn.drain_events(timeout=0.25)
            except socket.timeout:
                pass
            # Sends ours when due and raises ConnectionForced when two of the broker's were missed.
            conn.heartbeat_tick(rate=2)
        self.assertTrue(conn.connected)
        # py-amqp counts frames in bytes_recv; the broker sends a heartbeat every timeout/2 = 1 s.
        self.assertGreaterEqual(conn.bytes_recv - received_before, 3, "too few heartbeats from the broker in 5 s")
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).queue
        ch.basic_publish_confirm(amqp.Message(b"alive"), exchange="", routing_key=queue)
        self.assertEqual(drain(ch, queue), [b"alive"])

    def test_16_mib_message_round_trip(self):
        queue = self.queue("large")
        body = os.urandom(1024) * (16 * 1024)
        self.ch.basic_publish_confirm(amqp.Message(body, message_id="big"), exchange="", routing_key=queue)
        got = []
        self.ch.basic_consume(queue, callback=got.append, no_ack=True)
        self.assertTrue(pump_until([self.conn], lambda: got, timeout=30), "16 MiB message not delivered in 30 s")
        self.assertEqual(got[0].properties.get("message_id"), "big")
        self.assertEqual(len(got[0].body), len(body))
        self.assertEqual(hashlib.sha256(got[0].body).hexdigest(), hashlib.sha256(body).hexdigest())

    def test_properties_and_headers_round_trip(self):
        queue = self.queue("props")
        headers = {"string": "plain", "int": 42, "negative": -7, "long": 2**40, "true": True, "false": False,
                   "float": 1.5, "array": [1, "two"], "table": {"nested": {"deeper": "yes"}}}
        sent = dict(content_type="application/json", content_encoding="utf-8", delivery_mode=2, priority=5,
                    correlation_id="corr-1", reply_to="reply.here", expiration="60000", message_id="msg-1",
                    type="order.created", app_id="interop")
        self.ch.basic_publish_confirm(amqp.Message(b"{}", application_headers=headers, **sent),
                                      exchange="", routing_key=queue)
        msg = self.ch.basic_get(queue, no_ack=True)
        for name, value in sent.items():
            self.assertEqual(msg.properties.get(name), value, name)
        self.assertEqual(msg.properties.get("application_headers"), headers)
