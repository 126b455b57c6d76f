#!/usr/bin/env python3
"""The management API differential: the same sequence of HTTP calls against two brokers' management APIs (Warren
and RabbitMQ), then a comparison of the answers.

    compare.py WARREN_URL RABBITMQ_URL [--compat docs/compatibility.md] [--verbose]

Each call has a name. Compared, per call: the status code; the `WWW-Authenticate` and `Location` headers; for JSON
answers, the values of the keys both sides have among those that are deterministic (names, flags, arguments, types,
message counts, error and reason texts, payloads: `COMPARED` below), and, for lists, which objects each side lists
(by name, or by source/destination/key for bindings). Keys only one side has are counted once per call and printed
as notes (RabbitMQ has many fields Warren has not built yet, such as memory and Erlang process figures); they do not
fail the run. Rates and `message_stats` are never compared.

A difference is named `CALL WHAT` (WHAT: `status`, a header, or a JSON path such as `[amq.direct].type`). It fails
the run unless docs/compatibility.md has a row `| api | CALL WHAT | reason |` in its management API table (a `*` in
WHAT stands for any text). Prints every difference, then `N differences, N undocumented`.
Exit status 1 when any is undocumented.
"""

import argparse
import base64
import json
import re
import sys
import time
import urllib.parse
import http.client

from calls import CALLS

# Item-level keys whose values are compared. Everything else (node names, pids, memory, timestamps, versions,
# ports, rates) differs between any two brokers, or between two runs of one.
COMPARED = {
    "name", "vhost", "durable", "auto_delete", "exclusive", "internal", "arguments", "type", "tags", "configure",
    "write", "read", "user", "source", "destination", "destination_type", "routing_key", "properties_key",
    "pattern", "definition", "priority", "apply-to", "payload", "payload_bytes", "payload_encoding", "redelivered",
    "exchange", "message_count", "routed", "properties", "tracing", "policy", "messages", "messages_ready",
    "messages_unacknowledged", "consumers", "error", "reason", "object_totals", "queue_totals", "rates_mode",
    "value", "status", "users", "vhosts", "permissions", "topic_permissions", "queues", "exchanges", "bindings",
    "policies", "parameters", "global_parameters",
}
# Never compared, at any depth.
IGNORED = {"message_stats", "rabbit_version", "rabbitmq_version", "product_name", "product_version",
           "password_hash", "hashing_algorithm", "limits", "operator_policy", "effective_policy_definition"}
# The management API's channel and parameter endpoints are being built elsewhere: their keys are not compared yet.
SKIPPED_SECTIONS = {"parameters", "global_parameters"}


def identity(item):
    """What names a listed object, so the two sides' lists can be matched item by item."""
    if not isinstance(item, dict):
        return json.dumps(item, sort_keys=True)
    if "source" in item and "destination" in item:
        return "%s:%s->%s:%s[%s]" % (item.get("vhost"), item.get("source"), item.get("destination_type"),
                                     item.get("destination"), item.get("routing_key"))
    if "user" in item and "configure" in item or "user" in item and "exchange" in item and "write" in item:
        return "%s@%s" % (item.get("user"), item.get("vhost"))
    if "name" in item:
        return "%s/%s" % (item["vhost"], item["name"]) if "vhost" in item else str(item["name"])
    if "payload" in item:
        return "message:%s" % item.get("payload")
    return json.dumps(sorted(item))


class Broker:
    """One side: an API base URL and what each call answered."""

    def __init__(self, label, url):
        self.label = label
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 15672
        self.answers = {}

    def request(self, method, path, body=None, auth=("guest", "guest")):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {}
        if auth is not None:
            token = base64.b64encode(("%s:%s" % auth).encode()).decode()
            headers["Authorization"] = "Basic " + token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        connection.close()
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return {
            "status": response.status,
            "www-authenticate": response.getheader("WWW-Authenticate"),
            "location": response.getheader("Location"),
            "body": parsed,
        }


def compare_values(path, w, r, diffs, notes):
    """Appends (path, warren, rabbit) for each difference between two JSON values; keys only one side has go to
    notes."""
    if isinstance(w, dict) and isinstance(r, dict):
        for key in sorted(set(w) | set(r)):
            if key in IGNORED or key.endswith("_details"):
                continue
            if key not in w or key not in r:
                notes.append("%s.%s only in %s" % (path, key, "Warren" if key in w else "RabbitMQ"))
                continue
            compare_values("%s.%s" % (path, key), w[key], r[key], diffs, notes)
    elif isinstance(w, list) and isinstance(r, list):
        compare_lists(path, w, r, diffs, notes, COMPARED_ALL)
    elif w != r:
        diffs.append((path, w, r))


COMPARED_ALL = None   # inside a compared value, every key is compared


def compare_items(path, w, r, diffs, notes, keys):
    """Compares two listed objects: the keys in `keys` (every key when None) that both have."""
    if not (isinstance(w, dict) and isinstance(r, dict)):
        if w != r:
            diffs.append((path, w, r))
        return
    for key in sorted(set(w) | set(r)):
        if key in IGNORED or key.endswith("_details") or key in SKIPPED_SECTIONS:
            continue
        if keys is not None and key not in keys:
            continue
        if key not in w or key not in r:
            notes.append("%s.%s only in %s" % (path, key, "Warren" if key in w else "RabbitMQ"))
            continue
        if keys is not None and isinstance(w[key], list) and isinstance(r[key], list):
            compare_lists("%s.%s" % (path, key), w[key], r[key], diffs, notes, COMPARED)
        else:
            compare_values("%s.%s" % (path, key), w[key], r[key], diffs, notes)


def compare_lists(path, w, r, diffs, notes, keys):
    if all(not isinstance(x, dict) for x in w + r):
        if sorted(map(json.dumps, w)) != sorted(map(json.dumps, r)):
            diffs.append((path, w, r))
        return
    wi = {identity(x): x for x in w}
    ri = {identity(x): x for x in r}
    for ident in sorted(set(wi) | set(ri)):
        if ident not in ri:
            diffs.append(("%s[%s]" % (path, ident), "listed", "not listed"))
        elif ident not in wi:
            diffs.append(("%s[%s]" % (path, ident), "not listed", "listed"))
        else:
            compare_items("%s[%s]" % (path, ident), wi[ident], ri[ident], diffs, notes, keys)


def compare_answers(w, r, by_position=False):
    """The differences between one call's two answers: [(what, warren, rabbit)], and notes."""
    diffs, notes = [], []
    if by_position and isinstance(w["body"], list) and isinstance(r["body"], list):
        w, r = dict(w), dict(r)
        w["body"] = [dict(x, name=i) if isinstance(x, dict) else x for i, x in enumerate(w["body"])]
        r["body"] = [dict(x, name=i) if isinstance(x, dict) else x for i, x in enumerate(r["body"])]
    if w["status"] != r["status"]:
        diffs.append(("status", w["status"], r["status"]))
    for header in ("www-authenticate", "location"):
        if (w[header] is None) != (r[header] is None) or header == "www-authenticate" and w[header] != r[header]:
            diffs.append((header, w[header], r[header]))
    wb, rb = w["body"], r["body"]
    if isinstance(wb, dict) and isinstance(rb, dict):
        compare_items("", wb, rb, diffs, notes, COMPARED)
    elif isinstance(wb, list) and isinstance(rb, list):
        compare_lists("", wb, rb, diffs, notes, COMPARED)
    elif w["status"] == r["status"] and type(wb) is not type(rb):
        diffs.append(("body", short(wb), short(rb)))
    return diffs, notes


def short(value, limit=160):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def documented_rows(path):
    """The `| api | CALL WHAT | reason |` rows of docs/compatibility.md, as (call, pattern) pairs."""
    rows = []
    for line in open(path):
        m = re.match(r"^\|\s*api\s*\|\s*(\S+)\s+`?([^|`]+?)`?\s*\|", line)
        if m:
            rows.append((m.group(1), m.group(2).strip()))
    return rows


def is_documented(rows, call, what):
    """Whether a row covers the difference; in a row's WHAT, `*` stands for any text (nothing else is special)."""
    for row_call, pattern in rows:
        regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
        if row_call == call and re.match(regex, what, re.S):
            return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("warren")
    parser.add_argument("rabbitmq")
    parser.add_argument("--compat", default=None, help="docs/compatibility.md (default: beside this repo)")
    parser.add_argument("--verbose", action="store_true", help="also print the notes (keys only one side has)")
    args = parser.parse_args()
    compat = args.compat or __file__.rsplit("/interop-tests/", 1)[0] + "/docs/compatibility.md"
    rows = documented_rows(compat)

    brokers = [Broker("Warren", args.warren), Broker("RabbitMQ", args.rabbitmq)]
    # Each call runs on both brokers before the next, so the two see the same history (and wait the same).
    for call in CALLS:
        for broker in brokers:
            if call.get("settle"):
                time.sleep(call["settle"])
            body = call.get("body")
            deadline = time.monotonic() + 15
            while True:
                answer = broker.request(call["method"], call["path"], body, call.get("auth", ("guest", "guest")))
                # RabbitMQ's queue figures and policy are statistics, emitted a few seconds late: poll for them.
                if "until" not in call or call["until"](answer["body"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            broker.answers[call["name"]] = answer

    total = undocumented = 0
    notes_total = 0
    for call in CALLS:
        name = call["name"]
        w, r = brokers[0].answers[name], brokers[1].answers[name]
        diffs, notes = compare_answers(w, r, call.get("by_position", False))
        notes_total += len(notes)
        status = "%s %s -> Warren %d, RabbitMQ %d" % (call["method"], call["path"], w["status"], r["status"])
        print("%-40s %s%s" % (name, status, "" if diffs else "  same"))
        for what, wv, rv in diffs:
            total += 1
            known = is_documented(rows, name, what)
            undocumented += 0 if known else 1
            print("    DIFF %s %s: Warren %s, RabbitMQ %s (%s)"
                  % (name, what, short(wv), short(rv), "documented" if known else "UNDOCUMENTED"))
        if args.verbose:
            for note in notes:
                print("    note %s" % note)
    print("\n%d calls, %d notes (keys only one side has; --verbose prints them)" % (len(CALLS), notes_total))
    print("%d differences, %d undocumented" % (total, undocumented))
    return 1 if undocumented else 0


if __name__ == "__main__":
    sys.exit(main())
