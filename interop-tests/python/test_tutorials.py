"""The six RabbitMQ tutorials (rabbitmq.com/tutorials, Python/pika), each turned into assertions on what arrives."""

import time
import uuid

import pika

from harness import BrokerTestCase, Collector, drain, parameters, persistent, pump, pump_until, unique


class Tutorials(BrokerTestCase):
    def test_tutorial1_hello_world(self):
        queue = self.queue("hello")
        self.ch.basic_publish(exchange="", routing_key=queue, body=b"Hello World!")

        received = []

        def callback(channel, method, properties, body):
            received.append((method, body))
            channel.stop_consuming()

        self.ch.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
        self.conn.call_later(10, self.ch.stop_consuming)  # a guard: never wait forever
        self.ch.start_consuming()

        self.assertEqual(len(received), 1, "no message arrived within 10 s")
        method, body = received[0]
        self.assertEqual(body, b"Hello World!")
        self.assertEqual(method.exchange, "")
        self.assertEqual(method.routing_key, queue)
        self.assertFalse(method.redelivered)
        self.assertEqual(self.depth(queue), 0)

    def test_tutorial2_work_queues_fair_dispatch_and_redelivery(self):
        queue = self.queue("task_queue", durable=True)
        self.ch.confirm_delivery()

        worker_a = self.connect().channel()
        worker_a.basic_qos(prefetch_count=1)
        got_a = Collector()
        worker_a.basic_consume(queue=queue, on_message_callback=got_a)

        self.ch.basic_publish("", queue, b"task1", properties=persistent())
        self.assertTrue(pump_until([worker_a.connection], lambda: got_a.deliveries), "worker A got no task")

        worker_b = self.connect().channel()
        worker_b.basic_qos(prefetch_count=1)
        got_b = Collector()
        worker_b.basic_consume(queue=queue, on_message_callback=got_b)
        self.ch.basic_publish("", queue, b"task2", properties=persistent())
        self.ch.basic_publish("", queue, b"task3", properties=persistent())
        self.assertTrue(pump_until([worker_b.connection], lambda: got_b.deliveries), "worker B got no task")

        # prefetch 1: each worker holds one unacked task, the third waits in the queue.
        pump(worker_a.connection, 0.3)
        pump(worker_b.connection, 0.3)
        self.assertEqual(got_a.bodies, [b"task1"])
        self.assertEqual(got_b.bodies, [b"task2"])
        self.assertFalse(got_a.deliveries[0][0].redelivered)
        self.assertEqual(got_a.deliveries[0][1].delivery_mode, 2)
        self.wait_depth(queue, 1)

        # Worker A dies without acking: its task goes back to the queue, B is still busy.
        worker_a.close()
        self.wait_depth(queue, 2)
        pump(worker_b.connection, 0.3)
        self.assertEqual(got_b.bodies, [b"task2"])

        # B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
        worker_b.basic_ack(got_b.deliveries[0][0].delivery_tag)
        self.assertTrue(pump_until([worker_b.connection], lambda: len(got_b.deliveries) == 2))
        method, _, body = got_b.deliveries[1]
        self.assertEqual(body, b"task1")
        self.assertTrue(method.redelivered, "a requeued message must arrive with redelivered=True")
        worker_b.basic_ack(method.delivery_tag)
        self.assertTrue(pump_until([worker_b.connection], lambda: len(got_b.deliveries) == 3))
        method, _, body = got_b.deliveries[2]
        self.assertEqual(body, b"task3")
        self.assertFalse(method.redelivered)
        worker_b.basic_ack(method.delivery_tag)
        self.wait_depth(queue, 0)

    def test_tutorial3_publish_subscribe_fanout(self):
        exchange = self.exchange("logs", "fanout")
        self.ch.confirm_delivery()
        self.ch.basic_publish(exchange, "", b"before anyone listens")

        subscribers = []
        for _ in range(2):
            ch = self.connect().channel()
            queue = ch.queue_declare(queue="", exclusive=True).method.queue
            self.assertTrue(queue.startswith("amq.gen-"), "server-named queue %r" % queue)
            ch.queue_bind(exchange=exchange, queue=queue)
            subscribers.append((ch, queue))
        self.assertNotEqual(subscribers[0][1], subscribers[1][1])

        self.ch.basic_publish(exchange, "ignored.key", b"log-1")
        self.ch.basic_publish(exchange, "", b"log-2")
        for ch, queue in subscribers:
            got = []
            for method, _, body in ch.consume(queue, auto_ack=True, inactivity_timeout=2):
                if method is None:
                    break
                self.assertEqual(method.exchange, exchange)
                got.append(body)
                if len(got) == 2:
                    break
            ch.cancel()
            self.assertEqual(got, [b"log-1", b"log-2"])

        # An exclusive queue goes away with its connection.
        first_ch, first_queue = subscribers[0]
        first_ch.connection.close()
        self.wait_gone(first_queue)

    def test_tutorial4_routing_direct(self):
        exchange = self.exchange("direct_logs", "direct")
        errors_only = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(errors_only, exchange, routing_key="error")
        everything = self.ch.queue_declare("", exclusive=True).method.queue
        for severity in ("info", "warning", "error"):
            self.ch.queue_bind(everything, exchange, routing_key=severity)

        self.ch.confirm_delivery()
        for severity in ("info", "warning", "error", "debug"):
            self.ch.basic_publish(exchange, severity, severity.encode())

        self.assertEqual(drain(self.ch, errors_only), [b"error"])
        self.assertEqual(drain(self.ch, everything), [b"info", b"warning", b"error"])

        # Unbinding stops the flow for that key only.
        self.ch.queue_unbind(everything, exchange, routing_key="info")
        self.ch.basic_publish(exchange, "info", b"info-2")
        self.ch.basic_publish(exchange, "warning", b"warning-2")
        self.assertEqual(drain(self.ch, everything), [b"warning-2"])

    def test_tutorial5_topics(self):
        exchange = self.exchange("topic_logs", "topic")
        q1 = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(q1, exchange, routing_key="*.orange.*")
        q2 = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(q2, exchange, routing_key="*.*.rabbit")
        self.ch.queue_bind(q2, exchange, routing_key="lazy.#")
        all_q = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(all_q, exchange, routing_key="#")

        keys = [
            "quick.orange.rabbit",  # Q1, Q2
            "lazy.orange.elephant",  # Q1, Q2
            "quick.orange.fox",  # Q1
            "lazy.brown.fox",  # Q2
            "lazy.pink.rabbit",  # Q2, once although two bindings match
            "quick.brown.fox",  # nobody but '#'
            "orange",  # nobody but '#'
            "quick.orange.male.rabbit",  # nobody but '#'
            "lazy.orange.male.rabbit",  # Q2
            "lazy",  # Q2: '#' matches zero words
        ]
        self.ch.confirm_delivery()
        for key in keys:
            self.ch.basic_publish(exchange, key, key.encode())

        self.assertEqual(
            drain(self.ch, q1), [b"quick.orange.rabbit", b"lazy.orange.elephant", b"quick.orange.fox"]
        )
        self.assertEqual(
            drain(self.ch, q2),
            [
                b"quick.orange.rabbit",
                b"lazy.orange.elephant",
                b"lazy.brown.fox",
                b"lazy.pink.rabbit",
                b"lazy.orange.male.rabbit",
                b"lazy",
            ],
        )
        self.assertEqual(drain(self.ch, all_q), [key.encode() for key in keys])

    def test_tutorial6_rpc_with_exclusive_reply_queue_and_correlation_id(self):
        rpc_queue = self.queue("rpc_queue")

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        server = self.connect().channel()
        server.basic_qos(prefetch_count=1)

        def on_request(channel, method, props, body):
            response = fib(int(body))
            channel.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                properties=pika.BasicProperties(correlation_id=props.correlation_id),
                body=str(response).encode(),
            )
            channel.basic_ack(delivery_tag=method.delivery_tag)

        server.basic_consume(queue=rpc_queue, on_message_callback=on_request)

        client = self.connect().channel()
        callback_queue = client.queue_declare(queue="", exclusive=True).method.queue
        responses = {}

        def on_response(channel, method, props, body):
            responses[props.correlation_id] = int(body)

        client.basic_consume(queue=callback_queue, on_message_callback=on_response, auto_ack=True)

        requests = {}
        for n in (0, 1, 10, 20):
            corr_id = str(uuid.uuid4())
            requests[corr_id] = n
            client.basic_publish(
                exchange="",
                routing_key=rpc_queue,
                properties=pika.BasicProperties(reply_to=callback_queue, correlation_id=corr_id),
                body=str(n).encode(),
            )
        done = pump_until(
            [server.connection, client.connection], lambda: len(responses) >= len(requests), timeout=10
        )
        self.assertTrue(done, "got %d of %d RPC replies" % (len(responses), len(requests)))
        self.assertEqual(responses, {corr_id: fib(n) for corr_id, n in requests.items()})


class TutorialsSelectConnection(BrokerTestCase):
    """Tutorial 1 again, on pika's callback-driven SelectConnection."""

    def test_tutorial1_hello_world_select_connection(self):
        queue = unique("hello.select")
        self.delete_later(queue=queue)
        events = []
        outcome = {}

        def on_open(connection):
            events.append("open")
            connection.channel(on_open_callback=on_channel)

        def on_channel(channel):
            events.append("channel")
            outcome["channel"] = channel
            channel.queue_declare(queue, callback=on_declared)

        def on_declared(frame):
            events.append("declared")
            channel = outcome["channel"]
            channel.basic_consume(queue, on_message, auto_ack=True, callback=on_consuming)

        def on_consuming(frame):
            events.append("consuming")
            outcome["channel"].basic_publish("", queue, b"Hello World!")

        def on_message(channel, method, properties, body):
            outcome["body"] = body
            outcome["routing_key"] = method.routing_key
            channel.connection.close()

        def on_open_error(connection, error):
            outcome["error"] = repr(error)
            connection.ioloop.stop()

        def on_closed(connection, reason):
            events.append("closed")
            connection.ioloop.stop()

        connection = pika.SelectConnection(
            parameters(), on_open_callback=on_open, on_open_error_callback=on_open_error, on_close_callback=on_closed
        )
        connection.ioloop.call_later(15, lambda: connection.is_open and connection.close())
        started = time.monotonic()
        connection.ioloop.start()

        self.assertNotIn("error", outcome)
        self.assertEqual(events, ["open", "channel", "declared", "consuming", "closed"])
        self.assertEqual(outcome.get("body"), b"Hello World!", "no message within %.0f s" % (time.monotonic() - started))
        self.assertEqual(outcome.get("routing_key"), queue)
