"""The event exchange (amq.rabbitmq.event, RabbitMQ's rabbitmq_event_exchange plugin): a scripted sequence (declare,
bind, consume, cancel, unbind, delete, an exclusive queue closed with its connection, a refused login) recorded from
a queue bound with `#`: the routing keys in order, and each event's header names and AMQP field types as read off
the wire. Skipped where the exchange does not exist (Warren without `[event_exchange]`, RabbitMQ without the
plugin). Recorded against RabbitMQ 3.10.8 with the plugin; RabbitMQ 3.10's internal `parameter.set`/`.cleared`
events around an exchange deletion are left out of the comparison (docs/compatibility.md)."""

import struct
import time
import unittest

import pika
import pika.exceptions
import pika.spec

from harness import BrokerTestCase, parameters, unique

EVENTS = "amq.rabbitmq.event"

# The routing keys the sequence raises, in order.
SEQUENCE = [
    "user.authentication.success",
    "connection.created",
    "channel.created",
    "exchange.created",
    "queue.created",
    "binding.created",
    "consumer.created",
    "consumer.deleted",
    "binding.deleted",
    "queue.deleted",
    "exchange.deleted",
    "queue.created",
    "channel.closed",
    "queue.deleted",
    "connection.closed",
    "user.authentication.failure",
    "connection.closed",
]

# Header name -> AMQP field type letter of each event, as RabbitMQ 3.10.8 sent them (timestamp_in_ms in every one).
HEADERS = {
    "user.authentication.success": "auth_mechanism:S connection_name:S connection_type:S host:S name:S "
    "peer_host:S peer_port:l protocol:S ssl:t",
    "connection.created": "auth_mechanism:S channel_max:l client_properties:A connected_at:l frame_max:l host:S "
    "name:S node:S peer_cert_issuer:S peer_cert_subject:S peer_cert_validity:S peer_host:S peer_port:l pid:S "
    "port:l protocol:S ssl:t ssl_cipher:S ssl_hash:S ssl_key_exchange:S ssl_protocol:S timeout:l type:S user:S "
    "user_who_performed_action:S vhost:S",
    "channel.created": "connection:S name:S number:l pid:S user:S user_who_performed_action:S vhost:S",
    "exchange.created": "arguments:A auto_delete:t durable:t internal:t name:S policy:S type:S "
    "user_who_performed_action:S vhost:S",
    "queue.created": "arguments:A auto_delete:t durable:t exclusive:t name:S owner_pid:S "
    "user_who_performed_action:S vhost:S",
    "binding.created": "arguments:A destination_kind:S destination_name:S routing_key:S source_kind:S "
    "source_name:S user_who_performed_action:S vhost:S",
    "consumer.created": "ack_required:t arguments:A channel:S consumer_tag:S exclusive:t prefetch_count:l queue:S "
    "user_who_performed_action:S vhost:S",
    "consumer.deleted": "channel:S consumer_tag:S queue:S user_who_performed_action:S vhost:S",
    "binding.deleted": "arguments:A destination_kind:S destination_name:S routing_key:S source_kind:S "
    "source_name:S user_who_performed_action:S vhost:S",
    "queue.deleted": "name:S user_who_performed_action:S vhost:S",
    "exchange.deleted": "name:S user_who_performed_action:S vhost:S",
    "channel.closed": "pid:S user_who_performed_action:S",
    "connection.closed": "client_properties:A name:S node:S pid:S",
    "user.authentication.failure": "auth_mechanism:S connection_name:S connection_type:S error:A host:S name:S "
    "peer_host:S peer_port:l protocol:S ssl:t",
}

_decode = pika.spec.BasicProperties.decode


def _keep_raw(self, encoded, offset=0):
    """pika decodes header types away (a long and an int are both Python ints): keep the raw properties."""
    self._raw = bytes(encoded[offset:])
    return _decode(self, encoded, offset)


def header_types(raw):
    """{name: type letter} of the headers in raw basic properties (flags, content type and encoding skipped)."""
    flags, = struct.unpack_from(">H", raw, 0)
    o = 2
    for bit in (0x8000, 0x4000):
        if flags & bit:
            o += 1 + raw[o]
    if not flags & 0x2000:
        return {}
    size, = struct.unpack_from(">I", raw, o)
    o += 4
    end = o + size
    types = {}
    while o < end:
        n = raw[o]
        name = raw[o + 1:o + 1 + n].decode()
        o += 1 + n
        kind = chr(raw[o])
        types[name] = kind
        o = _skip(raw, o + 1, kind)
    return types


def _skip(raw, o, kind):
    fixed = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "U": 2, "I": 4, "i": 4, "f": 4, "l": 8, "L": 8, "d": 8,
             "T": 8, "D": 5, "V": 0}
    if kind in fixed:
        return o + fixed[kind]
    size, = struct.unpack_from(">I", raw, o)   # S, x, A and F carry a 32-bit length
    return o + 4 + size


class EventExchange(BrokerTestCase):
    def setUp(self):
        super().setUp()
        probe = self.conn.channel()
        try:
            probe.exchange_declare(EVENTS, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            raise unittest.SkipTest("no %s here (the event exchange is off)" % EVENTS)
        pika.spec.BasicProperties.decode = _keep_raw
        self.addCleanup(setattr, pika.spec.BasicProperties, "decode", _decode)

    def _run_sequence(self):
        exchange, queue, exclusive = unique("ev.x"), unique("ev.q"), unique("ev.excl")
        conn = pika.BlockingConnection(parameters())
        ch = conn.channel()
        ch.exchange_declare(exchange, "direct", arguments={"alternate-exchange": "amq.fanout"})
        ch.queue_declare(queue, arguments={"x-message-ttl": 60000})
        ch.queue_bind(queue, exchange, "rk", arguments={"a": 1})
        tag = ch.basic_consume(queue, lambda *a: None)
        ch.basic_cancel(tag)
        ch.queue_unbind(queue, exchange, "rk", arguments={"a": 1})
        ch.queue_delete(queue)
        ch.exchange_delete(exchange)
        ch.queue_declare(exclusive, exclusive=True)
        ch.close()
        conn.close()
        params = parameters()
        params.credentials = pika.PlainCredentials(params.credentials.username, "not-the-password")
        with self.assertRaises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(params)

    def test_a_scripted_sequence_raises_the_plugins_events_with_its_header_types(self):
        watch = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(watch, EVENTS, "#")
        self._drain(watch)
        self._run_sequence()
        time.sleep(0.5)
        events = [(key, types) for key, types in self._drain(watch) if not key.startswith("parameter.")]
        self.assertEqual([key for key, _ in events], SEQUENCE)
        for key, types in events:
            self.assertEqual(types.pop("timestamp_in_ms", None), "l", key)
            seen = " ".join("%s:%s" % item for item in sorted(types.items()))
            self.assertEqual(seen, HEADERS[key], key)

    def _drain(self, queue):
        out = []
        while True:
            method, properties, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            self.assertEqual(body, b"")
            self.assertEqual(properties.delivery_mode, 2)
            out.append((method.routing_key, header_types(properties._raw)))
