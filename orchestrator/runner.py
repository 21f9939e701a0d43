"""Execution of a migration job: claim it, take its admission slots, dispatch the agent command,
watch it, finish or roll back.

A worker calls ``Runner.run(job_id)`` for every wake-up message. The job row is the truth: the
claim is a lease taken by one conditional UPDATE, so a duplicate message does nothing; the phase
says where to resume. No transaction is held across an agent call. A job that cannot take its
slots stays ``queued`` (nothing sent to the agent); it is woken when a slot frees.
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Callable, Protocol

from sqlalchemy import or_, update
from sqlalchemy.exc import DBAPIError

from . import events, globalconfig, logcontext, slots
from .config import Settings
from .db import Database, cas
from .errors import AgentUnreachable, ConcurrentOperation, MotionError
from .jobkinds import Plan, load_plan
from .models import AsyncJob, utcnow
from .states import CommandState, JobPhase, JobStatus

log = logging.getLogger(__name__)


class AgentPort(Protocol):
    """What the runner needs from a host agent (see docs/agent-protocol.md)."""

    def post_command(self, base_url: str, payload: dict) -> dict: ...
    def get_command(self, base_url: str, command_id: str) -> dict | None: ...
    def abort_command(self, base_url: str, command_id: str) -> dict | None: ...
    def get_volume(self, base_url: str, volume_id: str) -> dict | None: ...


class Runner:
    def __init__(self, db: Database, agent: AgentPort, settings: Settings,
                 wake: Callable[[int], None] | None = None):
        self.db = db
        self.agent = agent
        self.settings = settings
        self.me = settings.worker_id
        self.wake = wake  # publishes a job id; used to wake queued jobs when slots free
        # Set when the process is shutting down: a watched job is left pending with its lease
        # released, and whoever starts next resumes it from its phase.
        self.stopping = threading.Event()

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

    def heartbeat(self, job_id: int, record: dict | None = None,
                  note: str | None = None) -> tuple[bool, str | None]:
        """Extend the lease and record progress. Returns (lease still ours, who asked to cancel).

        A database that does not answer for a moment is not a reason to give the job up: the
        lease is still ours until it expires, so report it as ours and try again next round.
        """
        now = utcnow()
        values = dict(lease_expires_at=now + timedelta(seconds=self.settings.lease_seconds),
                      last_updated=now, status_text=note)
        if record:
            done, total = int(record.get("bytesDone") or 0), int(record.get("bytesTotal") or 0)
            values.update(bytes_done=done, bytes_total=total, rate=float(record.get("rate") or 0.0),
                          eta=record.get("eta"), proc_status=int(100 * done / total) if total else 0)
            if record.get("volumes"):
                values["progress"] = json.dumps(record["volumes"])
        try:
            with self.db.uow() as uow:
                result = uow.session.execute(
                    update(AsyncJob).where(AsyncJob.id == job_id, AsyncJob.lease_owner == self.me,
                                           AsyncJob.status == JobStatus.PENDING)
                    .values(**values).execution_options(synchronize_session=False))
                job = uow.session.get(AsyncJob, job_id)
                cancel = job.cancel_requested_by if job is not None else None
                uow.commit()
        except DBAPIError as exc:
            log.warning("job %s: heartbeat failed, database unavailable: %s", job_id, exc)
            return True, None
        return result.rowcount == 1, cancel

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
            with logcontext.bound(**self._log_fields(job_id)):
                if plan.phase == JobPhase.QUEUED and not self._dispatch(plan):
                    return "queued"
                return self._watch(plan)
        finally:
            self.release(job_id)

    def _log_fields(self, job_id: int) -> dict:
        """Job, volumes, VM, hosts and pools, for every log line of this run."""
        with self.db.uow() as uow:
            return logcontext.job_fields(uow.session, job_id)

    def _load(self, job_id: int) -> Plan | None:
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, job_id)
            if job is None or job.status != JobStatus.PENDING:
                return None
            return load_plan(uow.session, job, self.settings)

    def _dispatch(self, plan: Plan) -> bool:
        """queued -> dispatched if the job's slots are free; the agent deadline (wait x 2) starts
        now, not at submission. False: it stays queued and is woken when a slot frees."""
        with self.db.uow() as uow:
            s = uow.session
            job = s.get(AsyncJob, plan.job_id)
            waiting = slots.admit(s, job)
            if waiting:
                log.info("job %s queued: %s", plan.job_uuid, waiting)
                job.status_text = f"waiting: {waiting}"
                uow.commit()
                return False
            wait = globalconfig.wait_seconds(s)
            now = utcnow()
            try:
                cas(s, AsyncJob, plan.job_id, {"phase": JobPhase.QUEUED, "lease_owner": self.me},
                    {"phase": JobPhase.DISPATCHED, "dispatched_at": now, "status_text": None,
                     "deadline_at": now + timedelta(seconds=2 * wait)}, what=f"job {plan.job_uuid}")
            except ConcurrentOperation:  # our lease ran out while admission waited on a lock
                log.info("job %s: lease lost while taking slots; its new owner goes on", plan.job_uuid)
                return False
            events.record(s, job, plan.event_type, "Started",
                          f"Started migrating {plan.label} (command {plan.command['type']} to the "
                          f"agent of host {plan.host_name})")
            uow.commit()
        log.info("job %s dispatched: slots taken, deadline in %s s (wait*2)", plan.job_uuid, 2 * wait)
        return True

    def _deadline(self, job_id: int):
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, job_id)
            return (job.deadline_at, globalconfig.wait_seconds(uow.session),
                    globalconfig.unreachable_giveup_seconds(uow.session))

    def _watch(self, plan: Plan) -> str:
        """Poll the agent until the command ends, the deadline passes or a cancel arrives.

        An agent that does not answer is retried with backoff; past the deadline it is retried
        for ``agent.unreachable.giveup`` more seconds (the job says so in its status text), then
        the job fails with its volumes where the agent last said they were: on their sources,
        since an agent removes a source only after reporting success is possible.
        """
        deadline, wait, giveup = self._deadline(plan.job_id)
        posted, unreachable_since, last_state, pause = False, None, None, self.settings.poll_interval
        while True:
            now = utcnow()
            if now >= deadline and unreachable_since is None:
                return self._stop(plan, f"the agent on host {plan.host_name} did not finish within "
                                        f"wait*2 = {2 * wait} s")
            if unreachable_since is not None and now >= deadline + timedelta(seconds=giveup):
                return self.roll_back(plan, 534, (
                    f"Failed to migrate {plan.label}: the agent on host {plan.host_name} has not answered "
                    f"since {unreachable_since:%Y-%m-%d %H:%M:%S} UTC, {giveup} s past the deadline "
                    f"(wait*2 = {2 * wait} s); it last reported the command {last_state or 'not yet received'}, "
                    f"so everything stays recorded on its source"))
            note = None
            try:
                record = self.agent.get_command(plan.agent_url, plan.job_uuid) if posted else None
                if record is None:  # not sent yet, or the agent lost it: (re)post, idempotent by id
                    log.info("job %s: sending %s to the agent of host %s at %s", plan.job_uuid,
                             plan.command["type"], plan.host_name, plan.agent_url)
                    record = self.agent.post_command(plan.agent_url, plan.command)
                    posted = True
                unreachable_since, pause = None, self.settings.poll_interval
            except AgentUnreachable as exc:
                log.warning("job %s: agent of host %s unreachable: %s", plan.job_uuid, plan.host_name, exc)
                unreachable_since = unreachable_since or now
                note = (f"the agent of host {plan.host_name} has not answered since "
                        f"{unreachable_since:%Y-%m-%d %H:%M:%S} UTC; retrying")
                record, pause = None, min(pause * 2, 30.0)
            if record is not None:
                last_state = record.get("state")
                if last_state == CommandState.SUCCEEDED:
                    return self.finish(plan, record)
                if last_state in (CommandState.FAILED, CommandState.ABORTED):
                    return self.roll_back(plan, 530, f"Failed to migrate {plan.label}: the agent on "
                                          f"host {plan.host_name} reported: {record.get('error') or last_state}")
            ours, cancelled_by = self.heartbeat(plan.job_id, record, note)
            if not ours:
                log.warning("job %s: lease lost; another worker owns it now", plan.job_uuid)
                return "lease-lost"
            if cancelled_by:
                return self._stop(plan, f"cancelled by {cancelled_by}")
            if self.stopping.wait(pause):
                log.info("job %s: left to the next worker, this one is stopping", plan.job_uuid)
                return "stopped"

    def _stop(self, plan: Plan, why: str) -> str:
        """Abort at the agent and believe only what it then says: finished -> keep the result;
        otherwise roll back, saying whether the agent confirmed the sources intact."""
        log.warning("job %s: aborting the command at the agent of host %s: %s", plan.job_uuid, plan.host_name, why)
        try:
            record = self.agent.abort_command(plan.agent_url, plan.job_uuid)
        except AgentUnreachable:
            record = None
        if record is not None and record.get("state") == CommandState.SUCCEEDED:
            return self.finish(plan, record)  # it finished just as we gave up: keep the result
        return self.roll_back(plan, 530, f"Failed to migrate {plan.label}: {why}; the command was "
                              f"aborted; {self._sources_note(plan)}")

    def _sources_note(self, plan: Plan) -> str:
        """Ask the agent where each moving volume's data is, to say so in the job's result."""
        missing = []
        for move in plan.moves:
            try:
                where = self.agent.get_volume(plan.agent_url, move.uuid)
            except (AgentUnreachable, MotionError):
                return "the agent could not be asked whether the sources are intact"
            pools = {loc.get("pool") for loc in (where or {}).get("locations", [])}
            if plan.source_pool_uuids.get(move.volume_id) not in pools:
                missing.append(move.name)
        if missing:
            return f"the agent does not report volume(s) {', '.join(missing)} on their source pool"
        return "everything stays on its source, confirmed by the agent"

    # -- outcomes --------------------------------------------------------------------------
    def finish(self, plan: Plan, record: dict) -> str:
        with self.db.uow() as uow:
            s = uow.session
            result = plan.apply_success(s, record)
            self._complete(s, plan, JobStatus.SUCCEEDED, 0, result,
                           bytes_done=int(record.get("bytesTotal") or 0), proc_status=100)
            events.record(s, s.get(AsyncJob, plan.job_id), plan.event_type, "Completed",
                          f"Successfully completed migrating {plan.label}")
            uow.commit()
        log.info("job %s succeeded: %s moved", plan.job_uuid, plan.label)
        self._wake_queued(plan)
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
        self._wake_queued(plan)
        return "failed"

    def _complete(self, s, plan: Plan, status: int, code: int, result: dict, **extra) -> None:
        now = utcnow()
        cas(s, AsyncJob, plan.job_id, {"status": JobStatus.PENDING, "lease_owner": self.me},
            {"status": status, "phase": JobPhase.DONE, "result_code": code,
             "result": json.dumps(result), "completed_at": now, "last_updated": now,
             "lease_owner": None, "lease_expires_at": None, "eta": None, "status_text": None, **extra},
            what=f"job {plan.job_uuid}")

    def _wake_queued(self, plan: Plan) -> None:
        """A slot freed: wake the oldest queued jobs of the hosts this job used."""
        if self.wake is None:
            return
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, plan.job_id)
            waiting = slots.queued_jobs_of_hosts(uow.session, slots.job_hosts(job))
        for job_id in waiting:
            try:
                self.wake(job_id)
            except Exception:  # the scheduler's sweep wakes them too
                log.exception("could not wake queued job %s", job_id)
