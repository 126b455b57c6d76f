"""A real Celery worker (a subprocess, threads pool) executing tasks through the broker under test: 100+ tasks with
their results over the RPC backend, tasks that self.retry() and then succeed, tasks that autoretry_for retries until
they succeed, a failing task's exception, a group, and the worker's control channel (broadcast ping). The worker is
started once for the class and stopped at the end.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import amqp
import celery

from harness import TimeLimit, Topology, amqp_connect, amqp_url, close_quietly, unique

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_START_SECONDS = 60


class CeleryWorker(TimeLimit, Topology, unittest.TestCase):
    worker = None
    log_path = None

    @classmethod
    def setUpClass(cls):
        cls.queue = unique("celery")
        cls.node = "interop-%s@localhost" % uuid.uuid4().hex[:8]
        os.environ["INTEROP_CELERY_QUEUE"] = cls.queue  # read by celery_app, here and in the worker
        os.environ["AMQP_URL"] = amqp_url()
        sys.path.insert(0, HERE)
        import celery_app

        cls.tasks = celery_app
        cls.app = celery_app.app
        cls.app.conf.task_default_queue = cls.queue
        cls.app.conf.task_default_exchange = cls.queue
        cls.app.conf.task_default_routing_key = cls.queue
        handle, cls.log_path = tempfile.mkstemp(prefix="interop-celery-", suffix=".log")
        log = os.fdopen(handle, "w")
        cls.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=threads", "--concurrency=4",
             "--loglevel=INFO", "-n", cls.node, "-Q", cls.queue],
            cwd=HERE, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)
        log.close()
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not cls._worker_log_has(" ready."):
            if cls.worker.poll() is not None or time.monotonic() > deadline:
                cls._stop_worker()
                raise AssertionError("the Celery worker did not become ready within %d s; its log:\n%s"
                                     % (WORKER_START_SECONDS, cls._worker_log()[-4000:]))
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls._stop_worker()
        # The task queue and its exchange are durable (Celery's defaults): remove them.
        conn = amqp_connect()
        try:
            for kind in ("queue", "exchange"):
                ch = conn.channel()
                try:
                    getattr(ch, kind + "_delete")(cls.queue)
                    ch.close()
                except amqp.exceptions.AMQPError:
                    pass
        finally:
            close_quietly(conn)
        if cls.log_path:
            os.unlink(cls.log_path)
        sys.path.remove(HERE)

    @classmethod
    def _stop_worker(cls):
        """SIGTERM is Celery's warm shutdown (finish running tasks, then exit); SIGKILL if it does not."""
        if cls.worker is None or cls.worker.poll() is not None:
            return
        cls.worker.send_signal(signal.SIGTERM)
        try:
            cls.worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.worker.kill()
            cls.worker.wait()

    @classmethod
    def _worker_log(cls):
        with open(cls.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    @classmethod
    def _worker_log_has(cls, text):
        return text in cls._worker_log()

    def setUp(self):
        super().setUp()
        self.assertIsNone(self.worker.poll(), "the Celery worker exited:\n%s" % self._worker_log()[-3000:])

    def test_control_ping_reaches_the_worker(self):
        replies = self.app.control.ping(destination=[self.node], timeout=5)
        self.assertEqual(replies, [{self.node: {"ok": "pong"}}])

    def test_hundred_tasks_with_results(self):
        results = [self.tasks.add.delay(i, i * 10) for i in range(120)]
        values = [result.get(timeout=60) for result in results]
        self.assertEqual(values, [i * 11 for i in range(120)])
        self.assertTrue(all(result.state == "SUCCESS" for result in results))

    def test_tasks_that_retry_then_succeed(self):
        results = [self.tasks.flaky.delay("t%d" % i, i % 3 + 1) for i in range(12)]  # 1, 2 or 3 retries each
        values = [result.get(timeout=60) for result in results]
        self.assertEqual(values, [{"token": "t%d" % i, "retries": i % 3 + 1} for i in range(12)])
        self.assertEqual(sum(v["retries"] for v in values), 24)

    def test_autoretry_for_runs_a_task_until_it_succeeds(self):
        tokens = [unique("autoretry") for _ in range(6)]
        results = [self.tasks.autoretried.delay(token, i % 3 + 1) for i, token in enumerate(tokens)]  # 1-3 failures
        values = [result.get(timeout=60) for result in results]
        # Failing N times and then succeeding is N+1 runs, N of them retries.
        self.assertEqual(values, [{"token": token, "runs": i % 3 + 2, "retries": i % 3 + 1}
                                  for i, token in enumerate(tokens)])
        self.assertTrue(all(result.state == "SUCCESS" for result in results))

    def test_failing_task_reports_its_exception(self):
        result = self.tasks.always_fails.delay("boom")
        with self.assertRaises(ValueError) as caught:
            result.get(timeout=30)
        self.assertEqual(str(caught.exception), "boom")
        self.assertEqual(result.state, "FAILURE")

    def test_group_of_tasks(self):
        job = celery.group(self.tasks.add.s(i, 1) for i in range(20))
        self.assertEqual(job.apply_async().get(timeout=60), [i + 1 for i in range(20)])

    def test_zz_worker_kept_its_broker_connection(self):
        # Runs last (alphabetically): nothing above may have cost the worker its connection.
        log = self._worker_log()
        for trouble in ("Connection to broker lost", "consumer: Cannot connect", "Unrecoverable error"):
            self.assertNotIn(trouble, log, "the worker's log says %r:\n%s" % (trouble, log[-3000:]))
