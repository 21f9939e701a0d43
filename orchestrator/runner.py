"""Execution of a migration job: claim it, dispatch the agent command, watch it, finish or roll back.

A worker calls ``Runner.run(job_id)`` for every wake-up message. The job row is the truth: the
claim is a lease taken by one conditional UPDATE, so a duplicate message does nothing; the
phase says where to resume. No transaction is held across an agent call.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import or_, update

from . import events, globalconfig, responses
from .config import Settings
from .db import Database, cas
from .errors import AgentUnreachable
from .models import AsyncJob, JobResource, StoragePool, Volume, utcnow
from .states import CommandState, JobPhase, JobStatus, VolumeState

log = logging.getLogger(__name__)


class AgentPort(Protocol):
    """What the runner needs from a host agent (see docs/agent-protocol.md)."""

    def post_command(self, base_url: str, payload: dict) -> dict: ...
    def get_command(self, base_url: str, command_id: str) -> dict | None: ...
    def abort_command(self, base_url: str, command_id: str) -> dict | None: ...


def pool_to(pool: StoragePool) -> dict:
    """CloudStack's StorageFilerTO for a pool, as the agent expects it."""
    return {"uuid": pool.uuid, "path": pool.path, "type": pool.pool_type,
            "host": "127.0.0.1", "port": 0}


@dataclass(frozen=True)
class VolumeMove:
    job_id: int
    job_uuid: str
    phase: str
    volume_id: int
    volume_name: str
    src_pool_id: int
    dest_pool_id: int
    host_name: str
    agent_url: str
    command: dict  # the agent command to post (idempotent by its id = job uuid)


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
            move = self._load(job_id)
            if move is None:
                return "skipped"
            if move.phase == JobPhase.QUEUED:
                self._dispatch(move)
            return self._watch(move)
        finally:
            self.release(job_id)

    def _load(self, job_id: int) -> VolumeMove | None:
        with self.db.uow() as uow:
            s = uow.session
            job = s.get(AsyncJob, job_id)
            res = s.query(JobResource).filter_by(job_id=job_id, resource_type="Volume").one_or_none()
            if job is None or res is None or job.status != JobStatus.PENDING:
                return None
            volume = s.get(Volume, res.resource_id)
            src, dest = s.get(StoragePool, res.src_pool_id), s.get(StoragePool, res.dest_pool_id)
            host = volume.vm.host
            wait = globalconfig.wait_seconds(s)
            command = {"id": job.uuid, "type": "MigrateVolumeCommand", "volumeId": volume.uuid,
                       "volumePath": volume.path, "srcPool": pool_to(src), "pool": pool_to(dest),
                       "attachedVmName": volume.vm.instance_name, "wait": wait}
            return VolumeMove(job.id, job.uuid, job.phase, volume.id, volume.name, src.id, dest.id,
                              host.name, self.settings.agent_url_for(host.name, host.agent_url), command)

    def _dispatch(self, move: VolumeMove) -> None:
        """queued -> dispatched; the agent deadline (wait x 2) starts now, not at submission."""
        with self.db.uow() as uow:
            s = uow.session
            wait = globalconfig.wait_seconds(s)
            now = utcnow()
            cas(s, AsyncJob, move.job_id, {"phase": JobPhase.QUEUED, "lease_owner": self.me},
                {"phase": JobPhase.DISPATCHED, "dispatched_at": now,
                 "deadline_at": now + timedelta(seconds=2 * wait)}, what=f"job {move.job_uuid}")
            events.record(s, s.get(AsyncJob, move.job_id), events.VOLUME_MIGRATE, "Started",
                          f"Started migrating volume {move.volume_name} on host {move.host_name}")
            uow.commit()

    def _deadline(self, job_id: int):
        with self.db.uow() as uow:
            job = uow.session.get(AsyncJob, job_id)
            return job.deadline_at, globalconfig.wait_seconds(uow.session)

    def _watch(self, move: VolumeMove) -> str:
        deadline, wait = self._deadline(move.job_id)
        posted = False
        while True:
            if utcnow() >= deadline:
                return self._time_out(move, wait)
            try:
                record = self.agent.get_command(move.agent_url, move.job_uuid) if posted else None
                if record is None:  # not sent yet, or the agent lost it: (re)post, idempotent by id
                    record = self.agent.post_command(move.agent_url, move.command)
                    posted = True
            except AgentUnreachable as exc:
                log.warning("job %s: agent of host %s unreachable: %s", move.job_uuid, move.host_name, exc)
                record = None
            if record is not None:
                state = record.get("state")
                if state == CommandState.SUCCEEDED:
                    return self.finish(move, record)
                if state in (CommandState.FAILED, CommandState.ABORTED):
                    return self.roll_back(move, 530, f"Failed to migrate volume {move.volume_name}: "
                                          f"the agent on host {move.host_name} reported: "
                                          f"{record.get('error') or state}")
            if not self.heartbeat(move.job_id, record):
                log.warning("job %s: lease lost; another worker owns it now", move.job_uuid)
                return "lease-lost"
            time.sleep(self.settings.poll_interval)

    def _time_out(self, move: VolumeMove, wait: int) -> str:
        """Past wait x 2: abort at the agent and believe only what it then says."""
        try:
            record = self.agent.abort_command(move.agent_url, move.job_uuid)
        except AgentUnreachable:
            record = None
        if record is not None and record.get("state") == CommandState.SUCCEEDED:
            return self.finish(move, record)  # it finished just as we gave up: keep the result
        return self.roll_back(move, 530, f"Failed to migrate volume {move.volume_name}: the agent on "
                              f"host {move.host_name} did not finish within wait*2 = {2 * wait} s; "
                              f"the command was aborted and the volume stays on its source pool")

    # -- outcomes --------------------------------------------------------------------------
    def finish(self, move: VolumeMove, record: dict) -> str:
        result = record.get("result") or {}
        with self.db.uow() as uow:
            s = uow.session
            cas(s, Volume, move.volume_id, {"state": VolumeState.MIGRATING, "pool_id": move.src_pool_id},
                {"state": VolumeState.READY, "pool_id": move.dest_pool_id,
                 "last_pool_id": move.src_pool_id,
                 "path": result.get("volumePath") or move.command["volumePath"]},
                what=f"volume {move.volume_name}")
            volume = s.get(Volume, move.volume_id)
            s.refresh(volume)
            self._complete(s, move, JobStatus.SUCCEEDED, 0, {"volume": responses.volume(volume)},
                           bytes_done=int(record.get("bytesTotal") or 0))
            events.record(s, s.get(AsyncJob, move.job_id), events.VOLUME_MIGRATE, "Completed",
                          f"Successfully completed migrating volume {move.volume_name}")
            uow.commit()
        log.info("job %s succeeded: volume %s moved", move.job_uuid, move.volume_name)
        return "succeeded"

    def roll_back(self, move: VolumeMove, code: int, text: str) -> str:
        with self.db.uow() as uow:
            s = uow.session
            cas(s, Volume, move.volume_id, {"state": VolumeState.MIGRATING, "pool_id": move.src_pool_id},
                {"state": VolumeState.READY}, what=f"volume {move.volume_name}")
            self._complete(s, move, JobStatus.FAILED, code, {"errorcode": code, "errortext": text})
            events.record(s, s.get(AsyncJob, move.job_id), events.VOLUME_MIGRATE, "Completed",
                          f"Error while migrating volume {move.volume_name}: {text}", level="ERROR")
            uow.commit()
        log.warning("job %s failed: %s", move.job_uuid, text)
        return "failed"

    def _complete(self, s, move: VolumeMove, status: int, code: int, result: dict, **extra) -> None:
        now = utcnow()
        cas(s, AsyncJob, move.job_id, {"status": JobStatus.PENDING, "lease_owner": self.me},
            {"status": status, "phase": JobPhase.DONE, "result_code": code,
             "result": json.dumps(result), "completed_at": now, "last_updated": now,
             "lease_owner": None, "lease_expires_at": None, **extra},
            what=f"job {move.job_uuid}")

