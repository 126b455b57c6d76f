"""The test runner both Python interop suites share: discovers test_*.py in a suite's directory, prints one
PASS/FAIL/SKIP line per test (a failure's traceback indented under it), then the summary line interop-tests/run
parses (`interop-summary: passed=N failed=N skipped=N`)."""

import argparse
import sys
import time
import traceback
import unittest


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


def fail_once(message):
    """Reports a problem every test would hit (missing library, unreachable broker) as one failure."""
    print("FAIL  " + message)
    print("interop-summary: passed=0 failed=1 skipped=0")
    return 1


def run(suite_dir, description, prepare):
    """Parses -k patterns, calls `prepare()` (which prints the banner and returns an error message or None), then
    runs every test under `suite_dir`. Returns the process exit code."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="patterns", action="append", help="only tests whose name contains PATTERN")
    args = parser.parse_args()

    problem = prepare()
    if problem:
        return fail_once(problem)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    suite = loader.discover(suite_dir, pattern="test_*.py", top_level_dir=suite_dir)
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
