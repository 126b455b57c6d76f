"""What the two rabbitmqadmin suites share: where the management API is (MANAGEMENT_URL or MANAGEMENT_PORT, as
interop-tests/run exports them), a direct HTTP client to check what a command did, a pika connection for the
connection steps, and a runner that prints one PASS/FAIL/SKIP line per step and the `interop-summary:` line
interop-tests/run parses."""

import base64
import http.client
import json
import os
import time
import urllib.parse


class StepFailed(Exception):
    """A step's check did not hold; the message says why."""


class Skip(Exception):
    """A step that cannot run here; the message says why."""


def management_address():
    """(host, port) from MANAGEMENT_URL, else 127.0.0.1 and MANAGEMENT_PORT; None when neither is set."""
    url = os.environ.get("MANAGEMENT_URL")
    if url:
        parsed = urllib.parse.urlsplit(url)
        return parsed.hostname or "127.0.0.1", parsed.port or 15672
    port = os.environ.get("MANAGEMENT_PORT")
    return ("127.0.0.1", int(port)) if port else None


def expect(condition, why):
    if not condition:
        raise StepFailed(why)


def api(address, method, path, body=None):
    """One management API call as guest: (status, parsed JSON or None)."""
    connection = http.client.HTTPConnection(address[0], address[1], timeout=30)
    headers = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, (json.loads(raw) if raw.strip() else None)


def api_get(address, path):
    status, body = api(address, "GET", path)
    expect(status == 200, "GET %s answered %d: %s" % (path, status, body))
    return body


def quote(name):
    return urllib.parse.quote(name, safe="")


def open_pika_connection(connection_name):
    """A pika connection to AMQP_URL with that client-provided name, or None when pika does not import."""
    try:
        import pika
    except ImportError:
        return None
    params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"))
    params.client_properties = {"connection_name": connection_name}
    return pika.BlockingConnection(params)


def wait_for_connection(address, connection_name, timeout=15):
    """The API's entry for the connection of that client-provided name. RabbitMQ lists a connection once its
    statistics are emitted (every 5 s by default), so this polls."""
    deadline = time.monotonic() + timeout
    while True:
        for c in api_get(address, "/api/connections"):
            if (c.get("client_properties") or {}).get("connection_name") == connection_name:
                return c
        if time.monotonic() > deadline:
            raise StepFailed("the connection %r is not listed after %d s" % (connection_name, timeout))
        time.sleep(0.5)


def wait_closed(connection, timeout=10):
    """Whether a pika connection the broker closes notices it within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while connection.is_open and time.monotonic() < deadline:
        try:
            connection.process_data_events(time_limit=0.2)
        except Exception:
            break
    return not connection.is_open


def run_steps(steps, skip_all_because=None, cleanup=None):
    """Runs each step (a function) in order, printing PASS/FAIL/SKIP lines, then the summary; with
    `skip_all_because` every step is reported skipped. Returns the exit status."""
    passed = failed = skipped = 0
    if skip_all_because:
        for step in steps:
            print("SKIP  %s: %s" % (step.__name__, skip_all_because))
        print("interop-summary: passed=0 failed=0 skipped=%d" % len(steps))
        return 0
    try:
        for step in steps:
            started = time.monotonic()
            try:
                step()
            except Skip as why:
                skipped += 1
                print("SKIP  %s: %s" % (step.__name__, why), flush=True)
            except Exception as why:   # a failed check, a timeout or a crash of the step: all one failure
                failed += 1
                print("FAIL  %s: %s: %s" % (step.__name__, type(why).__name__, str(why).replace("\n", " ")),
                      flush=True)
            else:
                passed += 1
                print("PASS  %s (%.2fs)" % (step.__name__, time.monotonic() - started), flush=True)
    finally:
        if cleanup:
            try:
                cleanup()
            except Exception as why:
                print("      cleanup: %s" % why)
    print("interop-summary: passed=%d failed=%d skipped=%d" % (passed, failed, skipped))
    return 1 if failed else 0
