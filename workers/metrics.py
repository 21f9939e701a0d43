"""The worker's own metrics and the HTTP port that serves them.

- ``motion_agent_call_seconds{operation}``: latency of each call to a host agent
  (``post_command``, ``get_command``, ``abort_command``, ``get_volume``, ...);
- ``motion_agent_call_errors_total{operation, kind}``: calls that failed, ``kind`` being
  ``unreachable`` (no answer, timeout, 5xx) or ``protocol`` (the agent refused our request);
- ``motion_worker_job_runs_total{outcome}`` and ``motion_worker_job_run_seconds{outcome}``: wake-ups
  of ``motion.run_job`` by what the runner did (succeeded, failed, queued, skipped, lease-lost), or
  db-unavailable (the database failed mid-run) and error (anything else raised).

``celery -A workers.app worker --metrics-port 9102`` (``motion worker --metrics-port``) serves
them on ``http://0.0.0.0:9102/metrics`` from the worker's main process. With the prefork pool the
numbers live in the children: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the
worker starts (``motion worker`` does it for you) so the port adds up every child's.
"""
from __future__ import annotations

import functools
import logging
import time

from celery import bootsteps
from prometheus_client import Counter, Histogram

from orchestrator import metrics
from orchestrator.errors import AgentProtocolError, AgentUnreachable

log = logging.getLogger(__name__)

AGENT_CALLS = Histogram("motion_agent_call_seconds", "Latency of calls to host agents", ["operation"],
                        registry=metrics.PROCESS,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
AGENT_ERRORS = Counter("motion_agent_call_errors_total", "Failed calls to host agents",
                       ["operation", "kind"], registry=metrics.PROCESS)
JOB_RUNS = Counter("motion_worker_job_runs_total", "Wake-ups of motion.run_job by outcome", ["outcome"],
                   registry=metrics.PROCESS)
JOB_RUN_SECONDS = Histogram("motion_worker_job_run_seconds", "Time one wake-up of motion.run_job took",
                            ["outcome"], registry=metrics.PROCESS, buckets=metrics.BUCKETS)


def observed(operation: str):
    """Decorate an agent-client method: time it, count its failures by kind."""
    def wrap(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            except AgentUnreachable:
                AGENT_ERRORS.labels(operation, "unreachable").inc()
                raise
            except AgentProtocolError:
                AGENT_ERRORS.labels(operation, "protocol").inc()
                raise
            finally:
                AGENT_CALLS.labels(operation).observe(time.perf_counter() - started)
        return call
    return wrap


def job_run(outcome: str, seconds: float) -> None:
    JOB_RUNS.labels(outcome).inc()
    JOB_RUN_SECONDS.labels(outcome).observe(seconds)


def serve(port: int, bind: str = "0.0.0.0"):
    """Serve ``/metrics`` on ``port`` in a daemon thread; None (and a warning) if it is taken."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=bind, registry=metrics.registry())
    except OSError as exc:
        log.warning("metrics port %s not served: %s", port, exc)
        return None
    log.info("metrics on http://%s:%s/metrics", bind, server.server_port)
    return server


class MetricsPort(bootsteps.StartStopStep):
    """The worker step behind ``--metrics-port``: serves this worker's metrics while it runs."""

    def __init__(self, parent, metrics_port=None, **kwargs):
        super().__init__(parent, **kwargs)
        self.port = metrics_port
        self.server = None

    def start(self, parent):
        if self.port:
            self.server = serve(int(self.port))

    def stop(self, parent):
        if self.server is not None:
            self.server.shutdown()
            self.server = None
