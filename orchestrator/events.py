"""Audit events (CloudStack's ``event`` table): Scheduled, Started and Completed per operation.

Unlike CloudStack 4.4, which recorded only Scheduled for VOLUME.MIGRATE, every storage-motion
operation records all three, linked by ``start_id`` to the Scheduled event.
"""
from __future__ import annotations

from sqlalchemy import bindparam, insert
from sqlalchemy.orm import Session

from .db import fast_execute, with_defaults
from .models import AsyncJob, Event

VOLUME_MIGRATE = "VOLUME.MIGRATE"
VM_MIGRATE = "VM.MIGRATE"
# Repairs by the reconciler (orchestrator.reconcile, orchestrator.truth): the database was brought
# in line with the agents' truth. Recorded with ``record_system``, level WARN, state Completed.
VOLUME_RECONCILE = "VOLUME.RECONCILE"
VM_RECONCILE = "VM.RECONCILE"


def record(session: Session, job: AsyncJob, type_: str, state: str, description: str,
           level: str = "INFO") -> Event:
    event = Event(type=type_, state=state, level=level, description=description,
                  account_id=job.account_id, user_id=job.user_id, job_id=job.id,
                  start_id=job.start_event_id)
    session.add(event)
    session.flush()
    return event


# built once, every column a plain parameter: uuid and created are filled in from the columns'
# defaults by ``add`` (``db.with_defaults``), so the statement can run on the driver
_ADD_COLUMNS = ("type", "state", "level", "description", "account_id", "user_id", "job_id", "start_id", "uuid",
                "created")
_ADD = insert(Event.__table__).values({c: bindparam(c, type_=Event.__table__.c[c].type) for c in _ADD_COLUMNS})


def add(session: Session, job: AsyncJob, type_: str, state: str, description: str, level: str = "INFO") -> None:
    """``record`` for a caller that needs nothing back: one INSERT on the session's connection,
    without the unit of work's bookkeeping (the workers' hot path)."""
    fast_execute(session, _ADD, with_defaults(Event.__table__, {
        "type": type_, "state": state, "level": level, "description": description, "account_id": job.account_id,
        "user_id": job.user_id, "job_id": job.id, "start_id": job.start_event_id}))


def record_system(session: Session, account_id: int, type_: str, description: str,
                  level: str = "WARN") -> Event | None:
    """An event the system records on its own (reconciler repairs), under the first user of the
    object's account, since every event names a user."""
    from sqlalchemy import select

    from .models import User

    user_id = session.scalar(select(User.id).where(User.account_id == account_id).order_by(User.id).limit(1))
    if user_id is None:
        user_id = session.scalar(select(User.id).order_by(User.id).limit(1))
    if user_id is None:
        return None
    event = Event(type=type_, state="Completed", level=level, description=description,
                  account_id=account_id, user_id=user_id)
    session.add(event)
    session.flush()
    return event
