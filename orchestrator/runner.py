"""Execution of a migration job: claim it, take its admission slots, dispatch the agent command,
watch it, finish or roll back.

A worker calls ``Runner.run(job_id)`` for every wake-up message. The job row is the truth: the
claim is a lease taken by one conditional UPDATE, so a duplicate message does nothing; the phase
says where to resume. No transaction is held across an agent call. A job that cannot take its
slots stays ``queued`` (nothing sent to the agent) with its lease released; it is woken when a
slot of its hosts frees (see ``orchestrator.slots``).

A job costs two transactions when its command ends quickly: one loads, admits, and claims and
records the dispatch in one UPDATE (the hosts' rows are locked before the job's row, the order
every writer of both follows); one records the outcome, frees the slot and picks the refused jobs
to wake - 12 statements for a volume job (``tests/integration/test_runner_costs_pg.py``), the hot
ones built once and run on the session's connection. Watching
in between heartbeats at most once a poll interval; the first looks at the agent come quickly
(10 ms, 50 ms) and a look is aimed at the agent's ETA, and an agent call that itself waited
for the command (the agent's ``?wait=``, docs/agent-protocol.md) counts as part of the pause.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from typing import Callable, Protocol

from sqlalchemy import bindparam, or_, update
from sqlalchemy.exc import DBAPIError

from . import events, globalconfig, logcontext, slots
from .config import Settings
from .db import Database, cas, fast_execute
from .errors import AgentUnreachable, ConcurrentOperation, MotionError
from .jobkinds import Plan, load_job, load_plan
from .models import AsyncJob, Host, utcnow
from .states import CommandState, JobPhase, JobStatus

log = logging.getLogger(__name__)

QUICK_LOOKS = (0.01, 0.05)  # seconds before the first looks at a command; then the poll interval

# The claim: the job's lease, if it is pending and nobody holds a live lease on it. Built once
# (building an UPDATE per job cost more than running it); run on the session's connection.
CLAIM = (update(AsyncJob)
         .where(AsyncJob.id == bindparam("job_id"), AsyncJob.status == JobStatus.PENDING,
                or_(AsyncJob.lease_owner.is_(None), AsyncJob.lease_expires_at < bindparam("now")))
         .values(lease_owner=bindparam("me"), attempt=AsyncJob.attempt + 1, lease_expires_at=bindparam("until")))
CLAIM_RETURNING = CLAIM.returning(AsyncJob.phase, AsyncJob.deadline_at)
# The claim and the dispatch of a queued job that admission lets go, in one UPDATE: a second
# UPDATE of the row the claim wrote in the same transaction would also make PostgreSQL check the
# job's foreign keys again (the row is its transaction's own). Nothing matches when the job is no
# longer queued or someone holds a live lease; the plain claim then decides.
CLAIM_DISPATCH = (CLAIM.where(AsyncJob.phase == JobPhase.QUEUED)
                  .values(phase=JobPhase.DISPATCHED, dispatched_at=bindparam("now"), status_text=None,
                          deadline_at=bindparam("deadline")))


class AgentPort(Protocol):
    """What the runner needs from a host agent (see docs/agent-protocol.md)."""

    def post_command(self, base_url: str, payload: dict) -> dict: ...
    def get_command(self, base_url: str, command_id: str) -> dict | None: ...
    def abort_command(self, base_url: str, command_id: str) -> dict | None: ...
    def get_volume(self, base_url: str, volume_id: str) -> dict | None: ...


class Runner:
    """Runs one job at a time. A worker process that holds several jobs in flight (Celery's
    threads pool, ``workers.app.Runtime``) has one Runner per thread: the agent client's HTTP
    session is not shared between threads, and each Runner holds leases under its own ``owner``
    name, so two threads of one process never both believe they hold the same job."""

    def __init__(self, db: Database, agent: AgentPort, settings: Settings,
                 wake: Callable[[int], None] | None = None, owner: str | None = None,
                 stopping: threading.Event | None = None):
        self.db = db
        self.agent = agent
        self.settings = settings
        self.me = owner or settings.worker_id  # the lease owner written on the jobs this runner holds
        self.wake = wake  # publishes a job id; used to wake refused jobs when slots free
        # Set when the process is shutting down: a watched job is left pending with its lease
        # released, and whoever starts next resumes it from its phase. One event for all the
        # runners of a process.
        self.stopping = stopping if stopping is not None else threading.Event()

    # -- claim and lease -------------------------------------------------------------------
    def _claim_params(self, job_id: int) -> dict:
        now = utcnow()
        return {"job_id": job_id, "now": now, "me": self.me,
                "until": now + timedelta(seconds=self.settings.lease_seconds)}

    def claim(self, job_id: int) -> bool:
        """Take the job's lease if it is pending and nobody holds a live lease on it."""
        with self.db.uow() as uow:
            result = uow.session.connection().execute(CLAIM, self._claim_params(job_id))
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
                row = uow.session.execute(
                    update(AsyncJob).where(AsyncJob.id == job_id, AsyncJob.lease_owner == self.me,
                                           AsyncJob.status == JobStatus.PENDING)
                    .values(**values).returning(AsyncJob.cancel_requested_by)
                    .execution_options(synchronize_session=False)).first()
                uow.commit()
        except DBAPIError as exc:
            log.warning("job %s: heartbeat failed, database unavailable: %s", job_id, exc)
            return True, None
        return row is not None, (row[0] if row is not None else None)

    def release(self, job_id: int) -> None:
        with self.db.uow() as uow:
            uow.session.execute(update(AsyncJob).where(AsyncJob.id == job_id, AsyncJob.lease_owner == self.me)
                                .values(lease_owner=None, lease_expires_at=None)
                                .execution_options(synchronize_session=False))
            uow.commit()

    # -- the job ---------------------------------------------------------------------------
    def run(self, job_id: int) -> str:
        """Drive one job as far as it goes; returns what happened (for logs and tests)."""
        try:
            started = self._begin(job_id)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The pool pings a connection only after it has been idle (workers.app): one that
            # died in use fails this transaction, which changed nothing; once more on a new one.
            log.warning("job %s: database connection lost, trying again: %s", job_id, exc)
            started = self._begin(job_id)
        if isinstance(started, str):
            return started
        plan, outcome = started, None
        try:
            with logcontext.bound(**plan.log_fields):
                outcome = self._watch(plan)
                return outcome
        finally:
            if outcome not in ("succeeded", "failed", "lease-lost"):  # those left no lease of ours
                self.release(job_id)

    def _begin(self, job_id: int) -> Plan | str:
        """One transaction: claim, load, and for a queued job admit and record the dispatch (or
        the refusal, which releases the lease). Returns the plan to watch, or what happened.

        A queued job's hosts are locked and its admission looked at before the claim; a job
        admission lets go is claimed and dispatched by one UPDATE (``CLAIM_DISPATCH``)."""
        woken: list[int] = []
        with self.db.uow() as uow:
            s = uow.session
            job, loaded = load_job(s, job_id)
            if job is None or job.status != JobStatus.PENDING or (
                    job.lease_owner is not None and job.lease_expires_at is not None
                    and job.lease_expires_at >= utcnow()):
                return "skipped"  # a duplicate wake-up: finished, or someone holds it (the claim decides)
            plan = load_plan(s, job, self.settings, loaded)
            if plan is None:
                return "skipped"
            hosts = admission = None
            if job.phase == JobPhase.QUEUED:
                # the hosts' rows before the job's row: a finishing job locks them, then wakes
                # refused jobs (their rows); the other order could deadlock with it
                hosts = slots.lock(s, plan.host_ids, plan.pool_ids)
                admission = self._admission(s, job, plan, hosts)
                if admission[0] is None and self._claim_dispatch(s, plan):
                    with logcontext.bound(**plan.log_fields):
                        woken = self._dispatched(s, plan, hosts, admission[1])
                    uow.commit()
                    self._publish(woken)
                    return plan
            claimed = fast_execute(s, CLAIM_RETURNING, self._claim_params(job_id)).first()
            if claimed is None:
                return "skipped"
            plan.phase, plan.deadline_at = claimed
            with logcontext.bound(**plan.log_fields):
                if plan.phase == JobPhase.QUEUED:
                    if hosts is None:  # it was dispatched when loaded, queued now: cannot happen
                        return "skipped"
                    try:
                        dispatched, woken = self._admit_in(s, job, plan, hosts, admission)
                    except ConcurrentOperation:
                        return "skipped"
                    if not dispatched:
                        uow.commit()
                        return "queued"
                uow.commit()
        self._publish(woken)
        return plan

    def _claim_dispatch(self, s, plan: Plan) -> bool:
        """Claim the queued job and record its dispatch in one statement (``CLAIM_DISPATCH``);
        False when it is no longer queued or someone holds a live lease on it."""
        params = self._claim_params(plan.job_id)
        params["deadline"] = params["now"] + timedelta(seconds=2 * plan.wait)
        if fast_execute(s, CLAIM_DISPATCH, params).rowcount != 1:
            return False
        plan.phase, plan.deadline_at = JobPhase.DISPATCHED, params["deadline"]
        return True

    def _load(self, job_id: int) -> Plan | None:
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, job_id)
            if job is None or job.status != JobStatus.PENDING:
                return None
            return load_plan(uow.session, job, self.settings)

    def _dispatch(self, plan: Plan) -> bool:
        """queued -> dispatched for a job whose lease we hold (claimed apart), in its own
        transaction. False: it stays queued, its lease released, and is woken when a slot frees."""
        with self.db.uow() as uow:
            s = uow.session
            job = s.get(AsyncJob, plan.job_id)
            try:
                dispatched, woken = self._admit_in(s, job, plan)
            except ConcurrentOperation:
                return False
            uow.commit()
        self._publish(woken)
        return dispatched

    def _admission(self, s, job: AsyncJob, plan: Plan, hosts: list | None = None) -> tuple[str | None, set[int]]:
        """Why the job must wait (None: it may go now), and the hosts that refused jobs wait for,
        seen under the hosts' locks (only those need ``wake_refused`` after a dispatch)."""
        refused: set[int] = set()
        return slots.admit(s, job, plan.pool_ids, hosts, refused), refused

    def _admit_in(self, s, job: AsyncJob, plan: Plan, hosts: list[Host] | None = None,
                  admission: tuple[str | None, set[int]] | None = None) -> tuple[bool, list[int]]:
        """Take the slots or refuse, inside the caller's transaction, for a job whose lease we
        hold (``admission``: what ``_admission`` said under the same locks, else looked at now).
        The agent deadline (wait x 2) starts now, not at submission."""
        waiting, refused = admission if admission is not None else self._admission(s, job, plan, hosts)
        if waiting:
            log.info("job %s queued: %s", plan.job_uuid, waiting)
            slots.refuse(s, plan.job_id, self.me, waiting)
            return False, []
        now = utcnow()
        deadline = now + timedelta(seconds=2 * plan.wait)
        try:
            cas(s, AsyncJob, plan.job_id, {"phase": JobPhase.QUEUED, "lease_owner": self.me},
                {"phase": JobPhase.DISPATCHED, "dispatched_at": now, "status_text": None,
                 "deadline_at": deadline}, what=f"job {plan.job_uuid}")
        except ConcurrentOperation:  # our lease ran out while admission waited on a lock
            log.info("job %s: lease lost while taking slots; its new owner goes on", plan.job_uuid)
            raise
        plan.phase, plan.deadline_at = JobPhase.DISPATCHED, deadline
        return True, self._dispatched(s, plan, hosts, refused)

    def _dispatched(self, s, plan: Plan, hosts: list | None, refused: set[int]) -> list[int]:
        """After the dispatch is written: its event, and the refused jobs of its hosts to wake.
        Dispatching with a slot of a host still free wakes the next refused job of that host: it
        may have been refused only because this (older) job was being admitted at the same time."""
        events.add(s, plan.owner, plan.event_type, "Started",
                      f"Started migrating {plan.label} (command {plan.command['type']} to the "
                      f"agent of host {plan.host_name})")
        woken = slots.wake_refused(s, hosts if hosts is not None else [s.get(Host, h) for h in plan.host_ids],
                                   only=refused)
        log.info("job %s dispatched: slots taken, deadline in %s s (wait*2)", plan.job_uuid, 2 * plan.wait)
        return woken

    def _giveup_seconds(self) -> int:
        with self.db.uow() as uow:
            return globalconfig.unreachable_giveup_seconds(uow.session)

    def _watch(self, plan: Plan) -> str:
        """Poll the agent until the command ends, the deadline passes or a cancel arrives.

        An agent that does not answer is retried with backoff; past the deadline it is retried
        for ``agent.unreachable.giveup`` more seconds (the job says so in its status text), then
        the job fails with its volumes where the agent last said they were: on their sources,
        since an agent removes a source only after reporting success is possible.
        """
        deadline, wait, giveup = plan.deadline_at, plan.wait, None
        interval = self.settings.poll_interval
        posted, unreachable_since, last_state, backoff = False, None, None, interval
        looks, last_beat = 0, time.monotonic()  # the claim has just renewed the lease
        while True:
            now = utcnow()
            if now >= deadline and unreachable_since is None:
                return self._stop(plan, f"the agent on host {plan.host_name} did not finish within "
                                        f"wait*2 = {2 * wait} s")
            if unreachable_since is not None and giveup is None:
                giveup = self._giveup_seconds()
            if unreachable_since is not None and now >= deadline + timedelta(seconds=giveup):
                return self.roll_back(plan, 534, (
                    f"Failed to migrate {plan.label}: the agent on host {plan.host_name} has not answered "
                    f"since {unreachable_since:%Y-%m-%d %H:%M:%S} UTC, {giveup} s past the deadline "
                    f"(wait*2 = {2 * wait} s); it last reported the command {last_state or 'not yet received'}, "
                    f"so everything stays recorded on its source"))
            note = None
            called = time.monotonic()
            try:
                record = self.agent.get_command(plan.agent_url, plan.job_uuid) if posted else None
                if record is None:  # not sent yet, or the agent lost it: (re)post, idempotent by id
                    log.info("job %s: sending %s to the agent of host %s at %s", plan.job_uuid,
                             plan.command["type"], plan.host_name, plan.agent_url)
                    record = self.agent.post_command(plan.agent_url, plan.command)
                    posted = True
                unreachable_since, backoff = None, interval
                pause = QUICK_LOOKS[looks] if looks < len(QUICK_LOOKS) else interval
                looks += 1
                eta = record.get("eta") if record is not None else None
                if isinstance(eta, (int, float)) and eta > 0:
                    pause = min(pause, max(float(eta), QUICK_LOOKS[0]))  # look when it should be done
            except AgentUnreachable as exc:
                log.warning("job %s: agent of host %s unreachable: %s", plan.job_uuid, plan.host_name, exc)
                unreachable_since = unreachable_since or now
                note = (f"the agent of host {plan.host_name} has not answered "
                        f"since {unreachable_since:%Y-%m-%d %H:%M:%S} UTC; retrying")
                # back off, but look again (and so renew the lease) well before the lease runs out
                record, backoff = None, min(backoff * 2, 30.0, self.settings.lease_seconds / 3)
                pause = backoff
            if record is not None:
                last_state = record.get("state")
                if last_state == CommandState.SUCCEEDED:
                    return self.finish(plan, record)
                if last_state in (CommandState.FAILED, CommandState.ABORTED):
                    return self.roll_back(plan, 530, f"Failed to migrate {plan.label}: the agent on "
                                          f"host {plan.host_name} reported: {record.get('error') or last_state}")
            # The lease, progress and cancel requests at most once a poll interval (quick looks
            # in between cost an agent call, not a transaction).
            if note is not None or time.monotonic() - last_beat >= interval:
                ours, cancelled_by = self.heartbeat(plan.job_id, record, note)
                last_beat = time.monotonic()
                if not ours:
                    log.warning("job %s: lease lost; another worker owns it now", plan.job_uuid)
                    return "lease-lost"
                if cancelled_by:
                    return self._stop(plan, f"cancelled by {cancelled_by}")
            # an agent that waited for the command (?wait=) has used the pause already
            if self.stopping.wait(max(0.0, pause - (time.monotonic() - called))):
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
        """One transaction: the objects where the agent put them, the job succeeded, its slot
        freed and the refused jobs of its hosts picked to wake (published after commit)."""
        try:
            return self._finish(plan, record)
        except ConcurrentOperation:
            return self._lost(plan, "succeeded")

    def _lost(self, plan: Plan, outcome: str) -> str:
        """Our lease ran out before we could record the outcome (the transaction changed nothing):
        the worker that holds the job now asks the agent again and records it."""
        log.warning("job %s: lease lost before recording that it %s; its new owner records the outcome",
                    plan.job_uuid, outcome)
        return "lease-lost"

    def _finish(self, plan: Plan, record: dict) -> str:
        with self.db.uow() as uow:
            s = uow.session
            # Hosts, then pools, before rows, as admission does: the volumes' moves change their
            # pools' allocated_bytes (triggers of migration 0008), in this order too.
            refused: set[int] = set()
            hosts = slots.lock(s, plan.host_ids, plan.pool_ids, refused)
            result = plan.apply_success(s, record)
            self._complete(s, plan, JobStatus.SUCCEEDED, 0, result,
                           bytes_done=int(record.get("bytesTotal") or 0), proc_status=100)
            events.add(s, plan.owner, plan.event_type, "Completed",
                          f"Successfully completed migrating {plan.label}")
            woken = slots.wake_refused(s, hosts, only=refused)
            uow.commit()
        log.info("job %s succeeded: %s moved", plan.job_uuid, plan.label)
        self._publish(woken)
        return "succeeded"

    def roll_back(self, plan: Plan, code: int, text: str) -> str:
        try:
            return self._roll_back(plan, code, text)
        except ConcurrentOperation:
            return self._lost(plan, "failed")

    def _roll_back(self, plan: Plan, code: int, text: str) -> str:
        with self.db.uow() as uow:
            s = uow.session
            hosts = slots.lock(s, plan.host_ids)
            plan.apply_failure(s)
            self._complete(s, plan, JobStatus.FAILED, code, {"errorcode": code, "errortext": text})
            events.add(s, plan.owner, plan.event_type, "Completed",
                          f"Error while migrating {plan.label}: {text}", level="ERROR")
            woken = slots.wake_refused(s, hosts)
            uow.commit()
        log.warning("job %s failed: %s", plan.job_uuid, text)
        self._publish(woken)
        return "failed"

    def _complete(self, s, plan: Plan, status: int, code: int, result: dict, **extra) -> None:
        now = utcnow()
        cas(s, AsyncJob, plan.job_id, {"status": JobStatus.PENDING, "lease_owner": self.me},
            {"status": status, "phase": JobPhase.DONE, "result_code": code,
             "result": json.dumps(result), "completed_at": now, "last_updated": now,
             "lease_owner": None, "lease_expires_at": None, "eta": None, "status_text": None, **extra},
            what=f"job {plan.job_uuid}")

    def _publish(self, job_ids: list[int]) -> None:
        """Wake refused jobs picked in a committed transaction (the sweep wakes them otherwise)."""
        if self.wake is None:
            return
        for job_id in job_ids:
            try:
                self.wake(job_id)
            except Exception:  # the scheduler's sweep wakes them too
                log.exception("could not wake queued job %s", job_id)
