"""Execution of a migration job: claim it, dispatch the agent command, watch it, finish or roll back.

A worker calls ``Runner.run(job_id)`` for every wake-up message. The job row is the truth: the
claim is a lease taken by one conditional UPDATE, so a duplicate message does nothing; the
phase says where to resume. No transaction is held across an agent call.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Protocol

from sqlalchemy import or_, update

from . import events, globalconfig
from .config import Settings
from .db import Database, cas
from .errors import AgentUnreachable
from .jobkinds import Plan, load_plan
from .models import AsyncJob, utcnow
from .states import CommandState, JobPhase, JobStatus

log = logging.getLogger(__name__)


class AgentPort(Protocol):
    """What the runner needs from a host agent (see docs/agent-protocol.md)."""

    def post_command(self, base_url: str, payload: dict) -> dict: ...
    def get_command(self, base_url: str, command_id: str) -> dict | None: ...
    def abort_command(self, base_url: str, command_id: str) -> dict | None: ...


class Runner:
    def __init__(self, db: Database, agent: AgentPort, settings: Settings):
        self.db = db
        self.agent = agent
        self.settings = settings
        self.me = settings.worker_id

    # -- claim and lease -------------------------------------------------------------------
    def claim(self, job_id: int) -> bool:
        """Take the job's lease if it is pending and nobody holds a live lease on it."""
        now = utcnow()
        with self.db.uow() as uow:
            result = uow.session.execute(
                update(AsyncJob)
                .where(AsyncJob.id == job_id, AsyncJob.status == JobStatus.PENDING,
                       or_(AsyncJob.lease_owner.is_(None), AsyncJob.lease_expires_at < now))
                .values(lease_owner=self.me, attempt=AsyncJob.attempt + 1,
                        lease_expires_at=now + timedelta(seconds=self.settings.lease_seconds))
                .execution_options(synchronize_session=False))
            uow.commit()
        return result.rowcount == 1

    def heartbeat(self, job_id: int, record: dict | None = None) -> bool:
        """Extend the lease and record progress; False when the lease is no longer ours."""
        now = utcnow()
        values = dict(lease_expires_at=now + timedelta(seconds=self.settings.lease_seconds),
                      last_updated=now)
        if record:
            values.update(bytes_done=int(record.get("bytesDone") or 0),
                          bytes_total=int(record.get("bytesTotal") or 0))
        with self.db.uow() as uow:
            result = uow.session.execute(
                update(AsyncJob).where(AsyncJob.id == job_id, AsyncJob.lease_owner == self.me,
                                       AsyncJob.status == JobStatus.PENDING)
                .values(**values).execution_options(synchronize_session=False))
            uow.commit()
        return result.rowcount == 1

    def release(self, job_id: int) -> None:
        with self.db.uow() as uow:
            uow.session.execute(update(AsyncJob).where(AsyncJob.id == job_id, AsyncJob.lease_owner == self.me)
                                .values(lease_owner=None, lease_expires_at=None)
                                .execution_options(synchronize_session=False))
            uow.commit()

    # -- the job ---------------------------------------------------------------------------
    def run(self, job_id: int) -> str:
        """Drive one job as far as it goes; returns what happened (for logs and tests)."""
        if not self.claim(job_id):
            return "skipped"
        try:
            plan = self._load(job_id)
            if plan is None:
                return "skipped"
            if plan.phase == JobPhase.QUEUED:
                self._dispatch(plan)
            return self._watch(plan)
        finally:
            self.release(job_id)

    def _load(self, job_id: int) -> Plan | None:
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, job_id)
            if job is None or job.status != JobStatus.PENDING:
                return None
            return load_plan(uow.session, job, self.settings)

    def _dispatch(self, plan: Plan) -> None:
        """queued -> dispatched; the agent deadline (wait x 2) starts now, not at submission."""
        with self.db.uow() as uow:
            s = uow.session
            wait = globalconfig.wait_seconds(s)
            now = utcnow()
            cas(s, AsyncJob, plan.job_id, {"phase": JobPhase.QUEUED, "lease_owner": self.me},
                {"phase": JobPhase.DISPATCHED, "dispatched_at": now,
                 "deadline_at": now + timedelta(seconds=2 * wait)}, what=f"job {plan.job_uuid}")
            events.record(s, s.get(AsyncJob, plan.job_id), plan.event_type, "Started",
                          f"Started migrating {plan.label} (command {plan.command['type']} to the "
                          f"agent of host {plan.host_name})")
            uow.commit()

    def _deadline(self, job_id: int):
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, job_id)
            return job.deadline_at, globalconfig.wait_seconds(uow.session)

    def _watch(self, plan: Plan) -> str:
        deadline, wait = self._deadline(plan.job_id)
        posted = False
        while True:
            if utcnow() >= deadline:
                return self._time_out(plan, wait)
            try:
                record = self.agent.get_command(plan.agent_url, plan.job_uuid) if posted else None
                if record is None:  # not sent yet, or the agent lost it: (re)post, idempotent by id
                    record = self.agent.post_command(plan.agent_url, plan.command)
                    posted = True
            except AgentUnreachable as exc:
                log.warning("job %s: agent of host %s unreachable: %s", plan.job_uuid, plan.host_name, exc)
                record = None
            if record is not None:
                state = record.get("state")
                if state == CommandState.SUCCEEDED:
                    return self.finish(plan, record)
                if state in (CommandState.FAILED, CommandState.ABORTED):
                    return self.roll_back(plan, 530, f"Failed to migrate {plan.label}: the agent on "
                                          f"host {plan.host_name} reported: {record.get('error') or state}")
            if not self.heartbeat(plan.job_id, record):
                log.warning("job %s: lease lost; another worker owns it now", plan.job_uuid)
                return "lease-lost"
            time.sleep(self.settings.poll_interval)

    def _time_out(self, plan: Plan, wait: int) -> str:
        """Past wait x 2: abort at the agent and believe only what it then says."""
        try:
            record = self.agent.abort_command(plan.agent_url, plan.job_uuid)
        except AgentUnreachable:
            record = None
        if record is not None and record.get("state") == CommandState.SUCCEEDED:
            return self.finish(plan, record)  # it finished just as we gave up: keep the result
        return self.roll_back(plan, 530, f"Failed to migrate {plan.label}: the agent on host "
                              f"{plan.host_name} did not finish within wait*2 = {2 * wait} s; the "
                              f"command was aborted and everything stays on its source")

    # -- outcomes --------------------------------------------------------------------------
    def finish(self, plan: Plan, record: dict) -> str:
        with self.db.uow() as uow:
            s = uow.session
            result = plan.apply_success(s, record)
            self._complete(s, plan, JobStatus.SUCCEEDED, 0, result,
                           bytes_done=int(record.get("bytesTotal") or 0))
            events.record(s, s.get(AsyncJob, plan.job_id), plan.event_type, "Completed",
                          f"Successfully completed migrating {plan.label}")
            uow.commit()
        log.info("job %s succeeded: %s moved", plan.job_uuid, plan.label)
        return "succeeded"

    def roll_back(self, plan: Plan, code: int, text: str) -> str:
        with self.db.uow() as uow:
            s = uow.session
            plan.apply_failure(s)
            self._complete(s, plan, JobStatus.FAILED, code, {"errorcode": code, "errortext": text})
            events.record(s, s.get(AsyncJob, plan.job_id), plan.event_type, "Completed",
                          f"Error while migrating {plan.label}: {text}", level="ERROR")
            uow.commit()
        log.warning("job %s failed: %s", plan.job_uuid, text)
        return "failed"

    def _complete(self, s, plan: Plan, status: int, code: int, result: dict, **extra) -> None:
        now = utcnow()
        cas(s, AsyncJob, plan.job_id, {"status": JobStatus.PENDING, "lease_owner": self.me},
            {"status": status, "phase": JobPhase.DONE, "result_code": code,
             "result": json.dumps(result), "completed_at": now, "last_updated": now,
             "lease_owner": None, "lease_expires_at": None, **extra},
            what=f"job {plan.job_uuid}")

