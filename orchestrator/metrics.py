"""Prometheus metrics: the per-process registry and the metrics computed from the database.

Two kinds of metrics, so that every process reports the truth:

- **From the database, at scrape time** (``DatabaseCollector``): jobs by command and status,
  pending jobs by phase, job duration histograms, queue depth, slot use and slot limit per host,
  bytes migrated. Any API process answers the same numbers, however many there are.
- **Per process** (``PROCESS``): API requests by command and code (``api/observability.py``),
  agent call latency and errors and job runs by outcome (``workers/metrics.py``). With
  ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn with several workers, Celery prefork), values are
  kept in files there and ``scrape`` adds up every process's; without it, each process reports its own.

Histograms from the database count every finished job (cumulative, like a counter):
``motion_job_duration_seconds`` from submission to completion (what a client waits),
``motion_job_run_seconds`` from dispatch to completion (the time at the agent). They, the
counters ``motion_jobs_finished_total`` and ``motion_migrated_bytes_total``, add the totals of
jobs expunged since (``expired_job_totals``, ``orchestrator.expiry``), so they never go down;
the gauge ``motion_jobs`` counts the jobs in the table now.
"""
from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import case, func, select

from .models import AsyncJob, ExpiredJobTotals, Host, HypervisorCapability
from .states import JobPhase, JobStatus

log = logging.getLogger(__name__)
PROCESS = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
STATUS = {JobStatus.PENDING: "pending", JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed"}
ACTIVE = (JobPhase.DISPATCHED, JobPhase.FINISHING)


def _seconds(session, start, end):
    """``end - start`` in seconds, in this database's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def histogram_rows(session, start_column, *where) -> dict[tuple[str, int], dict]:
    """Finished jobs' seconds from ``start_column`` to completion, per (command, status), as
    ``{"count", "sum", "buckets": {"<le>": cumulative count}}`` (``BUCKETS``)."""
    seconds = _seconds(session, start_column, AsyncJob.completed_at)
    columns = [func.sum(case((seconds <= b, 1), else_=0)) for b in BUCKETS]
    rows = session.execute(select(AsyncJob.command, AsyncJob.status, func.count(),
                                  func.coalesce(func.sum(seconds), 0), *columns)
                           .where(AsyncJob.status != JobStatus.PENDING, AsyncJob.completed_at.is_not(None),
                                  start_column.is_not(None), *where)
                           .group_by(AsyncJob.command, AsyncJob.status))
    return {(command, status): {"count": int(count), "sum": float(total or 0),
                                "buckets": {str(float(b)): int(c or 0) for b, c in zip(BUCKETS, cumulative)}}
            for command, status, count, total, *cumulative in rows}


def add_histogram(into: dict, more: dict) -> dict:
    """Two histograms of ``histogram_rows``'s shape added up (``into`` may be empty)."""
    buckets = dict(into.get("buckets", {}))
    for le, n in more.get("buckets", {}).items():
        buckets[le] = buckets.get(le, 0) + n
    return {"count": into.get("count", 0) + more.get("count", 0),
            "sum": into.get("sum", 0.0) + more.get("sum", 0.0), "buckets": buckets}


class DatabaseCollector:
    """Collects the database-derived metrics (see the module docstring) on every scrape."""

    def __init__(self, db):
        self.db = db

    def collect(self):
        up = GaugeMetricFamily("motion_database_up", "1 when the last scrape could read the database")
        try:
            with self.db.uow() as uow:
                families = list(self._families(uow.session))
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, s):
        expired = list(s.scalars(select(ExpiredJobTotals)))
        jobs = GaugeMetricFamily("motion_jobs", "Async jobs in the database by command and status",
                                 labels=["command", "status"])
        finished: dict[tuple[str, int], int] = {(t.command, t.status): t.jobs for t in expired}
        for command, status, n in s.execute(select(AsyncJob.command, AsyncJob.status, func.count())
                                            .group_by(AsyncJob.command, AsyncJob.status)):
            jobs.add_metric([command, STATUS.get(status, str(status))], n)
            if status != JobStatus.PENDING:
                finished[command, status] = finished.get((command, status), 0) + n
        yield jobs
        ended = CounterMetricFamily("motion_jobs_finished", "Jobs finished by command and status, "
                                    "expunged ones included", labels=["command", "status"])
        for (command, status), n in sorted(finished.items()):
            ended.add_metric([command, STATUS.get(status, str(status))], n)
        yield ended
        pending = GaugeMetricFamily("motion_jobs_pending", "Pending jobs by command and phase",
                                    labels=["command", "phase"])
        for command, phase, n in s.execute(select(AsyncJob.command, AsyncJob.phase, func.count())
                                           .where(AsyncJob.status == JobStatus.PENDING)
                                           .group_by(AsyncJob.command, AsyncJob.phase)):
            pending.add_metric([command, phase], n)
        yield pending
        yield self._histogram(s, "motion_job_duration_seconds",
                              "Finished jobs: seconds from submission to completion", AsyncJob.created,
                              {(t.command, t.status): json.loads(t.duration) for t in expired})
        yield self._histogram(s, "motion_job_run_seconds",
                              "Finished jobs that reached an agent: seconds from dispatch to completion",
                              AsyncJob.dispatched_at, {(t.command, t.status): json.loads(t.run) for t in expired})
        moved = CounterMetricFamily("motion_migrated_bytes", "Bytes copied by succeeded jobs",
                                    labels=["command"])
        flight = GaugeMetricFamily("motion_migrating_bytes", "Bytes copied so far by pending jobs",
                                   labels=["command"])
        done = {t.command: t.bytes_done for t in expired if t.status == JobStatus.SUCCEEDED}
        for command, status, total in s.execute(
                select(AsyncJob.command, AsyncJob.status, func.coalesce(func.sum(AsyncJob.bytes_done), 0))
                .where(AsyncJob.status.in_((JobStatus.PENDING, JobStatus.SUCCEEDED)))
                .group_by(AsyncJob.command, AsyncJob.status)):
            if status == JobStatus.SUCCEEDED:
                done[command] = done.get(command, 0) + int(total)
            else:
                flight.add_metric([command], int(total))
        for command, total in sorted(done.items()):
            moved.add_metric([command], total)
        yield moved
        yield flight
        yield from self._hosts(s)

    def _histogram(self, s, name: str, text: str, start_column, expired: dict):
        merged = dict(expired)
        for key, histogram in histogram_rows(s, start_column).items():
            merged[key] = add_histogram(merged.get(key, {}), histogram)
        family = HistogramMetricFamily(name, text, labels=["command", "status"])
        for (command, status), histogram in sorted(merged.items()):
            if not histogram.get("count"):
                continue
            buckets = [(str(float(b)), histogram["buckets"].get(str(float(b)), 0)) for b in BUCKETS]
            buckets.append(("+Inf", histogram["count"]))
            family.add_metric([command, STATUS.get(status, str(status))], buckets, histogram["sum"])
        return family

    def _hosts(self, s):
        def per_host(phases) -> dict[int, int]:
            counts: dict[int, int] = {}
            for column in (AsyncJob.host_id, AsyncJob.dest_host_id):
                for host_id, n in s.execute(select(column, func.count()).where(
                        AsyncJob.status == JobStatus.PENDING, AsyncJob.phase.in_(phases), column.is_not(None))
                        .group_by(column)):
                    counts[host_id] = counts.get(host_id, 0) + n
            return counts

        queued, used = per_host((JobPhase.QUEUED,)), per_host(ACTIVE)
        caps = {(c.hypervisor_type, c.hypervisor_version): c.max_storage_migrations
                for c in s.scalars(select(HypervisorCapability))}
        depth = GaugeMetricFamily("motion_host_queue_depth", "Jobs queued for a host's admission slots",
                                  labels=["host"])
        slots = GaugeMetricFamily("motion_host_slots_used", "Storage migrations dispatched on a host",
                                  labels=["host"])
        limit = GaugeMetricFamily("motion_host_slots_limit", "A host's limit of concurrent storage "
                                  "migrations", labels=["host"])
        for host_id, name, own, hypervisor, version in s.execute(
                select(Host.id, Host.name, Host.max_storage_migrations, Host.hypervisor,
                       Host.hypervisor_version).order_by(Host.id)):
            depth.add_metric([name], queued.get(host_id, 0))
            slots.add_metric([name], used.get(host_id, 0))
            limit.add_metric([name], own if own is not None else caps.get((hypervisor, version), 2))
        yield depth
        yield slots
        yield limit


class _Collectors:
    """Several collectors seen as one (registered into a scrape's registry)."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def multiprocess() -> bool:
    """Whether prometheus_client keeps values in files (it read ``PROMETHEUS_MULTIPROC_DIR`` when
    it was imported); then a scrape must add up every process's files."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def registry(db=None) -> CollectorRegistry:
    """A registry whose every collect() reads this process's metrics (or, in multiprocess mode,
    every process's files) and, when ``db`` is given, the database's."""
    parts = []
    if multiprocess():
        from prometheus_client import multiprocess as mp

        own = CollectorRegistry(auto_describe=False)
        mp.MultiProcessCollector(own)
        parts.append(own)
    else:
        parts.append(PROCESS)
    if db is not None:
        parts.append(DatabaseCollector(db))
    out = CollectorRegistry(auto_describe=False)
    out.register(_Collectors(*parts))
    return out


def scrape(db=None) -> bytes:
    """The text exposition of ``registry(db)``."""
    return generate_latest(registry(db))
