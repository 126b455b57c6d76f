#!/usr/bin/env python3
"""Resident memory of a broker holding many delayed messages (not run in CI).

Declares a durable x-delayed-message exchange, publishes N messages with small bodies and a one-hour x-delay
(half persistent, half transient unless --mode says otherwise), waits until the broker has taken them all (a
confirmed publish at the end, on the same channel), then prints the broker's RSS before and after, read from
/proc/PID/status. Usage:

    target/release/warren --listen 127.0.0.1:5699 --data-dir /tmp/wd &
    python3 bench/delayed_memory.py --pid $! --url amqp://guest:guest@127.0.0.1:5699/%2f -n 1000000
"""

import argparse
import time

import pika


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True, help="the broker's process id")
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    parser.add_argument("-n", type=int, default=1_000_000, help="delayed messages to publish")
    parser.add_argument("--size", type=int, default=100, help="body bytes")
    parser.add_argument("--mode", choices=["mixed", "persistent", "transient"], default="mixed")
    parser.add_argument("--exchange", default="delayed-memory")
    args = parser.parse_args()

    conn = pika.BlockingConnection(pika.URLParameters(args.url))
    ch = conn.channel()
    ch.exchange_declare(args.exchange, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare(args.exchange + "-q", durable=True)
    ch.queue_bind(args.exchange + "-q", args.exchange, routing_key="k")
    before = rss_kib(args.pid)
    body = b"x" * args.size
    props = {
        mode: pika.BasicProperties(headers={"x-delay": 3_600_000}, delivery_mode=mode)
        for mode in (1, 2)
    }
    started = time.monotonic()
    for i in range(args.n):
        mode = {"mixed": 1 + (i & 1), "persistent": 2, "transient": 1}[args.mode]
        ch.basic_publish(args.exchange, "k", body, properties=props[mode])
    # Everything before it on this channel was handed to the exchange once this is confirmed.
    ch.confirm_delivery()
    ch.basic_publish(args.exchange, "k", body, properties=props[2])
    elapsed = time.monotonic() - started
    time.sleep(2)
    after = rss_kib(args.pid)
    print(
        "%d delayed messages (%s, %d-byte bodies) published in %.1f s: broker RSS %.1f MiB before, %.1f MiB after, "
        "%.0f bytes per message"
        % (args.n + 1, args.mode, args.size, elapsed, before / 1024, after / 1024, (after - before) * 1024 / (args.n + 1))
    )
    conn.close()


if __name__ == "__main__":
    main()
