"""aio-pika (asyncio, on aiormq): the six tutorials, confirms, mandatory returns, basic.get, nack with and without
requeue, reject, a server-sent cancel, channel errors, transactions, a 16 MiB message and heartbeats."""

import asyncio
import hashlib
import os
import time
import unittest
import uuid

import aio_pika
import aiormq.exceptions
from aio_pika import DeliveryMode, ExchangeType, Message

from harness import TimeLimit, Topology, amqp_url, unique, url_with_query


async def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def drain(queue):
    """basic.get with auto-ack until the queue is empty; returns the bodies in order."""
    bodies = []
    while (msg := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
        bodies.append(msg.body)
    return bodies


class AioPikaTestCase(TimeLimit, Topology, unittest.IsolatedAsyncioTestCase):
    """One open connection and confirming channel (`self.conn`, `self.ch`), more on request, all closed afterwards."""

    async def asyncSetUp(self):
        self.conn = await self.connect()
        self.ch = await self.conn.channel()

    async def connect(self, url=None):
        conn = await aio_pika.connect(url or amqp_url(), timeout=10)
        self.addAsyncCleanup(conn.close)
        return conn

    async def queue(self, stem, channel=None, **declare_args):
        name = self.delete_later(queue=unique(stem))
        return await (channel or self.ch).declare_queue(name, **declare_args)

    async def exchange(self, stem, exchange_type):
        name = self.delete_later(exchange=unique(stem))
        return await self.ch.declare_exchange(name, exchange_type)

    async def depth(self, name):
        ch = await self.conn.channel()
        try:
            return (await ch.declare_queue(name, passive=True)).declaration_result.message_count
        finally:
            if not ch.is_closed:
                await ch.close()

    async def wait_depth(self, name, expected, timeout=5.0):
        deadline = time.monotonic() + timeout
        while (seen := await self.depth(name)) != expected:
            if time.monotonic() > deadline:
                self.fail("queue %s holds %d ready messages, expected %d" % (name, seen, expected))
            await asyncio.sleep(0.02)

    async def wait_gone(self, name, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.depth(name)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return
            if time.monotonic() > deadline:
                self.fail("queue %s still exists after %.1f s" % (name, timeout))
            await asyncio.sleep(0.05)

    async def assert_channel_closed(self, error_class, text_prefix, action):
        """Awaits `action()` and checks aiormq's exception for the reply code (its class) and RabbitMQ's text."""
        with self.assertRaises(error_class) as caught:
            await action()
        text = caught.exception.args[0] if caught.exception.args else ""
        self.assertTrue(str(text).startswith(text_prefix), "reply text %r does not start with %r" % (text, text_prefix))
        return caught.exception


class AioPikaTutorials(AioPikaTestCase):
    async def test_tutorial1_hello_world(self):
        queue = await self.queue("hello")
        await self.ch.default_exchange.publish(Message(b"Hello World!"), routing_key=queue.name)
        async with queue.iterator(no_ack=True) as messages:
            msg = await asyncio.wait_for(messages.__anext__(), 10)
        self.assertEqual(msg.body, b"Hello World!")
        self.assertEqual((msg.exchange, msg.routing_key, msg.redelivered), ("", queue.name, False))
        self.assertEqual(await self.depth(queue.name), 0)

    async def test_tutorial2_work_queues_fair_dispatch_and_redelivery(self):
        queue = await self.queue("task_queue", durable=True)
        persistent = DeliveryMode.PERSISTENT

        async def worker(got):
            ch = await (await self.connect()).channel()
            await ch.set_qos(prefetch_count=1)
            q = await ch.get_queue(queue.name, ensure=False)

            async def on_message(msg):
                got.append(msg)

            await q.consume(on_message)
            return ch

        got_a, got_b = [], []
        worker_a = await worker(got_a)
        await self.ch.default_exchange.publish(Message(b"task1", delivery_mode=persistent), routing_key=queue.name)
        self.assertTrue(await wait_until(lambda: got_a), "worker A got no task")
        await worker(got_b)
        for body in (b"task2", b"task3"):
            await self.ch.default_exchange.publish(Message(body, delivery_mode=persistent), routing_key=queue.name)
        self.assertTrue(await wait_until(lambda: got_b), "worker B got no task")

        await asyncio.sleep(0.3)
        self.assertEqual([m.body for m in got_a], [b"task1"])
        self.assertEqual([m.body for m in got_b], [b"task2"])
        self.assertFalse(got_a[0].redelivered)
        self.assertEqual(got_a[0].delivery_mode, DeliveryMode.PERSISTENT)
        await self.wait_depth(queue.name, 1)

        await worker_a.close()  # without acking task1
        await self.wait_depth(queue.name, 2)
        await asyncio.sleep(0.3)
        self.assertEqual([m.body for m in got_b], [b"task2"])

        await got_b[0].ack()
        self.assertTrue(await wait_until(lambda: len(got_b) == 2))
        self.assertEqual(got_b[1].body, b"task1")
        self.assertTrue(got_b[1].redelivered, "a requeued message must arrive with redelivered=True")
        await got_b[1].ack()
        self.assertTrue(await wait_until(lambda: len(got_b) == 3))
        self.assertEqual((got_b[2].body, got_b[2].redelivered), (b"task3", False))
        await got_b[2].ack()
        await self.wait_depth(queue.name, 0)

    async def test_tutorial3_publish_subscribe_fanout(self):
        logs = await self.exchange("logs", ExchangeType.FANOUT)
        await logs.publish(Message(b"before anyone listens"), routing_key="")
        subscribers = []
        for _ in range(2):
            conn = await self.connect()
            ch = await conn.channel()
            q = await ch.declare_queue("", exclusive=True)
            self.assertTrue(q.name.startswith("amq.gen-"), "server-named queue %r" % q.name)
            await q.bind(logs.name)
            got = []

            async def on_message(msg, got=got):
                got.append((msg.exchange, msg.body))

            await q.consume(on_message, no_ack=True)
            subscribers.append((conn, q.name, got))
        self.assertNotEqual(subscribers[0][1], subscribers[1][1])
        await logs.publish(Message(b"log-1"), routing_key="ignored.key")
        await logs.publish(Message(b"log-2"), routing_key="")
        for _, _, got in subscribers:
            self.assertTrue(await wait_until(lambda: len(got) >= 2))
            await asyncio.sleep(0.1)
            self.assertEqual(got, [(logs.name, b"log-1"), (logs.name, b"log-2")])
        await subscribers[0][0].close()
        await self.wait_gone(subscribers[0][1])

    async def test_tutorial4_routing_direct(self):
        direct = await self.exchange("direct_logs", ExchangeType.DIRECT)
        errors_only = await self.ch.declare_queue("", exclusive=True)
        await errors_only.bind(direct, routing_key="error")
        everything = await self.ch.declare_queue("", exclusive=True)
        for severity in ("info", "warning", "error"):
            await everything.bind(direct, routing_key=severity)
        for severity in ("info", "warning", "error", "debug"):
            await direct.publish(Message(severity.encode()), routing_key=severity)
        self.assertEqual(await drain(errors_only), [b"error"])
        self.assertEqual(await drain(everything), [b"info", b"warning", b"error"])
        await everything.unbind(direct, routing_key="info")
        await direct.publish(Message(b"info-2"), routing_key="info")
        await direct.publish(Message(b"warning-2"), routing_key="warning")
        self.assertEqual(await drain(everything), [b"warning-2"])

    async def test_tutorial5_topics(self):
        topic = await self.exchange("topic_logs", ExchangeType.TOPIC)
        q1 = await self.ch.declare_queue("", exclusive=True)
        await q1.bind(topic, routing_key="*.orange.*")
        q2 = await self.ch.declare_queue("", exclusive=True)
        await q2.bind(topic, routing_key="*.*.rabbit")
        await q2.bind(topic, routing_key="lazy.#")
        keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
                "lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.male.rabbit",
                "lazy.orange.male.rabbit", "lazy"]
        for key in keys:
            await topic.publish(Message(key.encode()), routing_key=key)
        self.assertEqual(await drain(q1), [b"quick.orange.rabbit", b"lazy.orange.elephant", b"quick.orange.fox"])
        self.assertEqual(await drain(q2), [b"quick.orange.rabbit", b"lazy.orange.elephant", b"lazy.brown.fox",
                                           b"lazy.pink.rabbit", b"lazy.orange.male.rabbit", b"lazy"])

    async def test_tutorial6_rpc_with_exclusive_reply_queue_and_correlation_id(self):
        rpc_queue = await self.queue("rpc_queue")

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        server = await (await self.connect()).channel()
        await server.set_qos(prefetch_count=1)
        server_queue = await server.get_queue(rpc_queue.name, ensure=False)

        async def on_request(msg):
            async with msg.process():
                reply = Message(str(fib(int(msg.body))).encode(), correlation_id=msg.correlation_id)
                await server.default_exchange.publish(reply, routing_key=msg.reply_to)

        await server_queue.consume(on_request)

        client = await (await self.connect()).channel()
        callback_queue = await client.declare_queue("", exclusive=True)
        self.assertTrue(callback_queue.name.startswith("amq.gen-"))
        loop = asyncio.get_running_loop()
        futures = {}

        async def on_response(msg):
            futures.pop(msg.correlation_id).set_result(int(msg.body))

        await callback_queue.consume(on_response, no_ack=True)
        calls = []
        for n in (0, 1, 10, 20):
            corr_id = str(uuid.uuid4())
            futures[corr_id] = loop.create_future()
            calls.append((n, futures[corr_id]))
            await client.default_exchange.publish(
                Message(str(n).encode(), correlation_id=corr_id, reply_to=callback_queue.name),
                routing_key=rpc_queue.name)
        results = await asyncio.wait_for(asyncio.gather(*(future for _, future in calls)), 10)
        self.assertEqual(results, [fib(n) for n, _ in calls])


class AioPikaAcks(AioPikaTestCase):
    async def publish(self, queue, *bodies):
        for body in bodies:
            await self.ch.default_exchange.publish(Message(body), routing_key=queue.name)

    async def next_delivery(self, queue):
        async with queue.iterator() as messages:
            return await asyncio.wait_for(messages.__anext__(), 5)

    async def test_basic_get(self):
        queue = await self.queue("get")
        self.assertIsNone(await queue.get(fail=False, timeout=5), "basic.get-empty on an empty queue")
        await self.publish(queue, b"a", b"b", b"c")
        msg = await queue.get(timeout=5)
        self.assertEqual((msg.body, msg.message_count, msg.delivery_tag, msg.redelivered), (b"a", 2, 1, False))
        await msg.ack()
        msg = await queue.get(no_ack=True, timeout=5)
        self.assertEqual((msg.body, msg.message_count, msg.delivery_tag), (b"b", 1, 2))
        msg = await queue.get(timeout=5)
        self.assertEqual((msg.body, msg.message_count, msg.delivery_tag), (b"c", 0, 3))
        self.assertIsNone(await queue.get(fail=False, timeout=5))
        await self.ch.close()
        self.ch = await self.conn.channel()
        await self.wait_depth(queue.name, 1)
        queue = await self.ch.get_queue(queue.name, ensure=False)
        msg = await queue.get(no_ack=True, timeout=5)
        self.assertEqual((msg.body, msg.redelivered, msg.delivery_tag), (b"c", True, 1))

    async def test_nack_with_requeue_redelivers(self):
        queue = await self.queue("nack.requeue")
        await self.publish(queue, b"retry me")
        msg = await self.next_delivery(queue)
        self.assertEqual((msg.body, msg.redelivered), (b"retry me", False))
        await msg.nack(requeue=True)
        msg = await self.next_delivery(queue)
        self.assertEqual((msg.body, msg.redelivered), (b"retry me", True))
        await msg.ack()
        await asyncio.sleep(0.2)
        self.assertEqual(await self.depth(queue.name), 0)

    async def test_nack_without_requeue_discards(self):
        queue = await self.queue("nack.drop")
        await self.publish(queue, b"poison", b"fine")
        msg = await queue.get(timeout=5)
        self.assertEqual(msg.body, b"poison")
        await msg.nack(requeue=False)
        self.assertEqual((await queue.get(no_ack=True, timeout=5)).body, b"fine")
        self.assertIsNone(await queue.get(fail=False, timeout=5), "a nack without requeue drops the message")
        await self.ch.close()
        await asyncio.sleep(0.2)
        self.assertEqual(await self.depth(queue.name), 0)

    async def test_nack_multiple_requeues_all_up_to_the_tag(self):
        queue = await self.queue("nack.multiple")
        await self.publish(queue, b"1", b"2", b"3", b"4")
        held = [await queue.get(timeout=5) for _ in range(3)]
        self.assertEqual([m.delivery_tag for m in held], [1, 2, 3])
        await held[1].nack(multiple=True, requeue=True)
        await self.wait_depth(queue.name, 3)
        got = sorted([(m.body, m.redelivered) for m in [await queue.get(no_ack=True, timeout=5) for _ in range(3)]])
        self.assertEqual(got, [(b"1", True), (b"2", True), (b"4", False)])
        await held[2].ack()

    async def test_reject_with_and_without_requeue(self):
        queue = await self.queue("reject")
        await self.publish(queue, b"m")
        msg = await self.next_delivery(queue)
        self.assertFalse(msg.redelivered)
        await msg.reject(requeue=True)
        msg = await self.next_delivery(queue)
        self.assertEqual((msg.body, msg.redelivered), (b"m", True))
        await msg.reject(requeue=False)
        await self.ch.close()
        await asyncio.sleep(0.2)
        self.assertEqual(await self.depth(queue.name), 0, "a message rejected without requeue must not come back")

    async def test_publisher_confirms(self):
        queue = await self.queue("confirm", durable=True)
        confirmations = []
        for i in range(50):
            confirmations.append(await self.ch.default_exchange.publish(
                Message(b"persistent-%d" % i, delivery_mode=DeliveryMode.PERSISTENT), routing_key=queue.name))
        # Publishing concurrently: the confirms may come back coalesced (multiple=true); each publish still resolves.
        confirmations += await asyncio.gather(*(
            self.ch.default_exchange.publish(Message(b"transient-%d" % i), routing_key=queue.name)
            for i in range(50)))
        self.assertTrue(all(isinstance(c, aiormq.spec.Basic.Ack) for c in confirmations),
                        {type(c).__name__ for c in confirmations})
        self.assertEqual(await self.depth(queue.name), 100)
        bodies = await drain(queue)
        self.assertEqual(bodies[:2], [b"persistent-0", b"persistent-1"])
        self.assertEqual(sorted(bodies[50:]), sorted(b"transient-%d" % i for i in range(50)))

    async def test_mandatory_unroutable_raises_publish_error(self):
        ch = await self.conn.channel(on_return_raises=True)
        key = unique("nowhere")
        amq_direct = await ch.get_exchange("amq.direct", ensure=False)
        with self.assertRaises(aiormq.exceptions.PublishError) as caught:
            await amq_direct.publish(Message(b"lost", message_id="m-1"), routing_key=key, mandatory=True)
        returned = caught.exception.message
        self.assertEqual((returned.delivery.reply_code, returned.delivery.reply_text), (312, "NO_ROUTE"))
        self.assertEqual((returned.delivery.exchange, returned.delivery.routing_key), ("amq.direct", key))
        self.assertEqual((returned.body, returned.header.properties.message_id), (b"lost", "m-1"))

        # Without mandatory (aio-pika's default is mandatory=True) the unroutable message is confirmed; a routable
        # mandatory one too.
        confirmation = await amq_direct.publish(Message(b"dropped"), routing_key=key, mandatory=False)
        self.assertIsInstance(confirmation, aiormq.spec.Basic.Ack)
        queue = await self.queue("routable", channel=ch)
        confirmation = await ch.default_exchange.publish(Message(b"kept"), routing_key=queue.name, mandatory=True)
        self.assertIsInstance(confirmation, aiormq.spec.Basic.Ack)
        self.assertEqual(await drain(queue), [b"kept"])

    async def test_consumer_cancelled_when_queue_is_deleted(self):
        queue = await self.queue("cancel")
        tag = await queue.consume(lambda msg: None, no_ack=True)
        consumers = self.ch.channel.consumers  # aiormq's table; a server basic.cancel removes the entry
        self.assertIn(tag, consumers)
        other = await (await self.connect()).channel()
        await other.queue_delete(queue.name)
        self.assertTrue(await wait_until(lambda: tag not in consumers), "no basic.cancel from the server")
        self.assertFalse(self.ch.is_closed, "a server-side cancel must leave the channel open")
        spare = await self.ch.declare_queue("", exclusive=True)
        self.assertIsNone(await spare.get(fail=False, timeout=5), "the channel still works")


class AioPikaErrors(AioPikaTestCase):
    async def test_exclusive_queue_from_another_connection_is_405(self):
        queue = await self.queue("exclusive", exclusive=True)
        other = await self.connect()
        locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'" % queue.name
        for action in (
            lambda ch: ch.declare_queue(queue.name, exclusive=True),
            lambda ch: ch.declare_queue(queue.name, passive=True),
            lambda ch: ch.queue_delete(queue.name),
        ):
            ch = await other.channel()
            await self.assert_channel_closed(aiormq.exceptions.ChannelLockedResource, locked, lambda: action(ch))
        self.assertFalse(other.is_closed, "a channel error must not close the connection")
        await (await other.channel()).declare_queue("", exclusive=True)

    async def test_passive_declare_of_missing_queue_is_404(self):
        missing = unique("no-such-queue")
        await self.assert_channel_closed(aiormq.exceptions.ChannelNotFoundEntity,
                                         "NOT_FOUND - no queue '%s' in vhost '/'" % missing,
                                         lambda: self.ch.declare_queue(missing, passive=True))
        self.assertFalse(self.conn.is_closed, "a channel error must not close the connection")

    async def test_redeclare_with_other_arguments_is_406(self):
        queue = await self.queue("args", arguments={"x-message-ttl": 60000})
        await self.ch.declare_queue(queue.name, arguments={"x-message-ttl": 60000})
        await self.assert_channel_closed(
            aiormq.exceptions.ChannelPreconditionFailed,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost '/'" % queue.name,
            lambda: self.ch.declare_queue(queue.name, arguments={"x-message-ttl": 1000}))
        ch = await self.conn.channel()
        await ch.declare_queue(queue.name, arguments={"x-message-ttl": 60000})


class AioPikaTransactions(AioPikaTestCase):
    async def test_tx_commit_and_rollback(self):
        ch = await self.conn.channel(publisher_confirms=False)  # a channel in confirm mode cannot use tx
        queue = await self.queue("tx", channel=ch)
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(Message(b"discarded"), routing_key=queue.name)
        await tx.rollback()
        await ch.default_exchange.publish(Message(b"a"), routing_key=queue.name)
        await ch.default_exchange.publish(Message(b"b"), routing_key=queue.name)
        await asyncio.sleep(0.2)
        self.assertEqual(await self.depth(queue.name), 0, "uncommitted publishes must not be visible")
        await tx.commit()
        await self.wait_depth(queue.name, 2)
        msg_a, msg_b = await queue.get(timeout=5), await queue.get(timeout=5)
        self.assertEqual((msg_a.body, msg_b.body), (b"a", b"b"))
        await msg_a.ack()
        await tx.commit()
        await msg_b.ack()
        await tx.rollback()
        await ch.close()  # a's ack was committed, b's rolled back: b comes back
        await self.wait_depth(queue.name, 1)
        msg = await self.ch.get_queue(queue.name, ensure=False)
        msg = await msg.get(no_ack=True, timeout=5)
        self.assertEqual((msg.body, msg.redelivered), (b"b", True))


class AioPikaConnection(AioPikaTestCase):
    async def test_heartbeat_keeps_an_idle_connection_open(self):
        conn = await self.connect(url_with_query(heartbeat=2))
        self.assertEqual(conn.transport.connection.connection_tune.heartbeat, 2)
        # aiormq gives up on a connection silent for (heartbeat + 1) x 3 = 9 s: 10 s idle proves broker heartbeats.
        await asyncio.sleep(10)
        self.assertFalse(conn.is_closed, "connection closed while idle with a 2 s heartbeat")
        ch = await conn.channel()
        queue = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(Message(b"alive"), routing_key=queue.name)
        self.assertEqual(await drain(queue), [b"alive"])

    async def test_16_mib_message_round_trip(self):
        queue = await self.queue("large")
        body = os.urandom(1024) * (16 * 1024)
        await self.ch.default_exchange.publish(Message(body, message_id="big"), routing_key=queue.name)
        async with queue.iterator() as messages:
            msg = await asyncio.wait_for(messages.__anext__(), 30)
            await msg.ack()
        self.assertEqual(msg.message_id, "big")
        self.assertEqual(len(msg.body), len(body))
        self.assertEqual(hashlib.sha256(msg.body).hexdigest(), hashlib.sha256(body).hexdigest())
