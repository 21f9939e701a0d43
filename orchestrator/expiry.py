"""Finished jobs expire (CloudStack's ``job.expire.minutes``) and old events are purged
(CloudStack's ``event.purge.delay``).

A finished job (succeeded or failed) whose ``completed_at`` is more than ``job.expire.minutes``
ago (global configuration, default 1440 = one day, as CloudStack's; 0 keeps every job) is
expunged with its ``job_resources`` rows, after adding what it counted in the metrics to
``expired_job_totals`` (so the counters and histograms computed from the jobs table never go
down, ``orchestrator.metrics``). Its events stay until they are purged (below), with their link
to the job cleared (``listEvents`` never showed it). After that
``queryAsyncJobResult`` answers as for an unknown job id and ``listAsyncJobs`` no longer lists
it, as in CloudStack. Unlike CloudStack, a pending job is never expunged however old it is: a
pending job owns its volumes and VM until it ends, and the sweep and the leases make it end.

Events (``listEvents``) older than ``event.purge.delay`` days (default 15, as CloudStack's; 0
keeps them) are deleted, whatever their type. Ids grow with creation time, so a purge takes the
``BATCH`` lowest ids and deletes those that are old enough, and stops at the first batch that
was not wholly old: it reads a batch's rows through the primary key, never the whole table (an
event created out of order, older than a lower id, waits for the next runs).

The beat's sweep calls ``expire_if_due``: at most once every ``INTERVAL_S`` seconds per process,
at most ``BATCH`` jobs per run (the oldest first, found through the partial index of finished
jobs by completion time) in one transaction, then at most ``EVENT_BATCHES`` batches of events,
one transaction each; a backlog goes that much per run.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import globalconfig
from .db import Database
from .metrics import add_histogram, histogram_rows
from .models import AsyncJob, Event, ExpiredJobTotals, JobResource, utcnow
from .states import JobStatus

log = logging.getLogger(__name__)

INTERVAL_S = 60.0  # seconds between two runs in one process
BATCH = 1000  # most jobs one run expunges; events per transaction
EVENT_BATCHES = 20  # most transactions of events one run deletes

_last_run: dict[str, float] = {}


def expire_finished(db: Database, now: datetime | None = None, batch: int = BATCH) -> int:
    """Expunge up to ``batch`` finished jobs past ``job.expire.minutes``; how many were."""
    with db.uow() as uow:
        s = uow.session
        minutes = globalconfig.job_expire_minutes(s)
        if minutes <= 0:
            return 0
        cutoff = (now or utcnow()) - timedelta(minutes=minutes)
        finished = AsyncJob.status != JobStatus.PENDING
        # locked, and rows another run has locked skipped: two runs at once (the beat and a worker
        # starting) never count a job twice in the totals
        ids = list(s.scalars(select(AsyncJob.id).where(finished, AsyncJob.completed_at < cutoff)
                             .order_by(AsyncJob.completed_at).limit(batch).with_for_update(skip_locked=True)))
        if not ids:
            return 0
        _add_to_totals(s, ids)
        s.execute(update(Event).where(Event.job_id.in_(ids)).values(job_id=None))
        s.execute(delete(JobResource).where(JobResource.job_id.in_(ids)))
        s.execute(delete(AsyncJob).where(AsyncJob.id.in_(ids), finished))  # a finished job stays finished
        uow.commit()
    log.info("expunged %d finished job(s) completed before %s UTC (job.expire.minutes = %s)",
             len(ids), f"{cutoff:%Y-%m-%d %H:%M:%S}", minutes)
    return len(ids)


def purge_events(db: Database, now: datetime | None = None, batch: int = BATCH,
                 batches: int = EVENT_BATCHES) -> int:
    """Delete events older than ``event.purge.delay`` days, ``batch`` per transaction, at most
    ``batches`` transactions; how many were deleted."""
    purged = 0
    for _ in range(batches):
        with db.uow() as uow:
            s = uow.session
            days = globalconfig.event_purge_days(s)
            if days <= 0:
                return purged
            cutoff = (now or utcnow()) - timedelta(days=days)
            lowest = select(Event.id).order_by(Event.id).limit(batch)
            ids = list(s.scalars(select(Event.id).where(Event.id.in_(lowest), Event.created < cutoff)))
            if ids:
                s.execute(delete(Event).where(Event.id.in_(ids)))
                uow.commit()
        purged += len(ids)
        if len(ids) < batch:
            break
    if purged:
        log.info("purged %d event(s) created before %s UTC (event.purge.delay = %s days)",
                 purged, f"{cutoff:%Y-%m-%d %H:%M:%S}", days)
    return purged


def _add_to_totals(s: Session, ids: list[int]) -> None:
    """Add what the finished jobs ``ids`` count in the metrics to ``expired_job_totals``."""
    chosen = AsyncJob.id.in_(ids)
    durations = histogram_rows(s, AsyncJob.created, chosen)
    runs = histogram_rows(s, AsyncJob.dispatched_at, chosen)
    for command, status, jobs, moved in s.execute(
            select(AsyncJob.command, AsyncJob.status, func.count(), func.coalesce(func.sum(AsyncJob.bytes_done), 0))
            .where(chosen).group_by(AsyncJob.command, AsyncJob.status)):
        row = s.get(ExpiredJobTotals, (command, status), with_for_update=True)
        if row is None:
            row = ExpiredJobTotals(command=command, status=status, jobs=0, bytes_done=0, duration="{}", run="{}")
            s.add(row)
        row.jobs += jobs
        row.bytes_done += int(moved)
        row.duration = json.dumps(add_histogram(json.loads(row.duration), durations.get((command, status), {})))
        row.run = json.dumps(add_histogram(json.loads(row.run), runs.get((command, status), {})))
    s.flush()


def expire_if_due(db: Database, clock=time.monotonic) -> int:
    """The sweep's hook: ``expire_finished`` and ``purge_events`` when ``INTERVAL_S`` seconds have
    passed since this process last ran them (at once in a fresh process); how many jobs were
    expunged. Never raises."""
    now = clock()
    last = _last_run.get(db.url)
    if last is not None and now - last < INTERVAL_S:
        return 0
    _last_run[db.url] = now
    expunged = 0
    try:
        expunged = expire_finished(db)
    except Exception:  # a database outage or a bug here must not stop the rest of the sweep
        log.exception("job expiry: the run failed; the next one retries")
    try:
        purge_events(db)
    except Exception:
        log.exception("event purge: the run failed; the next one retries")
    return expunged
