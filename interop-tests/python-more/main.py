"""Runs the python-more interop suite: every test_*.py module here (py-amqp, aio-pika, kombu, Celery), one result
line per test, then the summary line that interop-tests/run parses (`interop-summary: passed=N failed=N skipped=N`).

Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f python3 main.py [-k PATTERN]...
"""

import argparse
import os
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class LineResult(unittest.TestResult):
    """Prints `PASS`/`FAIL`/`SKIP` per test as it finishes, with the traceback of a failure indented under it."""

    def __init__(self):
        super().__init__()
        self.passed = 0
        self.started = 0.0

    @staticmethod
    def name(test):
        return "%s.%s" % (type(test).__name__, getattr(test, "_testMethodName", str(test)))

    def startTest(self, test):
        super().startTest(test)
        self.started = time.monotonic()

    def _line(self, verdict, test, detail=None):
        print("%-5s %s (%.2fs)" % (verdict, self.name(test), time.monotonic() - self.started), flush=True)
        if detail:
            for line in detail.rstrip().splitlines():
                print("      " + line)
            sys.stdout.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line("PASS", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line("FAIL", test, self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._line("FAIL", test, self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("SKIP", test, reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line("XFAIL", test, "expected failure (known broker bug)")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line("FAIL", test, "unexpected success: remove the expectedFailure marker")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="patterns", action="append", help="only tests whose name contains PATTERN")
    args = parser.parse_args()

    try:
        import aio_pika
        import amqp
        import celery
        import kombu

        import harness
    except ImportError as error:
        print("FAIL  %s: %s cannot import amqp, aio_pika, kombu and celery" % (error, sys.executable))
        print("interop-summary: passed=0 failed=1 skipped=0")
        return 1

    print("py-amqp %s, aio-pika %s, kombu %s, celery %s on Python %s, AMQP_URL=%s" % (
        amqp.__version__, aio_pika.__version__, kombu.__version__, celery.__version__, sys.version.split()[0],
        harness.amqp_url()))
    try:
        harness.amqp_connect().close()
    except Exception as error:  # noqa: BLE001 - every test would fail the same way; say it once
        print("FAIL  cannot connect to the broker at %s: %r" % (harness.amqp_url(), error))
        print("interop-summary: passed=0 failed=1 skipped=0")
        return 1

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    result = LineResult()
    try:
        suite.run(result)
    except Exception:  # noqa: BLE001 - report a crash of the suite itself as a failure, not a silent stop
        traceback.print_exc()
        result.errors.append((None, "suite crashed"))

    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped) + len(result.expectedFailures)
    print("interop-summary: passed=%d failed=%d skipped=%d" % (result.passed, failed, skipped), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
