"""The calls compare.py makes, in order, against each broker: reads of every listing, then a vhost, user,
permissions, queue, exchange, binding and policy made, used and deleted, with valid and invalid bodies, and the
error paths (404, 401, 405, if-empty, if-unused). Both brokers must start empty (a fresh data directory): the
listings are compared whole.

A call is a dict: `name` (unique, used in docs/compatibility.md rows), `method`, `path`, optional `body` (a JSON
value, or a str sent as it is), `auth` ((user, password) or None), `settle` (seconds to wait first), `until` (a condition on
the answer's body: the call is repeated until it holds, for up to 15 s, because RabbitMQ's queue message counts and
policy are statistics, emitted seconds late) and `by_position` (list items are
matched by position and their names not compared: node names differ by design).
"""

V = "mgmt-diff"     # the vhost the calls make
VP = "mgmt-diff"    # ... in a path (no escaping needed)
Q = "mgmt.q"
X = "mgmt.x"
U = "mgmt-user"


def messages(n):
    """A condition for `until`: the queue answer shows n messages."""
    return lambda body: isinstance(body, dict) and body.get("messages") == n


def call(name, method, path, body=None, **extra):
    return dict(name=name, method=method, path=path, body=body, **extra)


CALLS = [
    # --- reads of a fresh broker
    call("overview", "GET", "/api/overview"),
    call("whoami", "GET", "/api/whoami"),
    call("nodes", "GET", "/api/nodes", by_position=True),
    call("vhosts", "GET", "/api/vhosts"),
    call("users", "GET", "/api/users"),
    call("permissions", "GET", "/api/permissions"),
    call("queues", "GET", "/api/queues"),
    call("exchanges", "GET", "/api/exchanges"),
    call("bindings", "GET", "/api/bindings"),
    call("policies", "GET", "/api/policies"),
    call("definitions", "GET", "/api/definitions"),
    call("exchange-default", "GET", "/api/exchanges/%2F/amq.default"),
    # --- errors that need no objects
    call("unknown-path", "GET", "/api/no-such-thing"),
    call("queue-missing", "GET", "/api/queues/%2F/no-such-queue"),
    call("vhost-missing", "GET", "/api/vhosts/no-such-vhost"),
    call("wrong-password", "GET", "/api/overview", auth=("guest", "wrong")),
    call("no-credentials", "GET", "/api/overview", auth=None),
    call("unknown-user", "GET", "/api/whoami", auth=("nobody", "guest")),
    call("wrong-verb-overview", "POST", "/api/overview", {}),
    call("wrong-verb-whoami", "DELETE", "/api/whoami"),
    # --- vhost and user
    call("vhost-create", "PUT", "/api/vhosts/" + VP, {}),
    call("vhost-update", "PUT", "/api/vhosts/" + VP, {"tracing": False}),
    call("vhost-get", "GET", "/api/vhosts/" + VP),
    call("vhost-bad-json", "PUT", "/api/vhosts/bad-json-vhost", "{not json"),
    call("user-create", "PUT", "/api/users/" + U, {"password": "s3cret", "tags": "monitoring"}),
    call("user-update", "PUT", "/api/users/" + U, {"password": "s3cret", "tags": ["monitoring", "policymaker"]}),
    call("user-get", "GET", "/api/users/" + U),
    call("user-no-password-key", "PUT", "/api/users/mgmt-user-2", {"tags": ""}),
    call("user-bad-hash-algorithm", "PUT", "/api/users/mgmt-user-3",
         {"password_hash": "YWJj", "hashing_algorithm": "rabbit_password_hashing_nope", "tags": ""}),
    call("user-hash-not-base64", "PUT", "/api/users/mgmt-user-4", {"password_hash": "a?c", "tags": ""}),
    call("user-missing", "GET", "/api/users/no-such-user"),
    call("user-as-monitoring", "GET", "/api/users", auth=(U, "s3cret")),
    # --- permissions
    call("permission-set", "PUT", "/api/permissions/%s/%s" % (VP, U), {"configure": ".*", "write": ".*", "read": ".*"}),
    call("permission-update", "PUT", "/api/permissions/%s/%s" % (VP, U),
         {"configure": "^mgmt\\.", "write": ".*", "read": ".*"}),
    call("permission-guest", "PUT", "/api/permissions/%s/guest" % VP, {"configure": ".*", "write": ".*", "read": ".*"}),
    call("permission-get", "GET", "/api/permissions/%s/%s" % (VP, U)),
    call("permission-missing-key", "PUT", "/api/permissions/%s/%s" % (VP, U), {"configure": ".*"}),
    call("permission-no-user", "PUT", "/api/permissions/%s/no-such-user" % VP,
         {"configure": ".*", "write": ".*", "read": ".*"}),
    call("permission-no-vhost", "PUT", "/api/permissions/no-such-vhost/" + U,
         {"configure": ".*", "write": ".*", "read": ".*"}),
    call("vhost-permissions", "GET", "/api/vhosts/%s/permissions" % VP),
    # --- queue
    call("queue-create", "PUT", "/api/queues/%s/%s" % (VP, Q),
         {"durable": True, "auto_delete": False, "arguments": {"x-max-length": 10}}),
    call("queue-redeclare", "PUT", "/api/queues/%s/%s" % (VP, Q),
         {"durable": True, "auto_delete": False, "arguments": {"x-max-length": 10}}),
    call("queue-inequivalent", "PUT", "/api/queues/%s/%s" % (VP, Q), {"durable": False}),
    call("queue-bad-argument", "PUT", "/api/queues/%s/mgmt.bad" % VP, {"arguments": {"x-max-length": "ten"}}),
    call("queue-no-vhost", "PUT", "/api/queues/no-such-vhost/q", {"durable": True}),
    call("queue-get", "GET", "/api/queues/%s/%s" % (VP, Q), until=messages(0)),
    # --- exchange and binding
    call("exchange-create", "PUT", "/api/exchanges/%s/%s" % (VP, X), {"type": "topic", "durable": True}),
    call("exchange-redeclare", "PUT", "/api/exchanges/%s/%s" % (VP, X), {"type": "topic", "durable": True}),
    call("exchange-inequivalent", "PUT", "/api/exchanges/%s/%s" % (VP, X), {"type": "direct", "durable": True}),
    call("exchange-bad-type", "PUT", "/api/exchanges/%s/mgmt.bad-type" % VP, {"type": "no-such-type"}),
    call("exchange-no-type", "PUT", "/api/exchanges/%s/mgmt.no-type" % VP, {"durable": True}),
    call("exchange-get", "GET", "/api/exchanges/%s/%s" % (VP, X)),
    call("binding-create", "POST", "/api/bindings/%s/e/%s/q/%s" % (VP, X, Q), {"routing_key": "k.#"}),
    call("binding-create-args", "POST", "/api/bindings/%s/e/%s/q/%s" % (VP, X, Q),
         {"routing_key": "a.b", "arguments": {"x-match": "any"}}),
    call("binding-no-exchange", "POST", "/api/bindings/%s/e/no-such-x/q/%s" % (VP, Q), {"routing_key": "k"}),
    call("binding-no-queue", "POST", "/api/bindings/%s/e/%s/q/no-such-q" % (VP, X), {"routing_key": "k"}),
    call("binding-neither", "POST", "/api/bindings/%s/e/no-such-x/q/no-such-q" % VP, {"routing_key": "k"}),
    call("bindings-between-missing", "GET", "/api/bindings/%s/e/no-such-x/q/%s" % (VP, Q)),
    call("binding-get-missing", "GET", "/api/bindings/%s/e/%s/q/%s/no-such-key" % (VP, X, Q)),
    call("bindings-between", "GET", "/api/bindings/%s/e/%s/q/%s" % (VP, X, Q)),
    call("binding-get", "GET", "/api/bindings/%s/e/%s/q/%s/k.%%23" % (VP, X, Q)),
    call("queue-bindings", "GET", "/api/queues/%s/%s/bindings" % (VP, Q)),
    call("exchange-bindings-source", "GET", "/api/exchanges/%s/%s/bindings/source" % (VP, X)),
    call("vhost-bindings", "GET", "/api/bindings/" + VP),
    # --- publish, get, purge
    call("publish-routed", "POST", "/api/exchanges/%s/%s/publish" % (VP, X),
         {"routing_key": "k.one", "payload": "hello", "payload_encoding": "string",
          "properties": {"content_type": "text/plain", "headers": {"h": "v"}, "delivery_mode": 2}}),
    call("publish-routed-2", "POST", "/api/exchanges/%s/%s/publish" % (VP, X),
         {"routing_key": "k.two", "payload": "d29ybGQ=", "payload_encoding": "base64", "properties": {}}),
    call("publish-unrouted", "POST", "/api/exchanges/%s/%s/publish" % (VP, X),
         {"routing_key": "nowhere", "payload": "x", "payload_encoding": "string", "properties": {}}),
    call("publish-missing-keys", "POST", "/api/exchanges/%s/%s/publish" % (VP, X), {"payload": "x"}),
    call("publish-no-exchange", "POST", "/api/exchanges/%s/no-such-x/publish" % VP,
         {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {}}),
    call("publish-default-exchange", "POST", "/api/exchanges/%s/amq.default/publish" % VP,
         {"routing_key": Q, "payload": "direct", "payload_encoding": "string", "properties": {}}),
    call("queue-get-after-publish", "GET", "/api/queues/%s/%s" % (VP, Q), until=messages(3)),
    call("get-requeue", "POST", "/api/queues/%s/%s/get" % (VP, Q),
         {"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    call("get-base64-truncate", "POST", "/api/queues/%s/%s/get" % (VP, Q),
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "base64", "truncate": 3}),
    call("get-missing-keys", "POST", "/api/queues/%s/%s/get" % (VP, Q), {"count": 1}),
    call("get-empty-body", "POST", "/api/queues/%s/%s/get" % (VP, Q), {}),
    call("publish-empty-body", "POST", "/api/exchanges/%s/%s/publish" % (VP, X), {}),
    call("policy-empty-body", "PUT", "/api/policies/%s/bad4" % VP, {}),
    call("permission-empty-body", "PUT", "/api/permissions/%s/%s" % (VP, U), {}),
    call("queue-delete-if-empty", "DELETE", "/api/queues/%s/%s?if-empty=true" % (VP, Q)),
    call("exchange-delete-if-unused", "DELETE", "/api/exchanges/%s/%s?if-unused=true" % (VP, X)),
    call("purge", "DELETE", "/api/queues/%s/%s/contents" % (VP, Q)),
    call("get-after-purge", "POST", "/api/queues/%s/%s/get" % (VP, Q),
         {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    call("queue-get-after-purge", "GET", "/api/queues/%s/%s" % (VP, Q), until=messages(0)),
    call("purge-missing-queue", "DELETE", "/api/queues/%s/no-such-queue/contents" % VP),
    # --- policy
    call("policy-create", "PUT", "/api/policies/%s/ttl" % VP,
         {"pattern": "^mgmt\\.", "definition": {"message-ttl": 60000}, "priority": 1, "apply-to": "queues"}),
    call("policy-update", "PUT", "/api/policies/%s/ttl" % VP,
         {"pattern": "^mgmt\\.", "definition": {"message-ttl": 30000}, "priority": 2, "apply-to": "queues"}),
    call("policy-get", "GET", "/api/policies/%s/ttl" % VP),
    call("policy-invalid-definition", "PUT", "/api/policies/%s/bad" % VP,
         {"pattern": ".*", "definition": {"message-ttl": "soon"}}),
    call("policy-unknown-key", "PUT", "/api/policies/%s/bad2" % VP, {"pattern": ".*", "definition": {"no-such": 1}}),
    call("policy-missing-pattern", "PUT", "/api/policies/%s/bad3" % VP, {"definition": {"message-ttl": 1}}),
    call("policies-vhost", "GET", "/api/policies/" + VP),
    # A publish makes RabbitMQ's idle queue emit statistics again, with its new policy.
    call("publish-after-policy", "POST", "/api/exchanges/%s/amq.default/publish" % VP,
         {"routing_key": Q, "payload": "p", "payload_encoding": "string", "properties": {}}),
    call("queue-with-policy", "GET", "/api/queues/%s/%s" % (VP, Q),
         until=lambda b: messages(1)(b) and b.get("policy") == "ttl"),
    call("definitions-vhost", "GET", "/api/definitions/" + VP),
    call("policy-delete", "DELETE", "/api/policies/%s/ttl" % VP),
    call("policy-delete-again", "DELETE", "/api/policies/%s/ttl" % VP),
    # --- deletes
    call("binding-delete", "DELETE", "/api/bindings/%s/e/%s/q/%s/k.%%23" % (VP, X, Q)),
    call("binding-delete-again", "DELETE", "/api/bindings/%s/e/%s/q/%s/k.%%23" % (VP, X, Q)),
    call("exchange-delete-amq", "DELETE", "/api/exchanges/%2F/amq.direct"),
    call("exchange-delete-default", "DELETE", "/api/exchanges/%2F/amq.default"),
    call("queue-delete", "DELETE", "/api/queues/%s/%s" % (VP, Q)),
    call("queue-delete-again", "DELETE", "/api/queues/%s/%s" % (VP, Q)),
    call("exchange-delete", "DELETE", "/api/exchanges/%s/%s" % (VP, X)),
    call("exchange-delete-again", "DELETE", "/api/exchanges/%s/%s" % (VP, X)),
    call("permission-delete", "DELETE", "/api/permissions/%s/%s" % (VP, U)),
    call("permission-delete-again", "DELETE", "/api/permissions/%s/%s" % (VP, U)),
    call("user-delete", "DELETE", "/api/users/" + U),
    call("user-delete-2", "DELETE", "/api/users/mgmt-user-2"),
    call("user-delete-3", "DELETE", "/api/users/mgmt-user-3"),
    call("user-delete-4", "DELETE", "/api/users/mgmt-user-4"),
    call("user-delete-again", "DELETE", "/api/users/" + U),
    call("vhost-delete", "DELETE", "/api/vhosts/" + VP),
    call("vhost-delete-again", "DELETE", "/api/vhosts/" + VP),
    # --- the broker as it was at the start
    call("queues-at-end", "GET", "/api/queues"),
    call("exchanges-at-end", "GET", "/api/exchanges"),
    call("vhosts-at-end", "GET", "/api/vhosts"),
    call("users-at-end", "GET", "/api/users"),
    call("overview-at-end", "GET", "/api/overview", settle=1.5),
]
