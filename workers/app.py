"""The Celery app factory and the wake-up task.

``create_celery(settings)`` builds an app whose one task, ``motion.run_job(job_id)``, hands the
id to the Runner. Messages carry only ids; the job row is the truth, so late acknowledgement
and redelivery are safe (a duplicate finds the lease taken or the job finished and does
nothing). ``celery -A workers.app worker`` works too: the module-level ``app`` is built from the
environment on first access, not at import.

Operations: ``--metrics-port PORT`` on the worker command serves ``workers.metrics`` (a worker
step); Celery's ``setup_logging`` signal gives ``celery -A workers.app worker`` motion's log format
(``orchestrator.logformat``) unless the process set logging up already (``motion worker``);
``celery -A workers.app inspect ...`` and Flower work as with any Celery app (docs/operations.md).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import click
from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init, worker_ready

from orchestrator import config
from orchestrator.db import Database, first_line, unavailable
from orchestrator import clock, logformat, reconcile
from orchestrator.runner import Runner

from . import metrics as worker_metrics, publish
from .agent_client import AgentClient

log = logging.getLogger(__name__)
RUN_JOB = "motion.run_job"
# A worker process takes a pooled connection back within milliseconds of returning it while
# jobs keep coming: it pings one only after this long idle (see db.make_engine), not on every
# checkout (two round trips per job saved).
PING_IDLE_SECONDS = 1.0
SWEEP = "motion.sweep"
QUEUE = "motion"


class Runtime:
    """The per-process dependencies of tasks, built lazily (after a prefork fork).

    A process may run several tasks at once (Celery's threads pool, ``motion worker --pool
    threads``): the database (an engine, thread-safe; sessions are per unit of work) is shared and
    built once under a lock; each thread gets its own Runner with its own AgentClient and
    its own lease-owner name, ``ID/PID-N``
    (N counts the runners of the process), so that two threads never hold one job. All runners
    share one ``stopping`` event.
    """

    def __init__(self, settings: config.Settings, db: Database | None = None):
        self.settings = settings
        self._db = db
        self._lock = threading.Lock()
        self._local = threading.local()
        self._runners = 0
        self.executors = 1  # tasks this process runs at once (the worker's concurrency, threads pool)
        self.stopping = threading.Event()
        self.wake = None  # set by create_celery: publishes a job id

    @property
    def db(self) -> Database:
        if self._db is None:
            with self._lock:
                if self._db is None:
                    url = self.settings.database_url
                    options = {} if url.startswith("sqlite") else {
                        "ping_idle_seconds": PING_IDLE_SECONDS,
                        # a connection for every thread running a job, and one for the sweep
                        "pool_size": max(5, self.executors + 1)}
                    self._db = Database(url, application_name="motion-worker", **options)
        return self._db

    @property
    def runner(self) -> Runner:
        """The calling thread's Runner."""
        runner = getattr(self._local, "runner", None)
        if runner is None:
            with self._lock:
                self._runners += 1
                owner = f"{self.settings.worker_id}/{os.getpid()}-{self._runners}"
            # the agent answers as soon as a command ends, or after one poll interval
            runner = Runner(self.db, AgentClient(self.settings.agent_timeout, wait=self.settings.poll_interval),
                            self.settings, wake=self.wake, owner=owner, stopping=self.stopping)
            self._local.runner = runner
        return runner

    def reset_after_fork(self) -> None:
        # a prefork child: its own lock (the parent's may have been held at the fork), no runner yet
        self._lock, self._local = threading.Lock(), threading.local()
        if self._db is not None:
            self._db.engine.dispose(close=False)


def create_celery(settings: config.Settings, runtime: Runtime | None = None) -> Celery:
    app = Celery("motion", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,                 # a job survives a worker dying mid-way
        task_reject_on_worker_lost=True,     # ... and is redelivered, not dropped
        worker_prefetch_multiplier=1,        # long jobs: do not hoard messages
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # With the broker down, publishing gives up quickly: the job is kept (published_at empty)
        # and the sweep publishes it later, so the API answers at once and loses nothing.
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                   "interval_max": 1},
        # Redelivery after this is harmless (the lease guards the job); it only costs a no-op.
        broker_transport_options={"visibility_timeout": 3600, "polling_interval": 0.05},
    )
    runtime = runtime or Runtime(settings)
    app.motion_runtime = runtime
    runtime.wake = celery_enqueuer(settings, app)

    # shared=False: Celery would install a shared task in every app made afterwards in the
    # process (the first registered winning), and these close over this app's runtime. A
    # ``celery worker`` looks tasks up in its own app; an in-process WorkController in the
    # default app, which ``motion up`` therefore makes this one.
    @app.task(name=RUN_JOB, acks_late=True, shared=False)
    def run_job(job_id: int) -> str:
        started, outcome = time.perf_counter(), "error"
        try:
            outcome = runtime.runner.run(int(job_id))
            return outcome
        except Exception as exc:
            if not unavailable(exc):
                raise
            # An outage, not a bug: the job keeps its phase; once its lease runs out the sweep
            # wakes it and a worker resumes it from there, asking the agent what happened.
            outcome = "db-unavailable"
            log.warning("job %s: the database is unavailable (%s); it is resumed once its lease runs out",
                        job_id, first_line(exc))
            return outcome
        finally:
            worker_metrics.job_run(outcome, time.perf_counter() - started)

    @app.task(name=SWEEP, shared=False)
    def sweep_jobs() -> dict:
        return reconcile.sweep(runtime.db, runtime.wake, AgentClient(settings.agent_timeout), settings)

    @worker_ready.connect(weak=False)
    def _sweep_at_start(**_kw):  # pragma: no cover - exercised in real workers
        # A worker that starts after a crash picks up what the crash left, without waiting for beat.
        try:
            clock.check(runtime.db, "worker")  # leases are compared with other machines' clocks
            reconcile.sweep(runtime.db, runtime.wake)
        except Exception as exc:
            if unavailable(exc):
                log.warning("sweep at worker start: the database is unavailable (%s); beat will retry",
                            first_line(exc))
            else:
                log.exception("sweep at worker start failed; beat will retry")

    # beat: the outbox, stranded jobs (lost messages, dead workers, queued jobs) and orphans.
    app.conf.beat_schedule = {"sweep": {"task": SWEEP, "schedule": 5.0}}

    @worker_process_init.connect(weak=False)
    def _after_fork(**_kw):  # pragma: no cover - exercised in real workers
        runtime.reset_after_fork()

    @worker_init.connect(weak=False)
    def _size_for_pool(sender=None, **_kw):  # pragma: no cover - exercised in real workers
        # Before any task or the sweep at start builds the engine: with the threads pool the
        # process runs ``concurrency`` jobs at once, each needing a pooled connection.
        if getattr(sender, "app", None) is app and isinstance(getattr(sender, "concurrency", None), int):
            threads = "thread" in str(getattr(sender, "pool_cls", "")).lower()
            runtime.executors = sender.concurrency if threads else 1

    app.user_options["worker"].add(click.Option(
        ["--metrics-port"], type=int, default=None,
        help="serve Prometheus metrics of this worker on http://0.0.0.0:PORT/metrics"))
    app.steps["worker"].add(worker_metrics.MetricsPort)
    setup_logging.connect(_setup_logging, weak=False, dispatch_uid="motion.setup_logging")
    return app


def _setup_logging(loglevel=None, **_kw) -> None:
    """Celery asks how to log (``-l LEVEL``): motion's format at that level; a process that set
    the format up already (``motion worker``) keeps it and takes the level."""
    if not logformat.configured():
        logformat.configure("worker", loglevel or "INFO")
    elif loglevel:
        logging.getLogger().setLevel(loglevel)


def broker_backlog(app: Celery) -> int | None:
    """Messages waiting in the job queue (not counting those workers hold), or None if unknown
    (an empty Redis queue has no key and is reported unknown, which the sweep treats as empty)."""
    try:
        with app.connection_for_read() as conn:
            return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True).message_count)
    except Exception:  # noqa: BLE001 - only an optimisation of the sweep
        return None


def celery_enqueuer(settings: config.Settings, app: Celery | None = None) -> Callable[[int], None]:
    """The API's enqueue port: publish ``motion.run_job(job_id)`` (on a Redis broker straight to
    Redis, ``workers.publish``). Its ``backlog()`` tells the
    sweep how many messages still wait in the queue (``reconcile.wake_stranded``)."""
    app = app or create_celery(settings)
    if publish.supports(settings.broker_url):  # the same message, at a fifth of the CPU
        enqueue = publish.redis_publisher(settings.broker_url, RUN_JOB, QUEUE, lambda: app.thread_oid)
    else:
        def enqueue(job_id: int) -> None:
            app.send_task(RUN_JOB, args=[job_id], queue=QUEUE)
    enqueue.backlog = lambda: broker_backlog(app)
    return enqueue


_app: Celery | None = None


def __getattr__(name: str):
    """``celery -A workers.app`` looks up ``app``: build it from the environment on first use."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_celery(config.from_env())
        return _app
    raise AttributeError(name)
