"""Shared pieces of the pika interop suite: connecting to the broker under test, unique names, cleanup, waiting.

Every test talks to the broker named by AMQP_URL (interop-tests/run sets it) and creates its own uniquely named
queues and exchanges, so the suite can run against a shared RabbitMQ in differential mode without collisions.
Tests assert what RabbitMQ does; where Warren differs, the test fails and says what it saw.
"""

import os
import signal
import time
import unittest
import uuid

import pika
import pika.exceptions

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"

# A test that runs longer than this is stuck (a lost delivery, a missing reply): fail it instead of hanging the run.
TEST_TIMEOUT_SECONDS = int(os.environ.get("INTEROP_TEST_TIMEOUT", "60"))


def amqp_url():
    return os.environ.get("AMQP_URL", DEFAULT_URL)


def parameters(**overrides):
    """Connection parameters for the broker under test, with socket and handshake timeouts so nothing hangs."""
    params = pika.URLParameters(amqp_url())
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.stack_timeout = 15
    params.blocked_connection_timeout = 30
    for name, value in overrides.items():
        setattr(params, name, value)
    return params


def unique(stem):
    """A name no other test or run uses."""
    return "interop.py.%s.%s" % (stem, uuid.uuid4().hex[:10])


def persistent():
    return pika.BasicProperties(delivery_mode=2)


class TestTimedOut(Exception):
    pass


def _on_alarm(_signum, _frame):
    raise TestTimedOut("test took longer than %d s" % TEST_TIMEOUT_SECONDS)


class BrokerTestCase(unittest.TestCase):
    """A test with one open BlockingConnection and channel (`self.conn`, `self.ch`), more on request, all closed and
    every declared queue and exchange deleted afterwards."""

    def setUp(self):
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(TEST_TIMEOUT_SECONDS)
        self.addCleanup(signal.alarm, 0)
        self._queues = []
        self._exchanges = []
        # Cleanups run last-in first-out: delete the topology after the connections are closed.
        self.addCleanup(self._delete_topology)
        self.conn = self.connect()
        self.ch = self.conn.channel()

    def connect(self, **overrides):
        """Opens a BlockingConnection that is closed when the test ends."""
        conn = pika.BlockingConnection(parameters(**overrides))
        self.addCleanup(_close_quietly, conn)
        return conn

    def queue(self, stem, **declare_args):
        """Declares a uniquely named queue on `self.ch` and returns its name."""
        name = unique(stem)
        self._queues.append(name)
        self.ch.queue_declare(name, **declare_args)
        return name

    def exchange(self, stem, exchange_type):
        name = unique(stem)
        self._exchanges.append(name)
        self.ch.exchange_declare(name, exchange_type)
        return name

    def delete_later(self, queue=None, exchange=None):
        if queue:
            self._queues.append(queue)
        if exchange:
            self._exchanges.append(exchange)

    def _delete_topology(self):
        if not (self._queues or self._exchanges):
            return
        conn = pika.BlockingConnection(parameters())
        try:
            for kind, names in (("queue", self._queues), ("exchange", self._exchanges)):
                for name in names:
                    ch = conn.channel()
                    try:
                        getattr(ch, kind + "_delete")(name)
                        ch.close()
                    except pika.exceptions.AMQPChannelError:
                        pass  # already gone, or exclusive to a connection that is now closed
        finally:
            _close_quietly(conn)

    # --- observing the broker -------------------------------------------------------------------------------------

    def depth(self, queue):
        """The queue's ready-message count, read with a passive declare on a throwaway channel (a failed passive
        declare closes its channel)."""
        ch = self.conn.channel()
        try:
            return ch.queue_declare(queue, passive=True).method.message_count
        finally:
            if ch.is_open:
                ch.close()

    def wait_for(self, predicate, timeout=5.0, what="condition"):
        """Polls `predicate` (processing this test's connection events meanwhile) until it is true."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail("timed out after %.1f s waiting for %s" % (timeout, what))
            self.conn.process_data_events(time_limit=0.05)

    def wait_depth(self, queue, expected, timeout=5.0):
        seen = []

        def reached():
            seen.append(self.depth(queue))
            return seen[-1] == expected

        deadline = time.monotonic() + timeout
        while not reached():
            if time.monotonic() > deadline:
                self.fail("queue %s holds %d ready messages, expected %d" % (queue, seen[-1], expected))
            self.conn.process_data_events(time_limit=0.05)

    def wait_gone(self, queue, timeout=5.0):
        """Waits until a passive declare of `queue` fails with 404 (an auto-delete or exclusive queue going away)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.depth(queue)
            except pika.exceptions.ChannelClosedByBroker as closed:
                self.assertEqual(closed.reply_code, 404, closed.reply_text)
                return
            if time.monotonic() > deadline:
                self.fail("queue %s still exists after %.1f s" % (queue, timeout))
            self.conn.process_data_events(time_limit=0.05)

    def assert_channel_closed(self, code, text_prefix, action):
        """Runs `action` and checks that the broker closed the channel with `code` and a reply text starting with
        `text_prefix` (RabbitMQ's close texts; clients log and sometimes match them)."""
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            action()
        self.assertEqual(caught.exception.reply_code, code, caught.exception.reply_text)
        self.assertTrue(
            caught.exception.reply_text.startswith(text_prefix),
            "reply text %r does not start with %r" % (caught.exception.reply_text, text_prefix),
        )
        return caught.exception


class Collector:
    """A basic_consume callback that records deliveries, optionally acking them."""

    def __init__(self, ack=False):
        self.ack = ack
        self.deliveries = []  # (method, properties, body)

    def __call__(self, channel, method, properties, body):
        self.deliveries.append((method, properties, body))
        if self.ack:
            channel.basic_ack(method.delivery_tag)

    @property
    def bodies(self):
        return [body for _, _, body in self.deliveries]


def pump(conn, seconds):
    """Processes a connection's I/O for `seconds` (deliveries, heartbeats), returning when the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.process_data_events(time_limit=left)


def pump_until(conns, predicate, timeout=5.0):
    """Processes I/O on several connections in turn until `predicate()` holds; returns whether it did."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        for conn in conns:
            conn.process_data_events(time_limit=0.02)
    return True


def drain(channel, queue):
    """basic_get with auto-ack until the queue is empty; returns the bodies in order."""
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def _close_quietly(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # noqa: BLE001 - a connection the broker already dropped is fine to abandon here
        pass
