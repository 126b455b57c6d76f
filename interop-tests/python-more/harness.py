"""Shared pieces of the python-more suite (py-amqp, aio-pika, kombu, Celery): the broker's URL and address, unique
names, a per-test time limit, and cleanup of what a test declared.

Every test talks to the broker named by AMQP_URL (interop-tests/run sets it) and creates its own uniquely named
queues and exchanges, so the suite can run against a shared RabbitMQ in differential mode without collisions.
Tests assert what RabbitMQ does; where Warren differs, the test fails and says what it saw.
"""

import os
import signal
import time
import unittest
import urllib.parse
import uuid

import amqp

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"

# A test that runs longer than this is stuck (a lost delivery, a missing reply): fail it instead of hanging the run.
TEST_TIMEOUT_SECONDS = int(os.environ.get("INTEROP_TEST_TIMEOUT", "60"))


def amqp_url():
    return os.environ.get("AMQP_URL", DEFAULT_URL)


def broker():
    """(host:port, user, password, vhost) from AMQP_URL, as py-amqp takes them."""
    url = urllib.parse.urlsplit(amqp_url())
    vhost = urllib.parse.unquote(url.path[1:]) if len(url.path) > 1 else "/"
    return (
        "%s:%d" % (url.hostname or "127.0.0.1", url.port or 5672),
        urllib.parse.unquote(url.username or "guest"),
        urllib.parse.unquote(url.password or "guest"),
        vhost,
    )


def url_with_query(**query):
    """AMQP_URL with query parameters added (aio-pika reads `heartbeat` there)."""
    parts = urllib.parse.urlsplit(amqp_url())
    merged = dict(urllib.parse.parse_qsl(parts.query))
    merged.update({key: str(value) for key, value in query.items()})
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(merged)))


def unique(stem):
    """A name no other test or run uses."""
    return "interop.pymore.%s.%s" % (stem, uuid.uuid4().hex[:10])


def amqp_connect(**overrides):
    """An open py-amqp connection to the broker under test."""
    host, user, password, vhost = broker()
    options = dict(host=host, userid=user, password=password, virtual_host=vhost, connect_timeout=10,
                   read_timeout=15, write_timeout=15)
    options.update(overrides)
    conn = amqp.Connection(**options)
    conn.connect()
    return conn


class TestTimedOut(Exception):
    pass


def _on_alarm(_signum, _frame):
    raise TestTimedOut("test took longer than %d s" % TEST_TIMEOUT_SECONDS)


class TimeLimit:
    """A mixin that fails a test running longer than TEST_TIMEOUT_SECONDS (SIGALRM in the main thread)."""

    def setUp(self):
        super().setUp()
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(TEST_TIMEOUT_SECONDS)
        self.addCleanup(signal.alarm, 0)


class Topology:
    """Remembers queues and exchanges a test declared and deletes them afterwards over a fresh py-amqp connection
    (whatever client the test used)."""

    def setUp(self):
        super().setUp()
        self._queues = []
        self._exchanges = []
        self.addCleanup(self._delete_topology)

    def delete_later(self, queue=None, exchange=None):
        if queue:
            self._queues.append(queue)
        if exchange:
            self._exchanges.append(exchange)
        return queue or exchange

    def _delete_topology(self):
        if not (self._queues or self._exchanges):
            return
        conn = amqp_connect()
        try:
            for kind, names in (("queue", self._queues), ("exchange", self._exchanges)):
                for name in names:
                    ch = conn.channel()
                    try:
                        getattr(ch, kind + "_delete")(name)
                        ch.close()
                    except amqp.exceptions.AMQPError:
                        pass  # already gone, or exclusive to a connection that is now closed
        finally:
            close_quietly(conn)


def close_quietly(conn):
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - a connection the broker already dropped is fine to abandon here
        pass


def wait_until(predicate, timeout=5.0, interval=0.02):
    """Polls `predicate` until it is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
