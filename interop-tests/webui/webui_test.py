"""The management web UI in headless Chromium, driven by Selenium the way a person would use it: a wrong password
shows the API's error, guest logs in, declares a queue with the queue form, publishes to it through the default
exchange with the publish form, gets the message back with the queue's get form (the payload must be on the page),
checks the rates chart reads RabbitMQ's `message_stats` (fixed figures injected into the overview the page fetches,
so the check needs no traffic), moves its message to another queue with the move form (a one-off shovel), and deletes
the queue. Each step is checked against the API too, so a form that shows
success without doing anything fails. A screenshot of the overview is saved (WEBUI_SCREENSHOT, default
target/webui-screenshot.png), and of the page as it was when a test failed.

Prints one line per test, then `interop-summary: passed=N failed=N skipped=N` (see interop-tests/run). The tests run
in order and share one browser; a test whose predecessor failed is skipped, since the failure is already counted.

Usage: WARREN_MGMT_URL=http://127.0.0.1:15672 python3 webui_test.py (or MANAGEMENT_URL, as interop-tests/run sets it)
(WEBUI_USER and WEBUI_PASSWORD, guest and guest by default, are the administrator the tests log in as.)
"""

import base64
import json
import os
import shutil
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# interop-tests/run exports MANAGEMENT_URL for the Warren it starts; WARREN_MGMT_URL, set by hand, wins. Neither set
# (interop-tests/run against another broker with --broker-url): skipped, since that broker's UI is not this one.
MGMT_URL = os.environ.get("WARREN_MGMT_URL") or os.environ.get("MANAGEMENT_URL") or ""
BASE_URL = MGMT_URL.rstrip("/") + "/"
SCREENSHOT = os.environ.get("WEBUI_SCREENSHOT") or os.path.join(ROOT, "target", "webui-screenshot.png")
USER = os.environ.get("WEBUI_USER", "guest")
PASSWORD = os.environ.get("WEBUI_PASSWORD", "guest")
WAIT_SECONDS = 15

QUEUE = "webui.%s" % uuid.uuid4().hex[:10]
PAYLOAD = "hello from the web UI %s" % uuid.uuid4().hex[:8]


# --- the API, for checking what the UI did ------------------------------------------------------------------------


def api(method, path, body=None):
    """Calls the management API as USER; returns (status, parsed JSON or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE_URL + "api" + path, data=data, method=method)
    token = base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text


def queue_path():
    return "/queues/%2F/" + urllib.parse.quote(QUEUE, safe="")


def eventually(check, what, seconds=WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not within %d s: %s" % (seconds, what))
        time.sleep(0.2)


# --- the browser --------------------------------------------------------------------------------------------------


def find_browser():
    """Returns (chromium, chromedriver) paths, or a string saying what is missing."""
    try:
        import selenium  # noqa: F401 - only whether it imports
    except ImportError:
        return "selenium is not importable by %s (apt-get install python3-selenium)" % sys.executable
    chromium = os.environ.get("CHROMIUM") or next(
        (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not driver and os.path.exists("/usr/lib/chromium/chromedriver"):
        driver = "/usr/lib/chromium/chromedriver"
    if not chromium:
        return "no chromium on PATH (apt-get install chromium)"
    if not driver:
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return chromium, driver


def start_browser(chromium, driver_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    return driver


class Page:
    """The UI as the tests use it: find by id, wait, fill forms."""

    def __init__(self, driver):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import Select, WebDriverWait

        self.driver = driver
        self.By = By
        self.ec = expected_conditions
        self.Select = Select
        self.wait = WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1)

    def id(self, element_id):
        return self.driver.find_element(self.By.ID, element_id)

    def css(self, selector):
        return self.driver.find_element(self.By.CSS_SELECTOR, selector)

    def until(self, condition, what):
        try:
            return self.wait.until(lambda _driver: condition())
        except Exception as error:  # noqa: BLE001 - say what was awaited, whatever Selenium raised
            raise AssertionError("not within %d s: %s (%s)" % (WAIT_SECONDS, what, type(error).__name__)) from None

    def visible(self, element_id):
        return self.until(lambda: self.id(element_id).is_displayed() and self.id(element_id), "#%s shown" % element_id)

    def fill(self, element_id, text):
        field = self.id(element_id)
        field.clear()
        field.send_keys(text)

    def select(self, element_id, value):
        self.until(lambda: any(o.get_attribute("value") == value for o in self.Select(self.id(element_id)).options),
                   "option %r in #%s" % (value, element_id))
        self.Select(self.id(element_id)).select_by_value(value)

    def tab(self, name):
        self.id("tab-" + name).click()
        self.visible("page-" + name)


# --- the tests, in order ------------------------------------------------------------------------------------------


def test_a_wrong_password_shows_the_apis_error(page):
    page.driver.get(BASE_URL)
    page.visible("login-form")
    page.fill("login-user", USER)
    page.fill("login-password", "wrong-" + uuid.uuid4().hex[:6])
    page.id("login-submit").click()
    text = page.until(lambda: page.id("login-error").text, "#login-error filled")
    assert "Login failed" in text, "login error reads %r" % text
    assert not page.id("app").is_displayed(), "the app is shown after a failed login"


def test_guest_logs_in_and_sees_the_overview(page):
    page.fill("login-user", USER)
    page.fill("login-password", PASSWORD)
    page.id("login-submit").click()
    page.visible("app")
    page.until(lambda: page.id("whoami").text.startswith(USER), "#whoami names %s" % USER)
    page.until(lambda: "Queues" in page.id("object-totals").text, "object totals shown")
    page.until(lambda: "Memory used" in page.id("nodes-table").text, "node memory shown")
    assert page.id("login").is_displayed() is False


def test_a_queue_declared_with_the_form_exists(page):
    page.tab("queues")
    page.select("queue-vhost", "/")
    page.fill("queue-name", QUEUE)
    page.select("queue-durable", "false")
    page.id("queue-submit").click()
    page.until(lambda: page.driver.find_elements(page.By.CSS_SELECTOR, '#queues-table tr[data-name="%s"]' % QUEUE),
               "queue %s listed" % QUEUE)
    status, body = api("GET", queue_path())
    assert status == 200, "GET %s answered %s %s" % (queue_path(), status, body)
    assert body["durable"] is False, body


def test_a_message_published_to_the_default_exchange_is_routed(page):
    page.tab("exchanges")
    page.select("publish-vhost", "/")
    page.select("publish-exchange", "amq.default")
    page.fill("publish-routing-key", QUEUE)
    page.fill("publish-payload", PAYLOAD)
    page.id("publish-submit").click()
    text = page.until(lambda: page.id("publish-result").text or page.id("status").text, "a publish result")
    assert text == "Message published.", "publish result reads %r" % text
    eventually(lambda: api("GET", queue_path())[1].get("messages") == 1, "queue %s holds 1 message" % QUEUE)


def test_the_get_form_shows_the_payload(page):
    page.tab("queues")
    link = page.until(lambda: page.css('#queues-table tr[data-name="%s"] a.queue-link' % QUEUE), "the queue's link")
    link.click()
    page.visible("queue-detail")
    assert page.id("queue-detail-name").text == QUEUE
    page.select("get-ackmode", "ack_requeue_true")
    page.id("get-submit").click()
    payload = page.until(lambda: page.css("#get-result pre.payload").text, "a payload in #get-result")
    assert payload == PAYLOAD, "payload shown %r, published %r" % (payload, PAYLOAD)
    # ack_requeue_true puts it back: RabbitMQ's "Nack message requeue true".
    eventually(lambda: api("GET", queue_path())[1].get("messages") == 1, "the message requeued")


def test_the_overview_charts_the_queued_message(page):
    page.tab("overview")
    # Two polls (5 s apart) make a line rather than a dot.
    time.sleep(6)
    page.until(lambda: "Ready" in page.id("legend-queued").text, "the queued chart's legend")
    legend = page.id("legend-queued").text
    assert "Total" in legend, legend
    drawn = page.driver.execute_script(
        "const c = document.getElementById('chart-queued');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    assert drawn > 100, "the queued-messages canvas is blank (%d pixels)" % drawn
    save_screenshot(page.driver, SCREENSHOT)


# Rates in RabbitMQ's shape, in place of the API's own (which are zero or absent without traffic).
INJECT_RATES = """
const realFetch = window.fetch;
window.webuiRealFetch = realFetch;
window.fetch = async (url, init) => {
  const response = await realFetch(url, init);
  if (!String(url).endsWith("api/overview") || !response.ok) return response;
  const body = await response.json();
  body.message_stats = {publish_details: {rate: 12.5}, deliver_get_details: {rate: 10}, ack_details: {rate: 9.5}};
  return new Response(JSON.stringify(body), {status: 200, headers: {"content-type": "application/json"}});
};
"""


def test_rates_in_message_stats_are_charted(page):
    assert "\u2013" in page.id("legend-rates").text or "/s" in page.id("legend-rates").text
    page.driver.execute_script(INJECT_RATES)
    try:
        # The next 5 s poll brings the rates.
        page.until(lambda: "Publish 12.5/s" in page.id("legend-rates").text, "the publish rate in the legend")
        legend = page.id("legend-rates").text
        assert "Deliver (get) 10/s" in legend and "Ack 9.5/s" in legend, legend
        assert "Confirm \u2013" in legend, "a rate the API does not give shows as a dash: %r" % legend
    finally:
        page.driver.execute_script("window.fetch = window.webuiRealFetch;")


def test_the_move_form_moves_the_messages_to_another_queue(page):
    moved = QUEUE + ".moved"
    moved_path = "/queues/%2F/" + urllib.parse.quote(moved, safe="")
    shovel_path = "/parameters/shovel/%2F/" + urllib.parse.quote("Move from " + QUEUE, safe="")
    page.tab("queues")
    page.until(lambda: page.css('#queues-table tr[data-name="%s"] a.queue-link' % QUEUE), "the queue's link").click()
    page.visible("queue-detail")
    page.fill("move-dest-queue", moved)
    page.id("move-submit").click()
    text = page.until(lambda: page.id("status").text, "a status line")
    assert text.startswith("Moving the messages of %s to %s" % (QUEUE, moved)), "status reads %r" % text
    try:
        # The shovel declares the destination, moves the one message, and deletes itself (queue-length).
        eventually(lambda: (api("GET", moved_path)[1] or {}).get("messages") == 1, "queue %s holds 1 message" % moved)
        eventually(lambda: api("GET", queue_path())[1].get("messages") == 0, "queue %s emptied" % QUEUE)
        eventually(lambda: api("GET", shovel_path)[0] == 404, "the one-off shovel deleted itself")
    finally:
        api("DELETE", moved_path)


def test_the_queue_is_deleted_through_the_ui(page):
    page.tab("queues")
    page.until(lambda: page.css('#queues-table tr[data-name="%s"] a.queue-link' % QUEUE), "the queue's link").click()
    page.visible("queue-detail")
    page.id("queue-delete").click()
    page.until(lambda: page.ec.alert_is_present()(page.driver), "the confirm dialog").accept()
    eventually(lambda: api("GET", queue_path())[0] == 404, "queue %s gone" % QUEUE)
    page.until(lambda: not page.driver.find_elements(page.By.CSS_SELECTOR,
                                                     '#queues-table tr[data-name="%s"]' % QUEUE),
               "queue %s no longer listed" % QUEUE)


TESTS = [
    test_a_wrong_password_shows_the_apis_error,
    test_guest_logs_in_and_sees_the_overview,
    test_a_queue_declared_with_the_form_exists,
    test_a_message_published_to_the_default_exchange_is_routed,
    test_the_get_form_shows_the_payload,
    test_the_overview_charts_the_queued_message,
    test_rates_in_message_stats_are_charted,
    test_the_move_form_moves_the_messages_to_another_queue,
    test_the_queue_is_deleted_through_the_ui,
]


def save_screenshot(driver, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    driver.save_screenshot(path)
    print("      screenshot: %s" % path)


def name(test):
    return test.__name__[len("test_"):]


def summary(passed, failed, skipped):
    print("interop-summary: passed=%d failed=%d skipped=%d" % (passed, failed, skipped), flush=True)


def main():
    found = find_browser()
    if not MGMT_URL:
        found = "neither WARREN_MGMT_URL nor MANAGEMENT_URL is set (the URL of Warren's management listener)"
    if isinstance(found, str):
        for test in TESTS:
            print("SKIP  %s (0.00s)\n      %s" % (name(test), found))
        summary(0, 0, len(TESTS))
        return 0
    print("web UI at %s, chromium %s, chromedriver %s, python %s" % (BASE_URL, found[0], found[1],
                                                                   sys.version.split()[0]))
    # The AMQP port answering (what interop-tests/run waits for) does not mean the management listener does yet.
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(BASE_URL, timeout=10) as response:
                response.read()
            break
        except Exception as error:  # noqa: BLE001 - every test would fail the same way; say it once
            if time.monotonic() > deadline:
                print("FAIL  cannot load the web UI at %s: %r" % (BASE_URL, error))
                summary(0, 1, 0)
                return 1
            time.sleep(0.2)
    try:
        driver = start_browser(*found)
    except Exception as error:  # noqa: BLE001
        print("FAIL  cannot start headless chromium: %r" % error)
        summary(0, 1, 0)
        return 1

    passed = failed = skipped = 0
    blocked_by = None
    try:
        page = Page(driver)
        for test in TESTS:
            started = time.monotonic()
            if blocked_by:
                skipped += 1
                print("SKIP  %s (0.00s)\n      needs %s, which failed" % (name(test), blocked_by))
                continue
            try:
                test(page)
            except Exception as error:  # noqa: BLE001 - a failed test, whatever it raised
                failed += 1
                blocked_by = name(test)
                print("FAIL  %s (%.2fs)" % (name(test), time.monotonic() - started))
                detail = str(error) if isinstance(error, AssertionError) else traceback.format_exc()
                for line in detail.rstrip().splitlines():
                    print("      " + line)
                try:
                    save_screenshot(driver, SCREENSHOT)
                except Exception:  # noqa: BLE001 - the failure above is what matters
                    pass
            else:
                passed += 1
                print("PASS  %s (%.2fs)" % (name(test), time.monotonic() - started), flush=True)
    finally:
        driver.quit()
        api("DELETE", queue_path())
    summary(passed, failed, skipped)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
