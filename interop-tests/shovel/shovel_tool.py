#!/usr/bin/env python3
"""AMQP client steps for interop-tests/shovel-rabbitmq and federation-rabbitmq (pika), each bounded by a timeout:

  shovel_tool.py publish  URL QUEUE COUNT PREFIX [--size BYTES] [--window N] [--timeout S] [--topic-key KEY]
      declares QUEUE durable and publishes COUNT persistent messages with publisher confirms (at most --window
      unconfirmed), bodies `PREFIX:NNNNNNNNNN` (the index, zero-padded) padded with '.' to --size; prints
      {"published": N, "confirmed": N, "nacked": N, "seconds": S}. Exit 1 unless every message was confirmed.
      With --topic-key, QUEUE names a durable topic exchange instead, declared and published to with KEY.
  shovel_tool.py depth    URL QUEUE
      prints the queue's ready message count (passive declare), or -1 when the broker is not reachable.
  shovel_tool.py wait     URL QUEUE AT_LEAST [--timeout S]
      polls the depth every 50 ms (reconnecting while the broker is down) until it is at least AT_LEAST; prints it.
      Exit 1 on timeout.
  shovel_tool.py drain    URL QUEUE COUNT PREFIX [--timeout S] [--settle S]
      consumes QUEUE (prefetch 1000, multiple acks) until every one of the COUNT messages of PREFIX was seen and
      nothing more came for --settle seconds, or --timeout; prints {"expected", "received", "unique", "missing",
      "duplicates", "foreign", "non_persistent", "seconds"}. Exit 0 (the caller judges the figures).

URL is amqp://user:pass@host:port/vhost. Progress and errors go to stderr.
"""

import argparse
import json
import sys
import time

import pika


def params(url, heartbeat=30):
    p = pika.URLParameters(url)
    p.heartbeat = heartbeat
    p.blocked_connection_timeout = 60
    p.connection_attempts = 1
    p.socket_timeout = 5
    return p


def body_of(prefix, i, size):
    b = ("%s:%010d" % (prefix, i)).encode()
    return b + b"." * (size - len(b)) if size > len(b) else b


# --- publish: asynchronous (SelectConnection), so that confirms are pipelined ------------------------------------

class Publisher:
    def __init__(self, args):
        self.a = args
        self.next_index = 0          # messages published
        self.low = 1                 # lowest delivery tag not yet confirmed
        self.confirmed_above = set()  # confirmed tags >= low (out-of-order single confirms)
        self.confirmed = 0
        self.nacked = 0
        self.error = None
        self.channel = None
        self.started = time.monotonic()
        self.conn = pika.SelectConnection(params(args.url), on_open_callback=self.on_open,
                                          on_open_error_callback=self.on_fail, on_close_callback=self.on_closed)

    def run(self):
        self.conn.ioloop.call_later(self.a.timeout, self.on_timeout)
        self.conn.ioloop.start()

    def stop(self, error=None):
        if error and not self.error:
            self.error = error
        if self.conn.is_open:
            self.conn.close()
        elif not self.conn.is_closing:
            self.conn.ioloop.stop()

    def on_fail(self, _conn, err):
        self.error = "connection failed: %s" % err
        self.conn.ioloop.stop()

    def on_closed(self, _conn, reason):
        if self.confirmed + self.nacked < self.a.count and not self.error:
            self.error = "connection closed: %s" % reason
        self.conn.ioloop.stop()

    def on_timeout(self):
        self.stop("timed out after %ss" % self.a.timeout)

    def on_open(self, conn):
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, ch):
        self.channel = ch
        ch.add_on_close_callback(self.on_channel_closed)
        if self.a.topic_key is None:
            declare = lambda _f: ch.queue_declare(self.a.queue, durable=True, callback=lambda _f: self.publish_more())
        else:
            declare = lambda _f: ch.exchange_declare(self.a.queue, "topic", durable=True,
                                                     callback=lambda _f: self.publish_more())
        ch.confirm_delivery(ack_nack_callback=self.on_confirm, callback=declare)

    def on_channel_closed(self, _ch, reason):
        if self.confirmed + self.nacked < self.a.count:
            self.stop("channel closed: %s" % reason)

    def outstanding(self):
        return self.next_index - self.confirmed - self.nacked

    def publish_more(self):
        props = pika.BasicProperties(delivery_mode=2)
        while self.next_index < self.a.count and self.outstanding() < self.a.window:
            exchange, key = ("", self.a.queue) if self.a.topic_key is None else (self.a.queue, self.a.topic_key)
            self.channel.basic_publish(exchange, key, body_of(self.a.prefix, self.next_index, self.a.size), props)
            self.next_index += 1
        if self.confirmed + self.nacked >= self.a.count:
            self.stop()

    def settle(self, tag, nack):
        if tag < self.low or tag in self.confirmed_above:
            return
        self.confirmed_above.add(tag)
        if nack:
            self.nacked += 1
        else:
            self.confirmed += 1
        while self.low in self.confirmed_above:
            self.confirmed_above.discard(self.low)
            self.low += 1

    def on_confirm(self, frame):
        m = frame.method
        nack = isinstance(m, pika.spec.Basic.Nack)
        if m.multiple:
            for tag in range(self.low, m.delivery_tag + 1):
                self.settle(tag, nack)
        else:
            self.settle(m.delivery_tag, nack)
        self.publish_more()


def cmd_publish(a):
    p = Publisher(a)
    p.run()
    out = {"published": p.next_index, "confirmed": p.confirmed, "nacked": p.nacked,
           "seconds": round(time.monotonic() - p.started, 2)}
    if p.error:
        out["error"] = p.error
    print(json.dumps(out))
    return 0 if p.confirmed == a.count and not p.error else 1


# --- depth, wait --------------------------------------------------------------------------------------------------

def depth_on(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def cmd_depth(a):
    try:
        conn = pika.BlockingConnection(params(a.url))
        try:
            print(depth_on(conn.channel(), a.queue))
        finally:
            conn.close()
    except Exception as e:  # noqa: BLE001 - any failure is "not reachable"
        print("depth: %s" % e, file=sys.stderr)
        print(-1)
    return 0


def cmd_wait(a):
    deadline = time.monotonic() + a.timeout
    last = -1
    while time.monotonic() < deadline:
        try:
            conn = pika.BlockingConnection(params(a.url))
            try:
                ch = conn.channel()
                while time.monotonic() < deadline:
                    last = depth_on(ch, a.queue)
                    if last >= a.at_least:
                        print(last)
                        return 0
                    time.sleep(0.05)
            finally:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
        except Exception as e:  # noqa: BLE001 - broker down or queue missing: try again
            print("wait: %s" % e, file=sys.stderr)
            time.sleep(0.5)
    print(last)
    print("wait: %s holds %d < %d after %ss" % (a.queue, last, a.at_least, a.timeout), file=sys.stderr)
    return 1


# --- drain --------------------------------------------------------------------------------------------------------

def cmd_drain(a):
    seen = bytearray(a.count)
    received = unique = duplicates = foreign = non_persistent = 0
    head = (a.prefix + ":").encode()
    started = time.monotonic()
    deadline = started + a.timeout
    last_message = started
    error = None
    try:
        conn = pika.BlockingConnection(params(a.url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        unacked = 0
        last_tag = None
        for method, props, body in ch.consume(a.queue, inactivity_timeout=0.5):
            now = time.monotonic()
            if method is None:
                if unacked:
                    ch.basic_ack(last_tag, multiple=True)
                    unacked = 0
                if unique == a.count and now - last_message >= a.settle:
                    break
                if now >= deadline:
                    error = "timed out after %ss" % a.timeout
                    break
                continue
            last_message = now
            received += 1
            if props.delivery_mode != 2:
                non_persistent += 1
            if body.startswith(head):
                try:
                    i = int(body[len(head):len(head) + 10])
                except ValueError:
                    i = -1
                if 0 <= i < a.count:
                    if seen[i]:
                        duplicates += 1
                    else:
                        seen[i] = 1
                        unique += 1
                else:
                    foreign += 1
            else:
                foreign += 1
            unacked += 1
            last_tag = method.delivery_tag
            if unacked >= 500:
                ch.basic_ack(last_tag, multiple=True)
                unacked = 0
            if now >= deadline:
                error = "timed out after %ss" % a.timeout
                break
        if unacked:
            ch.basic_ack(last_tag, multiple=True)
        ch.cancel()
        conn.close()
    except Exception as e:  # noqa: BLE001 - reported in the result
        error = "%s: %s" % (type(e).__name__, e)
    out = {"expected": a.count, "received": received, "unique": unique, "missing": a.count - unique,
           "duplicates": duplicates, "foreign": foreign, "non_persistent": non_persistent,
           "seconds": round(time.monotonic() - started, 2)}
    if error:
        out["error"] = error
    print(json.dumps(out))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("url"); p.add_argument("queue"); p.add_argument("count", type=int); p.add_argument("prefix")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--window", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--topic-key", default=None)
    p = sub.add_parser("depth")
    p.add_argument("url"); p.add_argument("queue")
    p = sub.add_parser("wait")
    p.add_argument("url"); p.add_argument("queue"); p.add_argument("at_least", type=int)
    p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("drain")
    p.add_argument("url"); p.add_argument("queue"); p.add_argument("count", type=int); p.add_argument("prefix")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--settle", type=float, default=3)
    a = ap.parse_args()
    return {"publish": cmd_publish, "depth": cmd_depth, "wait": cmd_wait, "drain": cmd_drain}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
