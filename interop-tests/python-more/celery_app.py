"""The Celery app of the python-more suite: the worker that test_celery.py starts runs these tasks, the tests send
them through the broker under test and read results back over the RPC result backend (`rpc://`, replies on the
client's own queue).

The broker comes from AMQP_URL and the task queue from INTEROP_CELERY_QUEUE (unique per run, so runs against a
shared RabbitMQ do not take each other's tasks).
"""

import collections
import os
import threading

from celery import Celery

QUEUE = os.environ.get("INTEROP_CELERY_QUEUE", "interop.pymore.celery")

app = Celery("interop", broker=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"), backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_acks_late=True,  # ack after the task ran: a worker that dies mid-task leaves it to another
    worker_prefetch_multiplier=4,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_max_retries=3,  # a broker that went away fails the run instead of stalling it
    worker_send_task_events=False,
)


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=5)
def flaky(self, token, failures):
    """Fails `failures` times (each a self.retry, republished with a short countdown), then succeeds and reports
    how many retries it took."""
    if self.request.retries < failures:
        raise self.retry(countdown=0.2)
    return {"token": token, "retries": self.request.retries}


class TransientError(Exception):
    """What `autoretried` raises while it is meant to fail; Celery retries on it (autoretry_for)."""


# How often this worker ran `autoretried` for each token: the worker is one process (threads pool), so a counter here
# sees every run, however many times the task went round through the broker.
_runs = collections.Counter()
_runs_lock = threading.Lock()


@app.task(bind=True, autoretry_for=(TransientError,), retry_backoff=False,
          retry_kwargs={"max_retries": 5, "countdown": 0.2})
def autoretried(self, token, failures):
    """Raises TransientError on its first `failures` runs (Celery republishes it each time, no self.retry in
    sight), then succeeds and reports how often it ran."""
    with _runs_lock:
        _runs[token] += 1
        runs = _runs[token]
    if runs <= failures:
        raise TransientError("run %d of %s fails on purpose" % (runs, token))
    return {"token": token, "runs": runs, "retries": self.request.retries}


@app.task
def always_fails(text):
    raise ValueError(text)
