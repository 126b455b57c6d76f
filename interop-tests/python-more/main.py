"""Runs the python-more interop suite: every test_*.py module here (py-amqp, aio-pika, kombu, Celery), one result
line per test, then the summary line that interop-tests/run parses (`interop-summary: passed=N failed=N skipped=N`).

Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f python3 main.py [-k PATTERN]...
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyshared"))

import line_runner  # noqa: E402 - after the path above


def prepare():
    try:
        import aio_pika
        import amqp
        import celery
        import kombu

        import harness
    except ImportError as error:
        return "%s: %s cannot import amqp, aio_pika, kombu and celery" % (error, sys.executable)
    print("py-amqp %s, aio-pika %s, kombu %s, celery %s on Python %s, AMQP_URL=%s" % (
        amqp.__version__, aio_pika.__version__, kombu.__version__, celery.__version__, sys.version.split()[0],
        harness.amqp_url()))
    try:
        harness.amqp_connect().close()
    except Exception as error:  # noqa: BLE001 - every test would fail the same way; say it once
        return "cannot connect to the broker at %s: %r" % (harness.amqp_url(), error)
    return None


if __name__ == "__main__":
    sys.exit(line_runner.run(HERE, __doc__, prepare))
