"""Audit events (CloudStack's ``event`` table): Scheduled, Started and Completed per operation.

Unlike CloudStack 4.4, which recorded only Scheduled for VOLUME.MIGRATE, every storage-motion
operation records all three, linked by ``start_id`` to the Scheduled event.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from .models import AsyncJob, Event

VOLUME_MIGRATE = "VOLUME.MIGRATE"
VM_MIGRATE = "VM.MIGRATE"


def record(session: Session, job: AsyncJob, type_: str, state: str, description: str,
           level: str = "INFO") -> Event:
    event = Event(type=type_, state=state, level=level, description=description,
                  account_id=job.account_id, user_id=job.user_id, job_id=job.id,
                  start_id=job.start_event_id)
    session.add(event)
    session.flush()
    return event
