"""cancelAsyncJob (an extension to CloudStack's API): stop a migration and guarantee its rollback.

A queued job is cancelled at once in one transaction (nothing was sent to an agent), and the
refused jobs of its hosts it was keeping waiting are woken (``wake``, after the commit). A
dispatched job gets a cancel request; its worker sees it at the next heartbeat, aborts the agent
command (which removes partial destination copies) and rolls back. A finishing or finished job
cannot be cancelled. Asking twice gives the same answer.
"""
from __future__ import annotations

import json

import logging
from typing import Callable

from . import events, slots
from .config import Settings
from .db import Database, cas
from .errors import ConcurrentOperation, InvalidParameter
from .jobkinds import load_plan
from .models import AsyncJob, User, utcnow
from .motion import Caller
from .states import JobPhase, JobStatus

log = logging.getLogger(__name__)


def cancel_job(db: Database, settings: Settings, caller: Caller, job_id: int,
               wake: Callable[[int], None] | None = None) -> str:
    """Returns "cancelled" (done now) or "requested" (the worker finishes the rollback)."""
    with db.uow() as uow:
        s = uow.session
        job = s.get(AsyncJob, job_id)
        who = s.get(User, caller.user_id).username
        if job.status != JobStatus.PENDING:
            raise InvalidParameter(f"Job {job.uuid} has already finished (jobstatus {job.status}); "
                                   f"it cannot be cancelled")
        if job.phase == JobPhase.FINISHING:
            raise InvalidParameter(f"Job {job.uuid} is finishing (the agent has completed the "
                                   f"migration); it cannot be cancelled")
        if job.phase == JobPhase.QUEUED:
            plan = load_plan(s, job, settings)
            text = f"Failed to migrate {plan.label}: cancelled by {who} while queued"
            hosts = slots.lock(s, plan.host_ids)  # hosts before the job's row, as every writer
            try:
                now = utcnow()
                cas(s, AsyncJob, job.id, {"status": JobStatus.PENDING, "phase": JobPhase.QUEUED},
                    {"status": JobStatus.FAILED, "phase": JobPhase.DONE, "result_code": 530,
                     "result": json.dumps({"errorcode": 530, "errortext": text}),
                     "completed_at": now, "last_updated": now, "cancel_requested_at": now,
                     "cancel_requested_by": who, "lease_owner": None, "lease_expires_at": None})
            except ConcurrentOperation:
                s.rollback()
                return cancel_job(db, settings, caller, job_id, wake)  # it was dispatched meanwhile
            plan.apply_failure(s)
            events.record(s, job, plan.event_type, "Completed", f"Error while migrating {plan.label}: "
                          f"{text}", level="ERROR")
            woken = slots.wake_refused(s, hosts) if wake is not None else []
            uow.commit()
            for queued in woken:  # younger jobs refused while this one waited ahead of them
                try:
                    wake(queued)
                except Exception:  # the scheduler's sweep wakes them too
                    log.exception("could not wake queued job %s", queued)
            return "cancelled"
        if job.cancel_requested_at is None:
            job.cancel_requested_at = utcnow()
            job.cancel_requested_by = who
            uow.commit()
        return "requested"
