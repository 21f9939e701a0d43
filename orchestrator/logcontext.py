"""What a log line is about: the job, volume, VM, host and pool it concerns, and the suitability
decisions of the management server.

Fields are bound for a stretch of code with ``bound(job=..., volume=...)`` (a context variable, so
each thread and each task has its own) or passed to one call with ``extra=fields(...)``; the
handler installed by ``orchestrator.logformat.configure`` copies them onto every record, so that
one job can be followed through the API, worker and agent logs by its id. The names are fixed:

- ``job``: the async job's UUID (the agent's command id is the same UUID);
- ``volume``: volume UUID(s); ``vm``: VM name; ``host``: the host whose agent runs the command,
  ``dest_host``: where a VM goes; ``pool``: destination pool name(s), ``src_pool``: source pool(s).

``log_decision`` writes the suitability decision (which hosts or pools were considered and why
each was or was not suitable) to the ``motion.decisions`` logger, as the seed's "management
server logs for decisions on which host and storage pools can be used" asks.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

FIELDS = ("job", "volume", "vm", "host", "dest_host", "pool", "src_pool")
DECISION_LOGGER = "motion.decisions"
MAX_LISTED = 20      # candidates named in a decision's message
MAX_STRUCTURED = 200  # candidates kept in its structured ``candidates`` field

_bound: ContextVar[dict] = ContextVar("motion_log_fields", default={})


def fields(**values: Any) -> dict:
    """The non-empty values among ``values``; a list of one is that one value."""
    out = {}
    for name, value in values.items():
        if isinstance(value, (list, tuple, set)):
            value = sorted(value) if isinstance(value, set) else list(value)
            value = value[0] if len(value) == 1 else (value or None)
        if value is not None and value != "":
            out[name] = value
    return out


@contextmanager
def bound(**values: Any) -> Iterator[dict]:
    """Attach these fields to every log line written inside the block (this thread or task)."""
    token = _bound.set({**_bound.get(), **fields(**values)})
    try:
        yield _bound.get()
    finally:
        _bound.reset(token)


def current() -> dict:
    """The fields bound now."""
    return dict(_bound.get())


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record that does not carry its own (a handler filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _bound.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def job_fields(session: Session, job_id: int) -> dict:
    """The log fields of a job, from what it owns (its ``job_resources`` rows)."""
    from .models import AsyncJob, Host, JobResource, StoragePool, VirtualMachine, Volume

    job = session.get(AsyncJob, job_id)
    if job is None:
        return {}
    rows = list(session.scalars(select(JobResource).where(JobResource.job_id == job_id)
                                .order_by(JobResource.id)))
    volume_ids = [r.resource_id for r in rows if r.resource_type == "Volume"]
    vm_ids = [r.resource_id for r in rows if r.resource_type == "VirtualMachine"]

    def names(model, ids, column="name"):
        if not ids:
            return []
        found = dict(session.execute(select(model.id, getattr(model, column)).where(model.id.in_(ids))).all())
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    dest_pools = [r.dest_pool_id for r in rows if r.resource_type == "Volume" and r.dest_pool_id]
    src_pools = [r.src_pool_id for r in rows if r.resource_type == "Volume" and r.src_pool_id]
    hosts = names(Host, [h for h in (job.host_id, job.dest_host_id) if h])
    return fields(job=job.uuid, volume=names(Volume, volume_ids, "uuid"), vm=names(VirtualMachine, vm_ids),
                  host=hosts[0] if hosts else None, dest_host=hosts[1] if len(hosts) > 1 else None,
                  pool=names(StoragePool, dest_pools), src_pool=names(StoragePool, src_pools))


def _candidate(item: Any) -> dict:
    """A candidate as ``{"name", "suitable", "reasons"}`` from a mapping or a tuple."""
    if isinstance(item, Mapping):
        name, suitable, reasons = item.get("name"), item.get("suitable"), item.get("reasons")
    else:
        name, suitable, *rest = item
        reasons = rest[0] if rest else None
    reasons = [reasons] if isinstance(reasons, str) else list(reasons or [])
    return {"name": str(name), "suitable": bool(suitable), "reasons": [str(r) for r in reasons]}


def _first(items: list, flags: list[bool], wanted: bool, limit: int) -> list[tuple[Any, bool]]:
    """The first ``limit`` items whose flag is ``wanted``."""
    out = []
    for item, flag in zip(items, flags):
        if flag is wanted:
            out.append((item, flag))
            if len(out) == limit:
                break
    return out


def log_decision(kind: str, subject: str, candidates: Iterable[Any], chosen: str | None = None,
                 logger: logging.Logger | None = None, **context: Any) -> dict:
    """Log which ``kind`` (``"hosts"``, ``"pools"``) were considered for ``subject`` and why.

    ``candidates``: mappings ``{"name", "suitable", "reasons"}`` or tuples ``(name, suitable,
    reasons)``, in the order they were ranked. ``chosen`` names the one taken, if any.
    ``context``: log fields (``volume=``, ``vm=``, ``host=``, ``job=``...). One INFO line names up
    to 20 candidates with their reasons; the JSON form carries up to 200 in ``candidates``.
    Returns the record's extra fields (for tests).
    """
    logger = logger or logging.getLogger(DECISION_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return {}
    # Only what is shown is converted: a zone's thousand candidates are counted, not copied.
    raw = list(candidates)
    flags = [bool(c.get("suitable") if isinstance(c, Mapping) else c[1]) for c in raw]
    count, n_suitable = len(raw), sum(flags)
    items = [_candidate(c) for c in raw[:MAX_STRUCTURED]]
    suitable = [_candidate(c)["name"] for c, ok in _first(raw, flags, True, MAX_LISTED + 1)]
    unsuitable = [_candidate(c) for c, ok in _first(raw, flags, False, MAX_LISTED)]
    text = f"suitability of {kind} for {subject}: {count} considered, {n_suitable} suitable"
    if suitable:
        text += " (" + ", ".join(suitable[:MAX_LISTED]) + (", ..." if len(suitable) > MAX_LISTED else "") + ")"
    if chosen:
        text += f"; chosen: {chosen}"
    if unsuitable:
        shown = "; ".join(f"{c['name']}: {', '.join(c['reasons']) or 'unsuitable'}"
                          for c in unsuitable[:MAX_LISTED])
        more = f"; and {count - n_suitable - MAX_LISTED} more" if count - n_suitable > MAX_LISTED else ""
        text += f"; not suitable: {shown}{more}"
    extra = {**fields(**context), "decision": kind, "subject": subject,
             "candidates": items, "considered": count, "suitable": n_suitable}
    if chosen:
        extra["chosen"] = chosen
    if count > MAX_STRUCTURED:
        extra["truncated"] = True
    logger.info(text, extra=extra)
    return extra
