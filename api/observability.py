"""Operational endpoints beside the API, and what the API tells about each request.

- ``GET /metrics``: Prometheus text format - the database-derived metrics of
  ``orchestrator.metrics`` (the same from every API process) and this process's counters:
  ``motion_api_requests_total{command, code}`` (code = the HTTP status, which is CloudStack's
  ``errorcode`` for an error) and ``motion_api_request_seconds{command}``. Commands we do not know
  count as ``command="unknown"``, requests without one as ``"none"``, so callers cannot grow
  the label set.
- ``GET /health``: liveness - the process answers (200, no database access).
- ``GET /ready``: readiness - the database answers a query (200), else 503; for load balancers.
- One log line per ``/client/api`` request (logger ``api.requests``) with ``command``, ``code``,
  ``ms`` and, when there is one, ``job``: INFO for commands that change something and for every
  refusal (with CloudStack's error text, so refused migrations say why), DEBUG for successful reads.

``register`` also sets up logging in a process nobody set it up for (a gunicorn worker).
"""
from __future__ import annotations

import logging
import time

from flask import Response, g, request
from prometheus_client import Counter, Histogram
from sqlalchemy import text

from orchestrator import logformat, metrics

from .errors import json_response
from .registry import COMMANDS

log = logging.getLogger("api.requests")
READS = ("list", "query", "find")
JOB_CREATING = ("migrateVolume", "migrateVirtualMachine", "migrateVirtualMachineWithVolume", "cancelAsyncJob")

REQUESTS = Counter("motion_api_requests_total", "API requests by command and HTTP code (= errorcode)",
                   ["command", "code"], registry=metrics.PROCESS)
LATENCY = Histogram("motion_api_request_seconds", "Time to answer an API request, by command", ["command"],
                    registry=metrics.PROCESS,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def _command(values: dict) -> str:
    name = values.get("command")
    if not name:
        return "none"
    return name if name in COMMANDS else "unknown"


def _job_id(name: str, values: dict, response, job) -> str | None:
    if values.get("jobid"):
        return values["jobid"][:64]
    if name in JOB_CREATING and response.status_code == 200:
        return job if isinstance(job, str) else None
    return None


def record(values: dict, response, seconds: float, job=None) -> None:
    """Count and log one answered ``/client/api`` request (see the module's docstring)."""
    name = _command(values)
    code = response.status_code
    REQUESTS.labels(name, str(code)).inc()
    LATENCY.labels(name).observe(seconds)
    extra = {"command": name, "code": code, "ms": round(seconds * 1000, 1)}
    job = _job_id(name, values, response, job)
    if job:
        extra["job"] = job
    if code != 200:
        log.info("%s refused with %s: %s", name, code, response.headers.get("X-Description", ""), extra=extra)
    elif name.startswith(READS) or name in ("none", "unknown"):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s answered", name, extra=extra)
    else:
        log.info("%s accepted%s", name, f": job {job}" if job else "", extra=extra)


def register(app, db, settings) -> None:
    logformat.ensure_configured("api")

    @app.before_request
    def _start_clock():
        g.motion_started = time.perf_counter()

    @app.after_request
    def _account(response):
        if request.path != "/client/api":
            return response
        # The parameters as ``client_api`` read them (once); absent when it refused the request
        # before reading them: counted without a command.
        seconds = time.perf_counter() - getattr(g, "motion_started", time.perf_counter())
        record(getattr(g, "motion_values", None) or {}, response, seconds, getattr(g, "motion_job", None))
        return response

    @app.get("/metrics")
    def prometheus_metrics():
        return Response(metrics.scrape(db), mimetype=None, content_type=metrics.CONTENT_TYPE)

    @app.get("/health")
    def health():
        return json_response({"status": "ok"})

    @app.get("/ready")
    def ready():
        try:
            with db.uow() as uow:
                uow.session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("not ready: the database does not answer: %s", exc)
            return json_response({"status": "unavailable", "database": "unreachable"}, 503)
        return json_response({"status": "ok", "database": "ok"})
